import Foundation
import QKEngine
import Testing
@testable import QKStore

/// 2 checkpoints × 3 layers × 4 heads × 7 decompositions × rank 3 = 504 components, with a few human labels.
private func labelledCatalog() throws -> (TemporaryDatabase, Catalog) {
    let temporary = TemporaryDatabase()
    let catalog = try Catalog.open(path: temporary.path)
    let shape = SyntheticCatalog.Shape(checkpoints: ["step2", "main"], layers: 3, heads: 4, kvHeads: 2,
                                       headDimension: 8, rank: 3,
                                       features: ["category": ["animal", "fruit", "metal"], "order": ["1", "2"]],
                                       featureKinds: ["order": "binding"], topCount: 2, prompts: 20, seed: 11)
    try SyntheticCatalog.populate(catalog, shape: shape)
    for (id, label) in [(3, "mango mango detector"), (40, "apple"), (41, "café apple"), (200, "category fruit overlap")] {
        try catalog.setHumanLabel(componentID: Int64(id), label: label, note: id == 40 ? "the river" : nil)
    }
    return (temporary, catalog)
}

private let queries = ["apple", "mango", "the", "category", "fruit", "category fruit", "apple tiger", "mango c1",
                       "river the of", "synthetic", "model main", "detector", "zeppelin", "Apple", "café", "c0",
                       "apple tiger the", "synthetic model category c0"]

private let filterCases: [SearchFilters] = [
    SearchFilters(), SearchFilters(layer: 1), SearchFilters(head: 3), SearchFilters(layer: 2, head: 0),
    SearchFilters(checkpoint: "main"), SearchFilters(model: "synthetic-model", checkpoint: "step2", layer: 0),
    SearchFilters(feature: "category"), SearchFilters(feature: "category", value: "fruit"), SearchFilters(value: "1"),
    SearchFilters(kind: "binding"), SearchFilters(checkpoint: "main", feature: "order", value: "2", kind: "binding"),
    SearchFilters(feature: "order", value: "fruit"), SearchFilters(model: "synthetic"), SearchFilters(value: "tin"),
    SearchFilters(layer: 7), SearchFilters(head: -1), SearchFilters(layer: 70_000), SearchFilters(kind: "positional"),
]

@Suite struct SearchIndexTests {
    /// The impact-ordered path returns exactly what FTS5 + qkrank return: ids, scores (bit for bit) and order.
    @Test func impactPathEqualsTheFullTextPath() throws {
        let (_, catalog) = try labelledCatalog()
        catalog.impactFilterThreshold = -1
        var compared = 0
        for query in queries {
            let words = SearchText.words(query)
            for filters in filterCases {
                for limit in [1, 4, 10_000] {
                    let fullText = try catalog.componentsByFullText(words, filters, limit: limit)
                    let impact = try #require(try catalog.componentsByImpact(words, filters, limit: limit))
                    #expect(impact.map(\.id) == fullText.map(\.id), "\(query) \(filters) limit \(limit)")
                    #expect(impact.map(\.score) == fullText.map(\.score), "\(query) \(filters) limit \(limit)")
                    compared += fullText.count
                }
            }
        }
        #expect(compared > 5000)
    }

    @Test func phrasesRepeatedWordsAndSelectiveFiltersGoToFullText() throws {
        let (_, catalog) = try labelledCatalog()
        #expect(try catalog.componentsByImpact(["synthetic-model"], SearchFilters(), limit: 5) == nil)
        #expect(try catalog.componentsByImpact(["apple", "Apple"], SearchFilters(), limit: 5) == nil)
        // 504 components: any filter lets fewer than the default threshold through.
        #expect(try catalog.componentsByImpact(["apple"], SearchFilters(layer: 1), limit: 5) == nil)
        #expect(try catalog.componentsByImpact(["apple"], SearchFilters(), limit: 5) != nil)
    }

