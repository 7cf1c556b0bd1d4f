import Foundation
import Testing
import QKEngine

private func axes(_ indices: [Int], d: Int) -> Subspace {
    Subspace(vectors: indices.map { i in (0..<d).map { $0 == i ? Float(1) : 0 } }, dimension: d)
}

@Suite struct AssignmentTests {
    private func bruteForceBest(_ scores: [Double], rows: Int, columns: Int) -> Double {
        var best = -Double.infinity
        func search(_ row: Int, _ used: Set<Int>, _ total: Double) {
            if row == rows { best = max(best, total); return }
            var any = false
            for column in 0..<columns where !used.contains(column) {
                any = true
                search(row + 1, used.union([column]), total + scores[row * columns + column])
            }
            // A row may stay unassigned only when the columns run out.
            if !any || rows > columns && rows - row > columns - used.count { search(row + 1, used, total) }
        }
        search(0, [], 0)
        return best
    }

    @Test(arguments: [(1, 1), (3, 3), (5, 5), (6, 6), (3, 5), (5, 3), (2, 6), (6, 2)])
    func matchesBruteForceOnRandomMatrices(rows: Int, columns: Int) {
        var state: UInt64 = UInt64(rows * 31 + columns)
        for _ in 0..<20 {
            let scores = (0..<(rows * columns)).map { _ -> Double in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Double(state >> 40) / Double(1 << 24)
            }
            let assignment = Assignment.maximizing(scores, rows: rows, columns: columns)
            #expect(assignment.count == rows)
            let used = assignment.compactMap { $0 }
            #expect(used.count == min(rows, columns))
            #expect(Set(used).count == used.count)
            let total = Assignment.total(assignment, scores: scores, columns: columns)
            #expect(abs(total - bruteForceBest(scores, rows: rows, columns: columns)) < 1e-9)
        }
    }

    @Test func greedyIsNotEnough() {
        // Greedy takes (0,0)=0.9 and is left with (1,1)=0.1; the optimum is 0.8 + 0.8.
        let assignment = Assignment.maximizing([0.9, 0.8, 0.8, 0.1], rows: 2, columns: 2)
        #expect(assignment == [1, 0])
    }

    @Test func matchHeadsRecoversAPermutation() {
        let d = 16
        let from = (0..<5).map { h in
            HeadSubspaces(query: axes([h], d: d), key: axes([h + 5], d: d), sigma1: 1, frobenius: 1)
        }
        let permutation = [3, 0, 4, 1, 2]
        let to = permutation.map { from[$0] }
        let matches = matchHeads(from, to)
        #expect(matches.map(\.from) == [0, 1, 2, 3, 4])
        for match in matches {
            #expect(permutation[match.to] == match.from)
            #expect(abs(match.similarity.combined - 1) < 1e-9)
        }
        // More heads in the first set than in the second: the extra one stays unmatched.
        #expect(matchHeads(from, Array(to.prefix(3))).count == 3)
    }
}
