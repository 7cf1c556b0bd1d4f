import Foundation

/// How feature subspaces that overlap share one query (see `QuerySplitter`).
public enum AttributionMethod: String, Sendable, Equatable, CaseIterable {
    /// Feature `i` projects on the part of its subspace orthogonal to features `1…i−1`.
    case orthogonalize
    /// Feature `i` projects, on its whole subspace, what features `1…i−1` left of the query.
    case residualize
}

/// One feature's query-side subspace, spanned by `vectors` (each d_head long; they need not be orthonormal).
public struct FeatureSubspace: Sendable, Equatable {
    public var name: String
    /// Spanning vectors, e.g. the `u` of a decomposition's kept components; empty: the feature has no
    /// subspace at this head (its part is zero).
    public var vectors: [[Float]]

    public init(name: String, vectors: [[Float]]) {
        self.name = name
        self.vectors = vectors
    }
}

/// Splits a query into one part per feature plus a residual, `q = Σ_f q_f + q_resid`, so that every
/// attention logit splits exactly as `q·k = Σ_f q_f·k + q_resid·k`.
///
/// Features are taken in the order given, `r₀ = q`, and for each feature `i`
/// `q_i = B_i B_iᵀ r_{i−1}`, `r_i = r_{i−1} − q_i`; the residual is `r_n`. The two methods differ only
/// in the orthonormal basis `B_i`:
///
/// - `orthogonalize`: `B_i` spans the part of feature `i`'s subspace orthogonal to the subspaces of
///   features `1…i−1` (block Gram–Schmidt). The `B_i` are mutually orthogonal, so `q_i = B_i B_iᵀ q`,
///   `Σ q_i` is the projection of `q` onto the union (joint span) of all feature subspaces, and the
///   residual is orthogonal to every one of them: the smallest residual any split can leave. Where
///   subspaces overlap, the shared directions go to the earliest feature; later features only get
///   the directions new to them, and `q_i` may lie outside feature `i`'s own subspace.
/// - `residualize`: `B_i` spans feature `i`'s whole subspace; each feature takes its projection of what
///   the earlier ones left. Every part `q_i` lies inside its own feature's subspace (so it reads in that
///   feature's components), but the residual is orthogonal only to the last feature's subspace: where
///   feature `i` overlaps an earlier feature `j` at principal angle `θ` (cos θ ≠ 0, θ ≠ 0), projecting
///   on `B_i` puts back into `r_i` a component of length up to `cos θ · sin θ · ‖·‖` along `j`'s
///   subspace, which no later step removes. Its residual vector is therefore never shorter than
///   `orthogonalize`'s (whose residual is the shortest possible); on logits, which weigh directions by
///   the keys, its explained fraction is lower on average but not necessarily for every prompt.
///
/// With mutually orthogonal subspaces both methods give the same split; the first feature's part is
/// always the same (`B₁B₁ᵀq`). Directions that a feature adds with a singular value below
/// `tolerance` (relative to its vectors' largest) are dropped: they are round-off, not new directions.
public struct QuerySplitter: Sendable {
    /// Relative singular-value threshold under which a direction is treated as already spanned.
    public static let tolerance = 1e-5

    public let dimension: Int
    public let method: AttributionMethod
    public let featureNames: [String]
    /// Per feature: the orthonormal basis `B_i` actually projected on (d × rᵢ, rᵢ may be 0).
    public let bases: [Matrix]
    /// Per feature: whether it was given any vector (an absent feature has an empty basis and a zero part).
    public let isPresent: [Bool]
    /// Per feature: `B_iᵀ` as row-major Floats (rᵢ × d), for the hot loops.
    let basisRows: [[Float]]

    /// Builds the bases; throws `.invalidOption(name: "features", …)` for vectors of the wrong length,
    /// non-finite values, more vectors than dimensions, or repeated feature names.
    public init(features: [FeatureSubspace], dimension: Int, method: AttributionMethod) throws(EngineError) {
        precondition(dimension > 0, "a query needs at least one dimension")
        var names: [String] = []
        var previous: [[Double]] = []   // orthonormal columns of B_1 … B_{i−1}
        var bases: [Matrix] = []
        for feature in features {
            guard !names.contains(feature.name) else {
                throw .invalidOption(name: "features", message: "feature '\(feature.name)' is listed twice")
            }
            names.append(feature.name)
            for (index, vector) in feature.vectors.enumerated() {
                guard vector.count == dimension else {
                    throw .invalidOption(name: "features", message: "feature '\(feature.name)': vector \(index) has \(vector.count) values, d_head is \(dimension)")
                }
                guard vector.allSatisfy(\.isFinite) else {
                    throw .invalidOption(name: "features", message: "feature '\(feature.name)': vector \(index) holds a non-finite value")
                }
            }
            guard feature.vectors.count <= dimension else {
                throw .invalidOption(name: "features", message: "feature '\(feature.name)' has \(feature.vectors.count) vectors in \(dimension) dimensions")
            }
            var columns = feature.vectors.map { $0.map(Double.init) }
            let scale = columns.isEmpty ? 0 : singularValues(Matrix(columns: columns)).first ?? 0
            if method == .orthogonalize && !previous.isEmpty {
                // Classical Gram–Schmidt against the earlier bases, twice ("twice is enough") for accuracy.
                for _ in 0..<2 {
                    for c in columns.indices {
                        for b in previous {
                            let projection = zip(b, columns[c]).reduce(0.0) { $0 + $1.0 * $1.1 }
                            for r in 0..<dimension { columns[c][r] -= projection * b[r] }
                        }
                    }
                }
            }
            var kept: [[Double]] = []
            if !columns.isEmpty && scale > 0 {
                let svd = singularValueDecomposition(Matrix(columns: columns))
                for (j, sigma) in svd.singularValues.enumerated() where sigma > Self.tolerance * scale {
                    kept.append(svd.u.column(j))
                }
            }
            previous += kept
            bases.append(kept.isEmpty ? Matrix(rows: dimension, columns: 0) : Matrix(columns: kept))
        }
        self.dimension = dimension
        self.method = method
        self.featureNames = names
        self.bases = bases
        self.isPresent = features.map { !$0.vectors.isEmpty }
        self.basisRows = bases.map { basis in
            (0..<basis.columns).flatMap { j in basis.column(j).map(Float.init) }
        }
    }