    /// Every group lists the rows whose text holds its term with its frequency and length, σ largest first.
    @Test func groupsHoldTheirRowsInSearchOrder() throws {
        let (_, catalog) = try labelledCatalog()
        let groups = try catalog.database.prepare("SELECT term, frequency, length, documents, entries FROM search_postings")
        var rows = 0
        while try groups.step() {
            let documents = try #require(groups.int(at: 3))
            let blob = try #require(groups.blob(at: 4))
            #expect(blob.count == documents * SearchIndex.entrySize)
            let entries = blob.withUnsafeBytes { raw in
                (0 ..< documents).map { SearchIndex.Entry(reading: raw, at: $0 * SearchIndex.entrySize) }
            }
            for (a, b) in zip(entries, entries.dropFirst()) { #expect(a.precedes(b)) }
            rows += documents
        }
        // Every component holds some terms; the term counts add up to search_terms' (the labels changed only rows
        // now stale, whose groups keep their ingest-time text).
        #expect(rows > 504 * 5)
    }

    @Test func entriesRoundTripTheirFields() {
        let entry = SearchIndex.Entry(componentID: 1 << 40 | 7, sigma: -0.0, checkpointID: .max, featureID: 3,
                                      valueCode: 0xdead_beef, layer: .max, head: 513)
        var bytes = [UInt8](repeating: 0, count: 2 * SearchIndex.entrySize)
        bytes.withUnsafeMutableBytes { entry.write(to: $0, at: SearchIndex.entrySize) }
        let read = bytes.withUnsafeBytes { SearchIndex.Entry(reading: $0, at: SearchIndex.entrySize) }
        #expect(read == entry)
        #expect(read.sigma.sign == .minus)
        #expect(bytes[SearchIndex.entrySize] == 7)   // little-endian
    }

    /// The tokenizer the index uses splits texts as the full-text table does.
    @Test func tokenizerMatchesTheFullTextTable() throws {
        let (_, catalog) = try labelledCatalog()
        let tokenizer = try catalog.searchTokenizer()
        #expect(tokenizer.tokens("Café ĠbananaĊ c0: apple, MANGO") == ["cafe", "banana", "c0", "apple", "mango"])
        #expect(tokenizer.tokens("") == [])
        #expect(tokenizer.tokens("--, ;") == [])
    }

    /// A catalog whose index is missing (one written before it existed) gets it built on a writable open, with the
    /// same search results.
    @Test func aMissingIndexIsBuiltOnOpen() throws {
        let (temporary, catalog) = try labelledCatalog()
        let before = try queries.map { try catalog.search($0, limit: 50).map(\.id) }
        let groups = try catalog.database.scalarInt("SELECT count(*) FROM search_postings")
        let terms = try catalog.database.scalarInt("SELECT sum(documents) FROM search_terms")
        try catalog.database.execute("""
            DELETE FROM search_postings; DELETE FROM search_indexed_captures;
            UPDATE component_search_keys SET search_length = NULL WHERE component_id IN (5, 6);
            """)
        let reopened = try Catalog.open(path: temporary.path)
        #expect(try reopened.database.scalarInt("SELECT count(*) FROM search_indexed_captures") == 2)
        #expect(try reopened.database.scalarInt("SELECT sum(documents) FROM search_terms") == terms)
        // Rebuilt from the current texts: the labelled rows are in their groups now, none is stale.
        // With nothing stale, the groups hold every (term, component) pair once: search_terms' counts exactly.
        #expect(try reopened.database.scalarInt("SELECT sum(documents) FROM search_postings") == terms)
        #expect(groups ?? 0 > 0)
        #expect(try reopened.database.scalarInt(
            "SELECT count(*) FROM component_search_keys WHERE search_length IS NULL") == 0)
        #expect(try reopened.database.scalarInt("SELECT count(*) FROM search_stale") == 0)
        #expect(try reopened.database.scalarInt("SELECT count(*) FROM search_postings WHERE capture_id IS NULL") == 0)
        let after = try queries.map { try reopened.search($0, limit: 50).map(\.id) }
        #expect(after == before)
    }

    /// A component deleted by hand leaves entries behind; search falls back to the full-text index and stays complete.
    @Test func aDeletedComponentIsNotReturned() throws {
        let (temporary, catalog) = try labelledCatalog()
        let best = try #require(try catalog.search("tiger", limit: 5).first { ![3, 40, 41, 200].contains($0.id) })
        let expectedWithout = try catalog.componentsByFullText(["tiger"], SearchFilters(), limit: 6).map(\.id)
            .filter { $0 != best.id }
        try catalog.database.execute("DELETE FROM components WHERE id = \(best.id)")
        // Its capture's groups still list it: the capture leaves the index and the full-text path answers.
        #expect(try catalog.searchIndexIsComplete() == false)
        #expect(try catalog.componentsByImpact(["tiger"], SearchFilters(), limit: 5) == nil)
        #expect(try catalog.search("tiger", limit: 5).map(\.id) == Array(expectedWithout.prefix(5)))
        // A writable open rebuilds the capture's groups without it.
        let reopened = try Catalog.open(path: temporary.path)
        #expect(try reopened.searchIndexIsComplete())
        reopened.impactFilterThreshold = -1
        for query in queries {
            let words = SearchText.words(query)
            guard let impact = try reopened.componentsByImpact(words, SearchFilters(), limit: 40) else { continue }
            #expect(impact.map(\.id) == (try reopened.componentsByFullText(words, SearchFilters(), limit: 40)).map(\.id),
                    "\(query)")
            #expect(!impact.contains { $0.id == best.id })
        }
    }

    /// A deleted component's id may come back with the next ingest (ids are not AUTOINCREMENT): the rebuilt index
    /// knows only the new component.
    @Test func anIdReusedAfterADeletionIsTheNewComponent() throws {
        let (temporary, catalog) = try labelledCatalog()
        let last = try #require(try catalog.database.scalarInt("SELECT max(id) FROM components"))
        try catalog.database.execute("DELETE FROM components WHERE id = \(last)")
        let reopened = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(model: "another-model", checkpoints: ["step9"], layers: 1, heads: 2,
                                           kvHeads: 1, headDimension: 8, rank: 2, prompts: 10, seed: 99)
        try SyntheticCatalog.populate(reopened, shape: shape)
        #expect(try reopened.database.scalarInt("SELECT min(id) FROM components WHERE id >= \(last)") == last)
        reopened.impactFilterThreshold = -1
        for query in queries {
            let words = SearchText.words(query)
            let impact = try #require(try reopened.componentsByImpact(words, SearchFilters(), limit: 10_000))
            #expect(impact.map(\.id) == (try reopened.componentsByFullText(words, SearchFilters(), limit: 10_000)).map(\.id),
                    "\(query)")
            #expect(impact.map(\.score) == (try reopened.componentsByFullText(words, SearchFilters(), limit: 10_000)).map(\.score))
        }
    }

    /// Many words make many group combinations: past the limit the full-text path answers, with the same result.
    @Test func manyCombinationsGoToFullText() throws {
        let (_, catalog) = try labelledCatalog()
        let words = ["apple", "tiger", "the"]
        #expect(try catalog.componentsByImpact(words, SearchFilters(), limit: 5) != nil)
        let expected = try catalog.search(words.joined(separator: " "), limit: 30).map(\.id)
        catalog.impactCombinationLimit = 0
        #expect(try catalog.componentsByImpact(words, SearchFilters(), limit: 5) == nil)
        #expect(try catalog.search(words.joined(separator: " "), limit: 30).map(\.id) == expected)
    }

    @Test func anyLimitIsAccepted() throws {
        let (_, catalog) = try labelledCatalog()
        let all = try catalog.search("apple", limit: Int.max)
        #expect(all.count == (try catalog.search("apple", limit: 10_000)).count)
        #expect(try catalog.search("", limit: Int.max).count == 504)
        #expect(try catalog.search("synthetic-model", limit: Int.max).count == 504)
    }

    /// Labels set through `setHumanLabel` go to the overlay; a label written by hand in SQL (the trigger marks it,
    /// nothing rebuilds the overlay) is ranked by FTS5 until the next label change. Both agree with the full text.
    @Test func labelsOutsideTheOverlayAreRankedByFullText() throws {
        let (_, catalog) = try labelledCatalog()
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM search_stale WHERE indexed = 1") == 4)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM search_postings WHERE capture_id IS NULL") ?? 0 > 0)
        try catalog.database.execute("""
            UPDATE components SET human_label = 'tiger tiger river' WHERE id IN (7, 300);
            UPDATE components SET note = 'apple' WHERE id = 40
            """)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM search_stale WHERE indexed = 0") == 3)
        catalog.impactFilterThreshold = -1
        for query in ["tiger", "river", "apple", "tiger river", "mango detector", "the"] {
            let words = SearchText.words(query)
            for filters in [SearchFilters(), SearchFilters(checkpoint: "main"), SearchFilters(layer: 0)] {
                for limit in [1, 3, 10_000] {
                    let fullText = try catalog.componentsByFullText(words, filters, limit: limit)
                    let impact = try #require(try catalog.componentsByImpact(words, filters, limit: limit))
                    #expect(impact.map(\.id) == fullText.map(\.id), "\(query) \(filters) limit \(limit)")
                    #expect(impact.map(\.score) == fullText.map(\.score), "\(query) \(filters) limit \(limit)")
                }
            }
        }
        #expect(try catalog.search("tiger tiger river", limit: 2).map(\.id).sorted() == [7, 300])
    }

    /// Until every capture is indexed (an upgrade stopped before building it), searches use the full-text path.
    @Test func aCaptureMissingFromTheIndexSendsSearchesToFullText() throws {
        let (temporary, catalog) = try labelledCatalog()
        let expected = try queries.map { try catalog.componentsByFullText(SearchText.words($0), SearchFilters(), limit: 30).map(\.id) }
        try catalog.database.execute("""
            DELETE FROM search_postings WHERE capture_id = 2; DELETE FROM search_indexed_captures WHERE capture_id = 2
            """)
        let reader = try Catalog.open(path: temporary.path, readOnly: true)
        #expect(try reader.componentsByImpact(["apple"], SearchFilters(), limit: 5) == nil)
        #expect(try queries.map { try reader.search($0, limit: 30).map(\.id) } == expected)
    }
}

