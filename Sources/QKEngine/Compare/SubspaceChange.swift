import Foundation

/// What one decomposition contributes to a comparison: its query and key subspaces and its scale.
public struct HeadSubspaces: Sendable, Equatable {
    /// Span of the kept components' `uᵢ` (query side).
    public var query: Subspace
    /// Span of the kept components' `vᵢ` (key side).
    public var key: Subspace
    /// The largest singular value of ΔC.
    public var sigma1: Double
    /// `‖ΔC‖_F`.
    public var frobenius: Double

    public var rank: Int { query.rank }

    public init(query: Subspace, key: Subspace, sigma1: Double, frobenius: Double) {
        precondition(query.rank == key.rank, "query and key subspaces of one decomposition have one rank")
        self.query = query
        self.key = key
        self.sigma1 = sigma1
        self.frobenius = frobenius
    }

    /// The subspaces spanned by components' `u` and `v` vectors (index order), all of length `dimension`.
    public init(u: [[Float]], v: [[Float]], dimension: Int, sigma1: Double, frobenius: Double) {
        self.init(query: Subspace(vectors: u, dimension: dimension), key: Subspace(vectors: v, dimension: dimension),
                  sigma1: sigma1, frobenius: frobenius)
    }
}

/// How a head's feature subspace changed between two checkpoints (or models).
public enum ChangeStatus: String, Sendable, Equatable, CaseIterable {
    /// Same rank, similarity at or above the stable threshold.
    case stable
    /// Same rank, similarity below the stable threshold.
    case rotated
    /// The rank rose by at least the rank-change threshold.
    case grew
    /// The rank fell by at least the rank-change threshold.
    case shrank
    /// Only in the second checkpoint.
    case emerged
    /// Only in the first checkpoint.
    case vanished
}

/// The thresholds that turn numbers into a `ChangeStatus`.
public struct CompareThresholds: Sendable, Equatable {
    /// Similarity at or above which an unchanged rank counts as `stable` (default 0.9: e.g. both sides
    /// turned by at most 18.4°, or one side by at most 26.6°).
    public var stableSimilarity: Double = 0.9
    /// The smallest rank difference that counts as `grew` or `shrank` (default 1).
    public var rankChange: Int = 1

    public init(stableSimilarity: Double = 0.9, rankChange: Int = 1) {
        self.stableSimilarity = stableSimilarity
        self.rankChange = rankChange
    }
}

/// The query-side, key-side and combined similarity of two decompositions.
public struct PairSimilarity: Sendable, Equatable {
    /// `subspaceSimilarity` of the query subspaces.
    public var query: Double
    /// `subspaceSimilarity` of the key subspaces.
    public var key: Double
    /// The mean of the two: the score `compare` sorts by and `--match` maximizes.
    public var combined: Double { (query + key) / 2 }

    public init(_ a: HeadSubspaces, _ b: HeadSubspaces) {
        query = subspaceSimilarity(a.query, b.query)
        key = subspaceSimilarity(a.key, b.key)
    }
}

/// One row of a comparison: two states of the same (head, feature, value), either of which may be absent.
public struct SubspaceChange: Sendable, Equatable {
    public var rankFrom: Int?
    public var rankTo: Int?
    /// Principal-angle cosines of the query subspaces, descending (empty when one side is absent).
    public var queryCosines: [Double]
    /// Principal-angle cosines of the key subspaces, descending.
    public var keyCosines: [Double]
    public var querySimilarity: Double
    public var keySimilarity: Double
    /// Mean of the query and key similarities; 0 when either side is absent.
    public var similarity: Double
    public var sigma1From: Double?
    public var sigma1To: Double?
    public var frobeniusFrom: Double?
    public var frobeniusTo: Double?
    public var status: ChangeStatus

    /// `1 − similarity`: what `compare` sorts by (emerged and vanished count as 1).
    public var change: Double { 1 - similarity }
    /// `σ₁(to) − σ₁(from)`, nil when a side is absent.
    public var sigma1Change: Double? { sigma1To.flatMap { to in sigma1From.map { to - $0 } } }
    /// `‖ΔC‖(to) − ‖ΔC‖(from)`, nil when a side is absent.
    public var frobeniusChange: Double? { frobeniusTo.flatMap { to in frobeniusFrom.map { to - $0 } } }
    /// The largest principal angle of the query subspaces in degrees (over the smaller rank); nil when absent.
    public var queryAngleDegrees: Double? { queryCosines.min().map(principalAngleDegrees) }
    /// The largest principal angle of the key subspaces in degrees; nil when absent.
    public var keyAngleDegrees: Double? { keyCosines.min().map(principalAngleDegrees) }

    /// Compares `from` with `to`; at least one must be present.
    public init(from: HeadSubspaces?, to: HeadSubspaces?, thresholds: CompareThresholds = CompareThresholds()) {
        precondition(from != nil || to != nil, "a comparison needs at least one side")
        rankFrom = from?.rank
        rankTo = to?.rank
        sigma1From = from?.sigma1
        sigma1To = to?.sigma1
        frobeniusFrom = from?.frobenius
        frobeniusTo = to?.frobenius
        guard let from, let to else {
            queryCosines = []
            keyCosines = []
            querySimilarity = 0
            keySimilarity = 0
            similarity = 0
            status = from == nil ? .emerged : .vanished
            return
        }
        queryCosines = principalAngleCosines(from.query, to.query)
        keyCosines = principalAngleCosines(from.key, to.key)
        let larger = Double(max(from.rank, to.rank))
        // Σcos² from the cosines already computed (the same number as ‖AᵀB‖²_F).
        querySimilarity = larger > 0 ? min(queryCosines.reduce(0) { $0 + $1 * $1 } / larger, 1) : 0
        keySimilarity = larger > 0 ? min(keyCosines.reduce(0) { $0 + $1 * $1 } / larger, 1) : 0
        similarity = (querySimilarity + keySimilarity) / 2
        status = Self.status(rankFrom: from.rank, rankTo: to.rank, similarity: similarity, thresholds: thresholds)
    }

    /// The status of two present states: rank change first, then similarity.
    public static func status(rankFrom: Int, rankTo: Int, similarity: Double, thresholds: CompareThresholds) -> ChangeStatus {
        let step = max(thresholds.rankChange, 1)
        if rankTo - rankFrom >= step { return .grew }
        if rankFrom - rankTo >= step { return .shrank }
        return similarity >= thresholds.stableSimilarity ? .stable : .rotated
    }
}
