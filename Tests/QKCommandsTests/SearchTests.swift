import Foundation
import Testing
import QKStore
import QKTestSupport
@testable import QKCommands

/// One catalog shared by the read-command tests: two checkpoints of a planted model.
final class SharedCatalog: @unchecked Sendable {
    static let shared = try! SharedCatalog()
    let root: TemporaryDirectory
    let db: String

    private init() throws {
        root = try TemporaryDirectory()
        db = root.path("catalog.sqlite").path
        for (checkpoint, seed) in [("step10", UInt64(11)), ("step2", 12), ("main", 13)] {
            let capture = try writeCapture(syntheticSpec(checkpoint: checkpoint, prompts: 80, seed: seed), in: root, name: checkpoint)
            let result = qkcat(["ingest", capture.path, "--db", db, "--per-value", "--top", "4", "--quiet"])
            precondition(result.code == 0, result.err)
        }
    }
}

@Suite("search")
struct SearchTests {
    let db = SharedCatalog.shared.db

    @Test("finds components by feature value and token, with every JSON field")
    func json() throws {
        let result = qkcat(["search", "category1", "--db", db, "--json", "--limit", "5"])
        #expect(result.code == 0, "\(result.err)")
        let hits = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as! [[String: Any]]
        #expect(hits.count == 5)
        for hit in hits {
            for field in ["id", "model", "checkpoint", "layer", "head", "feature", "value", "index", "label", "sigma"] {
                #expect(hit[field] != nil, "missing \(field)")
            }
            let label = hit["label"] as! String
            #expect(label.contains("category1") || hit["value"] as? String == "category1")
        }
    }

    @Test("filters narrow the results exactly")
    func filters() throws {
        let all = try JSONSerialization.jsonObject(with: Data(qkcat(["search", "category", "--db", db, "--json", "--limit", "1000"]).out.utf8)) as! [[String: Any]]
        let narrowed = qkcat(["search", "category", "--db", db, "--json", "--limit", "1000", "--checkpoint", "step2",
                              "--layer", "1", "--head", "3", "--feature", "category"])
        let hits = try JSONSerialization.jsonObject(with: Data(narrowed.out.utf8)) as! [[String: Any]]
        let expected = all.filter {
            $0["checkpoint"] as? String == "step2" && $0["layer"] as? Int == 1 && $0["head"] as? Int == 3
                && $0["feature"] as? String == "category"
        }
        #expect(!hits.isEmpty)
        #expect(Set(hits.map { $0["id"] as! Int }) == Set(expected.map { $0["id"] as! Int }))
    }

    @Test("odd characters are searched literally, never crash", arguments: [
        "\"", "fruit OR", "category AND", "(", ")", "*", "NEAR(", "c0:", "-x", "^", "ünïcødé 🍎", "'; DROP TABLE components; --",
    ])
    func oddQueries(query: String) {
        let result = qkcat(["search", "--db", db, "--", query])
        #expect(result.code == 0, "\(query): \(result.err)")
    }

    @Test("a human label is searchable at once")
    func humanLabel() throws {
        let hits = try JSONSerialization.jsonObject(with: Data(qkcat(["search", "order", "--db", db, "--json", "--limit", "1"]).out.utf8)) as! [[String: Any]]
        let id = hits[0]["id"] as! Int
        let root = try TemporaryDirectory()
        let copy = root.path("copy.sqlite").path
        try FileManager.default.copyItem(atPath: db, toPath: copy)
        let labelled = qkcat(["label", String(id), "successor heads zebra", "--note", "checked by hand", "--db", copy])
        #expect(labelled.code == 0, "\(labelled.err)")
        #expect(labelled.out == "Component \(id): successor heads zebra  (note: checked by hand)\n")
        let found = try JSONSerialization.jsonObject(with: Data(qkcat(["search", "zebra", "--db", copy, "--json"]).out.utf8)) as! [[String: Any]]
        #expect(found.map { $0["id"] as! Int } == [id])
        #expect(found[0]["label"] as? String == "successor heads zebra")
        #expect(qkcat(["label", "999999", "x", "--db", copy]).code == 1)
    }

    @Test("text output is a table, without escape codes off a terminal")
    func text() {
        let result = qkcat(["search", "category0", "--db", db, "--limit", "3"])
        #expect(result.code == 0)
        let lines = result.out.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].contains("MODEL @ CHECKPOINT") && lines[0].contains("LABEL"))
        #expect(!result.out.contains("\u{1B}["))
        #expect(qkcat(["search", "nothingmatchesthis", "--db", db]).out == "No components match 'nothingmatchesthis'.\n")
    }

    @Test("a missing catalog or a newer one is refused without touching it")
    func refusals() throws {
        let root = try TemporaryDirectory()
        let missing = qkcat(["search", "x", "--db", root.path("none.sqlite").path])
        #expect(missing.code == 1)
        #expect(missing.err.hasPrefix("Error: no catalog at "))
        #expect(!FileManager.default.fileExists(atPath: root.path("none.sqlite").path))

        let newer = root.path("newer.sqlite").path
        try FileManager.default.copyItem(atPath: db, toPath: newer)
        do {
            let database = try Database(path: newer)
            try database.execute("PRAGMA user_version = 999")
        }
        let before = try CatalogSnapshot.take(newer)
        for command in [["search", "x"], ["ingest", SharedCatalog.shared.root.path("main").path]] {
            let result = qkcat(command + ["--db", newer])
            #expect(result.code == 1)
            #expect(result.err.contains("999"), "\(result.err)")
        }
        #expect(try CatalogSnapshot.take(newer).content == before.content)
    }

    @Test("a read command refuses an outdated catalog without writing and names qkcat upgrade, which upgrades it")
    func outdatedCatalogNeedsUpgrade() throws {
        let root = try TemporaryDirectory()
        let path = root.url.appendingPathComponent("catalog.sqlite").path
        do { _ = try Migrator.migrate(try Database(path: path), upTo: 3) }
        let before = try CatalogSnapshot.take(path)
        let refused = qkcat(["search", "apple", "--db", path])
        #expect(refused.code == 1)
        #expect(refused.err.contains("qkcat upgrade --db \(path)"), "\(refused.err)")
        #expect(try CatalogSnapshot.take(path).content == before.content)
        let upgrade = qkcat(["upgrade", "--db", path])
        #expect(upgrade.code == 0, "\(upgrade.err)")
        #expect(upgrade.out == "Upgraded \(path) from catalog schema version 3 to \(Migrator.currentVersion).\n")
        #expect(qkcat(["upgrade", "--db", path]).out.contains("is up to date"))
        #expect(qkcat(["search", "apple", "--db", path]).code == 0)
    }
}