/// Randomized catalogs, label changes and searches: the impact-ordered path equals the full-text path.
@Suite struct SearchIndexPropertyTests {
    /// Words of labels and queries: the synthetic vocabulary, the feature names and values, words FTS5 folds
    /// (case, diacritics), canonically equivalent spellings with different bytes (Hangul syllable and jamo), words
    /// of several tokens, and words no text holds.
    static let words = [
        "apple", "mango", "tiger", "the", "river", "gold", "Apple", "MANGO", "category", "order", "fruit", "metal",
        "c0", "c1", "alpha", "beta", "a", "b", "café", "CAFE", "cafe", "naïve", "\u{D55C}", "\u{1112}\u{1161}\u{11AB}",
        "x-ray", "ĠriverĊ", "zeppelin", "quartz", "Ωmega",
    ]

    static func randomFilters(_ random: inout SeededGenerator) -> SearchFilters {
        func pick<T>(_ options: [T?]) -> T? { options[Int(random.next() % UInt64(options.count))] }
        var filters = SearchFilters()
        let count = Int(random.next() % 4)
        for _ in 0 ..< count {
            switch random.next() % 7 {
            case 0: filters.model = pick(["alpha", "beta", "gamma"])
            case 1: filters.checkpoint = pick(["a", "b", "zz"])
            case 2: filters.layer = pick([0, 1, -1, 70_000])
            case 3: filters.head = pick([0, 1, 2])
            case 4: filters.feature = pick(["category", "order", "nope"])
            case 5: filters.value = pick(["fruit", "café", "1", "none"])
            default: filters.kind = pick(["semantic", "binding", "positional"])
            }
        }
        return filters
    }

