import CSQLite
import Foundation

/// A value bound to or read from SQLite.
public enum SQLValue: Equatable, Sendable {
    case null
    case integer(Int)
    case real(Double)
    case text(String)
    case blob(Data)
}

/// SQLite's "copy the buffer now" destructor.
let transientDestructor = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection: busy timeout, foreign keys, extended result codes; closed on deinit.
public final class Database {
    public let path: String
    let handle: OpaquePointer

    /// Opens `path` for reading and writing (creating the file when missing), or for reading only; turns on foreign
    /// keys and extended result codes and sets the busy timeout.
    ///
    /// A read-only open never writes, and works where nothing can be written: a write-ahead-log database needs its
    /// `-shm` file, which a read-only directory cannot hold, so when SQLite cannot open it the file is read as
    /// immutable (`immutable=1`) — unless a `-wal` file with content lies beside it, whose commits that would skip.
    public init(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 5000) throws(StoreError) {
        let flags = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        self.path = path
        var handle = try Self.open(path, path: path, flags: flags)
        if readOnly, let failure = Self.probe(handle), Self.cannotOpenSharedMemory(failure) {
            sqlite3_close_v2(handle)
            let log = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
            guard log == 0 else {
                throw .sqlite(code: failure, message: "\(path) is read-only storage and its write-ahead log \(path)-wal "
                    + "holds commits that need a -shm file to read; checkpoint it where it is writable "
                    + "(sqlite3 \(path) 'PRAGMA wal_checkpoint(TRUNCATE)')", sql: nil)
            }
            handle = try Self.open(Self.immutableURI(path), path: path, flags: flags | SQLITE_OPEN_URI)
        }
        self.handle = handle
        self.busyTimeoutMilliseconds = max(0, busyTimeoutMilliseconds)
        sqlite3_extended_result_codes(handle, 1)
        try check(sqlite3_busy_timeout(handle, self.busyTimeoutMilliseconds), sql: nil)
        try execute("PRAGMA foreign_keys = ON")
    }

