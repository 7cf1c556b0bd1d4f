import Foundation
import QKEngine
import Testing
@testable import QKStore

@Suite struct CatalogSubspacesTests {
    @Test func pooledQuerySubspacesComeBackWithTheirVectors() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: catalog)
        func pooled(_ checkpoint: String, model: String = "toy-model", _ filters: SearchFilters = SearchFilters())
            throws -> [StoredSubspaces] {
            try catalog.subspaces(model: model, checkpoint: checkpoint, filters: filters, pooledOnly: true)
        }
        let records = try pooled("step100")
        // The per-value decomposition (category = fruit) is not a pooled subspace.
        #expect(records.map { "\($0.layer).\($0.head) \($0.feature)" } == ["0.1 category", "0.2 position", "1.3 category"])
        let expected = fixture.results.flatMap(\.decompositions).filter { $0.value == nil }
        for (record, decomposition) in zip(records, expected) {
            #expect(record.u == decomposition.components.map(\.u))
            #expect(record.kvHead == decomposition.kvHead && record.headDimension == 4)
        }
        #expect(try pooled("step100", SearchFilters(layer: 0, head: 1)).map(\.feature) == ["category"])
        #expect(try pooled("step100", SearchFilters(feature: "position")).map(\.head) == [2])
        #expect(try pooled("main").isEmpty)
        #expect(try pooled("step100", model: "other").isEmpty)
        #expect(try catalog.model(named: "toy-model").headDimension == 4)
        #expect(throws: StoreError.self) { try catalog.model(named: "other") }
    }

    @Test func theMostRecentCaptureWinsWhenTwoDecomposedTheSameHead() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: catalog, hash: "first")
        let newer = fixture.results.map { layer in
            LayerResult(layer: layer.layer, decompositions: layer.decompositions.map { decomposition in
                var changed = decomposition
                changed.components = Array(changed.components.prefix(1)).map { component in
                    var flipped = component
                    flipped.u = component.u.map { -$0 }
                    return flipped
                }
                changed.rank = 1
                return changed
            }, skips: [])
        }
        let tokens = fixture.promptTokens
        _ = try catalog.ingest(header: fixture.header, contentHash: "second", options: DecompositionOptions(),
                               qkcatVersion: "test", promptTable: fixture.promptTable, promptTokens: { tokens[$0] }) { sink in
            for result in newer { try sink(result) }
        }
        let records = try catalog.subspaces(model: "toy-model", checkpoint: "step100",
                                            filters: SearchFilters(layer: 0, head: 1), pooledOnly: true)
        let original = fixture.decomposition(layer: 0, head: 1).components[0].u
        #expect(records.count == 1)
        #expect(records.first?.u == [original.map { -$0 }])
    }
}
