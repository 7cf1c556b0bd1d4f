import Foundation
import QKEngine
import Testing
@testable import QKStore

@Suite struct CatalogSearchTests {
    private func catalogWithFixture() throws -> (TemporaryDatabase, Catalog) {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog)
        return (temporary, catalog)
    }

    @Test func oddCharactersNeverReachFTS5Syntax() throws {
        let (_, catalog) = try catalogWithFixture()
        for query in ["\"", "fruit OR", "OR", "*", "(", ")", "mango*", "NEAR(apple mango)", "category:", "-apple",
                      "^pear", "a\"b", "''", "{feature}", "\\", "☃", "日本語", "\u{0}"] {
            _ = try catalog.search(query)
            _ = try catalog.search(query, filters: SearchFilters(layer: 0))
        }
        // Quoted words keep their meaning: "fruit OR" asks for both words, and no label holds "or".
        #expect(try catalog.search("fruit OR").isEmpty)
        #expect(try catalog.search("fruit").count == 2)
        // "(" alone is an empty phrase: nothing, no error.
        #expect(try catalog.search("(").isEmpty)
    }

    @Test func unicodeAndByteLevelTokensAreSearchable() throws {
        let (_, catalog) = try catalogWithFixture()
        // Diacritics folded: "cafe" finds "café"; Ġ separates words, so "banana" finds "Ġbanana".
        #expect(try catalog.search("cafe").count == 2)
        #expect(try catalog.search("café").count == 2)
        #expect(try catalog.search("banana").map(\.layer) == [1, 1])
    }

    @Test func wordsAreAndedAndRankedByWhereTheyMatch() throws {
        let (_, catalog) = try catalogWithFixture()
        let hits = try catalog.search("category fruit")
        #expect(hits.count == 2)
        #expect(hits.allSatisfy { $0.value == "fruit" && $0.feature == "category" })
        #expect(hits.allSatisfy { $0.score == 1 })  // both words in the automatic label
        let scores = hits.compactMap(\.score)
        #expect(scores == scores.sorted())
        // "?" is a top query token of every component, never in an automatic label: tier 2, by σ.
        let apple = try catalog.search("apple", limit: 100)
        #expect(apple.compactMap(\.score) == apple.compactMap(\.score).sorted())
    }

    @Test func filtersAreExact() throws {
        let (_, catalog) = try catalogWithFixture()
        #expect(try catalog.search("apple", filters: SearchFilters(layer: 1)).map { "\($0.layer).\($0.head)" } == ["1.3", "1.3"])
        #expect(try catalog.search("apple", filters: SearchFilters(head: 1, value: "fruit")).count == 2)
        #expect(try catalog.search("apple", filters: SearchFilters(model: "toy")).isEmpty)  // a prefix is not the name
        #expect(try catalog.search("apple", filters: SearchFilters(model: "toy-model", checkpoint: "step100")).count == 6)
        #expect(try catalog.search("apple", filters: SearchFilters(checkpoint: "main")).isEmpty)
        #expect(try catalog.search("", filters: SearchFilters(kind: "positional")).map(\.feature) == ["position", "position"])
        #expect(try catalog.search("", filters: SearchFilters(feature: "category")).count == 6)
        #expect(try catalog.search("", filters: SearchFilters(layer: 5)).isEmpty)
    }

    @Test func emptyQueryListsBySigma() throws {
        let (_, catalog) = try catalogWithFixture()
        let all = try catalog.search("", limit: 100)
        #expect(all.count == 8)
        #expect(all.map(\.sigma) == all.map(\.sigma).sorted(by: >))
        #expect(all.allSatisfy { $0.score == nil })
        #expect(try catalog.search("", limit: 3).count == 3)
        let filtered = try catalog.search("   ", filters: SearchFilters(layer: 0, head: 1))
        #expect(filtered.count == 4 && filtered.map(\.sigma) == filtered.map(\.sigma).sorted(by: >))
        #expect(throws: StoreError.invalidArgument("search limit must be positive, got 0")) { _ = try catalog.search("", limit: 0) }
    }

    @Test func humanLabelIsSearchableAtOnce() throws {
        let (temporary, catalog) = try catalogWithFixture()
        let target = try #require(try catalog.search("banana").first)
        #expect(try catalog.search("tropical").isEmpty)
        try catalog.setHumanLabel(componentID: target.id, label: "tropical fruit detector", note: "checked by hand")
        let hits = try catalog.search("tropical")
        #expect(hits.map(\.id) == [target.id])
        #expect(hits.first?.label == "tropical fruit detector")
        #expect(hits.first?.note == "checked by hand")
        #expect(try catalog.search("hand").map(\.id) == [target.id])  // the note is searchable as well
        // A human label outranks the same word elsewhere.
        #expect(try catalog.search("fruit").first?.id == target.id)
        // Another process sees it too.
        let reader = try Catalog.open(path: temporary.path, readOnly: true)
        #expect(try reader.search("tropical").map(\.id) == [target.id])

        // Relabelling keeps the note when none is given; empty strings clear.
        try catalog.setHumanLabel(componentID: target.id, label: "exotic")
        #expect(try catalog.search("tropical").isEmpty)
        #expect(try catalog.component(id: target.id).component.note == "checked by hand")
        try catalog.setHumanLabel(componentID: target.id, label: nil, note: "")
        let cleared = try catalog.component(id: target.id).component
        #expect(cleared.humanLabel == nil && cleared.note == nil && cleared.label == cleared.autoLabel)
        #expect(try catalog.search("exotic").isEmpty && catalog.search("hand").isEmpty)
        #expect(throws: StoreError.notFound(what: "component 424242")) {
            try catalog.setHumanLabel(componentID: 424_242, label: "x")
        }
    }

    @Test func hitCarriesItsPlace() throws {
        let (_, catalog) = try catalogWithFixture()
        let hit = try #require(try catalog.search("car").first)
        #expect(hit.model == "toy-model" && hit.checkpoint == "step100")
        #expect(hit.layer == 0 && hit.head == 2 && hit.kvHead == 1)
        #expect(hit.feature == "position" && hit.kind == "positional" && hit.value == nil)
        #expect(hit.index == 0 && hit.sigma == 3.0 && hit.energyShare == 0.8)
        #expect(hit.label == "position c0: car, ?")
    }
}

