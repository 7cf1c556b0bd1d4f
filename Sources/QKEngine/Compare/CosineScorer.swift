/// Scores stored component vectors against one reference component: `|cos(u, u')|` and `|cos(v, v')|`.
///
/// The candidate vectors are read in place from little-endian float32 bytes (e.g. SQLite BLOBs, which
/// need not be aligned); the reference vectors are normalized once.
public struct CosineScorer: Sendable {
    public let dimension: Int
    private let u: [Float]
    private let v: [Float]

    /// nil when either reference vector is zero or not finite.
    public init?(u: [Float], v: [Float]) {
        precondition(u.count == v.count, "u and v of one component have one length")
        func normalized(_ x: [Float]) -> [Float]? {
            let norm = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            guard norm > 0, norm.isFinite else { return nil }
            return x.map { Float(Double($0) / norm) }
        }
        guard let unitU = normalized(u), let unitV = normalized(v) else { return nil }
        dimension = u.count
        self.u = unitU
        self.v = unitV
    }

    /// `(|cos(u, u')|, |cos(v, v')|)` for candidate vectors of `dimension` float32 values each at `uBytes`
    /// and `vBytes`; 0 for a zero candidate.
    @inline(__always)
    public func cosines(_ uBytes: UnsafeRawPointer, _ vBytes: UnsafeRawPointer) -> (Double, Double) {
        (Self.cosine(u, uBytes, dimension), Self.cosine(v, vBytes, dimension))
    }

    @inline(__always)
    private static func cosine(_ unit: [Float], _ bytes: UnsafeRawPointer, _ count: Int) -> Double {
        unit.withUnsafeBufferPointer { reference in
            let r = reference.baseAddress!
            // Four lanes of dot and squared norm each; the optimizer widens them to AVX2 vectors.
            var d0: Float = 0, d1: Float = 0, d2: Float = 0, d3: Float = 0
            var n0: Float = 0, n1: Float = 0, n2: Float = 0, n3: Float = 0
            var i = 0
            while i + 4 <= count {
                let x0 = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                let x1 = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i + 4, as: UInt32.self)))
                let x2 = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i + 8, as: UInt32.self)))
                let x3 = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i + 12, as: UInt32.self)))
                d0 += r[i] * x0
                d1 += r[i + 1] * x1
                d2 += r[i + 2] * x2
                d3 += r[i + 3] * x3
                n0 += x0 * x0
                n1 += x1 * x1
                n2 += x2 * x2
                n3 += x3 * x3
                i += 4
            }
            while i < count {
                let x = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                d0 += r[i] * x
                n0 += x * x
                i += 1
            }
            let norm = Double((n0 + n1) + (n2 + n3)).squareRoot()
            guard norm > 0, norm.isFinite else { return 0 }
            return min(abs(Double((d0 + d1) + (d2 + d3))) / norm, 1)
        }
    }
}
