import Foundation
import QKEngine
import QKTestSupport
import Testing
@testable import QKStore

/// Search against a brute-force reference over random catalogs: every component's texts rebuilt from the catalog's
/// own tables (not from the search tables), each word matched row by row, filters compared in Swift, then sorted
/// by the documented rule.
@Suite struct CatalogSearchReferenceTests {
    /// A component as the reference sees it.
    private struct Row {
        var id: Int64
        var sigma: Double
        var model, checkpoint, feature, kind: String
        var layer, head: Int
        var value: String?

        func passes(_ filters: SearchFilters) -> Bool {
            (filters.model.map { $0 == model } ?? true) && (filters.checkpoint.map { $0 == checkpoint } ?? true)
                && (filters.layer.map { $0 == layer } ?? true) && (filters.head.map { $0 == head } ?? true)
                && (filters.feature.map { $0 == feature } ?? true) && (filters.value.map { $0 == value } ?? true)
                && (filters.kind.map { $0 == kind } ?? true)
        }
    }

    /// Reads every component and writes its three texts into a temporary FTS5 table (rowid = id × 4 + tier), with the
    /// catalog's tokenizer.
    private static func reference(_ database: Database) throws -> [Row] {
        try database.execute("""
            DROP TABLE IF EXISTS temp.reference;
            CREATE VIRTUAL TABLE temp.reference USING fts5 (text, tokenize = "unicode61 remove_diacritics 2 separators 'ĠĊ'");
            """)
        let statement = try database.prepare("""
            SELECT c.id, c.sigma, m.name, ck.name, f.name, f.kind, h.layer, h.head, d.value, c.auto_label,
                   coalesce(c.human_label, ''), coalesce(c.note, ''),
                   (SELECT group_concat(token, ' ') FROM token_aggregates t
                     WHERE t.component_id = c.id AND t.extreme = 'high')
              FROM components c JOIN decompositions d ON d.id = c.decomposition_id JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
            """)
        let insert = try database.prepare("INSERT INTO temp.reference (rowid, text) VALUES (?, ?)")
        var rows: [Row] = []
        while try statement.step() {
            let row = Row(id: try statement.required(0), sigma: try statement.required(1), model: try statement.required(2),
                          checkpoint: try statement.required(3), feature: try statement.required(4),
                          kind: try statement.required(5), layer: try statement.required(6),
                          head: try statement.required(7), value: statement.text(at: 8))
            rows.append(row)
            let label = try statement.required(9, as: String.self)
            let human = [try statement.required(10, as: String.self), try statement.required(11, as: String.self)]
            let everything = [label, row.feature, row.value ?? "", statement.text(at: 12) ?? "", row.model, row.checkpoint]
                + human
            let texts: [String?] = [human.allSatisfy(\.isEmpty) ? nil : human.joined(separator: "\n"), label,
                         everything.joined(separator: " ")]
            for (tier, text) in texts.enumerated() {
                guard let text else { continue }
                try insert.bind([.integer(Int(row.id) * 4 + tier), .text(text)])
                try insert.run()
            }
        }
        return rows
    }

    /// The documented order: the first tier whose text holds every word, then σ as float32 largest first, then id.
    private static func expected(_ database: Database, _ rows: [Row], _ words: [String], _ filters: SearchFilters)
        throws -> [(id: Int64, tier: Int?)]
    {
        let check = try database.prepare("SELECT 1 FROM temp.reference WHERE reference MATCH ? AND rowid = ?")
        func holds(_ word: String, _ rowid: Int) throws -> Bool {
            defer { check.reset() }
            try check.bind([.text(SearchText.quoted(word)), .integer(rowid)])
            return try check.step()
        }
        var found: [(row: Row, tier: Int?)] = []
        for row in rows where row.passes(filters) {
            if words.isEmpty { found.append((row, nil)); continue }
            for tier in 0 ... 2 where try words.allSatisfy({ try holds($0, Int(row.id) * 4 + tier) }) {
                found.append((row, tier))
                break
            }
        }
        return found.sorted { a, b in
            if a.tier != b.tier { return (a.tier ?? 0) < (b.tier ?? 0) }
            let (x, y) = (Float(a.row.sigma), Float(b.row.sigma))
            return x != y ? x > y : a.row.id < b.row.id
        }.map { ($0.row.id, $0.tier) }
    }

    private static func randomFilters(_ random: inout SeededGenerator, checkpoints: [String]) -> SearchFilters {
        func pick<T>(_ options: [T?]) -> T? { options[Int(random.next() % UInt64(options.count))] }
        return SearchFilters(
            model: pick([nil, nil, nil, "synthetic-model", "other"]), checkpoint: pick([nil, nil] + checkpoints.map(Optional.some) + ["nope"]),
            layer: pick([nil, nil, 0, 1, 2, 9]), head: pick([nil, nil, 0, 1, 3]),
            feature: pick([nil, nil, "category", "order", "none"]), value: pick([nil, nil, nil, "fruit", "1", "animal", "x"]),
            kind: pick([nil, nil, nil, "semantic", "binding"]))
    }

