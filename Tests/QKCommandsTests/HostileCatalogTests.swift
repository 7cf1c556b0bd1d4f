import Foundation
import Testing
import QKStore
import QKTestSupport

/// Files that are not healthy catalogs, given as `--db`: every command gets one line saying what is wrong with the
/// file (never a bare SQLite code), exits 1, and leaves the file's bytes as they were.
@Suite("hostile catalogs")
struct HostileCatalogTests {
    /// A catalog with one ingested capture, closed (its write-ahead log checkpointed away).
    static func healthyCatalog(in root: TemporaryDirectory) throws -> (db: String, capture: URL) {
        let capture = try writeCapture(syntheticSpec(prompts: 40), in: root, name: "capture")
        let db = root.path("healthy.sqlite").path
        let ingest = qkcat(["ingest", capture.path, "--db", db, "-q"])
        #expect(ingest.code == 0, "\(ingest.err)")
        return (db, capture)
    }

    /// Runs a read, a label, an ingest and a listing against `path`; each must fail with exactly one line that
    /// starts with `Error: <path>: <expected>` and change nothing in the file.
    func expectRefused(_ path: String, saying expected: String, capture: URL) throws {
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let commands = [["search", "category"], ["label", "1", "mine"], ["ingest", capture.path, "-q"],
                        ["list", "models", "--json"], ["export"]]
        for command in commands {
            let result = qkcat(command + ["--db", path])
            #expect(result.code == 1, "\(command): exit \(result.code), \(result.err)")
            #expect(result.out.isEmpty, "\(command) printed \(result.out)")
            #expect(result.err.hasPrefix("Error: \(path): \(expected)"), "\(command): \(result.err)")
            #expect(result.err.filter { $0 == "\n" }.count == 1, "\(command): not one line: \(result.err)")
            #expect(!result.err.contains("SQLite error"), "\(command): \(result.err)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "the file was written to")
        let log = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        #expect(log == 0, "a write-ahead log of \(log) bytes was written next to it")
    }

    @Test("a truncated catalog is called damaged, and nothing is written to it")
    func truncated() throws {
        let root = try TemporaryDirectory()
        let (db, capture) = try Self.healthyCatalog(in: root)
        let whole = try Data(contentsOf: URL(fileURLWithPath: db))
        for fraction in [0.1, 0.5, 0.95] {
            let path = root.path("truncated-\(fraction).sqlite").path
            try whole.prefix(Int(Double(whole.count) * fraction)).write(to: URL(fileURLWithPath: path))
            try expectRefused(path, saying: "the catalog file is damaged (database disk image is malformed)", capture: capture)
        }
    }

    @Test("a file that is not SQLite is called so")
    func notSQLite() throws {
        let root = try TemporaryDirectory()
        let (_, capture) = try Self.healthyCatalog(in: root)
        for (name, content) in [("text", Data("qkcat notes, not a database\n".utf8)),
                                ("random", Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }))] {
            let path = root.path("\(name).sqlite").path
            try content.write(to: URL(fileURLWithPath: path))
            try expectRefused(path, saying: "not a qkcat catalog: the file is not an SQLite database", capture: capture)
        }
    }

    @Test("an SQLite database of someone else's is not a catalog")
    func foreignDatabase() throws {
        let root = try TemporaryDirectory()
        let (_, capture) = try Self.healthyCatalog(in: root)
        let plain = root.path("plain.sqlite").path
        let numbered = root.path("numbered.sqlite").path
        do {
            try Database(path: plain).execute("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello')")
            try Database(path: numbered).execute("CREATE TABLE notes (text TEXT); PRAGMA user_version = 2")
        }
        try expectRefused(plain, saying: "not a qkcat catalog: an SQLite database without qkcat's tables", capture: capture)
        try expectRefused(numbered, saying: "not a qkcat catalog: an SQLite database without qkcat's tables", capture: capture)
    }

    /// Edits of `qkcat_migrations` and what the refusal says about each.
    static var tamperings: [(edit: String, detail: String)] {
        let current = Migrator.currentVersion
        let names = Migrator.all.map(\.name)
        let all = (1...current).map(String.init).joined(separator: ", ")
        let allButLast = (1..<current).map(String.init).joined(separator: ", ")
        return [
            ("DELETE FROM qkcat_migrations WHERE version = \(current)",
             "lists versions [\(allButLast)] but the schema version (PRAGMA user_version) is \(current)"),
            ("INSERT INTO qkcat_migrations VALUES (\(current + 5), 'extra', 'now')",
             "lists versions [\(all), \(current + 5)] but the schema version (PRAGMA user_version) is \(current)"),
            ("UPDATE qkcat_migrations SET name = 'mine' WHERE version = 1", "names migration 1 'mine', which qkcat calls '\(names[0])'"),
            ("DROP TABLE qkcat_migrations", "is missing, yet the schema version is \(current)"),
        ]
    }

    @Test("a catalog whose qkcat_migrations was tampered with is refused", arguments: 0..<4)
    func tamperedMigrations(index: Int) throws {
        let (edit, detail) = Self.tamperings[index]
        let root = try TemporaryDirectory()
        let (db, capture) = try Self.healthyCatalog(in: root)
        do {
            let database = try Database(path: db)
            try database.execute(edit)
        }
        #expect(!FileManager.default.fileExists(atPath: db + "-wal"), "the edit is not in the file itself yet")
        try expectRefused(db, saying: "the catalog's record of its migrations (qkcat_migrations) \(detail)", capture: capture)
    }

    @Test("the healthy catalog these start from is accepted (the checks do not refuse good files)")
    func healthyIsAccepted() throws {
        let root = try TemporaryDirectory()
        let (db, _) = try Self.healthyCatalog(in: root)
        let search = qkcat(["search", "category", "--db", db, "--limit", "1"])
        #expect(search.code == 0, "\(search.err)")
        #expect(qkcat(["label", "1", "mine", "--db", db]).code == 0)
    }
}
