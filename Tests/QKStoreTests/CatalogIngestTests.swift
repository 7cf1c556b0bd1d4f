import Foundation
import QKEngine
import Testing
@testable import QKStore

@Suite struct CatalogIngestTests {
    @Test func ingestThenReadBackGivesTheSameNumbers() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        let summary = try fixture.ingest(into: catalog)
        #expect(summary.decompositions == 4)
        #expect(summary.components == 8)
        #expect(summary.examples == 8 * 5)
        #expect(summary.skips == 1)
        #expect(summary.prompts == 2)  // prompt 1 is never cited

        let expected = fixture.results.flatMap(\.decompositions)
        let cursor = try catalog.exportDecompositions()
        #expect(cursor.count == expected.count)
        var stored: [DecompositionRecord] = []
        while let record = try cursor.next() { stored.append(record) }
        // Catalog order: layer, head, feature, pooled before per value.
        #expect(stored.map { "\($0.layer).\($0.head) \($0.feature) \($0.value ?? "-")" }
            == ["0.1 category -", "0.1 category fruit", "0.2 position -", "1.3 category -"])
        for record in stored {
            let original = try #require(expected.first {
                $0.layer == record.layer && $0.head == record.head && $0.feature == record.feature && $0.value == record.value
            })
            #expect(record.model == "toy-model" && record.checkpoint == "step100")
            #expect(record.kvHead == original.kvHead && record.headDimension == 4)
            #expect(record.positivePairs == original.positivePairs && record.negativePairs == original.negativePairs)
            #expect(record.frobenius == original.frobenius)
            #expect(record.rank == original.rank)
            #expect(record.energy == 0.99)
            // Singular values go through float32: equal to float precision.
            #expect(record.singularValues.count == original.singularValues.count)
            for (storedValue, originalValue) in zip(record.singularValues, original.singularValues) {
                #expect(abs(storedValue - originalValue) <= 1e-6 * max(1, abs(originalValue)))
            }
            #expect(record.components.count == original.components.count)
            for (component, source) in zip(record.components, original.components) {
                #expect(component.index == source.index)
                #expect(component.sigma == source.sigma && component.energyShare == source.energyShare)
                #expect(component.u == source.u && component.v == source.v)  // float32 round trip is exact
                for side in Side.allCases {
                    let examples = side == .key ? source.keys : source.queries
                    for (extreme, list) in [(Extreme.high, examples.highest), (.low, examples.lowest)] {
                        let read = component.examples(side, extreme)
                        #expect(read.map(\.rank) == Array(0 ..< list.count))
                        #expect(read.map(\.score) == list.map(\.score))
                        #expect(read.map(\.position) == list.map(\.position))
                        #expect(read.map(\.token) == list.map { fixture.tokenStrings[Int($0.token)] })
                        #expect(read.map(\.promptID) == list.map { "p\($0.prompt)" })
                    }
                    for (extreme, list) in [(Extreme.high, examples.highestTokens), (.low, examples.lowestTokens)] {
                        let read = component.tokenAggregates(side, extreme)
                        #expect(read.map(\.token) == list.map { fixture.tokenStrings[Int($0.token)] })
                        #expect(read.map(\.count) == list.map(\.count))
                        #expect(read.map(\.meanScore) == list.map(\.meanScore))
                    }
                }
            }
        }
    }

    @Test func theExampleViewsReturnTheEngineRowsBitForBit() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        var promptTable = fixture.promptTable
        promptTable.tokenStrings = CompactJSONTests.nastyTokens
        var random = SeededGenerator(seed: 5)
        var scores = assortedDoubles(count: 2000, seed: 6).makeIterator()
        func side(_ count: Int) -> SideExamples {
            func examples() -> [Example] {
                (0 ..< count).map { _ in
                    Example(prompt: Int(random.next() % 3), position: Int(random.next() % 5),
                            token: Int32(random.next() % UInt64(promptTable.tokenStrings.count)), score: scores.next()!)
                }
            }
            func aggregates() -> [TokenAggregate] {
                (0 ..< count).map { _ in
                    TokenAggregate(token: Int32(random.next() % UInt64(promptTable.tokenStrings.count)),
                                   count: Int(random.next() % 50) + 1, meanScore: scores.next()!)
                }
            }
            return SideExamples(highest: examples(), lowest: examples(), highestTokens: aggregates(), lowestTokens: aggregates())
        }
        var decomposition = fixture.decomposition(layer: 0, head: 1)
        decomposition.components[0].queries = side(20)
        decomposition.components[0].keys = side(7)
        decomposition.components[1].queries = SideExamples()   // one side without any: empty lists
        decomposition.components[1].keys = side(1)
        var bare = fixture.decomposition(layer: 1, head: 3)    // no examples at all: no component_examples row
        for index in bare.components.indices { (bare.components[index].queries, bare.components[index].keys) = (SideExamples(), SideExamples()) }
        try catalog.ingest(header: fixture.header, contentHash: "views", options: DecompositionOptions(),
                           qkcatVersion: "t", promptTable: promptTable, promptTokens: { fixture.promptTokens[$0] }) { sink in
            try sink(LayerResult(layer: 0, decompositions: [decomposition], skips: []))
            try sink(LayerResult(layer: 1, decompositions: [bare], skips: []))
        }

        var expectedExamples: [String] = []
        var expectedAggregates: [String] = []
        let componentIDs = try catalog.database.prepare(
            "SELECT c.id FROM components c JOIN decompositions d ON d.id = c.decomposition_id ORDER BY d.id, c.component_index")
        var ids: [Int64] = []
        while try componentIDs.step() { ids.append(componentIDs.int64(at: 0) ?? -1) }
        #expect(ids.count == 4)
        for (id, component) in zip(ids, decomposition.components) {
            for (side, examples) in [("key", component.keys), ("query", component.queries)] {
                for (extreme, list) in [("high", examples.highest), ("low", examples.lowest)] {
                    for (rank, e) in list.enumerated() {
                        expectedExamples.append("i\(id) \(side.debugDescription) \(extreme.debugDescription) i\(rank) "
                            + "\("p\(e.prompt)".debugDescription) i\(e.position) "
                            + "\(promptTable.tokenStrings[Int(e.token)].debugDescription) r\(e.score.bitPattern)")
                    }
                }
                for (extreme, list) in [("high", examples.highestTokens), ("low", examples.lowestTokens)] {
                    for (rank, a) in list.enumerated() {
                        expectedAggregates.append("i\(id) \(side.debugDescription) \(extreme.debugDescription) i\(rank) "
                            + "\(promptTable.tokenStrings[Int(a.token)].debugDescription) i\(a.count) r\(a.meanScore.bitPattern)")
                    }
                }
            }
        }
        #expect(expectedExamples.count == 2 * (20 + 7 + 1))

        // Types as the tables of migration 0001 had them; the scan order without ORDER BY is the tables' key order.
        func rows(_ sql: String) throws -> [String] {
            let statement = try catalog.database.prepare(sql)
            var rows: [String] = []
            while try statement.step() {
                let types = (0 ..< Int32(statement.columnCount)).map { statement.value(at: $0) }
                rows.append(types.map { value -> String in
                    switch value {
                    case let .integer(int): "i\(int)"
                    case let .real(real): "r\(real.bitPattern)"
                    case let .text(text): text.debugDescription
                    default: "\(value)"
                    }
                }.joined(separator: " "))
            }
            return rows
        }
        let examplesSQL = """
            SELECT e.component_id, e.side, e.extreme, e.rank, 'p' || p.prompt_index, e.position, e.token, e.score
              FROM examples e JOIN prompts p ON p.id = e.prompt_id
            """
        #expect(try rows(examplesSQL + " ORDER BY e.component_id, e.side, e.extreme, e.rank") == expectedExamples)
        #expect(try rows("SELECT * FROM token_aggregates") == expectedAggregates)
        #expect(try rows("SELECT * FROM token_aggregates ORDER BY component_id, side, extreme, rank") == expectedAggregates)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM component_examples") == 2)
        #expect(try catalog.database.scalarText("PRAGMA integrity_check") == "ok")

        // The export reader gives the same scores, bit for bit.
        let cursor = try catalog.exportDecompositions()
        let record = try #require(try cursor.next())
        for (stored, source) in zip(record.components, decomposition.components) {
            for (side, examples) in [(Side.key, source.keys), (.query, source.queries)] {
                #expect(stored.examples(side, .high).map(\.score.bitPattern) == examples.highest.map(\.score.bitPattern))
                #expect(stored.examples(side, .low).map(\.score.bitPattern) == examples.lowest.map(\.score.bitPattern))
                #expect(stored.tokenAggregates(side, .low).map(\.meanScore.bitPattern)
                    == examples.lowestTokens.map(\.meanScore.bitPattern))
            }
        }
    }

    @Test func automaticLabelsNameFeatureValueIndexAndTopKeyTokens() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog)
        let labels = try catalog.search("", limit: 100).map(\.autoLabel).sorted()
        #expect(labels.contains("category=fruit c0: apple, mango, pear"))
        #expect(labels.contains("category c1: pear, mango, apple"))
        #expect(labels.contains("position c0: car, ?"))
        #expect(labels.contains("category c0: café, Ġbanana, apple"))
    }

    @Test func showReturnsDecompositionsWithCitedPromptContexts() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: catalog)
        let shown = try catalog.decompositions(SearchFilters(model: "toy-model", layer: 0, head: 1, feature: "category"))
        #expect(shown.decompositions.map(\.value) == [nil, "fruit"])
        let cited = Set(shown.decompositions.flatMap { $0.components.flatMap { $0.examples.map(\.promptRowID) } })
        #expect(Set(shown.prompts.keys) == cited)
        #expect(shown.prompts.values.map(\.promptID).sorted() == ["p0", "p2"])
        for context in shown.prompts.values {
            #expect(context.tokens == fixture.promptTokens[context.index])
        }

        let hit = try #require(try catalog.search("mango", filters: SearchFilters(layer: 0, head: 1, value: "fruit")).first)
        let detail = try catalog.component(id: hit.id)
        #expect(detail.component.id == hit.id)
        #expect(detail.decomposition.value == "fruit" && detail.decomposition.components.isEmpty)
        #expect(detail.decomposition.singularValues.count == 4)
        #expect(Set(detail.prompts.keys) == Set(detail.component.examples.map(\.promptRowID)))
        #expect(throws: StoreError.notFound(what: "component 999999")) { _ = try catalog.component(id: 999_999) }
    }

    @Test func sameHashIsReportedAsPresentAndNothingIsDoubled() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        #expect(try catalog.capture(withHash: "sha256:aaaa") == nil)
        let summary = try fixture.ingest(into: catalog)
        let capture = try #require(try catalog.capture(withHash: "sha256:aaaa"))
        #expect(capture.id == summary.captureID)
        #expect(capture.model == "toy-model" && capture.checkpoint == "step100")
        #expect(capture.layers == [0, 1] && capture.promptCount == 3 && capture.keyCount == 6)
        #expect(capture.datasetJSON == #"{"name":"fruit-lists","seed":7}"#)
        #expect(capture.qkcatVersion == "0.1.0-test" && capture.energy == 0.99)
        #expect(capture.optionsJSON
            == #"{"energy":0.99,"features":null,"layers":null,"max_rank":null,"per_value":true,"top":3}"#)

        let before = try catalogRows(catalog.database)
        #expect(throws: StoreError.alreadyIngested(contentHash: "sha256:aaaa", captureID: capture.id)) {
            try fixture.ingest(into: catalog)
        }
        #expect(try catalogRows(catalog.database) == before)
    }

    @Test func secondCaptureOfTheSameCheckpointSharesModelAndHeads() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: catalog, hash: "one")
        try fixture.ingest(into: catalog, hash: "two")
        #expect(try catalog.listModels().count == 1)
        #expect(try catalog.listCheckpoints().map(\.captureCount) == [2])
        #expect(try catalog.listHeads().map { "\($0.layer).\($0.head)" } == ["0.1", "0.2", "1.3"])
        #expect(try catalog.listHeads().map(\.decompositionCount) == [4, 2, 2])
        #expect(try catalog.listFeatures(SearchFilters(feature: "category")).map(\.values) == [["fruit"], ["fruit"]])
    }

    @Test func failureMidIngestLeavesTheCatalogAsBefore() throws {
        struct ProducerFailed: Error {}
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: catalog, hash: "first")
        let before = try catalogRows(catalog.database)

        var other = fixture
        other.model.checkpoint = "step200"
        #expect(throws: ProducerFailed.self) {
            try catalog.ingest(header: other.header, contentHash: "second", options: DecompositionOptions(),
                               qkcatVersion: "t", promptTable: other.promptTable,
                               promptTokens: { other.promptTokens[$0] }) { sink in
                try sink(other.results[0])
                throw ProducerFailed()
            }
        }
        #expect(try catalogRows(catalog.database) == before)
        #expect(try catalog.capture(withHash: "second") == nil)
        #expect(try catalog.database.scalarText("PRAGMA integrity_check") == "ok")
        // The catalog stays usable after the rollback.
        try other.ingest(into: catalog, hash: "second")
        #expect(try catalog.listCheckpoints().map(\.name) == ["step100", "step200"])
    }

    @Test func droppedSessionRollsBack() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        do {
            let tokens = fixture.promptTokens
            let session = try catalog.beginIngest(header: fixture.header, contentHash: "dropped", options: DecompositionOptions(),
                                                  qkcatVersion: "t", promptTable: fixture.promptTable,
                                                  promptTokens: { tokens[$0] })
            try session.add(fixture.results[0])
        }
        #expect(try catalogRows(catalog.database).isEmpty)
        #expect(catalog.database.inTransaction == false)
    }

    @Test func invalidResultsAreRejectedWithTheirPlace() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        var undeclared = fixture.decomposition(layer: 0, head: 0)
        undeclared.feature = "color"
        var shortVector = fixture.decomposition(layer: 0, head: 0)
        shortVector.components[1].u = [1, 2]
        var badToken = fixture.decomposition(layer: 0, head: 0)
        badToken.components[0].keys.highest[0].token = 99
        var nanScore = fixture.decomposition(layer: 1, head: 2)
        nanScore.components[1].keys.lowest[0].score = .nan
        var badPrompt = fixture.decomposition(layer: 1, head: 0)
        badPrompt.components[0].queries.highest[0].prompt = 3
        let cases: [(Decomposition, StoreError)] = [
            (undeclared, .invalidArgument("layer 0 head 0: feature color is not declared by the capture")),
            (shortVector, .invalidArgument("layer 0 head 0 feature category: a component vector's length is not d_head 4")),
            (badToken, .invalidArgument("layer 0 head 0 feature category: token index 99 is outside the capture's 8 token strings")),
            (nanScore, .invalidArgument("layer 1 head 2 feature category: an example score is NaN")),
            (badPrompt, .invalidArgument("layer 1 head 0 feature category: example cites prompt 3, but the capture has 3 prompts")),
        ]
        for (decomposition, error) in cases {
            #expect(throws: error) {
                try catalog.ingest(header: fixture.header, contentHash: "bad", options: DecompositionOptions(),
                                   qkcatVersion: "t", promptTable: fixture.promptTable,
                                   promptTokens: { fixture.promptTokens[$0] }) { sink in
                    try sink(LayerResult(layer: decomposition.layer, decompositions: [decomposition], skips: []))
                }
            }
            #expect(try catalogRows(catalog.database).isEmpty)
        }
    }

    @Test func modelShapeMismatchIsRefused() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        try CatalogFixture().ingest(into: catalog, hash: "one")
        var other = CatalogFixture()
        other.model.headDimension = 8
        #expect(throws: StoreError.invalidArgument("model toy-model is in the catalog with 2 layers × 4 heads (2 kv heads, "
            + "d_head 4); the capture declares 2 × 4 (2 kv heads, d_head 8)")) {
            try other.ingest(into: catalog, hash: "two")
        }
    }

    @Test func checkpointsAreListedInTrainingOrder() throws {
        let temporary = TemporaryDatabase()
        let catalog = try Catalog.open(path: temporary.path)
        for name in ["main", "step10", "step2", "step1000"] {
            var fixture = CatalogFixture()
            fixture.model.checkpoint = name
            try fixture.ingest(into: catalog, hash: name)
        }
        #expect(try catalog.listCheckpoints(SearchFilters(model: "toy-model")).map(\.name)
            == ["step2", "step10", "step1000", "main"])
    }

    @Test func readersSeeCommittedDataWhileAWriterHoldsATransaction() throws {
        let temporary = TemporaryDatabase()
        let writer = try Catalog.open(path: temporary.path)
        let fixture = CatalogFixture()
        try fixture.ingest(into: writer, hash: "one")
        var second = fixture
        second.model.checkpoint = "step200"
        let session = try writer.beginIngest(header: second.header, contentHash: "two", options: DecompositionOptions(),
                                             qkcatVersion: "t", promptTable: second.promptTable,
                                             promptTokens: { second.promptTokens[$0] })
        try session.add(second.results[0])
        let reader = try Catalog.open(path: temporary.path, readOnly: true)
        #expect(try reader.listCheckpoints().map(\.name) == ["step100"])  // the open ingest is invisible
        #expect(try reader.search("mango").count == 4)  // layer 0 head 1: pooled and fruit, c0 and c1
        _ = try session.finish()
        #expect(try reader.listCheckpoints().map(\.name) == ["step100", "step200"])
    }
}