    @Test(arguments: Array(1 ... 6) as [UInt64])
    func randomCatalogsAgreeWithTheReference(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let checkpoints = Array(["step1", "step20", "main"].prefix(1 + Int(random.next() % 3)))
        let shape = SyntheticCatalog.Shape(checkpoints: checkpoints, layers: 1 + Int(random.next() % 3),
                                           heads: 4, kvHeads: 2, headDimension: 8, rank: 1 + Int(random.next() % 3),
                                           features: ["category": ["animal", "fruit"], "order": ["1", "2"]],
                                           featureKinds: ["order": "binding"], topCount: 1 + Int(random.next() % 3),
                                           prompts: 20, seed: seed)
        try SyntheticCatalog.populate(catalog, shape: shape)
        let count = try #require(try catalog.database.scalarInt("SELECT count(*) FROM components"))
        let vocabulary = ["apple", "mango", "tiger", "the", "river", "gold", "category", "fruit", "order", "c0", "c2",
                          "synthetic", "model", "main", "step1", "crisp", "detector", "café", "zeppelin"]
        // Human labels and notes, through qkcat and by hand in SQL; some cleared again.
        for _ in 0 ..< 12 {
            let id = Int64(1 + Int(random.next() % UInt64(count)))
            let words = (0 ..< 1 + Int(random.next() % 3)).map { _ in vocabulary[Int(random.next() % UInt64(vocabulary.count))] }
            switch random.next() % 3 {
            case 0: try catalog.setHumanLabel(componentID: id, label: words.joined(separator: " "), note: "crisp")
            case 1: try catalog.database.execute("UPDATE components SET human_label = '\(words.joined(separator: " "))' WHERE id = \(id)")
            default: try catalog.setHumanLabel(componentID: id, label: nil, note: "")
            }
        }
        let rows = try Self.reference(catalog.database)
        for _ in 0 ..< 40 {
            let words = (0 ..< Int(random.next() % 3)).map { _ in vocabulary[Int(random.next() % UInt64(vocabulary.count))] }
            let filters = Self.randomFilters(&random, checkpoints: checkpoints)
            let want = try Self.expected(catalog.database, rows, words, filters)
            // Words leading, the filter leading with rows read in order, sought one by one, or switching midway.
            for (lead, seekCost) in [(0, 128), (1000, 128), (1 << 40, 0), (1 << 40, 1), (1 << 40, 1 << 40)] {
                catalog.filterLeadLimit = lead
                catalog.seekCost = seekCost
                for limit in [1, 5, 10_000] {
                    let got = try catalog.search(words.joined(separator: " "), filters: filters, limit: limit)
                    #expect(got.map(\.id) == want.prefix(limit).map(\.id),
                            "\(words) \(filters) lead \(lead) seek cost \(seekCost) limit \(limit)")
                    #expect(got.map { $0.score.map(Int.init) } == want.prefix(limit).map(\.tier))
                }
            }
        }
    }

    @Test func aDeletedComponentLeavesNothingBehind() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog)
        let target = try #require(try catalog.search("banana").first)
        try catalog.setHumanLabel(componentID: target.id, label: "tropical")
        try catalog.database.execute("DELETE FROM components WHERE id = \(target.id)")
        #expect(try catalog.search("banana").allSatisfy { $0.id != target.id })
        #expect(try catalog.search("tropical").isEmpty)
        let rankKey = try #require(try catalog.database.scalarInt("SELECT max(rank_key) FROM component_keys"))
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM component_text WHERE rowid & \(SearchOrder.rankKeyMask) NOT IN (SELECT rank_key FROM component_keys)") == 0)
        #expect(rankKey > 0)
    }

    @Test func rankKeysOrderBySigmaThenID() {
        let keys = [(5.0, 3), (5.0, 7), (4.999, 1), (0.5, 2), (0, 9), (-1, 4), (.nan, 5)].map {
            SearchOrder.rankKey(sigma: $0.0, id: Int64($0.1))
        }
        #expect(keys.sorted().map(SearchOrder.componentID) == [3, 7, 1, 2, 4, 5, 9])
        #expect(SearchOrder.componentID(SearchOrder.rowid(keys[0], tier: 2)) == 3)
        #expect(SearchOrder.rowid(keys[0], tier: 2) & SearchOrder.rankKeyMask == keys[0])
    }

    @Test func queryPlansReadTheIndexesTheyShould() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog)
        // The words lead: the full-text table drives, in rowid order, with no sorting step.
        let plan = try catalog.database.prepare("""
            EXPLAIN QUERY PLAN SELECT component_text.rowid FROM component_text
            CROSS JOIN component_keys k ON k.rank_key = component_text.rowid & \(SearchOrder.rankKeyMask)
            WHERE component_text MATCH 'apple' AND k.layer = 1 ORDER BY component_text.rowid
            """)
        var details: [String] = []
        while try plan.step() { details.append(try plan.required(3)) }
        #expect(details.first?.hasPrefix("SCAN component_text VIRTUAL TABLE") == true, "\(details)")
        #expect(!details.contains { $0.contains("TEMP B-TREE") }, "\(details)")
    }
}
