import Foundation
import Testing
@testable import QKCommands
import QKStore
import QKTestSupport

@Suite("list")
struct ListTests {
    let db = SharedCatalog.shared.db

    @Test("checkpoints come in training order")
    func checkpoints() throws {
        let result = qkcat(["list", "checkpoints", "--db", db, "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as! [[String: Any]]
        #expect(rows.map { $0["checkpoint"] as! String } == ["step2", "step10", "main"])
    }

    @Test("models, heads and features")
    func others() throws {
        let models = qkcat(["list", "models", "--db", db])
        #expect(models.out.contains("planted/tiny"))
        let heads = try JSONSerialization.jsonObject(with: Data(qkcat(["list", "heads", "--db", db, "--json", "--checkpoint", "main"]).out.utf8)) as! [[String: Any]]
        #expect(heads.count == 2 * 4)
        #expect(heads.allSatisfy { ($0["kv_head"] as! Int) == ($0["head"] as! Int) / 2 })
        let features = qkcat(["list", "features", "--db", db, "--checkpoint", "main"])
        #expect(features.out.contains("category") && features.out.contains("binding"))
        #expect(qkcat(["list", "--db", db]).code == 64 || qkcat(["list"]).code == 0)
    }

    @Test("a catalog from an earlier qkcat is refused by read commands, upgraded by a write command, then read")
    func upgradesOutdatedCatalogs() throws {
        let root = try TemporaryDirectory()
        let path = root.url.appendingPathComponent("old.sqlite").path
        let database = try Database(path: path)
        try database.enableWriteAheadLog()
        try Migrator.migrate(database, upTo: 1)
        let refused = qkcat(["list", "models", "--db", path, "--json"])
        #expect(refused.code == 1)
        #expect(refused.err.contains("run 'qkcat upgrade --db \(path)'"), "\(refused.err)")
        #expect(try Migrator.version(of: Database(path: path, readOnly: true)) == 1)
        // label is a write command: it upgrades (saying so) before it fails on the missing component.
        let label = qkcat(["label", "1", "x", "--db", path])
        #expect(label.err.contains("upgraded \(path) from catalog schema version 1 to \(Migrator.currentVersion)"))
        #expect(try Migrator.version(of: Database(path: path, readOnly: true)) == Migrator.currentVersion)
        let result = qkcat(["list", "models", "--db", path, "--json"])
        #expect(result.code == 0 && result.err.isEmpty, "\(result.err)")
        #expect(result.out.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
    }
}