    @Test(arguments: Array(1 ... 12) as [UInt64])
    func randomCatalogsAndQueriesAgree(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        // Two models from one seed: equal σ and equal scores across captures, ordered by id alone.
        for model in ["alpha", "beta"] {
            let shape = SyntheticCatalog.Shape(model: model, checkpoints: seed % 2 == 0 ? ["a", "b"] : ["a"], layers: 2,
                                               heads: 3, kvHeads: 1, headDimension: 4, rank: 2,
                                               features: ["category": ["fruit", "café"], "order": ["1"]],
                                               featureKinds: ["order": "binding"], topCount: 2, prompts: 8, seed: seed)
            try SyntheticCatalog.populate(catalog, shape: shape)
        }
        let components = try #require(try catalog.database.scalarInt("SELECT max(id) FROM components"))
        func randomText(_ maximum: Int) -> String {
            (0 ..< 1 + Int(random.next() % UInt64(maximum))).map { _ in Self.words[Int(random.next() % UInt64(Self.words.count))] }
                .joined(separator: " ")
        }
        // Labels and notes set, changed and cleared through the store, some written by hand in SQL.
        for _ in 0 ..< 20 {
            let id = Int64(1 + Int(random.next() % UInt64(components)))
            switch random.next() % 4 {
            case 0: try catalog.setHumanLabel(componentID: id, label: nil, note: random.next() % 2 == 0 ? "" : nil)
            case 1: try catalog.setHumanLabel(componentID: id, label: randomText(3), note: randomText(2))
            case 2: try catalog.setHumanLabel(componentID: id, label: randomText(4))
            default:
                try catalog.database.execute("UPDATE components SET human_label = '\(randomText(3))' WHERE id = \(id)")
            }
        }
        if seed % 2 == 1 {
            // A component deleted by hand: the index keeps its entries, search must not return it.
            try catalog.database.execute("DELETE FROM components WHERE id = \(1 + Int(random.next() % UInt64(components)))")
        }
        catalog.impactFilterThreshold = -1
        var compared = 0
        for _ in 0 ..< 60 {
            let words = SearchText.words(randomText(3))
            let filters = random.next() % 3 == 0 ? SearchFilters() : Self.randomFilters(&random)
            for limit in [1, 2 + Int(random.next() % 6), 10_000] {
                let fullText = try catalog.componentsByFullText(words, filters, limit: limit)
                let hits = try catalog.search(words.joined(separator: " "), filters: filters, limit: limit)
                #expect(hits.map(\.id) == fullText.map(\.id), "search \(words) \(filters) limit \(limit)")
                #expect(hits.map(\.score) == fullText.map(\.score), "search \(words) \(filters) limit \(limit)")
                compared += fullText.count
                guard seed % 2 == 0, let impact = try catalog.componentsByImpact(words, filters, limit: limit) else { continue }
                #expect(impact.map(\.id) == fullText.map(\.id), "\(words) \(filters) limit \(limit)")
                #expect(impact.map(\.score) == fullText.map(\.score), "\(words) \(filters) limit \(limit)")
            }
        }
        #expect(compared > 100)
    }
}

