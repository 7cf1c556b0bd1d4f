import Foundation
import QKEngine
import Testing
@testable import QKStore

@Suite struct CatalogReportTests {
    /// The export cursor's records, as the report reads them: without vectors, prompt ids left to the prompts.
    func exported(_ catalog: Catalog, layer: Int, feature: String? = nil) throws -> [DecompositionRecord] {
        let cursor = try catalog.exportDecompositions(SearchFilters(model: "toy-model", checkpoint: "step100", layer: layer,
                                                                    feature: feature))
        var records: [DecompositionRecord] = []
        while var record = try cursor.next() {
            for i in record.components.indices {
                record.components[i].u = []
                record.components[i].v = []
                for j in record.components[i].examples.indices { record.components[i].examples[j].promptID = "" }
            }
            records.append(record)
        }
        return records
    }

    @Test func aLayerReadsAsTheExportCursorReadsIt() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog)
        for layer in [0, 1] {
            let records = try catalog.reportDecompositions(model: "toy-model", checkpoint: "step100", layer: layer)
            #expect(!records.isEmpty)
            #expect(records.contains { !$0.components.isEmpty && !$0.components[0].examples.isEmpty })
            #expect(records == (try exported(catalog, layer: layer)))
        }
        #expect(try catalog.reportDecompositions(model: "toy-model", checkpoint: "step100", layer: 0, feature: "position")
            == (try exported(catalog, layer: 0, feature: "position")))
        #expect(try catalog.reportDecompositions(model: "toy-model", checkpoint: "main", layer: 0).isEmpty)
        // Prompt ids and tokens come with the prompts.
        let rows = Set(try catalog.reportDecompositions(model: "toy-model", checkpoint: "step100", layer: 0)
            .flatMap { $0.components.flatMap { $0.examples.map(\.promptRowID) } })
        let prompts = try catalog.promptContexts(rows)
        #expect(Set(prompts.keys) == rows && prompts.values.contains { $0.promptID == "p2" && $0.tokens.last == "?" })
    }

    @Test func examplesJSONWithEscapesAndInfinities() throws {
        let text = #"{"query":{"high":[[3,1,"a\"b\\c\u00e9\ud83d\ude00\n",1e999]],"low":[]},"key":{"high":[],"low":[[4,2,"x",-2.5]]}}"#
        let examples = try ExamplesJSON.examples(text)
        #expect(examples.map(\.token) == ["a\"b\\cé😀\n", "x"])
        #expect(examples[0].score == .infinity && examples[0].side == .query && examples[0].promptRowID == 3)
        #expect(examples[1].side == .key && examples[1].extreme == .low && examples[1].score == -2.5 && examples[1].position == 2)
        #expect(throws: ExamplesJSON.Failure.self) { try ExamplesJSON.examples(#"{"query":{"high":[[1,2,"t"]]}}"#) }
        #expect(throws: ExamplesJSON.Failure.self) { try ExamplesJSON.examples(#"{"query":{"high":[[1,2,"t",3]]}} x"#) }
        #expect(throws: ExamplesJSON.Failure.self) { try ExamplesJSON.aggregates(#"{"side":{}}"#) }
    }
}
