import Foundation
import QKStore
import QKTestSupport
import Testing

/// Every read command on a catalog that cannot be written: a real read-only bind mount when this process may mount
/// (root with CAP_SYS_ADMIN), else the same failure emulated — a directory where SQLite's `-shm` file would go, which
/// SQLite can neither open nor create, whoever runs it.
@Suite("read commands on read-only storage", .serialized)
struct ReadOnlyStorageTests {
    @Test func everyReadCommandWorksWhereNothingCanBeWritten() throws {
        let root = try TemporaryDirectory()
        let writable = try root.subdirectory("writable")
        let path = writable.appendingPathComponent("catalog.sqlite").path
        var captures: [URL] = []
        for checkpoint in ["step1", "step2"] {
            let capture = try writeCapture(syntheticSpec(checkpoint: checkpoint, prompts: 120), in: root, name: checkpoint)
            captures.append(capture)
            let ingest = qkcat(["ingest", capture.path, "--db", path, "-q"])
            #expect(ingest.code == 0, "\(ingest.err)")
        }
        #expect(qkcat(["label", "1", "hand-checked", "--db", path]).code == 0)
        // What a writer leaves when it is done: the main file, its log checkpointed away.
        do { try Database(path: path).execute("PRAGMA wal_checkpoint(TRUNCATE)") }

        let mounted = try root.subdirectory("readonly")
        let isMount = Self.bindMountReadOnly(writable.path, at: mounted.path)
        defer { if isMount { Self.unmount(mounted.path) } }
        let catalog: String
        if isMount {
            catalog = mounted.appendingPathComponent("catalog.sqlite").path
            #expect(!FileManager.default.createFile(atPath: mounted.appendingPathComponent("probe").path, contents: nil))
        } else {
            catalog = path
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            try FileManager.default.createDirectory(atPath: path + "-shm", withIntermediateDirectories: false)
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: catalog))
        let commands: [[String]] = [
            ["search", "hand-checked"], ["search", "category", "--layer", "1", "--json"], ["search", "--head", "2"],
            ["show", "1"], ["show", "--model", "planted/tiny", "--layer", "0", "--head", "1", "--json"],
            ["list", "models"], ["list", "checkpoints"], ["list", "heads", "--json"], ["list", "features"],
            ["export"], ["export", "--format", "csv"],
            ["compare", "--model", "planted/tiny", "--from", "step1", "--to", "step2"],
            ["trajectory", "--model", "planted/tiny", "--layer", "0", "--head", "1", "--feature", "category"],
            ["similar", "1", "--json"],
            ["attribute", captures[1].path, "--all", "--layer", "0"],
        ]
        for command in commands {
            let result = qkcat(command + ["--db", catalog])
            #expect(result.code == 0, "\(command): \(result.err)")
            #expect(!result.out.isEmpty, "\(command)")
        }
        let labelled = try JSONSerialization.jsonObject(with: Data(qkcat(["search", "hand-checked", "--db", catalog, "--json"]).out.utf8))
        #expect((labelled as? [[String: Any]])?.map { $0["id"] as? Int } == [1])
        #expect(try Data(contentsOf: URL(fileURLWithPath: catalog)) == before)
        // A write command says why it cannot.
        #expect(qkcat(["label", "2", "x", "--db", catalog]).code == 1)
    }

    /// Its commits are read, or the error says how to make them readable; never silently skipped.
    @Test func aLogWithCommitsIsReadOrNamedNeverSkipped() throws {
        let root = try TemporaryDirectory()
        let path = root.url.appendingPathComponent("catalog.sqlite").path
        let writer = try Catalog.open(path: path)
        try writer.database.execute("PRAGMA wal_autocheckpoint = 0")
        try writer.database.execute("INSERT INTO models (name, n_layers, n_heads, n_kv_heads, d_head) VALUES ('m', 1, 1, 1, 1)")
        // Copy the main file and its log elsewhere, with a -shm that cannot be opened.
        let copy = root.url.appendingPathComponent("copy.sqlite").path
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "-wal")
        try FileManager.default.createDirectory(atPath: copy + "-shm", withIntermediateDirectories: false)
        do {
            let reader = try Catalog.open(path: copy, readOnly: true)
            #expect(try reader.listModels().map(\.name) == ["m"])
        } catch {
            #expect("\(error)".contains("wal_checkpoint"), "\(error)")
        }
    }

    private static func bindMountReadOnly(_ source: String, at target: String) -> Bool {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        guard shell("/bin/mount", ["--bind", source, target]) else { return false }
        guard shell("/bin/mount", ["-o", "remount,ro,bind", target]) else {
            unmount(target)
            return false
        }
        return true
    }

    private static func unmount(_ target: String) { _ = shell("/bin/umount", [target]) }

    private static func shell(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
