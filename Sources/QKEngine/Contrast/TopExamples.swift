import Foundation

/// Keeps the `capacity` largest (score, item) pairs seen, largest first, in O(n · log capacity).
struct TopSelector {
    let capacity: Int
    /// Sorted descending by score; ties keep the earlier item first.
    private(set) var entries: [(score: Double, item: Int)] = []

    init(capacity: Int) {
        self.capacity = capacity
        entries.reserveCapacity(capacity + 1)
    }

    @inline(__always)
    mutating func offer(_ score: Double, _ item: Int) {
        guard capacity > 0 else { return }
        if entries.count == capacity, score <= entries[capacity - 1].score { return }
        // Binary search for the first entry with a smaller score.
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].score >= score { low = mid + 1 } else { high = mid }
        }
        entries.insert((score, item), at: low)
        if entries.count > capacity { entries.removeLast() }
    }
}

/// Per-worker scratch space for token aggregates, sized to the capture's token vocabulary.
final class TokenAggregator {
    private var sums: [Double]
    private var counts: [Int]
    private var touched: [Int32] = []

    init(tokenCount: Int) {
        sums = [Double](repeating: 0, count: tokenCount)
        counts = [Int](repeating: 0, count: tokenCount)
    }

    /// The `top` token strings with the highest and with the lowest mean score.
    func aggregate(tokens: [Int32], scores: StridedScores, top: Int) -> (highest: [TokenAggregate], lowest: [TokenAggregate]) {
        tokens.withUnsafeBufferPointer { tokens in
            for i in 0..<tokens.count {
                let t = Int(tokens[i])
                if counts[t] == 0 { touched.append(tokens[i]) }
                counts[t] += 1
                sums[t] += scores[i]
            }
        }
        var high = TopSelector(capacity: top), low = TopSelector(capacity: top)
        for token in touched {
            let mean = sums[Int(token)] / Double(counts[Int(token)])
            high.offer(mean, Int(token))
            low.offer(-mean, Int(token))
        }
        func make(_ s: TopSelector, sign: Double) -> [TokenAggregate] {
            s.entries.map { TokenAggregate(token: Int32($0.item), count: counts[$0.item], meanScore: sign * $0.score) }
        }
        let result = (make(high, sign: 1), make(low, sign: -1))
        for token in touched {
            sums[Int(token)] = 0
            counts[Int(token)] = 0
        }
        touched.removeAll(keepingCapacity: true)
        return result
    }
}

/// One column of a row-major score table: item `i` scores `base[i * stride]`.
struct StridedScores {
    let base: UnsafePointer<Double>
    let stride: Int

    @inline(__always) subscript(_ i: Int) -> Double { base[i * stride] }
}

enum TopExamples {
    /// Both ends of one side of a component: `count` items scored by `scores`.
    static func collect(count: Int, top: Int, scores: StridedScores, example: (Int, Double) -> Example,
                        tokens: [Int32], aggregator: TokenAggregator) -> SideExamples {
        var high = TopSelector(capacity: top), low = TopSelector(capacity: top)
        for i in 0..<count {
            let s = scores[i]
            high.offer(s, i)
            low.offer(-s, i)
        }
        let aggregates = aggregator.aggregate(tokens: tokens, scores: scores, top: top)
        return SideExamples(
            highest: high.entries.map { example($0.item, $0.score) },
            lowest: low.entries.map { example($0.item, -$0.score) },
            highestTokens: aggregates.highest,
            lowestTokens: aggregates.lowest)
    }
}
