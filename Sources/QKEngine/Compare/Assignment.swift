/// An optimal one-to-one assignment of rows to columns of a score matrix (the Hungarian algorithm).
public enum Assignment {
    /// For each row, the column it is assigned to (nil for rows left over when there are more rows than
    /// columns), such that no column is used twice and the total score is the largest possible.
    ///
    /// `scores` is `rows × columns`, row-major. O(n² m) with n = min(rows, columns), m = max; ties are
    /// broken deterministically. Scores must be finite.
    public static func maximizing(_ scores: [Double], rows: Int, columns: Int) -> [Int?] {
        precondition(scores.count == rows * columns, "a \(rows) × \(columns) score matrix needs \(rows * columns) values")
        precondition(scores.allSatisfy(\.isFinite), "assignment scores must be finite")
        guard rows > 0, columns > 0 else { return Array(repeating: nil, count: rows) }
        if rows <= columns {
            let rowToColumn = minimizing(cost: { -scores[$0 * columns + $1] }, rows: rows, columns: columns)
            return rowToColumn.map(Optional.some)
        }
        // More rows than columns: assign every column to a row, on the transposed matrix.
        let columnToRow = minimizing(cost: { -scores[$1 * columns + $0] }, rows: columns, columns: rows)
        var result = [Int?](repeating: nil, count: rows)
        for (column, row) in columnToRow.enumerated() { result[row] = column }
        return result
    }

    /// The total score of an assignment.
    public static func total(_ assignment: [Int?], scores: [Double], columns: Int) -> Double {
        assignment.enumerated().reduce(0) { sum, pair in
            pair.element.map { sum + scores[pair.offset * columns + $0] } ?? sum
        }
    }

    /// Shortest augmenting paths with row and column potentials, for `rows ≤ columns`: the column of each row.
    private static func minimizing(cost: (Int, Int) -> Double, rows n: Int, columns m: Int) -> [Int] {
        // 1-based, with index 0 a virtual row/column, as in the classic formulation.
        var rowPotential = [Double](repeating: 0, count: n + 1)
        var columnPotential = [Double](repeating: 0, count: m + 1)
        var rowOfColumn = [Int](repeating: 0, count: m + 1)
        var previous = [Int](repeating: 0, count: m + 1)
        for row in 1...n {
            rowOfColumn[0] = row
            var column0 = 0
            var slack = [Double](repeating: .infinity, count: m + 1)
            var used = [Bool](repeating: false, count: m + 1)
            repeat {
                used[column0] = true
                let row0 = rowOfColumn[column0]
                var delta = Double.infinity
                var column1 = 0
                for column in 1...m where !used[column] {
                    let reduced = cost(row0 - 1, column - 1) - rowPotential[row0] - columnPotential[column]
                    if reduced < slack[column] {
                        slack[column] = reduced
                        previous[column] = column0
                    }
                    if slack[column] < delta {
                        delta = slack[column]
                        column1 = column
                    }
                }
                for column in 0...m {
                    if used[column] {
                        rowPotential[rowOfColumn[column]] += delta
                        columnPotential[column] -= delta
                    } else {
                        slack[column] -= delta
                    }
                }
                column0 = column1
            } while rowOfColumn[column0] != 0
            repeat {
                let column1 = previous[column0]
                rowOfColumn[column0] = rowOfColumn[column1]
                column0 = column1
            } while column0 != 0
        }
        var result = [Int](repeating: 0, count: n)
        for column in 1...m where rowOfColumn[column] != 0 { result[rowOfColumn[column] - 1] = column - 1 }
        return result
    }
}

/// One pair of an optimal matching between two sets of heads.
public struct HeadMatch: Sendable, Equatable {
    /// Index into the first set.
    public var from: Int
    /// Index into the second set.
    public var to: Int
    public var similarity: PairSimilarity
}

/// The optimal one-to-one matching of `from` to `to` by combined subspace similarity.
///
/// Every pair's similarity is `‖AᵀB‖²_F / max rank` on each side (no SVD), so a layer of 32 × 32 heads
/// at rank 16 and d_head 128 takes a few milliseconds. Returns the pairs in the order of `from`.
public func matchHeads(_ from: [HeadSubspaces], _ to: [HeadSubspaces]) -> [HeadMatch] {
    var similarities: [PairSimilarity] = []
    similarities.reserveCapacity(from.count * to.count)
    for a in from {
        for b in to { similarities.append(PairSimilarity(a, b)) }
    }
    let assignment = Assignment.maximizing(similarities.map(\.combined), rows: from.count, columns: to.count)
    return assignment.enumerated().compactMap { row, column in
        column.map { HeadMatch(from: row, to: $0, similarity: similarities[row * to.count + $0]) }
    }
}
