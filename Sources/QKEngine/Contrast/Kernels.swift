import CQKKernels
import Foundation

/// A row-major `rows × columns` block of Floats owned by one worker; the kernels read it raw.
final class FloatRows {
    let rows: Int
    let columns: Int
    let pointer: UnsafeMutablePointer<Float>

    /// A block of zeros, or (`zeroed: false`) of whatever the memory held, for callers that fill it.
    init(rows: Int, columns: Int, zeroed: Bool = true) {
        self.rows = rows
        self.columns = columns
        pointer = .allocate(capacity: max(rows * columns, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(rows * columns, 1)) }
    }

    deinit { pointer.deallocate() }

    func row(_ r: Int) -> UnsafeMutablePointer<Float> { pointer + r * columns }

    var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: rows * columns) }

    /// The mean of all rows, summed in Double.
    func meanRow() -> [Double] {
        var sum = [Double](repeating: 0, count: columns)
        for r in 0..<rows {
            let p = row(r)
            for c in 0..<columns { sum[c] += Double(p[c]) }
        }
        return rows > 0 ? sum.map { $0 / Double(rows) } : sum
    }
}

/// Scratch blocks reused from one work unit to the next.
///
/// A fresh multi-megabyte allocation comes back as new pages the kernel must zero and fault in;
/// reusing the previous layer's blocks avoids that.
final class ScratchPool: @unchecked Sendable {
    private struct Shape: Hashable {
        var rows: Int
        var columns: Int
    }

    private let lock = NSLock()
    private var blocks: [Shape: [FloatRows]] = [:]

    /// A `rows × columns` block with unspecified contents.
    func rows(_ rows: Int, _ columns: Int) -> FloatRows {
        lock.lock()
        defer { lock.unlock() }
        return blocks[Shape(rows: rows, columns: columns)]?.popLast() ?? FloatRows(rows: rows, columns: columns, zeroed: false)
    }

    func recycle(_ block: FloatRows) {
        lock.lock()
        blocks[Shape(rows: block.rows, columns: block.columns), default: []].append(block)
        lock.unlock()
    }
}

/// The compiled variants of the C kernels. By default the best one the CPU supports runs (or the
/// one named by `QKCAT_KERNELS=portable|avx2|avx512` in the environment); tests ask for each.
enum KernelVariant: Int, Sendable, CaseIterable {
    case portable = 0, avx2 = 1, avx512 = 2

    /// The best variant this CPU supports.
    static var detected: KernelVariant { KernelVariant(rawValue: Int(qk_detected_isa().rawValue)) ?? .portable }

    /// The variant a kernel asked for `requested` (nil: the default) runs.
    static func resolved(_ requested: KernelVariant?) -> KernelVariant {
        KernelVariant(rawValue: Int(qk_resolve_isa(Int32(requested?.rawValue ?? -1)).rawValue)) ?? .portable
    }
}

enum Kernels {
    /// `out[r] = Σ_{j in group r} weight_j · keys[j]`: each prompt's keys summed with their pair weights.
    static func weightedKeySums(keys: FloatRows, spec: ContrastSpec, into out: FloatRows) {
        let d = keys.columns
        precondition(out.columns == d && out.rows >= spec.prompts.count)
        spec.keyIndices.withUnsafeBufferPointer { indices in
            spec.keyWeights.withUnsafeBufferPointer { weights in
                for r in 0..<spec.prompts.count {
                    let target = out.row(r)
                    target.update(repeating: 0, count: d)
                    for e in Int(spec.keyRangeStart[r])..<Int(spec.keyRangeStart[r + 1]) {
                        let weight = Float(weights[e]), source = keys.row(Int(indices[e]))
                        for i in 0..<d { target[i] += weight * source[i] }
                    }
                }
            }
        }
    }

    /// Products and sums in float over at most this many prompts before a block is added in double.
    static let floatBlockDepth = 64