    /// Opens `name` (the path, or a URI of it); errors name `path`.
    private static func open(_ name: String, path: String, flags: Int32) throws(StoreError) -> OpaquePointer {
        var opened: OpaquePointer?
        let code = sqlite3_open_v2(name, &opened, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let opened else {
            let systemError = opened.map { sqlite3_system_errno($0) } ?? 0
            sqlite3_close_v2(opened)
            if systemError == ENOSPC || systemError == EDQUOT { throw .diskFull(path: path) }
            let reason = systemError != 0 ? String(cString: strerror(systemError)) : String(cString: sqlite3_errstr(code))
            throw .cannotOpen(path: path, reason: reason)
        }
        return opened
    }

    /// Reads the schema (which opens the log and its shared memory); the extended code of a failure.
    private static func probe(_ handle: OpaquePointer) -> Int32? {
        sqlite3_extended_result_codes(handle, 1)
        let code = sqlite3_exec(handle, "SELECT count(*) FROM sqlite_master", nil, nil, nil)
        return code == SQLITE_OK ? nil : sqlite3_extended_errcode(handle)
    }

    private static func cannotOpenSharedMemory(_ code: Int32) -> Bool {
        (code & 0xff) == SQLITE_CANTOPEN || (code & 0xff) == SQLITE_READONLY || code == SQLITE_IOERR | (18 << 8)  // SQLITE_IOERR_SHMOPEN
    }

    /// `file:` URI of `path` with `immutable=1` (percent-encoding what a URI reads specially).
    private static func immutableURI(_ path: String) -> String {
        var encoded = ""
        for character in path.unicodeScalars {
            switch character {
            case "%", "?", "#": encoded += String(format: "%%%02X", character.value)
            default: encoded.unicodeScalars.append(character)
            }
        }
        return "file:" + encoded + "?immutable=1"
    }

    /// How long a statement waits for another connection's lock before failing with `StoreError.locked`.
    public let busyTimeoutMilliseconds: Int32

    deinit {
        // close_v2 defers the close until every statement (each holds a reference to us) is finalized.
        sqlite3_close_v2(handle)
    }

    /// The one funnel from result codes to errors: passes OK, ROW and DONE through, throws the rest.
    @discardableResult
    public func check(_ code: Int32, sql: String?) throws(StoreError) -> Int32 {
        switch code {
        case SQLITE_OK, SQLITE_ROW, SQLITE_DONE:
            return code
        default:
            // The connection's extended code is the precise one; fall back to the code itself.
            let extended = sqlite3_extended_errcode(handle)
            throw error(code: (extended & 0xff) == (code & 0xff) ? extended : code,
                        message: String(cString: sqlite3_errmsg(handle)), sql: sql)
        }
    }

    /// The typed error for a failed result code. What is wrong with the file itself (a full disk, damage, not
    /// a database at all, another writer's lock) is said in those words; the rest keeps SQLite's code and message.
    func error(code: Int32, message: String, sql: String?) -> StoreError {
        let systemError = sqlite3_system_errno(handle)
        let noSpace = systemError == ENOSPC || systemError == EDQUOT
        switch code & 0xff {
        case SQLITE_FULL:
            return .diskFull(path: path)
        case SQLITE_IOERR where noSpace, SQLITE_CANTOPEN where noSpace:
            return .diskFull(path: path)
        case SQLITE_CORRUPT:
            return .damaged(path: path, detail: message)
        case SQLITE_NOTADB:
            return .notADatabase(path: path)
        case SQLITE_BUSY:
            return .locked(path: path, holder: WriteLock.holder(ofDatabaseAt: path), waitedMilliseconds: Int(busyTimeoutMilliseconds))
        default:
            return .sqlite(code: code, message: message, sql: sql)
        }
    }

    /// Turns on the write-ahead log (a write: writable connections only) and checks that SQLite reports it on.
    public func enableWriteAheadLog() throws(StoreError) {
        let mode = try scalarText("PRAGMA journal_mode = WAL") ?? ""
        guard mode.lowercased() == "wal" else { throw .walUnavailable(path: path, mode: mode) }
        // In WAL mode NORMAL keeps the database consistent after a crash; only the last commits may be lost.
        try execute("PRAGMA synchronous = NORMAL")
        // A large ingest rewrites B-tree pages many times inside one transaction; a bigger page cache (64 MiB)
        // keeps them in memory instead of spilling each version to the log.
        try execute("PRAGMA cache_size = -65536")
    }

    /// Runs a script of one or more statements without results.
    public func execute(_ sql: String) throws(StoreError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw error(code: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// Compiles one statement.
    public func prepare(_ sql: String) throws(StoreError) -> Statement {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil), sql: sql)
        guard let statement else { throw .invalidArgument("no SQL statement in: \(sql)") }
        return Statement(database: self, handle: statement, sql: sql)
    }

    /// How a transaction takes its lock: `immediate` takes the write lock at once (every write), `deferred` reads one
    /// snapshot and writes nothing.
    public enum TransactionKind: String, Sendable {
        case immediate = "BEGIN IMMEDIATE"
        case deferred = "BEGIN DEFERRED"
    }

    /// Starts a transaction that spans calls (an ingest); end it with `commit()` or `rollback()`.
    public func begin(_ kind: TransactionKind = .immediate) throws(StoreError) { try execute(kind.rawValue) }

    public func commit() throws(StoreError) { try execute("COMMIT") }

    /// Rolls back the open transaction, if any (SQLite may have rolled back already after an error).
    public func rollback() {
        if inTransaction { try? execute("ROLLBACK") }
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws. Inside a transaction
    /// already, `body` joins it.
    public func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws(StoreError) -> T)
        throws(StoreError) -> T
    {
        if inTransaction { return try body() }
        try begin(kind)
        do {
            let result = try body()
            try commit()
            return result
        } catch {
            rollback()
            throw error
        }
    }

    /// True inside an explicit transaction.
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Row id of the last insert on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Statements prepared on this connection and not yet finalized.
    var liveStatementCount: Int {
        var count = 0
        var statement = sqlite3_next_stmt(handle, nil)
        while let current = statement {
            count += 1
            statement = sqlite3_next_stmt(handle, current)
        }
        return count
    }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Defines a deterministic SQL function of `argumentCount` arguments with an integer result (nil: NULL) on this
    /// connection.
    public func defineFunction(_ name: String, argumentCount: Int32, _ body: @escaping ([SQLValue]) -> Int64?)
        throws(StoreError)
    {
        let box = Unmanaged.passRetained(FunctionBox(body)).toOpaque()
        let code = sqlite3_create_function_v2(
            handle, name, argumentCount, SQLITE_UTF8 | SQLITE_DETERMINISTIC, box,
            { context, count, arguments in
                let box = Unmanaged<FunctionBox>.fromOpaque(sqlite3_user_data(context)).takeUnretainedValue()
                let values = (0 ..< Int(count)).map { Statement.value(of: arguments![$0]) }
                if let result = box.body(values) { sqlite3_result_int64(context, result) } else { sqlite3_result_null(context) }
            }, nil, nil, { box in Unmanaged<FunctionBox>.fromOpaque(box!).release() })
        try check(code, sql: "define function \(name)")
    }

    /// Every row of `sql` with `values` bound, each read by `row`.
    public func rows<T>(_ sql: String, _ values: [SQLValue] = [], _ row: (Statement) throws(StoreError) -> T)
        throws(StoreError) -> [T]
    {
        let statement = try prepare(sql)
        try statement.bind(values)
        return try statement.rows(row)
    }

    /// The first column of the first row, as an integer (nil: no row or NULL).
    public func scalarInt(_ sql: String, _ values: [SQLValue] = []) throws(StoreError) -> Int? {
        let statement = try prepare(sql)
        try statement.bind(values)
        return try statement.step() ? statement.int(at: 0) : nil
    }

    /// The first column of the first row, as text (nil: no row or NULL).
    public func scalarText(_ sql: String, _ values: [SQLValue] = []) throws(StoreError) -> String? {
        let statement = try prepare(sql)
        try statement.bind(values)
        return try statement.step() ? statement.text(at: 0) : nil
    }
}

private final class FunctionBox {
    let body: ([SQLValue]) -> Int64?
    init(_ body: @escaping ([SQLValue]) -> Int64?) { self.body = body }
}

/// A prepared statement; finalized when the last reference goes.
public final class Statement {
    public let sql: String
    let database: Database
    let handle: OpaquePointer