    /// The query's parts (one per feature, each d long) and residual, in Double.
    public func split(_ query: [Double]) -> (parts: [[Double]], residual: [Double]) {
        precondition(query.count == dimension, "query has \(query.count) values, d_head is \(dimension)")
        var residual = query
        var parts: [[Double]] = []
        for basis in bases {
            var part = [Double](repeating: 0, count: dimension)
            for j in 0..<basis.columns {
                let b = basis.column(j)
                let coefficient = zip(b, residual).reduce(0.0) { $0 + $1.0 * $1.1 }
                for r in 0..<dimension { part[r] += coefficient * b[r] }
            }
            for r in 0..<dimension { residual[r] -= part[r] }
            parts.append(part)
        }
        return (parts, residual)
    }

    /// Attributes the logits of one query against `keys` (row-major, `keys.count / d` keys), each
    /// multiplied by `scale` (e.g. 1/√d_head), in Double.
    public func attribute(query: [Float], keys: [Float], scale: Double = 1) -> PromptAttribution {
        precondition(keys.count % dimension == 0, "keys hold \(keys.count) values, not a multiple of d_head \(dimension)")
        let (parts, residual) = split(query.map(Double.init))
        let q = query.map(Double.init)
        var rows: [KeyAttribution] = []
        for start in stride(from: 0, to: keys.count, by: dimension) {
            let k = keys[start..<(start + dimension)].map(Double.init)
            func logit(_ v: [Double]) -> Double { zip(v, k).reduce(0.0) { $0 + $1.0 * $1.1 } * scale }
            rows.append(KeyAttribution(total: logit(q), parts: parts.map(logit), residual: logit(residual)))
        }
        return PromptAttribution(keys: rows, featureCount: parts.count)
    }
}

/// One key's logit and its split.
public struct KeyAttribution: Sendable, Equatable {
    /// `q·k` (times the scale).
    public var total: Double
    /// `q_f·k` per feature, in the splitter's order.
    public var parts: [Double]
    /// `q_resid·k`.
    public var residual: Double

    public init(total: Double, parts: [Double], residual: Double) {
        self.total = total
        self.parts = parts
        self.residual = residual
    }
}

/// The split of one prompt's logits and how much of them the features explain.
public struct PromptAttribution: Sendable, Equatable {
    public var keys: [KeyAttribution]
    /// `1 − ‖resid logits‖² / ‖total logits‖²` over the prompt's keys; nil when every total is zero.
    public var explainedFraction: Double?
    /// Per feature, what it adds to the explained fraction given the features before it:
    /// `E_i − E_{i−1}` with `E_i = 1 − ‖logits of r_i‖² / ‖total logits‖²` (`E_0 = 0`), so they sum to
    /// `explainedFraction`. Usually in [0, 1]; negative when a part cancels the rest's logits.
    public var featureFractions: [Double?]

    public init(keys: [KeyAttribution], featureCount: Int) {
        self.keys = keys
        let totalEnergy = keys.reduce(0.0) { $0 + $1.total * $1.total }
        guard totalEnergy > 0 else {
            explainedFraction = nil
            featureFractions = Array(repeating: nil, count: featureCount)
            return
        }
        var stage = keys.map(\.total)
        var explainedSoFar = 0.0
        var fractions: [Double?] = []
        for i in 0..<featureCount {
            for k in keys.indices { stage[k] -= keys[k].parts[i] }
            let explained = 1 - stage.reduce(0.0) { $0 + $1 * $1 } / totalEnergy
            fractions.append(explained - explainedSoFar)
            explainedSoFar = explained
        }
        featureFractions = fractions
        explainedFraction = 1 - keys.reduce(0.0) { $0 + $1.residual * $1.residual } / totalEnergy
    }
}