extension SearchIndexPropertyTests {
    /// Groups of a thousand entries: intersections gallop across blocks and cursors read several chunks.
    @Test func largeGroupsAgree() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(model: "alpha", checkpoints: ["a"], layers: 8, heads: 8, kvHeads: 1,
                                           headDimension: 4, rank: 4,
                                           features: ["category": ["fruit", "metal", "animal", "x"]], topCount: 2,
                                           prompts: 10, seed: 5)
        try SyntheticCatalog.populate(catalog, shape: shape)
        #expect(try catalog.database.scalarInt("SELECT max(documents) FROM search_postings") ?? 0 >= 1000)
        catalog.impactFilterThreshold = -1
        for query in ["alpha a", "alpha category", "a fruit", "category alpha a", "the alpha", "c1 category a"] {
            for filters in [SearchFilters(), SearchFilters(layer: 3), SearchFilters(value: "metal"),
                            SearchFilters(head: 1, value: "x")] {
                for limit in [1, 50, 300, 10_000] {
                    let words = SearchText.words(query)
                    let fullText = try catalog.componentsByFullText(words, filters, limit: limit)
                    let impact = try #require(try catalog.componentsByImpact(words, filters, limit: limit))
                    #expect(impact.map(\.id) == fullText.map(\.id), "\(query) \(filters) limit \(limit)")
                    #expect(impact.map(\.score) == fullText.map(\.score), "\(query) \(filters) limit \(limit)")
                }
            }
        }
    }
}

