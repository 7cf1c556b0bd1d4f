import Foundation
import QKEngine
import Testing
@testable import QKStore

/// A synthetic catalog of 432 components: 2 checkpoints × 3 layers × 4 heads × 6 decompositions × rank 3.
private func syntheticCatalog() throws -> (TemporaryDatabase, Catalog) {
    let temporary = TemporaryDatabase()
    let catalog = try Catalog.open(path: temporary.path)
    let shape = SyntheticCatalog.Shape(checkpoints: ["step2", "main"], layers: 3, heads: 4, kvHeads: 2,
                                       headDimension: 8, rank: 3,
                                       features: ["category": ["animal", "fruit"], "order": ["1", "2"]],
                                       featureKinds: ["order": "binding"], topCount: 2, prompts: 20)
    try SyntheticCatalog.populate(catalog, shape: shape)
    return (temporary, catalog)
}

private func passes(_ hit: ComponentHit, _ filters: SearchFilters) -> Bool {
    (filters.model.map { $0 == hit.model } ?? true) && (filters.checkpoint.map { $0 == hit.checkpoint } ?? true)
        && (filters.layer.map { $0 == hit.layer } ?? true) && (filters.head.map { $0 == hit.head } ?? true)
        && (filters.feature.map { $0 == hit.feature } ?? true) && (filters.value.map { $0 == hit.value } ?? true)
        && (filters.kind.map { $0 == hit.kind } ?? true)
}

/// A temporary FTS5 table holding only the searchable columns of `component_search`, same rowids and tokenizer:
/// FTS5's own bm25 over it is the reference for qkrank.
private func referenceTable(_ database: Database) throws {
    try database.execute("""
        DROP TABLE IF EXISTS temp.reference;
        CREATE VIRTUAL TABLE temp.reference USING fts5 (auto_label, human_label, note, feature, tokens, names,
                                                       tokenize = "\(SearchRanking.tokenizer)");
        INSERT INTO temp.reference (rowid, auto_label, human_label, note, feature, tokens, names)
        SELECT rowid, auto_label, human_label, note, feature, tokens, names FROM component_search;
        DROP TABLE IF EXISTS temp.reference_vocab;
        CREATE VIRTUAL TABLE temp.reference_vocab USING fts5vocab (temp, reference, row);
        """)
}

@Suite struct SearchRankingTests {
    static let filterCases: [SearchFilters] = [
        SearchFilters(layer: 1), SearchFilters(head: 3), SearchFilters(layer: 2, head: 0),
        SearchFilters(checkpoint: "main"), SearchFilters(model: "synthetic-model", checkpoint: "step2", layer: 0),
        SearchFilters(feature: "category"), SearchFilters(feature: "category", value: "fruit"), SearchFilters(value: "1"),
        SearchFilters(kind: "binding"), SearchFilters(layer: 1, head: 2, kind: "semantic"),
        SearchFilters(checkpoint: "main", layer: 2, head: 3, feature: "order", value: "2", kind: "binding"),
        SearchFilters(feature: "order", value: "fruit"), SearchFilters(model: "synthetic"), SearchFilters(checkpoint: "step"),
        SearchFilters(layer: 7), SearchFilters(head: -1), SearchFilters(kind: "positional"),
    ]

    @Test func filteredSearchEqualsTheUnfilteredResultsFiltered() throws {
        let (_, catalog) = try syntheticCatalog()
        let everything = 10_000
        for query in ["", "apple", "category fruit", "mango c1", "the", "order 2", "zeppelin", "café"] {
            let unfiltered = try catalog.search(query, limit: everything)
            #expect(query == "" ? unfiltered.count == 432 : unfiltered.count < 432)
            for filters in Self.filterCases {
                let expected = unfiltered.filter { passes($0, filters) }
                let filtered = try catalog.search(query, filters: filters, limit: everything)
                #expect(filtered.map(\.id) == expected.map(\.id), "\(query) \(filters)")
                #expect(filtered.map(\.score) == expected.map(\.score), "\(query) \(filters)")
                // A limit keeps the best ones, in the same order.
                #expect(try catalog.search(query, filters: filters, limit: 5).map(\.id) == Array(expected.prefix(5).map(\.id)))
            }
        }
    }

