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
            return "\(path): an SQLite database that is not a qkcat catalog"
        case let .alreadyIngested(hash, captureID):
            return "capture \(hash) is already in the catalog (capture \(captureID))"
        case let .notFound(what):
            return "\(what) not found"
        case let .invalidArgument(message):
            return message
        case let .corrupt(message):
            return "corrupt catalog: \(message)"
        }
    }

    private static func abbreviate(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return oneLine.count <= 200 ? oneLine : String(oneLine.prefix(200)) + "…"
    }
}