/// Document counts as the full-text path takes them: search_terms for a plain ASCII word it holds, else counted.
@Suite struct SearchIndexDocumentCountTests {
    private static func catalog() throws -> (TemporaryDatabase, Catalog) {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(checkpoints: ["a", "b"], layers: 2, heads: 2, kvHeads: 1, headDimension: 4,
                                           rank: 2, features: ["category": ["x", "y"]], topCount: 2, prompts: 10,
                                           seed: 3)
        try SyntheticCatalog.populate(catalog, shape: shape)
        catalog.impactFilterThreshold = -1
        return (temporary, catalog)
    }

    private static func expectSame(_ catalog: Catalog, _ query: String) throws {
        let words = SearchText.words(query)
        let fullText = try catalog.componentsByFullText(words, SearchFilters(), limit: 50)
        let impact = try #require(try catalog.componentsByImpact(words, SearchFilters(), limit: 50))
        #expect(!fullText.isEmpty)
        #expect(impact.map(\.id) == fullText.map(\.id), "\(query)")
        #expect(impact.map(\.score) == fullText.map(\.score), "\(query)")
    }

    /// A word only a label written by hand in SQL holds (not in search_terms): FTS5 counts it, so must the index.
    @Test func aWordOnlyAHandWrittenLabelHolds() throws {
        let (_, catalog) = try Self.catalog()
        try catalog.database.execute("UPDATE components SET human_label = 'zeppelin' WHERE id IN (7, 12)")
        try Self.expectSame(catalog, "zeppelin")
        try Self.expectSame(catalog, "zeppelin c0")
    }

    /// A word that is not plain ASCII is counted by FTS5 on the full-text path, whatever search_terms says.
    @Test func aNonASCIIWordAfterLabelsWrittenInSQL() throws {
        let (_, catalog) = try Self.catalog()
        try catalog.setHumanLabel(componentID: 3, label: "café")
        try catalog.database.execute("UPDATE components SET human_label = 'café' WHERE id IN (7, 8, 9)")
        try Self.expectSame(catalog, "café")
        try Self.expectSame(catalog, "CAFÉ c1")
    }
}

/// Terms are bytes to FTS5: canonically equivalent spellings (equal as Swift strings) are different terms.
@Suite struct SearchIndexTermBytesTests {
    static let syllable = "\u{D55C}"                   // 한, one code point
    static let jamo = "\u{1112}\u{1161}\u{11AB}"      // 한 as three conjoining jamo: == syllable in Swift

