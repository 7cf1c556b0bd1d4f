import Foundation

/// A row-major `rows × columns` block of Doubles owned by one worker; the hot loops read it raw.
final class DoubleRows {
    let rows: Int
    let columns: Int
    let pointer: UnsafeMutablePointer<Double>

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        pointer = .allocate(capacity: max(rows * columns, 1))
        pointer.initialize(repeating: 0, count: max(rows * columns, 1))
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
    /// Register-blocked: a 4 × 8 tile of the result stays in eight SIMD accumulators while the
    /// rows stream by, so each loaded `b` vector feeds four fused multiply-adds.
    static func transposedProduct(a: DoubleRows, rows: [Int32], b: DoubleRows) -> [Double] {
        let m = a.columns, n = b.columns, count = rows.count
        precondition(b.rows >= count)
        var result = [Double](repeating: 0, count: m * n)
        guard count > 0 else { return result }
        // Gather the picked rows of `a` column-major (m × count), so each tile reads 4 contiguous streams.
        let gathered = UnsafeMutablePointer<Double>.allocate(capacity: m * count)
        defer { gathered.deallocate() }
        for (r, row) in rows.enumerated() {
            let source = a.row(Int(row))
            for i in 0..<m { gathered[i * count + r] = source[i] }
        }
        let bBase = UnsafePointer(b.pointer)
        result.withUnsafeMutableBufferPointer { out in
            let c = out.baseAddress!
            var i0 = 0
            while i0 + 4 <= m {
                let a0 = gathered + i0 * count, a1 = a0 + count, a2 = a1 + count, a3 = a2 + count
                var j0 = 0
                while j0 + 8 <= n {
                    var c00 = SIMD4<Double>(), c01 = SIMD4<Double>()
                    var c10 = SIMD4<Double>(), c11 = SIMD4<Double>()
                    var c20 = SIMD4<Double>(), c21 = SIMD4<Double>()
                    var c30 = SIMD4<Double>(), c31 = SIMD4<Double>()
                    var bp = bBase + j0
                    for r in 0..<count {
                        let b0 = UnsafeRawPointer(bp).loadUnaligned(as: SIMD4<Double>.self)
                        let b1 = UnsafeRawPointer(bp + 4).loadUnaligned(as: SIMD4<Double>.self)
                        let x0 = SIMD4<Double>(repeating: a0[r]), x1 = SIMD4<Double>(repeating: a1[r])
                        let x2 = SIMD4<Double>(repeating: a2[r]), x3 = SIMD4<Double>(repeating: a3[r])
                        c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
                        c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
                        c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1)
                        c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1)
                        bp += n
                    }
                    let tiles = [(c00, c01), (c10, c11), (c20, c21), (c30, c31)]
                    for (t, pair) in tiles.enumerated() {
                        let dst = c + (i0 + t) * n + j0
                        UnsafeMutableRawPointer(dst).storeBytes(of: pair.0, as: SIMD4<Double>.self)
                        UnsafeMutableRawPointer(dst + 4).storeBytes(of: pair.1, as: SIMD4<Double>.self)
                    }
                    j0 += 8
                }
                // Columns left over when n is not a multiple of 8.
                for j in j0..<n {
                    for t in 0..<4 {
                        let ap = gathered + (i0 + t) * count
                        var s = 0.0
                        for r in 0..<count { s += ap[r] * bBase[r * n + j] }
                        c[(i0 + t) * n + j] = s
                    }
                }
                i0 += 4
            }
            // Rows left over when m is not a multiple of 4.
            for i in i0..<m {
                let ap = gathered + i * count
                for r in 0..<count {
                    axpy(ap[r], bBase + r * n, c + i * n, n)
                }
            }
        }
        return result
    }

    /// `scores[r * vectors.count + v] = rows[r] · vectors[v]` for every row.
    static func rowScores(rows: DoubleRows, vectors: [[Double]]) -> [Double] {
        let d = rows.columns, k = vectors.count
        var scores = [Double](repeating: 0, count: rows.rows * k)
        guard k > 0 else { return scores }
        let flat = vectors.flatMap { $0 }
        flat.withUnsafeBufferPointer { vp in
            scores.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows.rows {
                    let x = rows.row(r)
                    for v in 0..<k {
                        out[r * k + v] = dot(x, vp.baseAddress! + v * d, d)
                    }
                }
            }
        }
        return scores
    }

    /// Dot product with four independent accumulators.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) -> Double {
        var s0 = SIMD4<Double>(), s1 = SIMD4<Double>()
        var i = 0
        while i + 8 <= n {
            s0 = s0.addingProduct(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Double>.self),
                                  UnsafeRawPointer(y + i).loadUnaligned(as: SIMD4<Double>.self))
            s1 = s1.addingProduct(UnsafeRawPointer(x + i + 4).loadUnaligned(as: SIMD4<Double>.self),
                                  UnsafeRawPointer(y + i + 4).loadUnaligned(as: SIMD4<Double>.self))
            i += 8
        }
        var s = (s0 + s1).sum()
        while i < n {
            s += x[i] * y[i]
            i += 1
        }
        return s
    }
}
