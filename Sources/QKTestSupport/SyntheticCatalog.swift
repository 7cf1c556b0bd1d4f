import Foundation
import QKEngine
import QKStore

/// Fills a catalog with synthetic decompositions through the real ingest path (for benchmarks and demos).
public enum SyntheticCatalog {
    /// The shape of what to generate: one capture per checkpoint.
    public struct Shape: Sendable {
        public var model = "synthetic-model"
        public var checkpoints = ["step1000", "step2000", "main"]
        public var layers = 32
        public var heads = 32
        public var kvHeads = 8
        public var headDimension = 64
        public var rank = 8
        /// Feature name → values; each feature gets a pooled decomposition plus one per value.
        public var features: [String: [String]] = ["category": ["animal", "fruit", "vehicle"]]
        /// Feature name → kind (missing: "semantic").
        public var featureKinds: [String: String] = [:]
        /// Examples kept at each end of each side (and as many token aggregates).
        public var topCount = 5
        public var prompts = 200
        public var seed: UInt64 = 1

        /// Any field left out keeps the default above.
        public init(model: String = "synthetic-model", checkpoints: [String] = ["step1000", "step2000", "main"],
                    layers: Int = 32, heads: Int = 32, kvHeads: Int = 8, headDimension: Int = 64, rank: Int = 8,
                    features: [String: [String]] = ["category": ["animal", "fruit", "vehicle"]],
                    featureKinds: [String: String] = [:], topCount: Int = 5, prompts: Int = 200, seed: UInt64 = 1) {
            self.model = model
            self.checkpoints = checkpoints
            self.layers = layers
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDimension = headDimension
            self.rank = rank
            self.features = features
            self.featureKinds = featureKinds
            self.topCount = topCount
            self.prompts = prompts
            self.seed = seed
        }

        /// Components this shape produces.
        public var componentCount: Int {
            checkpoints.count * layers * heads * rank * features.values.reduce(0) { $0 + 1 + $1.count }
        }
    }

    static let vocabulary = [
        "apple", "mango", "pear", "kiwi", "plum", "grape", "lemon", "cherry", "horse", "tiger", "eagle", "whale", "otter",
        "zebra", "camel", "truck", "train", "bicycle", "tram", "ferry", "rocket", "scooter", "red", "blue", "green",
        "violet", "paris", "tokyo", "lima", "oslo", "cairo", "the", "and", "of", "to", "is", "was", "river", "mountain",
        "piano", "violin", "guitar", "drum", "copper", "silver", "iron", "gold",
    ]

    /// Ingests `shape` into `catalog`, one transaction per checkpoint; returns each capture's summary.
    public static func populate(_ catalog: Catalog, shape: Shape) throws -> [IngestSummary] {
        var random = SplitMix(seed: shape.seed)
        let tokenStrings = vocabulary.map { " " + $0 }
        let promptTokens = (0 ..< shape.prompts).map { _ in (0 ..< 12).map { _ in tokenStrings[random.below(tokenStrings.count)] } }
        let promptTable = PromptTable(
            promptIDs: (0 ..< shape.prompts).map { "prompt-\($0)" }, keyStart: Array(0 ... shape.prompts),
            queryPositions: Array(repeating: 11, count: shape.prompts), keyPositions: Array(repeating: 3, count: shape.prompts),
            tokenStrings: tokenStrings, queryTokens: Array(repeating: 0, count: shape.prompts),
            keyTokens: Array(repeating: 0, count: shape.prompts), tokenCounts: Array(repeating: 12, count: shape.prompts),
            lineOffsets: Array(repeating: 0, count: shape.prompts), features: [])
        let featureNames = shape.features.keys.sorted()
        var summaries: [IngestSummary] = []
        for checkpoint in shape.checkpoints {
            let model = ModelInfo(name: shape.model, checkpoint: checkpoint, layerCount: shape.layers, headCount: shape.heads,
                                  kvHeadCount: shape.kvHeads, headDimension: shape.headDimension)
            let header = CaptureHeader(version: 1, model: model, positional: "post-rope", layers: Array(0 ..< shape.layers),
                                       tensorFiles: [], features: featureNames.map { FeatureInfo(name: $0, kind: shape.featureKinds[$0] ?? "semantic") },
                                       datasetJSON: #"{"synthetic":true}"#)
            let summary = try catalog.ingest(
                header: header, contentHash: "synthetic:\(shape.seed):\(shape.model):\(checkpoint)",
                options: DecompositionOptions(perValue: true, topCount: shape.topCount), qkcatVersion: "synthetic",
                promptTable: promptTable, promptTokens: { promptTokens[$0] }
            ) { sink in
                for layer in 0 ..< shape.layers {
                    var decompositions: [Decomposition] = []
                    for head in 0 ..< shape.heads {
                        for feature in featureNames {
                            for value in [nil] + (shape.features[feature] ?? []).map(Optional.some) {
                                decompositions.append(decomposition(layer: layer, head: head, feature: feature, value: value,
                                                                    model: model, shape: shape, random: &random))
                            }
                        }
                    }
                    try sink(LayerResult(layer: layer, decompositions: decompositions, skips: []))
                }
            }
            summaries.append(summary)
        }
        return summaries
    }

    private static func decomposition(layer: Int, head: Int, feature: String, value: String?, model: ModelInfo,
                                      shape: Shape, random: inout SplitMix) -> Decomposition {
        let singularValues = (0 ..< shape.headDimension).map { 10 * Double.pow2(-Double($0) / 2) * (0.5 + random.unit()) }
            .sorted(by: >)
        let total = singularValues.reduce(0) { $0 + $1 * $1 }
        let components = (0 ..< shape.rank).map { index -> Component in
            func vector() -> [Float] { (0 ..< shape.headDimension).map { _ in Float(random.unit() * 2 - 1) } }
            func examples(_ sign: Double) -> [Example] {
                (0 ..< shape.topCount).map { rank in
                    Example(prompt: random.below(shape.prompts), position: 3, token: Int32(random.below(vocabulary.count)),
                            score: sign * (Double(shape.topCount - rank) + random.unit()))
                }
            }
            func aggregates(_ sign: Double) -> [TokenAggregate] {
                (0 ..< shape.topCount).map { rank in
                    TokenAggregate(token: Int32(random.below(vocabulary.count)), count: 1 + random.below(5),
                                   meanScore: sign * Double(shape.topCount - rank))
                }
            }
            func side() -> SideExamples {
                SideExamples(highest: examples(1), lowest: examples(-1), highestTokens: aggregates(1), lowestTokens: aggregates(-1))
            }
            return Component(index: index, sigma: singularValues[index],
                             energyShare: singularValues[index] * singularValues[index] / total,
                             u: vector(), v: vector(), queries: side(), keys: side())
        }
        return Decomposition(layer: layer, head: head, kvHead: model.kvHead(forHead: head), feature: feature, value: value,
                             positivePairs: 100 + random.below(1000), negativePairs: 1000 + random.below(5000),
                             frobenius: total.squareRoot(), singularValues: singularValues, rank: shape.rank,
                             components: components)
    }

    /// The engine's seeded SplitMix64 generator.
    typealias SplitMix = SeededGenerator
}

private extension Double {
    static func pow2(_ exponent: Double) -> Double { Foundation.pow(2, exponent) }
}

extension SeededGenerator {
    mutating func unit() -> Double { nextUnit() }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