    @Test func canonicallyEquivalentTermsStayApart() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(checkpoints: ["a"], layers: 1, heads: 2, kvHeads: 1, headDimension: 4,
                                           rank: 2, features: ["category": ["x"]], topCount: 2, prompts: 6)
        try SyntheticCatalog.populate(catalog, shape: shape)
        #expect(Self.syllable == Self.jamo && Array(Self.syllable.utf8) != Array(Self.jamo.utf8))
        try catalog.setHumanLabel(componentID: 1, label: "\(Self.syllable) \(Self.jamo)")
        try catalog.setHumanLabel(componentID: 2, label: Self.syllable)
        try catalog.setHumanLabel(componentID: 3, label: Self.jamo)
        // search_terms counts each spelling apart, as FTS5 does.
        #expect(try catalog.database.scalarInt("SELECT documents FROM search_terms WHERE term = ?", [.text(Self.syllable)]) == 2)
        #expect(try catalog.database.scalarInt("SELECT documents FROM search_terms WHERE term = ?", [.text(Self.jamo)]) == 2)
        catalog.impactFilterThreshold = -1
        // Two different terms, not a repeated word.
        let both = try #require(try catalog.componentsByImpact([Self.syllable, Self.jamo], SearchFilters(), limit: 10))
        #expect(both.map(\.id) == [1])
        #expect(both.map(\.score) == (try catalog.componentsByFullText([Self.syllable, Self.jamo], SearchFilters(), limit: 10)).map(\.score))
        for word in [Self.syllable, Self.jamo] {
            let fullText = try catalog.componentsByFullText([word], SearchFilters(), limit: 10)
            let impact = try #require(try catalog.componentsByImpact([word], SearchFilters(), limit: 10))
            #expect(fullText.count == 2)
            #expect(impact.map(\.id) == fullText.map(\.id), "\(Array(word.utf8))")
            #expect(impact.map(\.score) == fullText.map(\.score), "\(Array(word.utf8))")
        }
        // Rebuilt from scratch (an upgrade), the groups keep the spellings apart too.
        try catalog.database.execute("DELETE FROM search_postings; DELETE FROM search_indexed_captures")
        let reopened = try Catalog.open(path: temporary.path)
        reopened.impactFilterThreshold = -1
        for word in [Self.syllable, Self.jamo] {
            let fullText = try reopened.componentsByFullText([word], SearchFilters(), limit: 10)
            let impact = try #require(try reopened.componentsByImpact([word], SearchFilters(), limit: 10))
            #expect(impact.map(\.id) == fullText.map(\.id), "\(Array(word.utf8))")
            #expect(impact.map(\.score) == fullText.map(\.score), "\(Array(word.utf8))")
        }
    }
}

/// Feature values are bytes to the value filter (the full-text facet is the hex of their UTF-8).
@Suite struct SearchIndexValueCodeTests {
    @Test func canonicallyEquivalentValuesGetTheirOwnCodes() throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(checkpoints: ["a"], layers: 1, heads: 2, kvHeads: 1, headDimension: 4,
                                           rank: 2, features: ["category": [composed, decomposed]], topCount: 2,
                                           prompts: 6)
        try SyntheticCatalog.populate(catalog, shape: shape)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM search_values") == 2)
        catalog.impactFilterThreshold = -1
        func expectSame(_ catalog: Catalog) throws {
            for value in [composed, decomposed] {
                let filters = SearchFilters(value: value)
                let fullText = try catalog.componentsByFullText(["category"], filters, limit: 100)
                let impact = try #require(try catalog.componentsByImpact(["category"], filters, limit: 100))
                #expect(fullText.count == 4)
                #expect(impact.map(\.id) == fullText.map(\.id), "\(Array(value.utf8))")
                #expect(impact.map(\.score) == fullText.map(\.score), "\(Array(value.utf8))")
            }
        }
        try expectSame(catalog)
        // Built again from the catalog's rows (an upgrade).
        try catalog.database.execute("DELETE FROM search_postings; DELETE FROM search_indexed_captures; DELETE FROM search_values")
        let reopened = try Catalog.open(path: temporary.path)
        reopened.impactFilterThreshold = -1
        #expect(try reopened.database.scalarInt("SELECT count(*) FROM search_values") == 2)
        try expectSame(reopened)
    }
}

