import Foundation

/// Every failure of the catalog store, with a readable message.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// SQLite refused: the extended result code, `sqlite3_errmsg`, and the SQL when there was one.
    case sqlite(code: Int32, message: String, sql: String?)
    /// The write-ahead log could not be turned on; `mode` is what `PRAGMA journal_mode` reported.
    case walUnavailable(path: String, mode: String)
    /// The catalog was written by a newer qkcat; it is left untouched.
    case newerCatalog(path: String, found: Int, supported: Int)
    /// The catalog needs migrations, but it was opened for reading (which never writes).
    case outdatedCatalog(path: String, found: Int, current: Int)
    /// The file is an SQLite database but not a qkcat catalog.
    case notACatalog(path: String)
    /// A capture with this content hash is already in the catalog.
    case alreadyIngested(contentHash: String, captureID: Int64)
    /// A model, checkpoint, component, … that is not in the catalog.
    case notFound(what: String)
    /// An argument or an ingested value the store cannot accept.
    case invalidArgument(String)
    /// A stored value that cannot be decoded (e.g. a vector BLOB of the wrong length).
    case corrupt(String)
    /// The file could not be opened (a missing folder, no permission); `reason` is the system's.
    case cannotOpen(path: String, reason: String)
    /// The file is not an SQLite database at all.
    case notADatabase(path: String)
    /// The catalog file is damaged: truncated, or overwritten with other bytes; `detail` says what was found.
    case damaged(path: String, detail: String)
    /// A write failed for lack of space on the device holding the catalog; the transaction was rolled back.
    case diskFull(path: String)
    /// Another connection kept the catalog's write lock longer than this one waited; `holder` names it when known.
    case locked(path: String, holder: String?, waitedMilliseconds: Int)
    /// The record of applied migrations (`qkcat_migrations`) disagrees with the schema version or with the
    /// migrations qkcat ships: the file was changed outside qkcat.
    case inconsistentMigrations(path: String, detail: String)

    public var description: String {
        switch self {
        case let .sqlite(code, message, sql):
            let statement = sql.map { ": \(Self.abbreviate($0))" } ?? ""
            return "SQLite error \(code) (\(message))\(statement)"
        case let .walUnavailable(path, mode):
            return "\(path): could not turn on write-ahead logging (journal mode is \(mode))"
        case let .newerCatalog(path, found, supported):
            return "\(path): catalog schema version \(found) is newer than this qkcat supports (\(supported)); "
                + "use a newer qkcat. The catalog was not modified."
        case let .outdatedCatalog(path, found, current):
            return "\(path): catalog schema version \(found) needs upgrading to \(current), and reading commands never "
                + "write; run 'qkcat upgrade --db \(path)' where the file is writable"
        case let .notACatalog(path):
            return "\(path): not a qkcat catalog: an SQLite database without qkcat's tables; nothing was written to it"
        case let .alreadyIngested(hash, captureID):
            return "capture \(hash) is already in the catalog (capture \(captureID))"
        case let .notFound(what):
            return "\(what) not found"
        case let .invalidArgument(message):
            return message
        case let .corrupt(message):
            return "corrupt catalog: \(message)"
        case let .cannotOpen(path, reason):
            return "\(path): cannot open the catalog: \(reason)"
        case let .notADatabase(path):
            return "\(path): not a qkcat catalog: the file is not an SQLite database; nothing was written to it"
        case let .damaged(path, detail):
            return "\(path): the catalog file is damaged (\(detail)): truncated or overwritten? "
                + "Nothing was written to it; restore it from a backup"
        case let .diskFull(path):
            return "no space left on the device holding \(path): nothing was saved, the catalog is as it was; "
                + "free some space and run the command again"
        case let .locked(path, holder, waited):
            let seconds = waited % 1000 == 0 ? "\(waited / 1000)" : String(format: "%.1f", Double(waited) / 1000)
            return "\(path): the catalog's write lock is held by another writer (\(holder ?? "another connection of this process")) "
                + "and was not released within \(seconds) s; run the command again when that one has finished"
        case let .inconsistentMigrations(path, detail):
            return "\(path): the catalog's record of its migrations (qkcat_migrations) \(detail): the file was changed "
                + "outside qkcat; nothing was written to it"
        }
    }

    private static func abbreviate(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return oneLine.count <= 200 ? oneLine : String(oneLine.prefix(200)) + "…"
    }
}
