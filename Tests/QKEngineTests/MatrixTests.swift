import Foundation
import Testing
@testable import QKEngine

/// Deterministic random numbers for the linear-algebra tests: the engine's SplitMix64 generator.
struct LinearAlgebraTestRandom {
    private var generator: SeededGenerator

    init(seed: UInt64) {
        generator = SeededGenerator(seed: seed)
    }

    mutating func nextUInt64() -> UInt64 { generator.next() }

    /// Standard normal.
    mutating func normal() -> Double { generator.nextGaussian() }

    /// A matrix of independent standard normal entries.
    mutating func gaussianMatrix(rows: Int, columns: Int) -> Matrix {
        Matrix(rows: rows, columns: columns, elements: (0..<(rows * columns)).map { _ in normal() })
    }

    /// A random `rows × columns` matrix with orthonormal columns.
    mutating func orthonormalMatrix(rows: Int, columns: Int) -> Matrix {
        orthonormalizedColumns(gaussianMatrix(rows: rows, columns: columns))
    }
}

/// Largest absolute entry of `a − b`.
func maxAbsDifference(_ a: Matrix, _ b: Matrix) -> Double {
    precondition(a.rows == b.rows && a.columns == b.columns)
    return zip(a.elements, b.elements).map { abs($0 - $1) }.max() ?? 0
}

/// Largest absolute entry of `QᵀQ − I`: zero for orthonormal columns.
func orthonormalityError(_ q: Matrix) -> Double {
    maxAbsDifference(q.transposed() * q, Matrix.identity(q.columns))
}

/// The product by the textbook triple loop, as an independent reference.
private func naiveProduct(_ a: Matrix, _ b: Matrix) -> Matrix {
    var c = Matrix(rows: a.rows, columns: b.columns)
    for i in 0..<a.rows {
        for j in 0..<b.columns {
            var sum = 0.0
            for k in 0..<a.columns {
                sum += a[i, k] * b[k, j]
            }
            c[i, j] = sum
        }
    }
    return c
}

@Suite("Matrix")
struct MatrixTests {
    @Test("Row-major layout, subscripts, rows and columns")
    func layout() {
        var m = Matrix(rows: 2, columns: 3, elements: [1, 2, 3, 4, 5, 6])
        #expect(abs(m[1, 0] - 4) < 1e-15)
        #expect(abs(m[0, 2] - 3) < 1e-15)
        #expect(m.column(1) == [2, 5])
        #expect(m.row(1) == [4, 5, 6])
        m[1, 2] = -7
        #expect(abs(m.elements[5] + 7) < 1e-15)
        let filled = Matrix(rows: 3, columns: 2, repeating: 1.5)
        #expect(filled.elements.count == 6)
        #expect(filled.elements.allSatisfy { abs($0 - 1.5) < 1e-15 })
    }

    @Test("Building from columns is the inverse of reading columns")
    func columnsRoundTrip() {
        let vectors: [[Double]] = [[1, 2, 3], [4, 5, 6]]
        let m = Matrix(columns: vectors)
        #expect(m.rows == 3 && m.columns == 2)
        #expect(m.elements == [1, 4, 2, 5, 3, 6])
        #expect((0..<2).map { m.column($0) } == vectors)
    }

    @Test("Transpose swaps indices and is an involution", arguments: [(1, 1), (3, 5), (40, 33), (70, 9)])
    func transpose(shape: (Int, Int)) {
        var random = LinearAlgebraTestRandom(seed: 11)
        let m = random.gaussianMatrix(rows: shape.0, columns: shape.1)
        let t = m.transposed()
        #expect(t.rows == shape.1 && t.columns == shape.0)
        for i in 0..<m.rows {
            for j in 0..<m.columns {
                #expect(abs(t[j, i] - m[i, j]) < 1e-15)
            }
        }
        #expect(maxAbsDifference(t.transposed(), m) < 1e-15)
    }

    @Test("Product agrees with the triple loop", arguments: [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 64, 64), (5, 1, 7)])
    func product(shape: (Int, Int, Int)) {
        var random = LinearAlgebraTestRandom(seed: 7)
        let a = random.gaussianMatrix(rows: shape.0, columns: shape.1)
        let b = random.gaussianMatrix(rows: shape.1, columns: shape.2)
        let c = a * b
        #expect(c.rows == shape.0 && c.columns == shape.2)
        #expect(maxAbsDifference(c, naiveProduct(a, b)) < 1e-12)
    }

    @Test("Identity is neutral for the product")
    func identity() {
        var random = LinearAlgebraTestRandom(seed: 3)
        let a = random.gaussianMatrix(rows: 6, columns: 4)
        #expect(maxAbsDifference(Matrix.identity(6) * a, a) < 1e-15)
        #expect(maxAbsDifference(a * Matrix.identity(4), a) < 1e-15)
        #expect(abs(Matrix.identity(5).frobeniusNorm - 5.0.squareRoot()) < 1e-15)
    }

    @Test("Frobenius norm and entry-wise arithmetic")
    func norm() {
        let m = Matrix(rows: 1, columns: 2, elements: [3, -4])
        #expect(abs(m.frobeniusNorm - 5) < 1e-15)
        #expect(abs((m - m).frobeniusNorm) < 1e-15)
        #expect(abs((m + m).frobeniusNorm - 10) < 1e-15)
        #expect(abs((0.5 * m).frobeniusNorm - 2.5) < 1e-15)
        #expect(abs(Matrix(rows: 0, columns: 3).frobeniusNorm) < 1e-15)
        var random = LinearAlgebraTestRandom(seed: 5)
        let g = random.gaussianMatrix(rows: 9, columns: 11)
        let expected = g.elements.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(g.frobeniusNorm - expected) < 1e-12 * expected)
    }
}
