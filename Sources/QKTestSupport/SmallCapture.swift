import Foundation
import QKEngine

/// A small capture's full content, kept in memory so tests can compare what a reader returns.
public struct SmallCapture: Sendable {
    public struct Key: Sendable, Equatable {
        public var position: Int
        public var labels: [String: String]
        public init(position: Int, labels: [String: String]) {
            self.position = position
            self.labels = labels
        }
    }

    public struct Prompt: Sendable, Equatable {
        public var id: String
        public var tokens: [String]
        public var queryPosition: Int
        public var queryLabels: [String: String]
        public var keys: [Key]
        public init(id: String, tokens: [String], queryPosition: Int, queryLabels: [String: String], keys: [Key]) {
            self.id = id
            self.tokens = tokens
            self.queryPosition = queryPosition
            self.queryLabels = queryLabels
            self.keys = keys
        }
    }

    public var model: ModelInfo
    public var positional: String
    public var layers: [Int]
    public var features: [FeatureInfo]
    public var dataset: [String: String]?
    public var dtype: TensorDType
    public var prompts: [Prompt]
    /// Per layer: every prompt's query, `[P][n_heads][d_head]` flattened.
    public var queries: [Int: [Float]]
    /// Per layer: every key, `[K][n_kv_heads][d_head]` flattened.
    public var keys: [Int: [Float]]

    public var keyCount: Int { prompts.reduce(0) { $0 + $1.keys.count } }

    /// The default small model: 4 layers, 4 query heads over 2 kv heads, d_head 8.
    public static let defaultModel = ModelInfo(name: "test/small-model", checkpoint: "main", layerCount: 4,
                                               headCount: 4, kvHeadCount: 2, headDimension: 8)

    /// A deterministic capture: prompts cycle through three list templates labelled with `category` and `order`;
    /// vector values are uniform in [-2, 2) from a seeded generator.
    public init(dtype: TensorDType = .f32, model: ModelInfo = SmallCapture.defaultModel, layers: [Int] = [1, 3],
                promptCount: Int = 3, seed: UInt64 = 1) {
        self.model = model
        self.positional = "post-rope"
        self.layers = layers
        self.features = [FeatureInfo(name: "category", kind: "semantic", description: "category of a list item"),
                         FeatureInfo(name: "order", kind: "binding")]
        self.dataset = ["name": "small-lists", "description": "test fixture"]
        self.dtype = dtype
        let templates: [(tokens: [String], query: Int, label: String, keys: [Key])] = [
            (["<s>", " apple", " dog", " pear", ":", " fruit"], 5, "fruit",
             [Key(position: 1, labels: ["category": "fruit", "order": "0"]),
              Key(position: 2, labels: ["category": "animal", "order": "1"]),
              Key(position: 3, labels: ["category": "fruit", "order": "2"])]),
            (["<s>", " cat", " plum", ":", " animal"], 4, "animal",
             [Key(position: 1, labels: ["category": "animal", "order": "0"]),
              Key(position: 2, labels: ["category": "fruit", "order": "1"])]),
            (["<s>", " fig", " cow", " ant", ":", " fruit"], 5, "fruit",
             [Key(position: 1, labels: ["category": "fruit", "order": "0"]),
              Key(position: 2, labels: ["category": "animal", "order": "1"]),
              Key(position: 4, labels: [:])]),
        ]
        prompts = (0..<promptCount).map { index in
            let template = templates[index % templates.count]
            return Prompt(id: "p\(index)", tokens: template.tokens, queryPosition: template.query,
                          queryLabels: ["category": template.label], keys: template.keys)
        }
        var generator = SplitMix64(seed: seed)
        let keyTotal = prompts.reduce(0) { $0 + $1.keys.count }
        var queries: [Int: [Float]] = [:], keys: [Int: [Float]] = [:]
        for layer in layers {
            queries[layer] = (0..<(promptCount * model.headCount * model.headDimension)).map { _ in generator.nextFloat() }
            keys[layer] = (0..<(keyTotal * model.kvHeadCount * model.headDimension)).map { _ in generator.nextFloat() }
        }
        self.queries = queries
        self.keys = keys
    }

    /// Writes the capture with `CaptureWriter` into `directory` (created if needed).
    public func write(to directory: URL) throws {
        let writer = try CaptureWriter(directory: directory, model: model, positional: positional, layers: layers,
                                       features: features, dataset: dataset, dtype: dtype)
        let queryWidth = model.headCount * model.headDimension
        let keyWidth = model.kvHeadCount * model.headDimension
        var keyStart = 0
        for (index, prompt) in prompts.enumerated() {
            var promptQueries: [Int: [Float]] = [:], promptKeys: [Int: [Float]] = [:]
            for layer in layers {
                promptQueries[layer] = Array(queries[layer]![(index * queryWidth)..<((index + 1) * queryWidth)])
                promptKeys[layer] = Array(keys[layer]![(keyStart * keyWidth)..<((keyStart + prompt.keys.count) * keyWidth)])
            }
            try writer.addPrompt(id: prompt.id, tokens: prompt.tokens, queryPosition: prompt.queryPosition,
                                 queryLabels: prompt.queryLabels, keys: prompt.keys.map { ($0.position, $0.labels) },
                                 queries: promptQueries, keys: promptKeys)
            keyStart += prompt.keys.count
        }
        try writer.finish()
    }
}

/// Writes a small valid capture into `directory` and returns its content (see `SmallCapture.init`).
@discardableResult
public func writeSmallCapture(to directory: URL, dtype: TensorDType = .f32, model: ModelInfo = SmallCapture.defaultModel,
                              layers: [Int] = [1, 3], promptCount: Int = 3, seed: UInt64 = 1,
                              edit: (inout SmallCapture) -> Void = { _ in }) throws -> SmallCapture {
    var capture = SmallCapture(dtype: dtype, model: model, layers: layers, promptCount: promptCount, seed: seed)
    edit(&capture)
    try capture.write(to: directory)
    return capture
}

/// The fixtures' seeded generator: the engine's SplitMix64, so fixtures are the same on every run.
public typealias SplitMix64 = SeededGenerator

extension SeededGenerator {
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) * 4 - 2 }
}