/// Two processes opening a catalog whose index is incomplete (an upgrade) may both set out to build it.
@Suite struct SearchIndexBackfillTests {
    private final class Outcome: @unchecked Sendable {
        var error: String?
    }

    @Test func aCaptureIndexedMeanwhileIsNotBuiltTwice() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let shape = SyntheticCatalog.Shape(checkpoints: ["a", "b"], layers: 1, heads: 2, kvHeads: 1, headDimension: 4,
                                           rank: 2, features: ["category": ["x"]], topCount: 2, prompts: 6)
        try SyntheticCatalog.populate(catalog, shape: shape)
        let groups = try #require(try catalog.database.scalarInt("SELECT count(*) FROM search_postings WHERE capture_id = 2"))
        try catalog.database.execute("""
            CREATE TABLE saved_postings AS SELECT * FROM search_postings WHERE capture_id = 2;
            DELETE FROM search_postings WHERE capture_id = 2; DELETE FROM search_indexed_captures WHERE capture_id = 2;
            """)
        // This connection plays the other process: it holds the write lock while the open lists what is missing,
        // then indexes the capture and commits.
        try catalog.database.execute("BEGIN IMMEDIATE")
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let path = temporary.path
        DispatchQueue.global().async {
            do { _ = try Catalog.open(path: path) } catch { outcome.error = "\(error)" }
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)
        try catalog.database.execute("""
            INSERT INTO search_postings SELECT * FROM saved_postings;
            INSERT INTO search_indexed_captures (capture_id) VALUES (2);
            COMMIT
            """)
        done.wait()
        #expect(outcome.error == nil)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM search_postings WHERE capture_id = 2") == groups)
    }
}

/// Real text: the bundled MiniLM capture (WordPiece tokens, [CLS]/[SEP], punctuation), decomposed per value and
/// ingested; its most frequent terms, alone and in pairs and triples, with and without filters, rank alike.
@Suite struct SearchIndexRealTextTests {
    @Test func theBundledExampleRanksAlikeOnBothPaths() throws {
        let capture = repositoryRoot.appendingPathComponent("Examples/minilm/capture")
        let reader = try CaptureReader.open(capture)
        let options = DecompositionOptions(perValue: true, layers: [0, 2], topCount: 5)
        let results = try Decomposer(reader: reader, options: options).runAll()
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try catalog.ingest(header: reader.header, contentHash: "minilm-test", options: options, qkcatVersion: "test",
                           promptTable: reader.prompts, promptTokens: { try reader.tokens(ofPrompt: $0) }) { sink in
            for result in results { try sink(result) }
        }
        let first = try #require(try catalog.search("horse", limit: 1).first)
        try catalog.setHumanLabel(componentID: first.id, label: "animals and vehicles", note: "seen in L0")
        let statement = try catalog.database.prepare("SELECT term FROM search_terms ORDER BY documents DESC, term LIMIT 40")
        var terms: [String] = []
        while try statement.step() { terms.append(statement.text(at: 0) ?? "") }
        #expect(terms.count == 40)
        var queries = terms.map { [$0] }
        for (a, b) in zip(terms, terms.dropFirst(3)) { queries.append([a, b]) }
        for (a, (b, c)) in zip(terms, zip(terms.dropFirst(5), terms.dropFirst(11))) { queries.append([a, b, c]) }
        catalog.impactFilterThreshold = -1
        var compared = 0
        for words in queries {
            for filters in [SearchFilters(), SearchFilters(layer: 2), SearchFilters(feature: "category", value: "fruit"),
                            SearchFilters(kind: "binding")] {
                let fullText = try catalog.componentsByFullText(words, filters, limit: 25)
                guard let impact = try catalog.componentsByImpact(words, filters, limit: 25) else { continue }
                #expect(impact.map(\.id) == fullText.map(\.id), "\(words) \(filters)")
                #expect(impact.map(\.score) == fullText.map(\.score), "\(words) \(filters)")
                compared += fullText.count
            }
        }
        #expect(compared > 2000)
    }
}
