import Foundation

/// Options of one decomposition run.
public struct DecompositionOptions: Sendable, Equatable {
    /// Fraction of `Σσ²` the kept components must hold (the paper's 99%).
    public var energy: Double = 0.99
    /// Upper bound on the rank, if any.
    public var maxRank: Int? = nil
    /// Also decompose per query value, besides the pooled decomposition.
    public var perValue: Bool = false
    /// Features to decompose (nil: every declared feature).
    public var features: [String]? = nil
    /// Layers to decompose (nil: every captured layer).
    public var layers: [Int]? = nil
    /// Examples kept at each end of each component's query and key lists.
    public var topCount: Int = 20
    /// Worker threads (nil: one per core).
    public var threads: Int? = nil
    /// The variant of the C kernels to run (nil: the best the CPU supports); tests compare them.
    var kernelVariant: KernelVariant? = nil

    public init(energy: Double = 0.99, maxRank: Int? = nil, perValue: Bool = false, features: [String]? = nil,
                layers: [Int]? = nil, topCount: Int = 20, threads: Int? = nil) {
        self.energy = energy
        self.maxRank = maxRank
        self.perValue = perValue
        self.features = features
        self.layers = layers
        self.topCount = topCount
        self.threads = threads
    }
}

/// Which side of the head a vector or example belongs to.
public enum Side: String, Sendable, Equatable, CaseIterable {
    case query, key
}

/// One token occurrence cited as a top-activating example.
public struct Example: Sendable, Equatable {
    /// Index of the prompt in the capture (file order).
    public var prompt: Int
    /// Token position inside the prompt.
    public var position: Int
    /// Index into `PromptTable.tokenStrings`.
    public var token: Int32
    /// `uᵢ·q` (query side) or `vᵢ·k` (key side), in the stored sign convention.
    public var score: Double

    public init(prompt: Int, position: Int, token: Int32, score: Double) {
        self.prompt = prompt
        self.position = position
        self.token = token
        self.score = score
    }
}

/// The mean score of one token string over all its occurrences on one side.
public struct TokenAggregate: Sendable, Equatable {
    public var token: Int32
    public var count: Int
    public var meanScore: Double

    public init(token: Int32, count: Int, meanScore: Double) {
        self.token = token
        self.count = count
        self.meanScore = meanScore
    }
}

/// The examples at both ends of one side of a component.
public struct SideExamples: Sendable, Equatable {
    /// Highest scores first.
    public var highest: [Example]
    /// Lowest scores first.
    public var lowest: [Example]
    /// Token strings with the highest mean score, highest first.
    public var highestTokens: [TokenAggregate]
    /// Token strings with the lowest mean score, lowest first.
    public var lowestTokens: [TokenAggregate]

    public init(highest: [Example] = [], lowest: [Example] = [], highestTokens: [TokenAggregate] = [],
                lowestTokens: [TokenAggregate] = []) {
        self.highest = highest
        self.lowest = lowest
        self.highestTokens = highestTokens
        self.lowestTokens = lowestTokens
    }
}

/// One kept singular triple `(σᵢ, uᵢ, vᵢ)` of a decomposition.
public struct Component: Sendable, Equatable {
    /// 0-based position in the spectrum.
    public var index: Int
    public var sigma: Double
    /// `σᵢ² / Σσ²`.
    public var energyShare: Double
    /// Query-side unit vector (length d_head).
    public var u: [Float]
    /// Key-side unit vector (length d_head).
    public var v: [Float]
    public var queries: SideExamples
    public var keys: SideExamples

    public init(index: Int, sigma: Double, energyShare: Double, u: [Float], v: [Float],
                queries: SideExamples, keys: SideExamples) {
        self.index = index
        self.sigma = sigma
        self.energyShare = energyShare
        self.u = u
        self.v = v
        self.queries = queries
        self.keys = keys
    }
}

/// The decomposition of `ΔC` for one head and feature (pooled, or for one query value).
public struct Decomposition: Sendable, Equatable {
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var feature: String
    /// nil for the pooled decomposition.
    public var value: String?
    public var positivePairs: Int
    public var negativePairs: Int
    /// `‖ΔC‖_F`.
    public var frobenius: Double
    /// Every singular value, descending.
    public var singularValues: [Double]
    public var rank: Int
    /// The first `rank` components.
    public var components: [Component]

    public init(layer: Int, head: Int, kvHead: Int, feature: String, value: String?, positivePairs: Int,
                negativePairs: Int, frobenius: Double, singularValues: [Double], rank: Int, components: [Component]) {
        self.layer = layer
        self.head = head
        self.kvHead = kvHead
        self.feature = feature
        self.value = value
        self.positivePairs = positivePairs
        self.negativePairs = negativePairs
        self.frobenius = frobenius
        self.singularValues = singularValues
        self.rank = rank
        self.components = components
    }
}

/// A head and feature (or value) whose contrast cannot be formed.
public struct Skip: Sendable, Equatable {
    public enum Reason: String, Sendable, Equatable {
        case noPositivePairs = "no positive pair"
        case noNegativePairs = "no negative pair"
    }

    public var layer: Int
    /// nil when the skip holds for every head of the layer (pairs do not depend on the head).
    public var head: Int?
    public var feature: String
    public var value: String?
    public var reason: Reason

    public init(layer: Int, head: Int?, feature: String, value: String?, reason: Reason) {
        self.layer = layer
        self.head = head
        self.feature = feature
        self.value = value
        self.reason = reason
    }
}

/// What the engine produces for one layer; delivered layer by layer so memory stays bounded.
public struct LayerResult: Sendable, Equatable {
    public var layer: Int
    public var decompositions: [Decomposition]
    public var skips: [Skip]

    public init(layer: Int, decompositions: [Decomposition], skips: [Skip]) {
        self.layer = layer
        self.decompositions = decompositions
        self.skips = skips
    }
}
