import Foundation
import Testing
import QKEngine

/// Deterministic Gaussian-ish vectors (sum of uniforms), for bases.
struct Noise {
    var state: UInt64
    mutating func next() -> Double {
        var sum = 0.0
        for _ in 0..<4 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            sum += Double(state >> 11) / Double(1 << 53) - 0.5
        }
        return sum
    }
    mutating func vector(_ d: Int) -> [Double] { (0..<d).map { _ in next() } }
}

/// An orthonormal basis of `count` random directions plus `count` partner directions orthogonal to them.
private func basisAndPartners(d: Int, count: Int, seed: UInt64) -> (basis: [[Double]], partners: [[Double]]) {
    var noise = Noise(state: seed)
    let q = orthonormalizedColumns(Matrix(columns: (0..<(2 * count)).map { _ in noise.vector(d) }))
    let columns = (0..<(2 * count)).map { q.column($0) }
    return (Array(columns[..<count]), Array(columns[count...]))
}

private func subspace(_ vectors: [[Double]], _ d: Int) -> Subspace {
    Subspace(vectors: vectors.map { $0.map(Float.init) }, dimension: d)
}

@Suite struct SubspaceTests {
    @Test(arguments: [0.0, 5.0, 30.0, 60.0, 89.0])
    func rotationByAKnownAngleGivesItsCosines(angle: Double) {
        let d = 32, r = 4
        let (basis, partners) = basisAndPartners(d: d, count: r, seed: 7)
        let theta = angle * .pi / 180
        let rotated = zip(basis, partners).map { a, p in zip(a, p).map { cos(theta) * $0 + sin(theta) * $1 } }
        let (x, y) = (subspace(basis, d), subspace(rotated, d))
        let cosines = principalAngleCosines(x, y)
        #expect(cosines.count == r)
        for c in cosines {
            #expect(abs(principalAngleDegrees(c) - angle) < 0.05, "angle \(principalAngleDegrees(c)) for \(angle)")
        }
        #expect(abs(subspaceSimilarity(x, y) - cos(theta) * cos(theta)) < 1e-5)
        #expect(abs(squaredCosineSum(x, y) - cosines.reduce(0) { $0 + $1 * $1 }) < 1e-5)
    }

    @Test func similarityIgnoresSignsAndTheChoiceOfBasis() {
        let d = 16
        let (basis, _) = basisAndPartners(d: d, count: 3, seed: 11)
        // Another orthonormal basis of the same span: a rotation within the span, and a sign flip.
        let c = cos(0.7), s = sin(0.7)
        let mixed = [zip(basis[0], basis[1]).map { c * $0 + s * $1 }, zip(basis[0], basis[1]).map { -s * $0 + c * $1 },
                     basis[2].map { -$0 }]
        #expect(abs(subspaceSimilarity(subspace(basis, d), subspace(mixed, d)) - 1) < 1e-5)
    }

    @Test func aGainedDimensionScoresBelowOne() {
        let d = 16
        let (basis, _) = basisAndPartners(d: d, count: 4, seed: 3)
        for r in 1..<4 {
            let similarity = subspaceSimilarity(subspace(Array(basis[..<r]), d), subspace(Array(basis[...r]), d))
            #expect(abs(similarity - Double(r) / Double(r + 1)) < 1e-5)
        }
    }

    @Test func orthogonalSubspacesScoreZeroAndEmptyOnesToo() {
        let d = 12
        let (basis, partners) = basisAndPartners(d: d, count: 3, seed: 5)
        #expect(subspaceSimilarity(subspace(basis, d), subspace(partners, d)) < 1e-10)
        let empty = Subspace(vectors: [], dimension: d)
        #expect(empty.rank == 0)
        #expect(subspaceSimilarity(empty, empty) == 0)
        #expect(principalAngleCosines(empty, subspace(basis, d)).isEmpty)
    }

    @Test func nonOrthonormalVectorsAreReducedToTheirSpan() {
        let d = 10
        let (basis, _) = basisAndPartners(d: d, count: 2, seed: 9)
        // Scaled and sheared: the same span, but neither unit nor orthogonal.
        let skewed = [basis[0].map { 3 * $0 }, zip(basis[0], basis[1]).map { 0.5 * $0 + 2 * $1 }]
        let s = subspace(skewed, d)
        #expect(s.rank == 2)
        let gram = principalAngleCosines(s, s)
        #expect(gram.allSatisfy { abs($0 - 1) < 1e-5 })
        #expect(abs(subspaceSimilarity(s, subspace(basis, d)) - 1) < 1e-5)
        // Already-orthonormal input is kept bit for bit.
        let kept = subspace(basis, d)
        #expect(kept.basis == basis.flatMap { $0.map(Float.init) })
    }
}