    @Test func sigmaListingGathersOrScansAlike() throws {
        let (_, catalog) = try syntheticCatalog()
        for filters in Self.filterCases {
            let expected = try catalog.search("", limit: 10_000).filter { passes($0, filters) }
            for gatherLimit in [0, 10, 100, 10_000] {
                catalog.sigmaListingGatherLimit = gatherLimit
                for limit in [1, 7, 10_000] {
                    #expect(try catalog.search("", filters: filters, limit: limit).map(\.id) == Array(expected.prefix(limit).map(\.id)),
                            "\(filters) gathering \(gatherLimit), limit \(limit)")
                }
            }
        }
    }

    @Test func rankingIsBm25OverTheUserWordsAloneWithTiesBySigma() throws {
        let (_, catalog) = try syntheticCatalog()
        let first = try #require(try catalog.search("apple").first)
        try catalog.setHumanLabel(componentID: first.id, label: "a crisp apple detector", note: "seen in café menus")
        try referenceTable(catalog.database)
        for query in ["apple", "category fruit", "apple detector", "café", "order 1 c2", "synthetic step2 the"] {
            let expression = SearchText.quotedTerms(query).joined(separator: " AND ")
            let reference = try catalog.database.prepare(
                "SELECT rowid, bm25(reference, 1, 5, 1, 1, 1, 0.5) FROM reference WHERE reference MATCH ?")
            try reference.bind(expression, at: 1)
            var expected: [Int64: Double] = [:]
            while try reference.step() { expected[reference.int64(at: 0) ?? 0] = reference.double(at: 1) ?? 0 }
            let hits = try catalog.search(query, filters: SearchFilters(), limit: 10_000)
            #expect(hits.count == expected.count && !hits.isEmpty, "\(query)")
            for hit in hits {
                let want = try #require(expected[hit.id])
                let got = try #require(hit.score)
                #expect(abs(got - want) <= 1e-9 * max(1, abs(want)), "\(query): component \(hit.id) \(got) vs bm25 \(want)")
            }
            for (better, worse) in zip(hits, hits.dropFirst()) {
                let (a, b) = (better.score ?? 0, worse.score ?? 0)
                #expect(a < b || (a == b && (better.sigma > worse.sigma || (better.sigma == worse.sigma && better.id < worse.id))),
                        "\(query): \(better.id) before \(worse.id)")
            }
        }
        // The human label outranks the automatic ones.
        #expect(try catalog.search("apple").first?.id == first.id)
    }

    @Test func searchTermsCountTheDocumentsOfEveryTerm() throws {
        let (_, catalog) = try syntheticCatalog()
        func check(_ moment: String) throws {
            try referenceTable(catalog.database)
            let statement = try catalog.database.prepare("""
                SELECT r.term, r.doc, s.documents FROM temp.reference_vocab r LEFT JOIN search_terms s ON s.term = r.term
                UNION ALL
                SELECT s.term, NULL, s.documents FROM search_terms s WHERE s.term NOT IN (SELECT term FROM temp.reference_vocab)
                """)
            var terms = 0
            while try statement.step() {
                terms += 1
                #expect(statement.int(at: 1) == statement.int(at: 2), "\(moment): \(statement.text(at: 0) ?? "")")
            }
            #expect(terms > 40, "\(moment)")
        }
        try check("after ingest")
        let hits = try catalog.search("mango", limit: 3)
        try catalog.setHumanLabel(componentID: hits[0].id, label: "zeppelin mango", note: "Zeppelin")
        try catalog.setHumanLabel(componentID: hits[1].id, label: "zeppelin", note: "naïve")
        try check("after labelling")
        try catalog.setHumanLabel(componentID: hits[0].id, label: nil, note: "")
        try check("after unlabelling")
        #expect(try catalog.search("zeppelin").map(\.id) == [hits[1].id])
        #expect(try catalog.search("naive").map(\.id) == [hits[1].id])
    }

    @Test func storedSearchLengthsAreTheIndexDocumentSizes() throws {
        let (_, catalog) = try syntheticCatalog()
        func lengths() throws -> [Int64: Int?] {
            let statement = try catalog.database.prepare("SELECT component_id, search_length FROM component_search_keys")
            var rows: [Int64: Int?] = [:]
            while try statement.step() { rows[statement.int64(at: 0) ?? 0] = statement.int(at: 1) }
            return rows
        }
        let stored = try lengths()
        #expect(stored.count == 432)
        // The reference: FTS5's own document sizes over the searchable columns (a match on every row).
        let sizes = try catalog.database.prepare("""
            SELECT rowid, \(SearchRanking.lengthFunctionName)(component_search) FROM component_search
             WHERE component_search MATCH 'facets : "fm' || ? || '"'
            """)
        try sizes.bind(SearchText.hex("synthetic-model"), at: 1)
        var compared = 0
        while try sizes.step() {
            let id = sizes.int64(at: 0) ?? 0
            #expect(stored[id] == .some(sizes.int(at: 1)), "component \(id)")
            #expect((sizes.int(at: 1) ?? 0) > 5)
            compared += 1
        }
        #expect(compared == 432)
        // A label change updates the stored length to the index's new document size.
        let id = try #require(stored.keys.min())
        try catalog.setHumanLabel(componentID: id, label: "longer label words here")
        let size = try catalog.database.scalarInt("""
            SELECT \(SearchRanking.lengthFunctionName)(component_search) FROM component_search
             WHERE component_search MATCH 'facets : "fm' || ? || '"' AND rowid = ?
            """, [.text(SearchText.hex("synthetic-model")), .integer(Int(id))])
        #expect(try lengths()[id] == .some(size))
        #expect((size ?? 0) == (stored[id].flatMap { $0 } ?? 0) + 4)
    }

    @Test func userWordsNeverMatchFacetTokens() throws {
        let (_, catalog) = try syntheticCatalog()
        #expect(try !catalog.search("", filters: SearchFilters(layer: 0)).isEmpty)
        #expect(try catalog.search("fl0").isEmpty)
        #expect(try catalog.search("fh1 ff" + SearchText.hex("category")).isEmpty)
        #expect(try catalog.search("facets").isEmpty)
    }

    @Test func longAndUnicodeNamesFilterExactly() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        var fixture = CatalogFixture()
        let name = String(repeating: "ü-model/", count: 40)
        fixture.model = ModelInfo(name: name, checkpoint: "étape 7", layerCount: 2, headCount: 4, kvHeadCount: 2,
                                  headDimension: 4)
        try fixture.ingest(into: catalog)
        #expect(try catalog.search("", filters: SearchFilters(model: name), limit: 100).count == 8)
        #expect(try catalog.search("apple", filters: SearchFilters(model: name, checkpoint: "étape 7")).count == 6)
        #expect(try catalog.search("", filters: SearchFilters(model: String(name.dropLast()))).isEmpty)
        #expect(try catalog.search("", filters: SearchFilters(checkpoint: "etape 7")).isEmpty)
    }

    @Test func listingIsBySigmaThenID() throws {
        let (_, catalog) = try syntheticCatalog()
        let all = try catalog.search("", limit: 10_000)
        #expect(all.count == 432)
        for (a, b) in zip(all, all.dropFirst()) {
            #expect(a.sigma > b.sigma || (a.sigma == b.sigma && a.id < b.id))
        }
    }

    @Test func plainTermsAreASCIIWordsLowercased() {
        #expect(SearchRanking.simpleTerm("Apple42") == "apple42")
        #expect(SearchRanking.simpleTerm("café") == nil)
        #expect(SearchRanking.simpleTerm("a-b") == nil)
        #expect(SearchRanking.simpleTerm("") == nil)
    }
}
