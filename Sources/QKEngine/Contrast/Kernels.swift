import Foundation

/// A row-major `rows × columns` block of Doubles owned by one worker; the hot loops read it raw.
final class DoubleRows {
    let rows: Int
    let columns: Int
    let pointer: UnsafeMutablePointer<Double>

    /// A block of zeros, or (`zeroed: false`) of whatever the memory held, for callers that fill it.
    init(rows: Int, columns: Int, zeroed: Bool = true) {
        self.rows = rows
        self.columns = columns
        pointer = .allocate(capacity: max(rows * columns, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(rows * columns, 1)) }
    }

    deinit { pointer.deallocate() }

    func row(_ r: Int) -> UnsafeMutablePointer<Double> { pointer + r * columns }

    /// Widens `source` (row-major Floats of the same shape) into this block.
    func load(from source: UnsafeBufferPointer<Float>) {
        precondition(source.count == rows * columns)
        guard let base = source.baseAddress else { return }
        for i in 0..<(rows * columns) { pointer[i] = Double(base[i]) }
    }

    /// The mean of all rows.
    func meanRow() -> [Double] {
        var sum = [Double](repeating: 0, count: columns)
        for r in 0..<rows {
            let p = row(r)
            for c in 0..<columns { sum[c] += p[c] }
        }
        return rows > 0 ? sum.map { $0 / Double(rows) } : sum
    }
}

/// Scratch blocks reused from one work unit to the next.
///
/// A fresh multi-megabyte allocation comes back as new pages the kernel must zero and fault in;
/// reusing the previous layer's blocks saved about 7% of the engine's time.
final class ScratchPool: @unchecked Sendable {
    private struct Shape: Hashable {
        var rows: Int
        var columns: Int
    }

    private let lock = NSLock()
    private var blocks: [Shape: [DoubleRows]] = [:]
    private var floatBuffers: [Int: [UnsafeMutableBufferPointer<Float>]] = [:]

    deinit {
        for list in floatBuffers.values { list.forEach { $0.deallocate() } }
    }

    /// A `rows × columns` block with unspecified contents.
    func rows(_ rows: Int, _ columns: Int) -> DoubleRows {
        lock.lock()
        defer { lock.unlock() }
        return blocks[Shape(rows: rows, columns: columns)]?.popLast() ?? DoubleRows(rows: rows, columns: columns, zeroed: false)
    }

    func recycle(_ block: DoubleRows) {
        lock.lock()
        blocks[Shape(rows: block.rows, columns: block.columns), default: []].append(block)
        lock.unlock()
    }

    /// `count` Floats with unspecified contents.
    func floats(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        return floatBuffers[count]?.popLast() ?? .allocate(capacity: count)
    }

    func recycle(_ buffer: UnsafeMutableBufferPointer<Float>) {
        lock.lock()
        floatBuffers[buffer.count, default: []].append(buffer)
        lock.unlock()
    }
}

enum Kernels {
    /// `out[r] = Σ_{j in group r} weight_j · keys[j]`: each prompt's keys summed with their pair weights.
    static func weightedKeySums(keys: DoubleRows, spec: ContrastSpec, into out: DoubleRows) {
        let d = keys.columns
        precondition(out.columns == d && out.rows >= spec.prompts.count)
        spec.keyIndices.withUnsafeBufferPointer { indices in
            spec.keyWeights.withUnsafeBufferPointer { weights in
                for r in 0..<spec.prompts.count {
                    let target = out.row(r)
                    target.update(repeating: 0, count: d)
                    for e in Int(spec.keyRangeStart[r])..<Int(spec.keyRangeStart[r + 1]) {
                        axpy(weights[e], keys.row(Int(indices[e])), target, d)
                    }
                }
            }
        }
    }

