import Foundation
import QKEngine
@testable import QKStore

/// A small hand-built capture and engine results: 2 layers × 4 heads (2 kv heads), d_head 4, 3 prompts.
struct CatalogFixture {
    var model = ModelInfo(name: "toy-model", checkpoint: "step100", layerCount: 2, headCount: 4, kvHeadCount: 2,
                          headDimension: 4)
    let tokenStrings = ["The", " apple", " mango", " pear", " car", "?", " café", "Ġbanana"]
    let promptTokens: [[String]] = [
        ["The", " apple", " mango", "?"],
        ["The", " car", "?"],
        ["The", " pear", " café", "Ġbanana", "?"],
    ]

    var header: CaptureHeader {
        CaptureHeader(version: 1, model: model, positional: "post-rope", layers: [0, 1], tensorFiles: ["qk.safetensors"],
                      features: [FeatureInfo(name: "category", kind: "semantic", description: "word category"),
                                 FeatureInfo(name: "position", kind: "positional")],
                      datasetJSON: #"{"name":"fruit-lists","seed":7}"#)
    }

    var promptTable: PromptTable {
        PromptTable(promptIDs: ["p0", "p1", "p2"], keyStart: [0, 2, 3, 6], queryPositions: [3, 2, 4],
                    keyPositions: [1, 2, 1, 1, 2, 3], tokenStrings: tokenStrings, queryTokens: [5, 5, 5],
                    keyTokens: [1, 2, 4, 3, 6, 7], tokenCounts: [4, 3, 5], lineOffsets: [0, 40, 80], features: [])
    }

    /// Deterministic pseudo-random numbers, so that round trips compare against known values.
    private static func values(_ count: Int, seed: Int) -> [Float] {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0 ..< count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 999_983
        }
    }

    func component(index: Int, seed: Int, keyTokens: [Int32]) -> Component {
        let keys = SideExamples(
            highest: [Example(prompt: 0, position: 1, token: 1, score: 2.5 - Double(index)),
                      Example(prompt: 2, position: 1, token: 3, score: 1.25)],
            lowest: [Example(prompt: 2, position: 2, token: 6, score: -0.75)],
            highestTokens: keyTokens.enumerated().map { TokenAggregate(token: $1, count: 3 - $0, meanScore: 2 - Double($0) / 4) },
            lowestTokens: [TokenAggregate(token: 6, count: 1, meanScore: -0.75)])
        let queries = SideExamples(
            highest: [Example(prompt: 0, position: 3, token: 5, score: 0.5)],
            lowest: [Example(prompt: 2, position: 4, token: 5, score: -0.125)],
            highestTokens: [TokenAggregate(token: 5, count: 2, meanScore: 0.25)],
            lowestTokens: [])
        return Component(index: index, sigma: 3.0 / Double(index + 1), energyShare: index == 0 ? 0.8 : 0.2,
                         u: Self.values(4, seed: seed), v: Self.values(4, seed: seed + 1000), queries: queries, keys: keys)
    }

    func decomposition(layer: Int, head: Int, feature: String = "category", value: String? = nil,
                       keyTokens: [Int32] = [1, 2, 3]) -> Decomposition {
        let seed = layer * 100 + head * 10 + (value == nil ? 0 : 5)
        return Decomposition(
            layer: layer, head: head, kvHead: model.kvHead(forHead: head), feature: feature, value: value,
            positivePairs: 12 + head, negativePairs: 30 + layer, frobenius: 3.3541019662496847,
            singularValues: [3.0, 1.5, 0.1234567890123, 0.001], rank: 2,
            components: [component(index: 0, seed: seed, keyTokens: keyTokens),
                         component(index: 1, seed: seed + 1, keyTokens: keyTokens.reversed())])
    }

    var results: [LayerResult] {
        [
            LayerResult(layer: 0, decompositions: [
                decomposition(layer: 0, head: 1),
                decomposition(layer: 0, head: 1, value: "fruit"),
                decomposition(layer: 0, head: 2, feature: "position", keyTokens: [4, 5]),
            ], skips: [Skip(layer: 0, head: nil, feature: "category", value: "vehicle", reason: .noPositivePairs)]),
            LayerResult(layer: 1, decompositions: [decomposition(layer: 1, head: 3, keyTokens: [6, 7, 1])], skips: []),
        ]
    }

    /// Ingests the fixture under `hash`.
    @discardableResult
    func ingest(into catalog: Catalog, hash: String = "sha256:aaaa") throws -> IngestSummary {
        let tokens = promptTokens
        return try catalog.ingest(header: header, contentHash: hash, options: DecompositionOptions(perValue: true, topCount: 3),
                                  qkcatVersion: "0.1.0-test", promptTable: promptTable,
                                  promptTokens: { tokens[$0] }) { sink in
            for result in results { try sink(result) }
        }
    }
}

/// Every row of every catalog table, as text, for before/after comparisons.
func catalogRows(_ database: Database) throws -> [String] {
    let tables = ["models", "checkpoints", "captures", "heads", "features", "decompositions", "components", "prompts",
                  "component_examples", "examples", "token_aggregates", "skips", "component_keys", "component_text"]
    var rows: [String] = []
    for table in tables {
        let statement = try database.prepare("SELECT * FROM \(table)")
        while try statement.step() {
            rows.append(table + ": " + (0 ..< Int32(statement.columnCount)).map { "\(statement.value(at: $0))" }.joined(separator: "|"))
        }
    }
    return rows
}