    fileprivate init(database: Database, handle: OpaquePointer, sql: String) {
        self.database = database
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    // MARK: Binding (indices are 1-based, as in SQLite)

    public func bind(_ value: Int?, at index: Int32) throws(StoreError) {
        guard let value else { return try bindNull(at: index) }
        try database.check(sqlite3_bind_int64(handle, index, Int64(value)), sql: sql)
    }

    public func bind(_ value: Int64?, at index: Int32) throws(StoreError) {
        guard let value else { return try bindNull(at: index) }
        try database.check(sqlite3_bind_int64(handle, index, value), sql: sql)
    }

    public func bind(_ value: Double?, at index: Int32) throws(StoreError) {
        guard let value else { return try bindNull(at: index) }
        try database.check(sqlite3_bind_double(handle, index, value), sql: sql)
    }

    public func bind(_ value: String?, at index: Int32) throws(StoreError) {
        guard var value else { return try bindNull(at: index) }
        try database.check(value.withUTF8 { bindText(UnsafeRawBufferPointer($0), at: index) }, sql: sql)
    }

    /// Binds text given as UTF-8 bytes (the caller guarantees valid UTF-8), without building a String.
    func bind(utf8 bytes: [UInt8], at index: Int32) throws(StoreError) {
        try database.check(bytes.withUnsafeBytes { bindText($0, at: index) }, sql: sql)
    }

    public func bind(_ value: Data?, at index: Int32) throws(StoreError) {
        guard let value else { return try bindNull(at: index) }
        try database.check(value.withUnsafeBytes { bindBlob($0, at: index) }, sql: sql)
    }

    // An explicit byte length keeps any embedded NUL; an empty text or blob still needs a non-NULL pointer, or SQLite
    // stores NULL.
    private func bindText(_ bytes: UnsafeRawBufferPointer, at index: Int32) -> Int32 {
        let start = (bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!).assumingMemoryBound(to: CChar.self)
        return sqlite3_bind_text(handle, index, start, Int32(bytes.count), transientDestructor)
    }

    private func bindBlob(_ bytes: UnsafeRawBufferPointer, at index: Int32) -> Int32 {
        sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count),
                          transientDestructor)
    }

