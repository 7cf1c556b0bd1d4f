import Foundation
import Testing
@testable import QKEngine

/// The `d`-dimensional standard basis vector `e_i` scaled by `scale`.
private func unit(_ i: Int, _ d: Int, scale: Double = 1) -> [Double] {
    var vector = [Double](repeating: 0, count: d)
    vector[i] = scale
    return vector
}

/// `α·x + β·y`.
private func combination(_ alpha: Double, _ x: [Double], _ beta: Double, _ y: [Double]) -> [Double] {
    zip(x, y).map { alpha * $0 + beta * $1 }
}

@Suite("Principal angles and orthonormalization")
struct PrincipalAnglesTests {
    @Test("Two planes at known angles give their cosines, largest first", arguments: [0.1, 0.7, 1.2, Double.pi / 2])
    func knownAngles(theta: Double) {
        let d = 6
        let phi = theta / 3
        // In a random rotation of R⁶: span(e0, e1) against span(cos φ e0 + sin φ e2, cos θ e1 + sin θ e3).
        var random = LinearAlgebraTestRandom(seed: 17)
        let rotation = random.orthonormalMatrix(rows: d, columns: d)
        let a = rotation * Matrix(columns: [unit(0, d), unit(1, d)])
        let b = rotation * Matrix(columns: [combination(cos(theta), unit(1, d), sin(theta), unit(3, d)),
                                            combination(cos(phi), unit(0, d), sin(phi), unit(2, d))])
        let cosines = principalAngleCosines(a, b)
        #expect(cosines.count == 2)
        #expect(abs(cosines[0] - cos(phi)) < 1e-12, "\(cosines)")
        #expect(abs(cosines[1] - cos(theta)) < 1e-12, "\(cosines)")
    }

    @Test("Identical subspaces in different bases have all cosines 1", arguments: [1, 3, 16, 64])
    func identical(rank: Int) {
        var random = LinearAlgebraTestRandom(seed: UInt64(rank))
        let a = random.orthonormalMatrix(rows: 128, columns: rank)
        let b = a * random.orthonormalMatrix(rows: rank, columns: rank)
        let cosines = principalAngleCosines(a, b)
        #expect(cosines.count == rank)
        #expect(cosines.allSatisfy { abs($0 - 1) < 1e-12 && $0 <= 1 }, "\(cosines)")
    }

    @Test("Orthogonal subspaces have all cosines 0")
    func orthogonal() {
        var random = LinearAlgebraTestRandom(seed: 23)
        let basis = random.orthonormalMatrix(rows: 40, columns: 12)
        let a = Matrix(columns: (0..<5).map { basis.column($0) })
        let b = Matrix(columns: (5..<12).map { basis.column($0) })
        let cosines = principalAngleCosines(a, b)
        #expect(cosines.count == 5)
        #expect(cosines.allSatisfy { $0 >= 0 && $0 < 1e-12 }, "\(cosines)")
    }

    @Test("Cosines do not depend on the bases or their signs")
    func basisInvariance() {
        var random = LinearAlgebraTestRandom(seed: 29)
        let a = random.orthonormalMatrix(rows: 64, columns: 6)
        let b = random.orthonormalMatrix(rows: 64, columns: 9)
        let reference = principalAngleCosines(a, b)
        var flipped = b
        for i in 0..<flipped.rows {
            flipped[i, 0] = -flipped[i, 0]
        }
        let rotatedA = a * random.orthonormalMatrix(rows: 6, columns: 6)
        let rotatedB = flipped * random.orthonormalMatrix(rows: 9, columns: 9)
        let cosines = principalAngleCosines(rotatedA, rotatedB)
        #expect(reference.count == 6 && cosines.count == 6)
        #expect(zip(reference, cosines).allSatisfy { abs($0 - $1) < 1e-12 })
        let swapped = principalAngleCosines(rotatedB, rotatedA)
        #expect(zip(reference, swapped).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(zip(reference, reference.dropFirst()).allSatisfy { $0 >= $1 })
        #expect(reference.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test("A planted subspace plus noise stays at small angles")
    func perturbed() {
        var random = LinearAlgebraTestRandom(seed: 31)
        let a = random.orthonormalMatrix(rows: 128, columns: 4)
        let noise = random.gaussianMatrix(rows: 128, columns: 4)
        let b = orthonormalizedColumns(a + 1e-4 * noise)
        let cosines = principalAngleCosines(a, b)
        #expect(cosines.allSatisfy { $0 > 1 - 1e-6 && $0 <= 1 }, "\(cosines)")
        #expect(cosines.contains { $0 < 1 - 1e-12 }, "noise must move the subspace")
    }

    @Test("Orthonormalized columns: QᵀQ = I, same span, triangular with non-negative diagonal",
          arguments: [(1, 1), (5, 3), (64, 64), (200, 17)])
    func orthonormalize(shape: (Int, Int)) {
        var random = LinearAlgebraTestRandom(seed: UInt64(shape.0 + 97 * shape.1))
        let m = random.gaussianMatrix(rows: shape.0, columns: shape.1)
        let q = orthonormalizedColumns(m)
        #expect(q.rows == shape.0 && q.columns == shape.1)
        #expect(orthonormalityError(q) < 1e-13)
        // R = Qᵀ M reproduces M (same span) and is upper triangular with a non-negative diagonal.
        let r = q.transposed() * m
        #expect(maxAbsDifference(q * r, m) < 1e-12 * max(m.frobeniusNorm, 1))
        for i in 0..<r.rows {
            #expect(r[i, i] >= 0)
            for j in 0..<i {
                #expect(abs(r[i, j]) < 1e-12 * max(m.frobeniusNorm, 1))
            }
        }
    }

    @Test("Orthonormalizing dependent or zero columns still gives orthonormal columns")
    func dependentColumns() {
        let d = 10
        let x = unit(2, d, scale: 3)
        let m = Matrix(columns: [x, combination(2, x, 0, x), unit(5, d), [Double](repeating: 0, count: d)])
        let q = orthonormalizedColumns(m)
        #expect(orthonormalityError(q) < 1e-14)
        #expect(abs(abs(q[2, 0]) - 1) < 1e-14)
        #expect(maxAbsDifference(q * (q.transposed() * m), m) < 1e-13)
    }
}
