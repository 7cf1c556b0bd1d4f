import Testing
@testable import QKEngine

@Suite("Kernels")
struct KernelsTests {
    private func randomRows(_ rows: Int, _ columns: Int, _ random: inout SeededGenerator) -> DoubleRows {
        let block = DoubleRows(rows: rows, columns: columns)
        for i in 0..<(rows * columns) { block.pointer[i] = random.nextGaussian() }
        return block
    }

    @Test("transposed product equals the naive sum of outer products", arguments: [
        (1, 1, 1), (3, 5, 7), (4, 8, 10), (13, 17, 31), (32, 32, 64), (128, 128, 40), (7, 9, 0), (20, 24, 600), (6, 8, 257),
    ])
    func transposedProduct(m: Int, n: Int, count: Int) {
        var random = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + count))
        let a = randomRows(count + 5, m, &random)
        let b = randomRows(count, n, &random)
        // Pick rows of `a` out of order, as a per-value contrast does.
        let picked = (0..<count).map { Int32(($0 * 7 + 3) % (count + 5)) }
        let result = Kernels.transposedProduct(a: a, rows: picked, b: b)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var expected = 0.0
                for r in 0..<count { expected += a.row(Int(picked[r]))[i] * b.row(r)[j] }
                worst = max(worst, abs(result[i * n + j] - expected))
            }
        }
        #expect(result.count == m * n)
        #expect(worst < 1e-10)
    }

    @Test("row scores are dot products with every vector", arguments: [(37, 11, 3), (16, 128, 4), (9, 5, 9), (3, 2, 1), (8, 7, 0)])
    func rowScores(rowCount: Int, d: Int, k: Int) {
        var random = SeededGenerator(seed: UInt64(rowCount * 100 + d + k))
        let rows = randomRows(rowCount, d, &random)
        let vectors = (0..<k).map { _ in (0..<d).map { _ in random.nextGaussian() } }
        let scores = Kernels.rowScores(rows: rows, vectors: vectors)
        #expect(scores.count == rowCount * k)
        var worst = 0.0
        for r in 0..<rowCount {
            for v in 0..<k {
                let expected = (0..<d).reduce(0.0) { $0 + rows.row(r)[$1] * vectors[v][$1] }
                worst = max(worst, abs(scores[r * k + v] - expected))
            }
        }
        #expect(worst < 1e-12)
    }
}