    public func bindNull(at index: Int32) throws(StoreError) {
        try database.check(sqlite3_bind_null(handle, index), sql: sql)
    }

    public func bind(_ value: SQLValue, at index: Int32) throws(StoreError) {
        switch value {
        case .null: try bindNull(at: index)
        case let .integer(int): try bind(int, at: index)
        case let .real(double): try bind(double, at: index)
        case let .text(string): try bind(string, at: index)
        case let .blob(data): try bind(data, at: index)
        }
    }

    /// Binds `values` to parameters 1, 2, …
    public func bind(_ values: [SQLValue]) throws(StoreError) {
        for (offset, value) in values.enumerated() { try bind(value, at: Int32(offset + 1)) }
    }

    /// Binds a float vector as a little-endian float32 BLOB without an intermediate copy on little-endian hosts.
    public func bindFloat32Blob(_ vector: [Float], at index: Int32) throws(StoreError) {
        #if _endian(little)
        try database.check(vector.withUnsafeBytes { bindBlob($0, at: index) }, sql: sql)
        #else
        try bind(Float32Blob.encode(vector), at: index)
        #endif
    }

    // MARK: Stepping

    /// Advances; true when a row is available, false when done.
    @discardableResult
    public func step() throws(StoreError) -> Bool {
        try database.check(sqlite3_step(handle), sql: sql) == SQLITE_ROW
    }

    /// Runs to completion, ignoring rows; then resets for reuse.
    public func run() throws(StoreError) {
        defer { sqlite3_reset(handle) }
        while try step() {}
    }

    /// Every remaining row, each read by `row`; then resets for reuse.
    public func rows<T>(_ row: (Statement) throws(StoreError) -> T) throws(StoreError) -> [T] {
        defer { sqlite3_reset(handle) }
        var result: [T] = []
        while try step() { result.append(try row(self)) }
        return result
    }

    /// Makes the statement ready to run again; bindings stay.
    public func reset() { sqlite3_reset(handle) }

    // MARK: Reading columns (0-based); NULL reads as nil

    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    public func columnName(at index: Int32) -> String { String(cString: sqlite3_column_name(handle, index)) }

    public func isNull(at index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    public func int(at index: Int32) -> Int? {
        isNull(at: index) ? nil : Int(sqlite3_column_int64(handle, index))
    }

    public func int64(at index: Int32) -> Int64? {
        isNull(at: index) ? nil : sqlite3_column_int64(handle, index)
    }

    public func double(at index: Int32) -> Double? {
        isNull(at: index) ? nil : sqlite3_column_double(handle, index)
    }

    public func text(at index: Int32) -> String? {
        guard !isNull(at: index), let pointer = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    public func blob(at index: Int32) -> Data? { rawBlob(at: index).map { Data($0) } }

    /// A BLOB column's bytes in place, valid until the next step or reset (nil: NULL).
    func rawBlob(at index: Int32) -> UnsafeRawBufferPointer? {
        guard !isNull(at: index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let pointer = sqlite3_column_blob(handle, index) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }

    /// A little-endian float32 BLOB column as floats (nil: NULL).
    public func float32Blob(at index: Int32) throws(StoreError) -> [Float]? {
        guard let bytes = rawBlob(at: index) else { return nil }
        guard bytes.count % 4 == 0 else {
            throw .corrupt("a float32 BLOB of \(bytes.count) bytes (not a multiple of 4) in column \(columnName(at: index))")
        }
        return Float32Blob.decode(bytes)
    }

    /// A function argument as a value.
    fileprivate static func value(of value: OpaquePointer?) -> SQLValue {
        switch sqlite3_value_type(value) {
        case SQLITE_INTEGER: return .integer(Int(sqlite3_value_int64(value)))
        case SQLITE_FLOAT: return .real(sqlite3_value_double(value))
        case SQLITE_TEXT: return .text(String(cString: sqlite3_value_text(value)))
        case SQLITE_BLOB:
            let count = Int(sqlite3_value_bytes(value))
            return .blob(count == 0 ? Data() : Data(bytes: sqlite3_value_blob(value), count: count))
        default: return .null
        }
    }

    /// A column that must not be NULL: its value, or `.corrupt` naming the column and the statement.
    public func required<T: SQLColumn>(_ index: Int32, as type: T.Type = T.self) throws(StoreError) -> T {
        guard let value = T.read(self, at: index) else {
            throw .corrupt("NULL in column \(columnName(at: index)) of: \(sql)")
        }
        return value
    }

    public func value(at index: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER: return .integer(Int(sqlite3_column_int64(handle, index)))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, index))
        case SQLITE_TEXT: return .text(text(at: index) ?? "")
        case SQLITE_BLOB: return .blob(blob(at: index) ?? Data())
        default: return .null
        }
    }
}