    /// `Σ_r a[rows[r]] ⊗ b[r]` as a row-major `a.columns × b.columns` array of Doubles: the contrast
    /// `Σ_p q_p w_pᵀ`, where `a` holds every query and `rows` picks the contributing ones.
    ///
    /// Float products summed in float over blocks of `floatBlockDepth` prompts, the blocks summed in
    /// double. With `u = 2⁻²⁴`, each entry is within `(floatBlockDepth + 1) · u · Σ_r |a_ri| |b_rj|`
    /// of the exact sum of the Float inputs (plus double round-off), whatever the number of prompts.
    static func contrast(a: FloatRows, rows: [Int32], b: FloatRows, variant: KernelVariant? = nil) -> [Double] {
        let m = a.columns, n = b.columns
        precondition(b.rows >= rows.count)
        var result = [Double](repeating: 0, count: m * n)
        guard !rows.isEmpty, m > 0, n > 0 else { return result }
        rows.withUnsafeBufferPointer { picked in
            result.withUnsafeMutableBufferPointer { out in
                qk_gemm_tn_f64acc(Int32(variant?.rawValue ?? -1), Int32(m), Int32(n), Int32(rows.count), a.pointer, Int32(m), picked.baseAddress,
                                  b.pointer, Int32(n), out.baseAddress, Int32(n))
            }
        }
        return result
    }
}

/// The rows' token ids of one side (keys or queries) renumbered densely in order of first
/// appearance, so per-token sums need one slot per distinct token of that side only.
struct TokenVocabulary: Sendable {
    /// Per row: the dense id of its token.
    let ids: [Int32]
    /// Per dense id: the capture's token id (an index into `PromptTable.tokenStrings`).
    let tokens: [Int32]
    /// Per dense id: the number of rows holding it.
    let counts: [Int]

    init(tokens rowTokens: [Int32]) {
        var dense: [Int32: Int32] = [:]
        var ids = [Int32](), tokens = [Int32](), counts = [Int]()
        ids.reserveCapacity(rowTokens.count)
        for token in rowTokens {
            if let id = dense[token] {
                ids.append(id)
                counts[Int(id)] += 1
            } else {
                let id = Int32(tokens.count)
                dense[token] = id
                tokens.append(token)
                counts.append(1)
                ids.append(id)
            }
        }
        self.ids = ids
        self.tokens = tokens
        self.counts = counts
    }
}

/// The top examples and token means of many components at once: every row is scored against
/// every component in blocks (one small matrix product per block), and each block is handed to
/// the selection and the per-token sums while it is in cache, so the rows are read once.
final class ExampleCollector {
    /// Rows scored per block: a multiple of the kernels' 12-row tile.
    static let blockRows = 240
    /// Components handled per pass over the rows; bounds the token sums' size.
    static let maxColumns = 128

    let columns: Int
    let depth: Int
    let top: Int
    let variant: KernelVariant?
    private let panelCount: Int
    private let panels: UnsafeMutablePointer<Float>
    private let tokenSlots: Int
    private let tokenSums: UnsafeMutablePointer<Double>
    private let block: UnsafeMutablePointer<Float>
    private let highScores, lowScores: UnsafeMutablePointer<Float>
    private let highRows, lowRows: UnsafeMutablePointer<Int32>
    private let highCounts, lowCounts: UnsafeMutablePointer<Int32>
    private let highThresholds, lowThresholds: UnsafeMutablePointer<Float>

