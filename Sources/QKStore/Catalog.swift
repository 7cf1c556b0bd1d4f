import Foundation
import QKEngine

/// The qkcat catalog: one SQLite file of decompositions, components and their examples.
///
/// Concerns live in their own files: ingest (CatalogIngest), search (CatalogSearch), labels (CatalogLabels), reading
/// decompositions (CatalogReading), subspaces (CatalogSubspaces), comparisons (CatalogCompare), lists
/// (CatalogLists); filters become SQL in one place (CatalogFilter).
public final class Catalog {
    public let database: Database
    public var path: String { database.path }
    /// The schema version this open upgraded the catalog from (nil: it was current, or new).
    public private(set) var upgradedFrom: Int?
    /// How many components a filter may let through for a search to start from them (checking each one's words);
    /// past it, the words' matches lead (they come best first) and the filter is checked on them.
    var filterLeadLimit = 1000
    /// How many of the words' rows a search reads in order per candidate of a leading filter before it seeks each
    /// candidate's row instead: one seek costs about as much as reading this many rows.
    var seekCost = 128
    /// How many components a `similar` scan must cover to be split across threads.
    var similarSplitAbove: Int64 = 100_000

    init(database: Database) { self.database = database }

    /// Opens the catalog at `path`; statements, the migrations included, wait up to `busyTimeoutMilliseconds` for
    /// another writer's lock.
    ///
    /// Read-only opens never write — not even on an outdated catalog, which they refuse with
    /// `.outdatedCatalog` naming `qkcat upgrade` — and work on read-only storage. A writable open creates a missing
    /// catalog and upgrades an older one (`upgradedFrom` says so). A catalog written by a newer qkcat is refused
    /// before anything is written to it.
    public static func open(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 5000)
        throws(StoreError) -> Catalog
    {
        let exists = FileManager.default.fileExists(atPath: path)
        if readOnly {
            guard exists else { throw .notFound(what: "catalog \(path)") }
            let database = try Database(path: path, readOnly: true, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            let found = try Migrator.checkCompatible(database)
            guard found == Migrator.currentVersion else {
                throw .outdatedCatalog(path: path, found: found, current: Migrator.currentVersion)
            }
            try database.execute("PRAGMA cache_size = -65536")
            return Catalog(database: database)
        }
        if exists {
            // Probe through a read-only connection, which never writes or checkpoints the file.
            _ = try Migrator.checkCompatible(
                try Database(path: path, readOnly: true, busyTimeoutMilliseconds: busyTimeoutMilliseconds))
        }
        let database = try Database(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        try database.enableWriteAheadLog()
        let found = try Migrator.version(of: database)
        let applied = try Migrator.migrate(database)
        let catalog = Catalog(database: database)
        if found > 0, !applied.isEmpty {
            catalog.upgradedFrom = found
            try database.execute("INSERT INTO component_text (component_text) VALUES ('optimize')")
        }
        return catalog
    }
}