/// A type a column reads as (NULL reads as nil).
public protocol SQLColumn {
    static func read(_ statement: Statement, at index: Int32) -> Self?
}

extension Int: SQLColumn { public static func read(_ s: Statement, at i: Int32) -> Int? { s.int(at: i) } }
extension Int64: SQLColumn { public static func read(_ s: Statement, at i: Int32) -> Int64? { s.int64(at: i) } }
extension Double: SQLColumn { public static func read(_ s: Statement, at i: Int32) -> Double? { s.double(at: i) } }
extension String: SQLColumn { public static func read(_ s: Statement, at i: Int32) -> String? { s.text(at: i) } }
extension Data: SQLColumn { public static func read(_ s: Statement, at i: Int32) -> Data? { s.blob(at: i) } }

/// Vectors stored as little-endian float32 BLOBs (`numpy.frombuffer(blob, "<f4")`).
public enum Float32Blob {
    public static func encode(_ vector: [Float]) -> Data {
        var data = Data(count: vector.count * 4)
        data.withUnsafeMutableBytes { bytes in
            for (offset, value) in vector.enumerated() {
                bytes.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: offset * 4, as: UInt32.self)
            }
        }
        return data
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        (0 ..< bytes.count / 4).map { offset in
            Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset * 4, as: UInt32.self)))
        }
    }
}

/// Who holds the write lock of a database in WAL mode, for the message of a writer that gave up waiting.
///
/// SQLite takes its WAL locks as POSIX record locks on bytes 120… of the `-shm` file (the write lock on byte
/// 120, checkpoint 121, recovery 122). They are found in `/proc/locks` by the file's inode, never by opening the
/// file: closing any descriptor of a file drops every POSIX lock this process holds on it, SQLite's included.
enum WriteLock {
    static let lockBytes = 120...122

    /// "pid 1234: qkcat ingest …" for another process holding the write, checkpoint or recovery lock, if any.
    static func holder(ofDatabaseAt path: String) -> String? {
        var status = stat()
        guard stat(path + "-shm", &status) == 0,
              let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        let inode = ":\(status.st_ino)"
        for line in locks.split(separator: "\n") {
            // "3: POSIX  ADVISORY  WRITE 27099 fe:00:16236784 120 120"
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[1] == "POSIX", fields[3] == "WRITE", fields[5].hasSuffix(inode),
                  let pid = pid_t(fields[4]), pid != getpid(), let start = Int(fields[6]),
                  lockBytes.contains(start) || (start < lockBytes.lowerBound && (Int(fields[7]) ?? Int.max) >= lockBytes.lowerBound)
            else { continue }
            return describe(process: pid)
        }
        return nil
    }

    /// "pid N: its command line" (cut to 240 characters), or "pid N" when it cannot be read.
    static func describe(process pid: pid_t) -> String {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return "pid \(pid)" }
        var words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if let program = words.first { words[0] = (program as NSString).lastPathComponent }
        let line = words.joined(separator: " ")
        return "pid \(pid): " + (line.count <= 240 ? line : String(line.prefix(239)) + "…")
    }
}