    /// `vectors`: the components, each of length `depth` (at most `maxColumns` of them).
    init(vectors: [[Float]], depth: Int, top: Int, tokenSlots: Int, variant: KernelVariant? = nil) {
        precondition(vectors.count <= Self.maxColumns && vectors.allSatisfy { $0.count == depth })
        columns = vectors.count
        self.variant = variant
        self.depth = depth
        self.top = top
        self.tokenSlots = tokenSlots
        panelCount = (columns + Int(QK_PANEL_COLUMNS) - 1) / Int(QK_PANEL_COLUMNS)
        let width = Int(QK_PANEL_COLUMNS)
        panels = .allocate(capacity: max(panelCount * depth * width, 1))
        panels.initialize(repeating: 0, count: max(panelCount * depth * width, 1))
        for (j, vector) in vectors.enumerated() {
            for k in 0..<depth { panels[(j / width) * depth * width + k * width + j % width] = vector[k] }
        }
        tokenSums = .allocate(capacity: max(tokenSlots * columns, 1))
        tokenSums.initialize(repeating: 0, count: max(tokenSlots * columns, 1))
        block = .allocate(capacity: Self.blockRows * max(panelCount * width, 1))
        let heapSize = max(columns * top, 1)
        highScores = .allocate(capacity: heapSize)
        lowScores = .allocate(capacity: heapSize)
        highRows = .allocate(capacity: heapSize)
        lowRows = .allocate(capacity: heapSize)
        highCounts = .allocate(capacity: max(columns, 1))
        highCounts.initialize(repeating: 0, count: max(columns, 1))
        lowCounts = .allocate(capacity: max(columns, 1))
        lowCounts.initialize(repeating: 0, count: max(columns, 1))
        highThresholds = .allocate(capacity: max(columns, 1))
        highThresholds.initialize(repeating: -.infinity, count: max(columns, 1))
        lowThresholds = .allocate(capacity: max(columns, 1))
        lowThresholds.initialize(repeating: .infinity, count: max(columns, 1))
    }

    deinit {
        for p in [panels, block, highScores, lowScores, highThresholds, lowThresholds] { p.deallocate() }
        for p in [highRows, lowRows, highCounts, lowCounts] { p.deallocate() }
        tokenSums.deallocate()
    }

    /// Scores every row of `rows` (row `r` holds dense token `tokenIDs[r]`), block after block.
    func scan(_ rows: FloatRows, tokenIDs: [Int32]) {
        precondition(rows.columns == depth && tokenIDs.count == rows.rows)
        guard columns > 0 else { return }
        let ldo = panelCount * Int(QK_PANEL_COLUMNS)
        var top = qk_top(capacity: Int32(self.top), columns: Int32(columns), high_scores: highScores, high_rows: highRows,
                         high_counts: highCounts, high_threshold: highThresholds, low_scores: lowScores,
                         low_rows: lowRows, low_counts: lowCounts, low_threshold: lowThresholds)
        tokenIDs.withUnsafeBufferPointer { ids in
            var r0 = 0
            while r0 < rows.rows {
                let count = min(Self.blockRows, rows.rows - r0)
                let isa = Int32(variant?.rawValue ?? -1)
                qk_scores(isa, Int32(count), Int32(depth), rows.row(r0), Int32(depth), panels, Int32(panelCount), block, Int32(ldo))
                qk_collect(isa, Int32(count), block, Int32(ldo), Int32(r0), ids.baseAddress! + r0, tokenSums, Int32(columns), &top)
                r0 += count
            }
        }
    }

    /// Component `j`'s examples at both ends and its tokens with the highest and lowest mean score.
    func side(_ j: Int, vocabulary: TokenVocabulary, example: (Int, Double) -> Example) -> SideExamples {
        func sorted(_ scores: UnsafeMutablePointer<Float>, _ rows: UnsafeMutablePointer<Int32>, _ count: Int32) -> [(Float, Int)] {
            (0..<Int(count)).map { (scores[j * top + $0], Int(rows[j * top + $0])) }
                .sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        }
        let highest = sorted(highScores, highRows, highCounts[j]).map { example($0.1, Double($0.0)) }
        let lowest = sorted(lowScores, lowRows, lowCounts[j]).map { example($0.1, -Double($0.0)) }
        var high = TopSelector(capacity: top), low = TopSelector(capacity: top)
        if top > 0 {
            for t in 0..<vocabulary.tokens.count {
                let mean = tokenSums[t * columns + j] / Double(vocabulary.counts[t])
                high.offer(mean, t)
                low.offer(-mean, t)
            }
        }
        func aggregates(_ s: TopSelector, sign: Double) -> [TokenAggregate] {
            s.entries.map { TokenAggregate(token: vocabulary.tokens[$0.item], count: vocabulary.counts[$0.item], meanScore: sign * $0.score) }
        }
        return SideExamples(highest: highest, lowest: lowest, highestTokens: aggregates(high, sign: 1),
                            lowestTokens: aggregates(low, sign: -1))
    }
}
