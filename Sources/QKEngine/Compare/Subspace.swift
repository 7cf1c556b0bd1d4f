import Foundation

/// An orthonormal basis of a low-rank subspace of `R^d`, as float32 vectors laid end to end.
///
/// Comparisons ignore the sign and the choice of basis: they only use the span.
public struct Subspace: Sendable, Equatable {
    /// The ambient dimension `d` (d_head).
    public let dimension: Int
    /// Basis vectors one after another: `rank × dimension` values, orthonormal.
    public let basis: [Float]

    /// The number of basis vectors.
    public var rank: Int { dimension == 0 ? 0 : basis.count / dimension }

    /// How far from orthonormal stored vectors may be before they are re-orthonormalized.
    static let orthonormalityTolerance = 1e-3

    /// The span of `vectors` (all of length `dimension`, at most `dimension` of them).
    ///
    /// Vectors that are already orthonormal to within 1e-3 (as SVD output is) are kept as they are;
    /// others are orthonormalized by QR in Double, so that their span, not their lengths, counts.
    public init(vectors: [[Float]], dimension: Int) {
        precondition(vectors.allSatisfy { $0.count == dimension }, "Subspace vectors must all have length \(dimension)")
        precondition(vectors.count <= dimension, "Subspace of \(vectors.count) vectors in dimension \(dimension)")
        self.dimension = dimension
        let flat = vectors.flatMap { $0 }
        if Self.isOrthonormal(flat, count: vectors.count, dimension: dimension) {
            basis = flat
        } else {
            let q = orthonormalizedColumns(Matrix(columns: vectors.map { $0.map(Double.init) }))
            var result = [Float](repeating: 0, count: flat.count)
            for j in 0..<q.columns {
                for i in 0..<dimension { result[j * dimension + i] = Float(q.elements[i * q.columns + j]) }
            }
            basis = result
        }
    }

    /// A basis already known to be orthonormal (`rank × dimension` values); not checked.
    public init(orthonormalBasis basis: [Float], dimension: Int) {
        precondition(dimension > 0 ? basis.count % dimension == 0 : basis.isEmpty, "basis length is not a multiple of \(dimension)")
        self.dimension = dimension
        self.basis = basis
    }

    static func isOrthonormal(_ flat: [Float], count: Int, dimension: Int) -> Bool {
        flat.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return true }
            for i in 0..<count {
                for j in i..<count {
                    let dot = Double(FloatKernels.dot(base + i * dimension, base + j * dimension, dimension))
                    if abs(dot - (i == j ? 1 : 0)) > orthonormalityTolerance { return false }
                }
            }
            return true
        }
    }

    /// `AᵀB` (rank(a) × rank(b), row-major) in Double.
    static func cross(_ a: Subspace, _ b: Subspace) -> [Double] {
        precondition(a.dimension == b.dimension, "Subspaces of different dimensions (\(a.dimension) vs \(b.dimension))")
        let (ra, rb, d) = (a.rank, b.rank, a.dimension)
        var result = [Double](repeating: 0, count: ra * rb)
        a.basis.withUnsafeBufferPointer { pa in
            b.basis.withUnsafeBufferPointer { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return }
                for i in 0..<ra {
                    for j in 0..<rb { result[i * rb + j] = Double(FloatKernels.dot(x + i * d, y + j * d, d)) }
                }
            }
        }
        return result
    }
}

/// `Σ cos²θᵢ` over the principal angles between `a` and `b`: `‖AᵀB‖²_F`, with no SVD needed.
public func squaredCosineSum(_ a: Subspace, _ b: Subspace) -> Double {
    Subspace.cross(a, b).reduce(0) { $0 + $1 * $1 }
}

/// Cosines of the principal angles between `a` and `b`: descending, `min(rank a, rank b)` of them, in [0, 1].
public func principalAngleCosines(_ a: Subspace, _ b: Subspace) -> [Double] {
    guard a.rank > 0, b.rank > 0 else { return [] }
    let cross = Matrix(rows: a.rank, columns: b.rank, elements: Subspace.cross(a, b))
    return singularValues(cross).map { min(max($0, 0), 1) }
}

/// The similarity of two subspaces: the mean squared principal-angle cosine over the larger rank,
/// `‖AᵀB‖²_F / max(rank a, rank b)`, in [0, 1].
///
/// 1 only for equal spans; a subspace that gained or lost a dimension scores at most `r / (r + 1)`.
/// Two empty subspaces score 0 (there is nothing to be similar).
public func subspaceSimilarity(_ a: Subspace, _ b: Subspace) -> Double {
    let larger = max(a.rank, b.rank)
    guard larger > 0 else { return 0 }
    return min(max(squaredCosineSum(a, b) / Double(larger), 0), 1)
}

/// Angle in degrees of a principal-angle cosine.
public func principalAngleDegrees(_ cosine: Double) -> Double {
    acos(min(max(cosine, 0), 1)) * 180 / .pi
}

/// Float kernels for comparisons: scalar loops with eight accumulators, which the optimizer vectorizes
/// in release builds (AVX2/FMA) and which stay usable in debug builds.
public enum FloatKernels {
    /// `Σ x[i] · y[i]` over `count` entries (x and y may be unaligned).
    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int) -> Float {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
        var i = 0
        while i + 8 <= count {
            s0 += x[i] * y[i]
            s1 += x[i + 1] * y[i + 1]
            s2 += x[i + 2] * y[i + 2]
            s3 += x[i + 3] * y[i + 3]
            s4 += x[i + 4] * y[i + 4]
            s5 += x[i + 5] * y[i + 5]
            s6 += x[i + 6] * y[i + 6]
            s7 += x[i + 7] * y[i + 7]
            i += 8
        }
        while i < count {
            s0 += x[i] * y[i]
            i += 1
        }
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    }
}
