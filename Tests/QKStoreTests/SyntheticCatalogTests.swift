import Foundation
import QKTestSupport
import Testing
@testable import QKStore

@Suite struct SyntheticCatalogTests {
    @Test func populatesTheDeclaredNumberOfComponents() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        var shape = SyntheticCatalog.Shape()
        shape.checkpoints = ["step2", "main"]
        shape.layers = 2
        shape.heads = 4
        shape.kvHeads = 2
        shape.headDimension = 8
        shape.rank = 3
        shape.prompts = 20
        let summaries = try SyntheticCatalog.populate(catalog, shape: shape)
        #expect(summaries.map(\.components).reduce(0, +) == shape.componentCount)
        #expect(shape.componentCount == 2 * 2 * 4 * 3 * 4)
        #expect(try catalog.search("", limit: 1_000).count == shape.componentCount)
        #expect(try catalog.listCheckpoints().map(\.name) == ["step2", "main"])
        let hits = try catalog.search("apple", filters: SearchFilters(checkpoint: "main", layer: 1, feature: "category", value: "fruit"))
        #expect(hits.allSatisfy { $0.checkpoint == "main" && $0.layer == 1 && $0.value == "fruit" })
        #expect(try catalog.database.scalarText("PRAGMA integrity_check") == "ok")
    }
}
