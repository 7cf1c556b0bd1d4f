import Foundation
import QKEngine

/// One search result: a component and where it lives.
public struct ComponentHit: Sendable, Equatable {
    public var id: Int64
    public var model: String
    public var checkpoint: String
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var feature: String
    public var kind: String
    /// nil for a pooled decomposition.
    public var value: String?
    /// 0-based position in the spectrum.
    public var index: Int
    public var sigma: Double
    public var energyShare: Double
    public var autoLabel: String
    public var humanLabel: String?
    public var note: String?
    /// Where every word matched (lower ranks first): 0 the human label or note, 1 the automatic label, 2 elsewhere
    /// (top tokens, feature, model and checkpoint names); nil when listing without a text query.
    public var score: Double?

    /// The human label when there is one, else the automatic label.
    public var label: String { humanLabel ?? autoLabel }
}

/// The top or the bottom of a ranked list.
public enum Extreme: String, Sendable, Equatable, CaseIterable {
    case high, low
}

/// A top-activating example as stored.
public struct StoredExample: Sendable, Equatable {
    public var side: Side
    public var extreme: Extreme
    /// 0-based rank in its list (0 = most extreme).
    public var rank: Int
    /// Row id in `prompts` (a key of `HeadDecompositions.prompts`).
    public var promptRowID: Int64
    /// The capture's own prompt id.
    public var promptID: String
    public var position: Int
    public var token: String
    public var score: Double
}

/// A per-token-string aggregate as stored.
public struct StoredTokenAggregate: Sendable, Equatable {
    public var side: Side
    public var extreme: Extreme
    public var rank: Int
    public var token: String
    public var count: Int
    public var meanScore: Double
}

/// A stored component with its vectors, labels, examples and token aggregates.
public struct ComponentRecord: Sendable, Equatable {
    public var id: Int64
    public var index: Int
    public var sigma: Double
    public var energyShare: Double
    public var u: [Float]
    public var v: [Float]
    public var autoLabel: String
    public var humanLabel: String?
    public var note: String?
    /// Ordered by side (query, key), extreme (high, low), rank.
    public var examples: [StoredExample]
    public var tokenAggregates: [StoredTokenAggregate]

    public var label: String { humanLabel ?? autoLabel }

    public func examples(_ side: Side, _ extreme: Extreme) -> [StoredExample] {
        examples.filter { $0.side == side && $0.extreme == extreme }
    }

    public func tokenAggregates(_ side: Side, _ extreme: Extreme) -> [StoredTokenAggregate] {
        tokenAggregates.filter { $0.side == side && $0.extreme == extreme }
    }
}

/// A stored decomposition with its place in the catalog.
public struct DecompositionRecord: Sendable, Equatable {
    public var id: Int64
    public var captureID: Int64
    public var model: String
    public var checkpoint: String
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var headDimension: Int
    public var feature: String
    public var featureKind: String
    public var value: String?
    public var energy: Double
    public var positivePairs: Int
    public var negativePairs: Int
    public var frobenius: Double
    public var rank: Int
    /// Every singular value, descending (stored as float32).
    public var singularValues: [Double]
    public var components: [ComponentRecord]
}

/// The tokens of one prompt cited by an example.
public struct PromptContext: Sendable, Equatable {
    public var rowID: Int64
    public var captureID: Int64
    /// Line number in the capture's prompts.jsonl.
    public var index: Int
    /// The capture's prompt id.
    public var promptID: String
    public var tokens: [String]
}

/// Decompositions with the contexts their examples cite (what `show` prints).
public struct DecompositionsWithContext: Sendable, Equatable {
    public var decompositions: [DecompositionRecord]
    /// By `StoredExample.promptRowID`.
    public var prompts: [Int64: PromptContext]
}

/// One component in full: its decomposition (with `components` empty), itself, and the cited prompts.
public struct ComponentDetail: Sendable, Equatable {
    public var decomposition: DecompositionRecord
    public var component: ComponentRecord
    public var prompts: [Int64: PromptContext]
}

public struct CaptureRecord: Sendable, Equatable {
    public var id: Int64
    public var model: String
    public var checkpoint: String
    public var contentHash: String
    public var datasetJSON: String?
    public var positional: String
    public var layers: [Int]
    public var promptCount: Int
    public var keyCount: Int
    public var ingestedAt: String
    public var qkcatVersion: String
    public var energy: Double
    public var optionsJSON: String
}

public struct ModelRecord: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    public var checkpointCount: Int
}

public struct CheckpointRecord: Sendable, Equatable {
    public var id: Int64
    public var model: String
    public var name: String
    /// Sort key: trailing digits of the name, or Int64.max when there are none.
    public var ordinal: Int64
    public var captureCount: Int
}

public struct HeadRecord: Sendable, Equatable {
    public var id: Int64
    public var model: String
    public var checkpoint: String
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var headDimension: Int
    public var decompositionCount: Int
}

public struct FeatureRecord: Sendable, Equatable {
    public var id: Int64
    public var captureID: Int64
    public var model: String
    public var checkpoint: String
    public var name: String
    public var kind: String
    public var description: String?
    public var decompositionCount: Int
    /// Values with a per-value decomposition, sorted.
    public var values: [String]
}

/// What one ingest wrote.
public struct IngestSummary: Sendable, Equatable {
    public var captureID: Int64
    public var decompositions = 0
    public var components = 0
    public var examples = 0
    public var tokenAggregates = 0
    public var prompts = 0
    public var skips = 0
}
/// Checkpoint sort keys: the value of the trailing digits; names without them sort after all others.
public enum CheckpointOrder {
    public static let unnumbered = Int64.max

    public static func ordinal(of name: String) -> Int64 {
        let digits = name.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return unnumbered }
        let significant = String(digits.reversed()).drop { $0 == "0" }
        if significant.isEmpty { return 0 }
        // More digits than Int64 holds: clamp just below the unnumbered names.
        return Int64(significant) ?? (unnumbered - 1)
    }
}
