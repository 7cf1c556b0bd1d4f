import Foundation

/// The model a capture was taken from, as `capture.json` declares it.
public struct ModelInfo: Sendable, Equatable, Hashable {
    public var name: String
    public var checkpoint: String
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int

    public init(name: String, checkpoint: String, layerCount: Int, headCount: Int, kvHeadCount: Int, headDimension: Int) {
        self.name = name
        self.checkpoint = checkpoint
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension
    }

    /// Query heads that share one key/value head (grouped-query attention).
    public var groupSize: Int { headCount / kvHeadCount }

    /// The key/value head that query head `head` reads.
    public func kvHead(forHead head: Int) -> Int { head / groupSize }
}

/// One labelled feature declared in `capture.json`.
public struct FeatureInfo: Sendable, Equatable, Hashable {
    public var name: String
    public var kind: String
    public var description: String?

    public init(name: String, kind: String, description: String? = nil) {
        self.name = name
        self.kind = kind
        self.description = description
    }
}

/// The validated contents of `capture.json`.
public struct CaptureHeader: Sendable, Equatable {
    public var version: Int
    public var model: ModelInfo
    /// `post-rope`, `pre-rope` or `none`.
    public var positional: String
    /// Captured layers, in the order the header lists them.
    public var layers: [Int]
    public var tensorFiles: [String]
    /// Declared features, sorted by name (JSON objects carry no order).
    public var features: [FeatureInfo]
    /// The optional `dataset` object, re-serialized as compact JSON with sorted keys.
    public var datasetJSON: String?

    public init(version: Int, model: ModelInfo, positional: String, layers: [Int], tensorFiles: [String],
                features: [FeatureInfo], datasetJSON: String?) {
        self.version = version
        self.model = model
        self.positional = positional
        self.layers = layers
        self.tensorFiles = tensorFiles
        self.features = features
        self.datasetJSON = datasetJSON
    }
}

/// Labels of one feature over a capture's queries and keys, as small integer codes.
public struct FeatureLabels: Sendable, Equatable {
    public var name: String
    /// Distinct values seen on queries or keys, sorted; codes index this array.
    public var values: [String]
    /// Per prompt: the code of the query's value, or -1 when the query has no label.
    public var queryCodes: [Int32]
    /// Per key (flattened over prompts): the code of the key's value, or -1 when unlabelled.
    public var keyCodes: [Int32]

    public init(name: String, values: [String], queryCodes: [Int32], keyCodes: [Int32]) {
        self.name = name
        self.values = values
        self.queryCodes = queryCodes
        self.keyCodes = keyCodes
    }
}

/// Everything the contrast needs from `prompts.jsonl`, in compact form.
///
/// Whole token lists are not kept (they grow with the prompts); `lineOffsets` lets a caller
/// re-read one prompt's tokens from the file when it needs a context.
public struct PromptTable: Sendable, Equatable {
    public var promptIDs: [String]
    /// Prompt `p`'s keys are `keyStart[p] ..< keyStart[p + 1]`; `keyStart.count == promptCount + 1`.
    public var keyStart: [Int]
    public var queryPositions: [Int32]
    public var keyPositions: [Int32]
    /// Interned token strings; `queryTokens` and `keyTokens` index this array.
    public var tokenStrings: [String]
    public var queryTokens: [Int32]
    public var keyTokens: [Int32]
    /// Per prompt: the number of tokens in the prompt.
    public var tokenCounts: [Int32]
    /// Byte offset of each prompt's line in `prompts.jsonl`.
    public var lineOffsets: [Int]
    /// One entry per declared feature, in the header's (sorted) order.
    public var features: [FeatureLabels]

    public init(promptIDs: [String], keyStart: [Int], queryPositions: [Int32], keyPositions: [Int32],
                tokenStrings: [String], queryTokens: [Int32], keyTokens: [Int32], tokenCounts: [Int32],
                lineOffsets: [Int], features: [FeatureLabels]) {
        self.promptIDs = promptIDs
        self.keyStart = keyStart
        self.queryPositions = queryPositions
        self.keyPositions = keyPositions
        self.tokenStrings = tokenStrings
        self.queryTokens = queryTokens
        self.keyTokens = keyTokens
        self.tokenCounts = tokenCounts
        self.lineOffsets = lineOffsets
        self.features = features
    }

    public var promptCount: Int { promptIDs.count }
    public var keyCount: Int { keyStart.last ?? 0 }

    /// The prompt that key `key` (a flattened index) belongs to.
    public func prompt(ofKey key: Int) -> Int {
        // Binary search: the last p with keyStart[p] <= key.
        var low = 0, high = promptCount - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if keyStart[mid] <= key { low = mid } else { high = mid - 1 }
        }
        return low
    }

    /// Labels of the feature named `name`, if declared.
    public func labels(of name: String) -> FeatureLabels? { features.first { $0.name == name } }
}

/// Element types a capture tensor may have.
public enum TensorDType: String, Sendable, Equatable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"

    public var byteSize: Int {
        switch self {
        case .f16, .bf16: return 2
        case .f32: return 4
        case .f64: return 8
        }
    }
}