    /// `y += a · x` over `n` Doubles.
    @inline(__always)
    static func axpy(_ a: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        var i = 0
        let va = SIMD4<Double>(repeating: a)
        while i + 4 <= n {
            let vx = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Double>.self)
            let vy = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD4<Double>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: vy.addingProduct(va, vx), as: SIMD4<Double>.self)
            i += 4
        }
        while i < n {
            y[i] += a * x[i]
            i += 1
        }
    }

    /// `Σ_r a[rows[r]] ⊗ b[r]` as a row-major `a.columns × b.columns` array: the contrast
    /// `Σ_p q_p w_pᵀ`, where `a` holds every query and `rows` picks the contributing ones.
    ///
    /// A small GEMM: the picked rows of `a` are gathered column-major and `b` is packed in panels
    /// of 8 columns per block of `blockRows` rows, so both stream contiguously from L1/L2; a 6 × 8
    /// tile of the result lives in twelve SIMD accumulators while a block streams by (twelve
    /// independent chains hide the FMA latency; each loaded `b` vector feeds six of them).
    static func transposedProduct(a: DoubleRows, rows: [Int32], b: DoubleRows) -> [Double] {
        let m = a.columns, n = b.columns, count = rows.count
        precondition(b.rows >= count)
        var result = [Double](repeating: 0, count: m * n)
        guard count > 0, m > 0, n > 0 else { return result }
        let gathered = UnsafeMutablePointer<Double>.allocate(capacity: m * count)
        defer { gathered.deallocate() }
        for (r, row) in rows.enumerated() {
            let source = a.row(Int(row))
            for i in 0..<m { gathered[i * count + r] = source[i] }
        }
        let panels = n / 8
        let packed = UnsafeMutablePointer<Double>.allocate(capacity: max(panels, 1) * 8 * blockRows)
        defer { packed.deallocate() }
        result.withUnsafeMutableBufferPointer { out in
            let c = out.baseAddress!
            var r0 = 0
            while r0 < count {
                let kb = min(blockRows, count - r0)
                // Pack b[r0 ..< r0+kb][8p ..< 8p+8] contiguously, panel after panel.
                for p in 0..<panels {
                    let panel = packed + p * 8 * kb
                    for r in 0..<kb {
                        let source = b.row(r0 + r) + 8 * p
                        (panel + 8 * r).update(from: source, count: 8)
                    }
                }
                for p in 0..<panels {
                    let panel = UnsafePointer(packed + p * 8 * kb)
                    var i0 = 0
                    while i0 + 6 <= m {
                        tile6x8(a: gathered + i0 * count + r0, stride: count, panel: panel, depth: kb, c: c + i0 * n + 8 * p, ldc: n)
                        i0 += 6
                    }
                    while i0 < m {
                        tile1x8(a: gathered + i0 * count + r0, panel: panel, depth: kb, c: c + i0 * n + 8 * p)
                        i0 += 1
                    }
                }
                // Columns left over when n is not a multiple of 8.
                for j in (8 * panels)..<n {
                    for i in 0..<m {
                        let ap = gathered + i * count + r0
                        var s = 0.0
                        for r in 0..<kb { s += ap[r] * b.row(r0 + r)[j] }
                        c[i * n + j] += s
                    }
                }
                r0 += kb
            }
        }
        return result
    }

    /// Rows of `b` packed per block: 256 rows × 8 columns × 8 bytes = 16 KiB per panel.
    static let blockRows = 256

    /// `c[0..<6][0..<8] += Σ_r a_t[r] · panel[r][0..<8]` for the six rows `a + t·stride`.
    @inline(__always)
    private static func tile6x8(a: UnsafePointer<Double>, stride: Int, panel: UnsafePointer<Double>, depth: Int,
                                c: UnsafeMutablePointer<Double>, ldc: Int) {
        let a0 = a, a1 = a0 + stride, a2 = a1 + stride, a3 = a2 + stride, a4 = a3 + stride, a5 = a4 + stride
        var c00 = SIMD4<Double>(), c01 = SIMD4<Double>(), c10 = SIMD4<Double>(), c11 = SIMD4<Double>()
        var c20 = SIMD4<Double>(), c21 = SIMD4<Double>(), c30 = SIMD4<Double>(), c31 = SIMD4<Double>()
        var c40 = SIMD4<Double>(), c41 = SIMD4<Double>(), c50 = SIMD4<Double>(), c51 = SIMD4<Double>()
        var bp = panel
        for r in 0..<depth {
            let b0 = UnsafeRawPointer(bp).loadUnaligned(as: SIMD4<Double>.self)
            let b1 = UnsafeRawPointer(bp + 4).loadUnaligned(as: SIMD4<Double>.self)
            var x = SIMD4<Double>(repeating: a0[r])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = SIMD4<Double>(repeating: a1[r])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = SIMD4<Double>(repeating: a2[r])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = SIMD4<Double>(repeating: a3[r])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = SIMD4<Double>(repeating: a4[r])
            c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = SIMD4<Double>(repeating: a5[r])
            c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            bp += 8
        }
        add(c00, c01, to: c)
        add(c10, c11, to: c + ldc)
        add(c20, c21, to: c + 2 * ldc)
        add(c30, c31, to: c + 3 * ldc)
        add(c40, c41, to: c + 4 * ldc)
        add(c50, c51, to: c + 5 * ldc)
    }

    /// One row of the tile, for the rows left over when `m` is not a multiple of 6.
    @inline(__always)
    private static func tile1x8(a: UnsafePointer<Double>, panel: UnsafePointer<Double>, depth: Int, c: UnsafeMutablePointer<Double>) {
        var c0 = SIMD4<Double>(), c1 = SIMD4<Double>()
        var bp = panel
        for r in 0..<depth {
            let x = SIMD4<Double>(repeating: a[r])
            c0 = c0.addingProduct(x, UnsafeRawPointer(bp).loadUnaligned(as: SIMD4<Double>.self))
            c1 = c1.addingProduct(x, UnsafeRawPointer(bp + 4).loadUnaligned(as: SIMD4<Double>.self))
            bp += 8
        }
        add(c0, c1, to: c)
    }

    @inline(__always)
    private static func add(_ low: SIMD4<Double>, _ high: SIMD4<Double>, to c: UnsafeMutablePointer<Double>) {
        let raw = UnsafeMutableRawPointer(c)
        raw.storeBytes(of: raw.loadUnaligned(as: SIMD4<Double>.self) + low, as: SIMD4<Double>.self)
        raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: 32, as: SIMD4<Double>.self) + high, toByteOffset: 32, as: SIMD4<Double>.self)
    }

    /// `scores[r * vectors.count + v] = rows[r] · vectors[v]` for every row.
    ///
    /// Vectors are packed four at a time, interleaved per dimension, so one SIMD load serves four
    /// vectors and eight rows run side by side: eight independent FMA chains per loaded vector.
    static func rowScores(rows: DoubleRows, vectors: [[Double]]) -> [Double] {
        let d = rows.columns, k = vectors.count, n = rows.rows
        var scores = [Double](repeating: 0, count: n * k)
        guard k > 0, n > 0 else { return scores }
        let groups = (k + 3) / 4
        let packed = UnsafeMutablePointer<Double>.allocate(capacity: groups * d * 4)
        defer { packed.deallocate() }
        packed.initialize(repeating: 0, count: groups * d * 4)
        for (v, vector) in vectors.enumerated() {
            for i in 0..<d { packed[(v / 4) * d * 4 + i * 4 + v % 4] = vector[i] }
        }
        scores.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            // Rows outside, vector groups inside: a block of eight rows is read from memory once and
            // stays in L1 while every vector passes over it.
            var r = 0
            while r + 8 <= n {
                let x0 = UnsafePointer(rows.row(r)), x1 = x0 + d, x2 = x1 + d, x3 = x2 + d
                let x4 = x3 + d, x5 = x4 + d, x6 = x5 + d, x7 = x6 + d
                for g in 0..<groups {
                    let vt = UnsafeRawPointer(packed + g * d * 4)
                    var a0 = SIMD4<Double>(), a1 = SIMD4<Double>(), a2 = SIMD4<Double>(), a3 = SIMD4<Double>()
                    var a4 = SIMD4<Double>(), a5 = SIMD4<Double>(), a6 = SIMD4<Double>(), a7 = SIMD4<Double>()
                    for i in 0..<d {
                        let v = vt.loadUnaligned(fromByteOffset: 32 * i, as: SIMD4<Double>.self)
                        a0 = a0.addingProduct(SIMD4(repeating: x0[i]), v)
                        a1 = a1.addingProduct(SIMD4(repeating: x1[i]), v)
                        a2 = a2.addingProduct(SIMD4(repeating: x2[i]), v)
                        a3 = a3.addingProduct(SIMD4(repeating: x3[i]), v)
                        a4 = a4.addingProduct(SIMD4(repeating: x4[i]), v)
                        a5 = a5.addingProduct(SIMD4(repeating: x5[i]), v)
                        a6 = a6.addingProduct(SIMD4(repeating: x6[i]), v)
                        a7 = a7.addingProduct(SIMD4(repeating: x7[i]), v)
                    }
                    let lanes = min(4, k - 4 * g)
                    @inline(__always) func put(_ acc: SIMD4<Double>, _ t: Int) {
                        for lane in 0..<lanes { o[(r + t) * k + 4 * g + lane] = acc[lane] }
                    }
                    put(a0, 0); put(a1, 1); put(a2, 2); put(a3, 3); put(a4, 4); put(a5, 5); put(a6, 6); put(a7, 7)
                }
                r += 8
            }
            while r < n {
                let x = rows.row(r)
                for g in 0..<groups {
                    let vt = UnsafeRawPointer(packed + g * d * 4)
                    var a = SIMD4<Double>()
                    for i in 0..<d { a = a.addingProduct(SIMD4(repeating: x[i]), vt.loadUnaligned(fromByteOffset: 32 * i, as: SIMD4<Double>.self)) }
                    for lane in 0..<min(4, k - 4 * g) { o[r * k + 4 * g + lane] = a[lane] }
                }
                r += 1
            }
        }
        return scores
    }
}
