import Foundation

/// One schema migration: `Migrations/NNNN_name.sql`, embedded in the binary.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let fileName: String
    public let sql: String
}

/// Applies the embedded migrations in order, each inside one transaction.
public enum Migrator {
    /// Every migration this build knows, in version order.
    public static let all: [Migration] = EmbeddedMigrations.files.enumerated().map { offset, file in
        let stem = file.name.hasSuffix(".sql") ? String(file.name.dropLast(4)) : file.name
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard let version = Int(parts[0]), parts.count == 2, version == offset + 1 else {
            preconditionFailure("migration \(file.name) must be named \(String(format: "%04d", offset + 1))_name.sql")
        }
        return Migration(version: version, name: String(parts[1]), fileName: file.name, sql: file.sql)
    }

    /// The schema version this build writes.
    public static var currentVersion: Int { all.last?.version ?? 0 }

    /// `PRAGMA user_version`: the last migration applied (0 for an empty database).
    public static func version(of database: Database) throws(StoreError) -> Int {
        try database.scalarInt("PRAGMA user_version") ?? 0
    }

    /// Refuses catalogs written by a newer build and files that are not catalogs, without writing.
    public static func checkCompatible(_ database: Database) throws(StoreError) -> Int {
        let found = try version(of: database)
        if found > currentVersion {
            throw .newerCatalog(path: database.path, found: found, supported: currentVersion)
        }
        if found == 0 {
            if try database.scalarInt("SELECT count(*) FROM sqlite_master") ?? 0 > 0 { throw .notACatalog(path: database.path) }
            return found
        }
        func hasTable(_ name: String) throws(StoreError) -> Bool {
            try database.scalarInt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", [.text(name)]) == 1
        }
        guard try hasTable("qkcat_migrations") else {
            guard try hasTable("components") else { throw .notACatalog(path: database.path) }
            throw .inconsistentMigrations(path: database.path, detail: "is missing, yet the schema version is \(found)")
        }
        try checkRecord(database, version: found)
        return found
    }

    /// The rows of `qkcat_migrations` must be exactly migrations 1…`version` as this build names them.
    static func checkRecord(_ database: Database, version: Int) throws(StoreError) {
        let recorded = try database.rows("SELECT version, name FROM qkcat_migrations ORDER BY version") { row in
            (version: row.int(at: 0), name: row.text(at: 1))
        }
        func fail(_ detail: String) -> StoreError { .inconsistentMigrations(path: database.path, detail: detail) }
        let versions = recorded.map { $0.version.map(String.init) ?? "NULL" }.joined(separator: ", ")
        guard recorded.map({ $0.version ?? 0 }) == Array(1...version) else {
            throw fail("lists versions [\(versions)] but the schema version (PRAGMA user_version) is \(version)")
        }
        for (row, migration) in zip(recorded, all) where row.name != migration.name {
            throw fail("names migration \(migration.version) '\(row.name ?? "NULL")', which qkcat calls '\(migration.name)'")
        }
    }

    /// Applies every migration newer than the database's version; returns the versions applied.
    @discardableResult
    public static func migrate(_ database: Database, upTo target: Int = currentVersion) throws(StoreError) -> [Int] {
        let found = try checkCompatible(database)
        try SearchOrder.register(on: database)
        var applied: [Int] = []
        for migration in all where migration.version > found && migration.version <= target {
            try database.transaction { () throws(StoreError) in
                // Re-read inside the write lock: another process may have migrated meanwhile.
                guard try version(of: database) < migration.version else { return }
                try database.execute(migration.sql)
                let record = try database.prepare(
                    "INSERT INTO qkcat_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                try record.bind([.integer(migration.version), .text(migration.name), .text(Timestamp.now())])
                try record.run()
                try database.execute("PRAGMA user_version = \(migration.version)")
                applied.append(migration.version)
            }
        }
        return applied
    }
}

/// ISO 8601 UTC timestamps as stored in the catalog (the formatter's default: internet date-time in UTC, whatever
/// the process's time zone).
enum Timestamp {
    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }
}
