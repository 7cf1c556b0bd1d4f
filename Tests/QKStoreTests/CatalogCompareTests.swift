import Foundation
import QKEngine
import QKTestSupport
import Testing
@testable import QKStore

/// 2 checkpoints × 2 layers × 4 heads, d_head 8, rank 3, a pooled and two per-value decompositions per head.
func compareSyntheticCatalog(_ temporary: TemporaryDatabase) throws -> Catalog {
    let catalog = try Catalog.open(path: temporary.path)
    var shape = SyntheticCatalog.Shape()
    shape.checkpoints = ["step2", "main"]
    shape.layers = 2
    shape.heads = 4
    shape.kvHeads = 2
    shape.headDimension = 8
    shape.rank = 3
    shape.features = ["category": ["animal", "fruit"]]
    shape.topCount = 1
    shape.prompts = 10
    _ = try SyntheticCatalog.populate(catalog, shape: shape)
    return catalog
}

@Suite struct CatalogCompareTests {
    @Test func subspacesCarryTheStoredVectorsInKeyOrder() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        let records = try catalog.subspaces(model: "synthetic-model", checkpoint: "main")
        #expect(records.count == 2 * 4 * 3)
        #expect(records.map(\.key) == records.map(\.key).sorted())
        #expect(records.prefix(3).map(\.value) == [nil, "animal", "fruit"])
        let cursor = try catalog.exportDecompositions(SearchFilters(checkpoint: "main"))
        var exported = 0
        while let decomposition = try cursor.next() {
            let key = SubspaceKey(layer: decomposition.layer, head: decomposition.head, feature: decomposition.feature,
                                  value: decomposition.value)
            let record = try #require(records.first { $0.key == key })
            #expect(record.u == decomposition.components.map(\.u))
            #expect(record.v == decomposition.components.map(\.v))
            #expect(record.rank == decomposition.rank && record.kvHead == decomposition.kvHead)
            #expect(abs(record.sigma1 - decomposition.singularValues[0]) < 1e-12)
            #expect(record.frobenius == decomposition.frobenius)
            exported += 1
        }
        #expect(exported == records.count)
        let filtered = try catalog.subspaces(model: "synthetic-model", checkpoint: "main",
                                             filters: SearchFilters(layer: 1, head: 2, feature: "category"), pooledOnly: true)
        #expect(filtered.map(\.key) == [SubspaceKey(layer: 1, head: 2, feature: "category", value: nil)])
        let fruit = try catalog.subspaces(model: "synthetic-model", checkpoint: "step2", filters: SearchFilters(value: "fruit"))
        #expect(fruit.count == 8 && fruit.allSatisfy { $0.value == "fruit" && $0.checkpoint == "step2" })
    }

    @Test func theLatestCaptureOfACheckpointWins() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        var first = PlantedCatalog.spec(checkpoint: "main", layers: 1, heads: 2, prompts: 300)
        try PlantedCatalog.ingest(first, into: catalog)
        first.queryRotations = [LayerHead(layer: 0, head: 0): PlantedCatalog.radians(45)]
        first.keyRotations = [LayerHead(layer: 0, head: 0): PlantedCatalog.radians(45)]
        let truth = try PlantedCatalog.ingest(first, into: catalog)
        let records = try catalog.subspaces(model: "planted", checkpoint: "main")
        #expect(records.count == 2)
        let head0 = try #require(records.first { $0.head == 0 })
        let planted = truth.queryBasis(layer: 0, head: 0, feature: "category")
        let stored = Matrix(columns: head0.u.map { $0.map(Double.init) })
        // The second (rotated) capture's subspace, not the first one's, 45° away.
        #expect(principalAngleCosines(stored, planted).allSatisfy { $0 > 0.99 })
    }

    @Test func trajectoryFollowsCheckpointOrder() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        for name in ["main", "step10", "step2"] {
            var spec = PlantedCatalog.spec(checkpoint: name, layers: 1, heads: 1, prompts: 200)
            // step10 decomposed another feature only: the trajectory has a gap there.
            if name == "step10" { spec.features[0].name = "other" }
            try PlantedCatalog.ingest(spec, into: catalog)
        }
        let rows = try catalog.trajectory(model: "planted", layer: 0, head: 0, feature: "category", value: nil)
        #expect(rows.map(\.checkpoint.name) == ["step2", "step10", "main"])
        #expect(rows.map { $0.subspaces != nil } == [true, false, true])
    }

    @Test func lookupsNameWhatExists() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        #expect(throws: StoreError.invalidArgument("model 'other' not found (models: synthetic-model)")) {
            try catalog.model(named: "other")
        }
        #expect(throws: StoreError.invalidArgument("checkpoint 'step3' of model 'synthetic-model' not found (checkpoints: step2, main)")) {
            try catalog.checkpoint("step3", ofModel: "synthetic-model")
        }
        #expect(try catalog.checkpoint("main", ofModel: "synthetic-model").name == "main")
    }

    /// Every component's vectors, by id, read through the export path.
    private func allComponents(_ catalog: Catalog) throws -> [(hit: DecompositionRecord, component: ComponentRecord)] {
        let cursor = try catalog.exportDecompositions()
        var result: [(hit: DecompositionRecord, component: ComponentRecord)] = []
        while let decomposition = try cursor.next() {
            for component in decomposition.components { result.append((decomposition, component)) }
        }
        return result
    }

    private func cosine(_ x: [Float], _ y: [Float]) -> Double {
        let dot = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let norms = (x.reduce(0.0) { $0 + Double($1 * $1) } * y.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
        return abs(dot) / norms
    }

    @Test(arguments: SimilarScope.allCases)
    func similarMatchesABruteForceRanking(scope: SimilarScope) throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        let everything = try allComponents(catalog)
        let reference = everything[29]
        let candidates = everything.filter { entry in
            entry.component.id != reference.component.id
                && (scope == .all || entry.hit.model == reference.hit.model)
                && (scope == .all || scope == .model || entry.hit.layer == reference.hit.layer)
                && (scope != .head || entry.hit.head == reference.hit.head)
        }
        let expected = candidates.map { entry in
            (id: entry.component.id,
             score: cosine(entry.component.u, reference.component.u) * cosine(entry.component.v, reference.component.v))
        }.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
        let result = try catalog.similarComponents(to: reference.component.id, scope: scope, limit: 7)
        // The table scan split across one connection per core gives the same answer.
        catalog.similarSplitAbove = 0
        let split = try catalog.similarComponents(to: reference.component.id, scope: scope, limit: 7)
        #expect(split.hits == result.hits && split.scanned == result.scanned)
        #expect(result.scanned == candidates.count)
        #expect(result.reference.id == reference.component.id && result.headDimension == 8 && result.scope == scope)
        #expect(result.hits.map(\.component.id) == expected.prefix(7).map(\.id))
        for (hit, want) in zip(result.hits, expected) {
            #expect(abs(hit.score - want.score) < 1e-5)
            #expect(abs(hit.score - hit.queryCosine * hit.keyCosine) < 1e-12)
        }
    }

    @Test func similarErrors() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        #expect(throws: StoreError.notFound(what: "component 123456")) { try catalog.similarComponents(to: 123_456) }
        #expect(throws: StoreError.invalidArgument("similar: limit must be positive, got 0")) {
            try catalog.similarComponents(to: 1, limit: 0)
        }
    }
}
