import Dispatch
import Foundation
import Testing
@testable import QKEngine

/// Checks every structural property of `svd` as the decomposition of `a`; returns nothing, records failures.
private func expectValidDecomposition(_ svd: SingularValueDecomposition, of a: Matrix,
                                      tolerance: Double = 1e-12,
                                      sourceLocation: SourceLocation = #_sourceLocation) {
    let k = min(a.rows, a.columns)
    #expect(svd.u.rows == a.rows && svd.u.columns == k, sourceLocation: sourceLocation)
    #expect(svd.v.rows == a.columns && svd.v.columns == k, sourceLocation: sourceLocation)
    #expect(svd.singularValues.count == k, sourceLocation: sourceLocation)
    #expect(svd.singularValues.allSatisfy { $0 >= 0 }, "singular values must be non-negative",
            sourceLocation: sourceLocation)
    #expect(zip(svd.singularValues, svd.singularValues.dropFirst()).allSatisfy { $0 >= $1 },
            "singular values must descend", sourceLocation: sourceLocation)
    let scale = max(a.frobeniusNorm, Double.leastNormalMagnitude)
    let residual = (a - svd.reconstructed()).frobeniusNorm
    #expect(residual <= tolerance * scale, "‖A − UΣVᵀ‖ / ‖A‖ = \(residual / scale)", sourceLocation: sourceLocation)
    #expect(orthonormalityError(svd.u) <= tolerance, "U not orthonormal: \(orthonormalityError(svd.u))",
            sourceLocation: sourceLocation)
    #expect(orthonormalityError(svd.v) <= tolerance, "V not orthonormal: \(orthonormalityError(svd.v))",
            sourceLocation: sourceLocation)
}

/// `Q1 · diag(s) · Q2ᵀ` with random orthonormal `Q1` (m × k) and `Q2` (n × k), k = s.count.
private func planted(_ s: [Double], rows: Int, columns: Int, seed: UInt64) -> (a: Matrix, q1: Matrix, q2: Matrix) {
    var random = LinearAlgebraTestRandom(seed: seed)
    let q1 = random.orthonormalMatrix(rows: rows, columns: s.count)
    let q2 = random.orthonormalMatrix(rows: columns, columns: s.count)
    var scaled = q1
    for i in 0..<rows {
        for j in 0..<s.count {
            scaled[i, j] *= s[j]
        }
    }
    return (scaled * q2.transposed(), q1, q2)
}

/// `|σᵢ − expectedᵢ| ≤ tolerance · max(expected)` for every i.
private func expectSingularValues(_ values: [Double], _ expected: [Double], tolerance: Double = 1e-13,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(values.count == expected.count, sourceLocation: sourceLocation)
    let scale = max(expected.max() ?? 0, 1e-300)
    for (found, wanted) in zip(values, expected) {
        #expect(abs(found - wanted) <= tolerance * scale, "σ = \(found), planted \(wanted)",
                sourceLocation: sourceLocation)
    }
}

@Suite("Singular value decomposition")
struct SVDTests {
    @Test("Random square matrices", arguments: [1, 2, 3, 7, 32, 128, 256])
    func randomSquare(size: Int) {
        var random = LinearAlgebraTestRandom(seed: UInt64(1000 + size))
        let a = random.gaussianMatrix(rows: size, columns: size)
        expectValidDecomposition(singularValueDecomposition(a), of: a)
    }

    @Test("Random non-square matrices",
          arguments: [(5, 3), (3, 5), (64, 17), (17, 64), (1, 7), (7, 1), (150, 100), (2, 90)])
    func randomRectangular(shape: (Int, Int)) {
        var random = LinearAlgebraTestRandom(seed: UInt64(shape.0 * 1000 + shape.1))
        let a = random.gaussianMatrix(rows: shape.0, columns: shape.1)
        expectValidDecomposition(singularValueDecomposition(a), of: a)
    }

    @Test("A 1 × 1 matrix: σ is the absolute value, the sign goes into the vectors")
    func scalar() {
        let svd = singularValueDecomposition(Matrix(rows: 1, columns: 1, elements: [-3]))
        #expect(abs(svd.singularValues[0] - 3) < 1e-15)
        #expect(abs(svd.u[0, 0] * svd.v[0, 0] + 1) < 1e-15)
    }

