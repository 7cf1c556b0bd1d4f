import Foundation
import Testing
import QKStore
import QKTestSupport

/// A small tmpfs mounted for one test and unmounted with it: a disk that can be filled on purpose.
final class SmallDisk {
    let url: URL
    private let mountPoint: TemporaryDirectory

    /// Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests that need a full disk are skipped.
    static let canMount: Bool = {
        guard geteuid() == 0, let disk = try? SmallDisk(megabytes: 1) else { return false }
        _ = disk
        return true
    }()

    init(megabytes: Int) throws {
        mountPoint = try TemporaryDirectory(prefix: "qkcat-small-disk")
        url = mountPoint.url
        let status = try Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", url.path])
        guard status == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    deinit { _ = try? Self.run("/bin/umount", ["-l", url.path]) }

    private static func run(_ program: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    var freeBytes: Int {
        var status = statvfs()
        return statvfs(url.path, &status) == 0 ? Int(status.f_bavail) * Int(status.f_frsize) : 0
    }

    /// Fills the disk with a file until `leaving` bytes (or nothing at all) are free.
    func fill(leaving reserve: Int = 0) throws {
        let path = url.appendingPathComponent("filler").path
        FileManager.default.createFile(atPath: path, contents: nil)
        let filler = try #require(FileHandle(forWritingAtPath: path))
        defer { try? filler.close() }
        let block = Data(count: 1 << 16)
        while freeBytes - reserve >= block.count { try filler.write(contentsOf: block) }
        if reserve == 0 {
            // The last pages one write at a time, until the device says it is full.
            let page = Data(count: 4096)
            while (try? filler.write(contentsOf: page)) != nil, freeBytes > 0 {}
        }
    }

    func free() throws {
        try FileManager.default.removeItem(at: url.appendingPathComponent("filler"))
    }
}

/// Commands writing into a catalog on a device that fills up: a clear error, exit 1, the catalog exactly as
/// before (integrity check, every row, the export) and writable again once space is freed.
@Suite("full disk", .serialized, .enabled(if: SmallDisk.canMount, "needs root to mount a small tmpfs"))
struct FullDiskTests {
    static func expectNoSpace(_ result: RunResult, _ db: String) {
        #expect(result.code == 1, "exit \(result.code): \(result.err)")
        #expect(result.err == "Error: no space left on the device holding \(db): nothing was saved, the catalog is as it "
            + "was; free some space and run the command again\n")
    }

    /// Rows, integrity and export of the catalog at `db`.
    static func state(_ db: String) throws -> (snapshot: String, integrity: String, export: String) {
        let snapshot = try CatalogSnapshot.take(db)
        let export = qkcat(["export", "--db", db])
        #expect(export.code == 0, "\(export.err)")
        return (snapshot.content, snapshot.integrity, export.out)
    }

    @Test("label on a full disk")
    func labelOnAFullDisk() throws {
        let root = try TemporaryDirectory()
        let disk = try SmallDisk(megabytes: 16)
        let capture = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "capture")
        let db = disk.url.appendingPathComponent("catalog.sqlite").path
        #expect(qkcat(["ingest", capture.path, "--db", db, "-q"]).code == 0)
        let before = try Self.state(db)
        #expect(before.integrity == "ok")

        try disk.fill()
        #expect(disk.freeBytes == 0)
        Self.expectNoSpace(qkcat(["label", "1", "a label that does not fit", "--db", db]), db)
        try disk.free()

        let after = try Self.state(db)
        #expect(after.integrity == "ok")
        #expect(after.snapshot == before.snapshot)
        #expect(after.export == before.export)
        #expect(qkcat(["label", "1", "a label that fits", "--db", db]).code == 0)
        #expect(qkcat(["search", "fits", "--db", db]).out.contains("a label that fits"))
    }

    @Test("an ingest that fills the disk midway")
    func ingestFillsTheDisk() throws {
        let root = try TemporaryDirectory()
        let disk = try SmallDisk(megabytes: 24)
        let first = try writeCapture(syntheticSpec(prompts: 40), in: root, name: "first")
        let second = try writeCapture(syntheticSpec(checkpoint: "step2", prompts: 240, seed: 9), in: root, name: "second")
        let db = disk.url.appendingPathComponent("catalog.sqlite").path
        #expect(qkcat(["ingest", first.path, "--db", db, "-q"]).code == 0)
        let before = try Self.state(db)
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: db)[.size] as! Int

        let reserve = 256 << 10
        try disk.fill(leaving: reserve)
        Self.expectNoSpace(qkcat(["ingest", second.path, "--db", db, "--per-value", "--top", "40", "-q"]), db)
        try disk.free()

        let after = try Self.state(db)
        #expect(after.integrity == "ok")
        #expect(after.snapshot == before.snapshot)
        #expect(after.export == before.export)
        // Writable again, and the ingest needed far more than the space that was left.
        let again = qkcat(["ingest", second.path, "--db", db, "--per-value", "--top", "40", "-q"])
        #expect(again.code == 0, "\(again.err)")
        #expect(try CatalogSnapshot.take(db).integrity == "ok")
        let sizeAfter = try FileManager.default.attributesOfItem(atPath: db)[.size] as! Int
        let log = (try? FileManager.default.attributesOfItem(atPath: db + "-wal")[.size] as? Int) ?? 0
        #expect(sizeAfter + log - sizeBefore > 2 * reserve)
    }

    @Test("an upgrade of an older catalog on a disk without room for it")
    func upgradeOnAFullDisk() throws {
        let disk = try SmallDisk(megabytes: 16)
        let db = disk.url.appendingPathComponent("old.sqlite").path
        do {
            // A schema-version-1 catalog whose 20,000 example rows migration 2 must rewrite.
            let database = try Database(path: db)
            try database.enableWriteAheadLog()
            try LegacyCatalog.writeVersion1(database, model: "old/model")
            try database.execute("""
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
                INSERT INTO examples
                SELECT 1 + i % 3, CASE i % 2 WHEN 0 THEN 'key' ELSE 'query' END,
                       CASE (i / 2) % 2 WHEN 0 THEN 'high' ELSE 'low' END, i / 4, 7, i % 100, 'token ' || i, i * 0.25
                  FROM n;
                """)
        }
        let before = try CatalogSnapshot.take(db)
        #expect(try Migrator.version(of: Database(path: db, readOnly: true)) == 1)

        try disk.fill(leaving: 64 << 10)
        Self.expectNoSpace(qkcat(["upgrade", "--db", db]), db)
        try disk.free()

        let after = try CatalogSnapshot.take(db)
        #expect(after.integrity == "ok")
        #expect(after.content == before.content)
        #expect(try Migrator.version(of: Database(path: db, readOnly: true)) == 1)
        let upgraded = qkcat(["upgrade", "--db", db])
        #expect(upgraded.code == 0, "\(upgraded.err)")
        #expect(upgraded.out == "Upgraded \(db) from catalog schema version 1 to \(Migrator.currentVersion).\n")
        let listed = qkcat(["list", "models", "--db", db])
        #expect(listed.code == 0, "\(listed.err)")
        #expect(listed.out.contains("old/model"))
    }
}
