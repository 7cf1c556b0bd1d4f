import Foundation
import Testing
@testable import QKStore

@Suite struct DatabaseTests {
    @Test func statementIsFinalizedWhenReleased() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        #expect(database.liveStatementCount == 0)
        do {
            let statement = try database.prepare("SELECT 1")
            #expect(try statement.step())
            #expect(database.liveStatementCount == 1)
        }
        #expect(database.liveStatementCount == 0)
    }

    @Test func nullColumnsReadAsNilAndValuesRoundTrip() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.execute("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB)")
        let insert = try database.prepare("INSERT INTO t VALUES (?, ?, ?, ?)")
        try insert.bind(42, at: 1)
        try insert.bind(2.5, at: 2)
        try insert.bind("héllo ☃", at: 3)
        try insert.bind(Data([0, 1, 255]), at: 4)
        try insert.run()
        try insert.bind([.null, .null, .null, .null])
        try insert.run()
        try insert.bind([.integer(0), .real(0), .text(""), .blob(Data())])
        try insert.run()

        let select = try database.prepare("SELECT i, d, s, b FROM t ORDER BY rowid")
        #expect(try select.step())
        #expect(select.int(at: 0) == 42)
        #expect(select.double(at: 1) == 2.5)
        #expect(select.text(at: 2) == "héllo ☃")
        #expect(select.blob(at: 3) == Data([0, 1, 255]))
        #expect(try select.step())
        #expect(select.int(at: 0) == nil)
        #expect(select.double(at: 1) == nil)
        #expect(select.text(at: 2) == nil)
        #expect(select.blob(at: 3) == nil)
        #expect(try select.step())
        // Zero and empty are values, not NULL.
        #expect(select.int(at: 0) == 0)
        #expect(select.text(at: 2) == "")
        #expect(select.blob(at: 3) == Data())
        #expect(try select.step() == false)
    }

    @Test func textWithEmbeddedNULRoundTrips() throws {
        let database = try Database(path: ":memory:")
        let statement = try database.prepare("SELECT ?, length(CAST(? AS BLOB))")
        try statement.bind("a\u{0}b", at: 1)
        try statement.bind("a\u{0}b", at: 2)
        #expect(try statement.step())
        #expect(statement.text(at: 0) == "a\u{0}b")
        #expect(statement.int(at: 1) == 3)
    }

    @Test func constraintErrorCarriesExtendedCodeMessageAndSQL() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.execute("CREATE TABLE t (name TEXT UNIQUE)")
        let sql = "INSERT INTO t (name) VALUES (?)"
        let insert = try database.prepare(sql)
        try insert.bind("a", at: 1)
        try insert.run()
        // 2067 = SQLITE_CONSTRAINT_UNIQUE, an extended code (the primary code is 19).
        #expect(throws: StoreError.sqlite(code: 2067, message: "UNIQUE constraint failed: t.name", sql: sql)) {
            try insert.run()
        }
    }

    @Test func syntaxErrorNamesTheSQL() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        #expect(throws: StoreError.sqlite(code: 1, message: "near \"SELEKT\": syntax error", sql: "SELEKT 1")) {
            _ = try database.prepare("SELEKT 1")
        }
        let error = StoreError.sqlite(code: 1, message: "near \"SELEKT\": syntax error", sql: "SELEKT 1")
        #expect(error.description == "SQLite error 1 (near \"SELEKT\": syntax error): SELEKT 1")
    }

    @Test func foreignKeysAreEnforced() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.execute("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p (id))")
        // 787 = SQLITE_CONSTRAINT_FOREIGNKEY.
        #expect(throws: StoreError.sqlite(code: 787, message: "FOREIGN KEY constraint failed",
                                          sql: "INSERT INTO c VALUES (7)")) {
            try database.execute("INSERT INTO c VALUES (7)")
        }
    }

    @Test func transactionCommitsOrRollsBackAndRethrows() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.execute("CREATE TABLE t (x INTEGER)")
        try database.transaction { () throws(StoreError) in try database.execute("INSERT INTO t VALUES (1)") }
        #expect(throws: StoreError.invalidArgument("stop")) {
            try database.transaction { () throws(StoreError) in
                try database.execute("INSERT INTO t VALUES (2)")
                throw StoreError.invalidArgument("stop")
            }
        }
        #expect(database.inTransaction == false)
        #expect(try database.scalarInt("SELECT group_concat(x) FROM t") == 1)
        // A second connection sees the same committed state.
        let other = try Database(path: temporary.path, readOnly: true)
        #expect(try other.scalarInt("SELECT count(*) FROM t") == 1)
    }

    @Test func writeAheadLogIsOn() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.enableWriteAheadLog()
        #expect(try database.scalarText("PRAGMA journal_mode") == "wal")
        #expect(try database.scalarInt("PRAGMA foreign_keys") == 1)
    }

    @Test func writeAheadLogRefusedIsReported() throws {
        // An in-memory database cannot use a write-ahead log: SQLite reports "memory".
        let database = try Database(path: ":memory:")
        #expect(throws: StoreError.walUnavailable(path: ":memory:", mode: "memory")) { try database.enableWriteAheadLog() }
    }

    @Test func float32BlobsAreLittleEndian() throws {
        let values: [Float] = [1, -2.5, .pi, 0]
        let data = Float32Blob.encode(values)
        #expect(Array(data.prefix(4)) == [0x00, 0x00, 0x80, 0x3f])  // 1.0f little-endian
        #expect(data.withUnsafeBytes(Float32Blob.decode) == values)

        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try database.execute("CREATE TABLE t (v BLOB)")
        let insert = try database.prepare("INSERT INTO t VALUES (?)")
        try insert.bindFloat32Blob(values, at: 1)
        try insert.run()
        let select = try database.prepare("SELECT v FROM t")
        #expect(try select.step())
        #expect(select.blob(at: 0) == data)
        #expect(try select.float32Blob(at: 0) == values)
    }

    @Test func oddLengthFloatBlobIsCorrupt() throws {
        let database = try Database(path: ":memory:")
        let select = try database.prepare("SELECT x'010203' AS v")
        #expect(try select.step())
        #expect(throws: StoreError.corrupt("a float32 BLOB of 3 bytes (not a multiple of 4) in column v")) {
            _ = try select.float32Blob(at: 0)
        }
    }

    @Test func openingAMissingFileReadOnlyFails() throws {
        let temporary = TemporaryDatabase()
        let path = temporary.sibling("missing.sqlite")
        #expect(throws: StoreError.cannotOpen(path: path, reason: "No such file or directory")) {
            _ = try Database(path: path, readOnly: true)
        }
    }
}