@Suite struct SearchTextTests {
    @Test func wordsAreQuotedAsFTS5Strings() {
        func quotedTerms(_ query: String) -> [String] { SearchText.words(query).map(SearchText.quoted) }
        #expect(quotedTerms("fruit OR") == ["\"fruit\"", "\"OR\""])
        #expect(quotedTerms(" a\"b  ") == ["\"a\"\"b\""])
        #expect(quotedTerms("") == [])
        #expect(quotedTerms("a\u{0}b\tc") == ["\"a\"", "\"b\"", "\"c\""])
    }

    @Test func checkpointOrdinals() {
        #expect(CheckpointOrder.ordinal(of: "step2") == 2)
        #expect(CheckpointOrder.ordinal(of: "step0010") == 10)
        #expect(CheckpointOrder.ordinal(of: "step000") == 0)
        #expect(CheckpointOrder.ordinal(of: "main") == Int64.max)
        #expect(CheckpointOrder.ordinal(of: "step99999999999999999999999") == Int64.max - 1)
        let names = ["main", "step10", "step2", "step1000", "final"]
        let sorted = names.sorted { (CheckpointOrder.ordinal(of: $0), $0) < (CheckpointOrder.ordinal(of: $1), $1) }
        #expect(sorted == ["step2", "step10", "step1000", "final", "main"])
    }

    @Test func autoLabelFormat() {
        #expect(SearchText.autoLabel(feature: "category", value: "fruit", index: 0, topKeyTokens: [" apple", " mango", " pear", " kiwi"])
            == "category=fruit c0: apple, mango, pear")
        #expect(SearchText.autoLabel(feature: "category", value: nil, index: 2, topKeyTokens: []) == "category c2")
        #expect(SearchText.autoLabel(feature: "position", value: nil, index: 1, topKeyTokens: [" "]) == "position c1: \" \"")
    }
}