    @Test("Planted distinct spectrum: values and vectors (up to sign) recovered", arguments: [4, 32, 128])
    func plantedDistinct(size: Int) {
        let s = (0..<size).map { 10 * pow(0.9, Double($0)) }
        let (a, q1, q2) = planted(s, rows: size, columns: size, seed: UInt64(size))
        let svd = singularValueDecomposition(a)
        expectValidDecomposition(svd, of: a)
        expectSingularValues(svd.singularValues, s)
        // Gaps are ≥ 10 · 0.9^size · 0.1, so vectors are determined; allow for the gap-dependent error.
        for j in 0..<min(size, 20) {
            let uDot = zip(svd.u.column(j), q1.column(j)).reduce(0) { $0 + $1.0 * $1.1 }
            let vDot = zip(svd.v.column(j), q2.column(j)).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(abs(uDot) - 1) < 1e-9, "u\(j)·q1\(j) = \(uDot)")
            #expect(abs(uDot - vDot) < 1e-9, "the signs of u\(j) and v\(j) must agree with the planted pair")
        }
    }

    @Test("Rank-deficient: exact zeros recovered, null space still orthonormal", arguments: [(32, 5), (128, 40), (7, 1)])
    func rankDeficient(shape: (Int, Int)) {
        let (size, rank) = shape
        let s = (0..<rank).map { Double(rank - $0) }
        let (a, q1, _) = planted(s, rows: size, columns: size, seed: 77)
        let svd = singularValueDecomposition(a)
        expectValidDecomposition(svd, of: a)
        expectSingularValues(svd.singularValues, s + Array(repeating: 0, count: size - rank))
        // The leading left singular subspace is the planted one.
        let leading = Matrix(columns: (0..<rank).map { svd.u.column($0) })
        let cosines = principalAngleCosines(leading, q1)
        #expect(cosines.allSatisfy { abs($0 - 1) < 1e-10 }, "\(cosines)")
    }

    @Test("Repeated singular values")
    func repeated() {
        let s: [Double] = [3, 3, 3, 2, 1, 1, 1, 1, 0.5, 0.5]
        let (a, _, _) = planted(s, rows: 10, columns: 10, seed: 5)
        let svd = singularValueDecomposition(a)
        expectValidDecomposition(svd, of: a)
        expectSingularValues(svd.singularValues, s)
        let allEqual = planted(Array(repeating: 2, count: 64), rows: 64, columns: 64, seed: 6).a
        let equalSVD = singularValueDecomposition(allEqual)
        expectValidDecomposition(equalSVD, of: allEqual)
        expectSingularValues(equalSVD.singularValues, Array(repeating: 2, count: 64))
    }

    @Test("Tiny singular values (1e-12 relative) recovered to absolute round-off")
    func tiny() {
        let s: [Double] = [1, 0.5, 0.25] + Array(repeating: 1e-12, count: 3) + [3e-13, 1e-14] + Array(repeating: 0, count: 8)
        let (a, _, _) = planted(s, rows: 16, columns: 16, seed: 9)
        let svd = singularValueDecomposition(a)
        expectValidDecomposition(svd, of: a)
        expectSingularValues(svd.singularValues, s, tolerance: 1e-14)
    }

    @Test("Badly scaled matrices keep relative round-off", arguments: [1e-200, 1e-20, 1e20, 1e200])
    func scaled(scale: Double) {
        var random = LinearAlgebraTestRandom(seed: 21)
        let a = scale * random.gaussianMatrix(rows: 12, columns: 12)
        expectValidDecomposition(singularValueDecomposition(a), of: a)
    }

    @Test("Zero matrices", arguments: [(1, 1), (5, 5), (6, 3), (3, 6)])
    func zero(shape: (Int, Int)) {
        let a = Matrix(rows: shape.0, columns: shape.1)
        let svd = singularValueDecomposition(a)
        expectValidDecomposition(svd, of: a)
        #expect(svd.singularValues.allSatisfy { $0 == 0 })
    }

    @Test("Structured matrices: identical columns, a single entry, a zero diagonal")
    func structured() {
        // Rank one: every column equal.
        let column = (1...9).map(Double.init)
        let ones = Matrix(columns: Array(repeating: column, count: 6))
        let onesSVD = singularValueDecomposition(ones)
        expectValidDecomposition(onesSVD, of: ones)
        let norm = column.reduce(0) { $0 + $1 * $1 }.squareRoot()
        expectSingularValues(onesSVD.singularValues, [norm * 6.0.squareRoot(), 0, 0, 0, 0, 0])
        // One non-zero entry in a corner.
        var corner = Matrix(rows: 8, columns: 8)
        corner[7, 0] = -2
        let cornerSVD = singularValueDecomposition(corner)
        expectValidDecomposition(cornerSVD, of: corner)
        expectSingularValues(cornerSVD.singularValues, [2] + Array(repeating: 0, count: 7))
        // Upper bidiagonal with zeros on its diagonal: exercises the zero-chasing branches.
        var bidiagonal = Matrix(rows: 6, columns: 6)
        for i in 0..<6 {
            bidiagonal[i, i] = i % 2 == 0 ? 0 : Double(i)
            if i < 5 {
                bidiagonal[i, i + 1] = 1
            }
        }
        expectValidDecomposition(singularValueDecomposition(bidiagonal), of: bidiagonal)
        var lastZero = Matrix.identity(5)
        lastZero[4, 4] = 0
        lastZero[3, 4] = 1
        expectValidDecomposition(singularValueDecomposition(lastZero), of: lastZero)
    }

    @Test("Non-finite input returns at once with non-finite values instead of iterating")
    func nonFinite() {
        var random = LinearAlgebraTestRandom(seed: 51)
        var a = random.gaussianMatrix(rows: 64, columns: 64)
        a[10, 20] = .nan
        let svd = singularValueDecomposition(a)
        #expect(svd.singularValues.count == 64)
        #expect(svd.singularValues.contains { !$0.isFinite })
        a[10, 20] = .infinity
        #expect(singularValues(a).contains { !$0.isFinite })
    }

    @Test("Values-only path agrees with the full decomposition")
    func valuesOnly() {
        var random = LinearAlgebraTestRandom(seed: 31)
        for (m, n) in [(20, 20), (30, 12), (12, 30)] {
            let a = random.gaussianMatrix(rows: m, columns: n)
            let full = singularValueDecomposition(a).singularValues
            expectSingularValues(singularValues(a), full, tolerance: 1e-13)
        }
    }

    @Test("Leading pairs: right vectors recovered as Aᵀu/σ match the full decomposition",
          arguments: [(128, 128, 9), (64, 64, 64), (40, 25, 3), (25, 40, 4), (16, 16, 0)])
    func leadingPairs(shape: (Int, Int, Int)) {
        let (m, n, r) = shape
        // Distinct planted values (so vectors are unique up to sign) spanning three decades.
        let k = min(m, n)
        let s = (0..<k).map { 10 * pow(0.9, Double($0)) }
        let (a, _, _) = planted(s, rows: m, columns: n, seed: UInt64(m * 7 + n + r))
        let full = singularValueDecomposition(a)
        let leading = leadingSingularPairs(a) { _ in r }
        expectSingularValues(leading.singularValues, full.singularValues, tolerance: 1e-13)
        #expect(leading.u.columns == r && leading.v.columns == r && leading.u.rows == m && leading.v.rows == n)
        for i in 0..<r {
            let uDot = (0..<m).reduce(0.0) { $0 + leading.u[$1, i] * full.u[$1, i] }
            let vDot = (0..<n).reduce(0.0) { $0 + leading.v[$1, i] * full.v[$1, i] }
            #expect(abs(abs(uDot) - 1) < 1e-10 && abs(abs(vDot) - 1) < 1e-10, "pair \(i): \(uDot) \(vDot)")
            // The pair keeps A vᵢ = σᵢ uᵢ: u and v flip together.
            #expect(abs(uDot - vDot) < 1e-9)
        }
        #expect(orthonormalityError(leading.u) <= 1e-12 && orthonormalityError(leading.v) <= 1e-10)
    }

    @Test("Leading pairs that include tiny values fall back to the full decomposition")
    func leadingPairsTiny() {
        let s = [3.0, 1.0, 1e-9, 1e-12]
        let (a, q1, q2) = planted(s, rows: 12, columns: 12, seed: 77)
        let leading = leadingSingularPairs(a) { _ in 4 }
        #expect(orthonormalityError(leading.v) <= 1e-12)
        for i in 0..<2 {
            let vDot = (0..<12).reduce(0.0) { $0 + leading.v[$1, i] * q2[$1, i] }
            let uDot = (0..<12).reduce(0.0) { $0 + leading.u[$1, i] * q1[$1, i] }
            #expect(abs(abs(vDot) - 1) < 1e-10 && abs(abs(uDot) - 1) < 1e-10)
        }
    }

    @Test("Concurrent decompositions give the sequential results")
    func concurrent() {
        var random = LinearAlgebraTestRandom(seed: 41)
        let inputs = (0..<8).map { _ in random.gaussianMatrix(rows: 24, columns: 24) }
        let sequential = inputs.map(singularValueDecomposition)
        let results = ConcurrentResults(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            results.set(i, singularValueDecomposition(inputs[i]))
        }
        for (i, expected) in sequential.enumerated() {
            let found = results.get(i)
            #expect(maxAbsDifference(found.u, expected.u) <= 1e-15)
            #expect(maxAbsDifference(found.v, expected.v) <= 1e-15)
            expectSingularValues(found.singularValues, expected.singularValues, tolerance: 1e-15)
        }
    }
}

/// Slots filled from several threads.
private final class ConcurrentResults: @unchecked Sendable {
    private var slots: [SingularValueDecomposition?]
    private let lock = NSLock()

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
    }

    func set(_ i: Int, _ value: SingularValueDecomposition) {
        lock.withLock { slots[i] = value }
    }

    func get(_ i: Int) -> SingularValueDecomposition {
        lock.withLock { slots[i]! }
    }
}
