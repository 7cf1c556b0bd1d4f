import CQKKernels

/// The thin singular value decomposition `A = U · diag(σ) · Vᵀ` of an `m × n` matrix, `k = min(m, n)`.
public struct SingularValueDecomposition: Sendable {
    /// `m × k`; its columns are the left singular vectors.
    public let u: Matrix
    /// The `k` singular values, non-negative and descending.
    public let singularValues: [Double]
    /// `n × k`; its columns are the right singular vectors.
    public let v: Matrix

    public init(u: Matrix, singularValues: [Double], v: Matrix) {
        precondition(u.columns == singularValues.count && v.columns == singularValues.count,
                     "U and V need one column per singular value")
        self.u = u
        self.singularValues = singularValues
        self.v = v
    }

    /// `U · diag(σ) · Vᵀ`, the matrix the decomposition stands for.
    public func reconstructed() -> Matrix {
        var scaled = u
        let k = singularValues.count
        for i in 0..<u.rows {
            for j in 0..<k {
                scaled.elements[i * k + j] *= singularValues[j]
            }
        }
        return scaled * v.transposed()
    }
}

/// The thin SVD of `a`: Householder bidiagonalization, then implicit-shift QR on the bidiagonal (Golub–Kahan–Reinsch).
///
/// Thread-safe: every call works on its own buffers. Non-finite input gives non-finite output (callers validate).
public func singularValueDecomposition(_ a: Matrix) -> SingularValueDecomposition {
    let k = min(a.rows, a.columns)
    guard k > 0 else {
        return SingularValueDecomposition(u: Matrix(rows: a.rows, columns: 0), singularValues: [],
                                          v: Matrix(rows: a.columns, columns: 0))
    }
    // The kernel wants at least as many rows as columns: decompose Aᵀ = V Σ Uᵀ when A is wide.
    let tall = a.rows >= a.columns
    let work = ColumnMajorBuffer(a, transposed: !tall)
    let result = BidiagonalSVD.decompose(work, vectors: true)
    let order = descendingOrder(result.values)
    let values = order.map { abs(result.values[$0]) }
    // A negative σ becomes positive by flipping its right vector (of the matrix actually decomposed).
    let signs = result.values.map { $0 < 0 ? -1.0 : 1.0 }
    let left = result.left!.matrix(columnOrder: order)
    let right = result.right!.matrix(columnOrder: order, signs: signs)
    return tall
        ? SingularValueDecomposition(u: left, singularValues: values, v: right)
        : SingularValueDecomposition(u: right, singularValues: values, v: left)
}

/// Every singular value of `a` and the leading singular pairs, `count(values)` of them.
///
/// Only the left vectors are accumulated through the QR iterations; each kept right vector is
/// recovered as `vᵢ = Aᵀuᵢ / σᵢ`, which saves about a third of the work. Its error grows like
/// `ε·σ₁/σᵢ`, so when a kept σᵢ is below `1e-6·σ₁` (or `a` is wide) the full decomposition is
/// used instead: the result is always accurate to well below float32 precision.
public func leadingSingularPairs(_ a: Matrix, count: ([Double]) -> Int) -> LeadingSingularPairs {
    let n = a.columns
    guard a.rows >= n, n > 0 else {
        let full = singularValueDecomposition(a)
        let r = min(count(full.singularValues), full.singularValues.count)
        return full.leading(r)
    }
    let result = BidiagonalSVD.decompose(ColumnMajorBuffer(a, transposed: false), vectors: true, rightVectors: false)
    let order = descendingOrder(result.values)
    let values = order.map { abs(result.values[$0]) }
    let r = min(max(count(values), 0), values.count)
    guard r == 0 || values[r - 1] >= 1e-6 * values[0] else {
        return singularValueDecomposition(a).leading(r)
    }
    let u = result.left!.matrix(columnOrder: Array(order.prefix(r)))
    // vᵢ = Aᵀuᵢ / σᵢ (A = U Σ Vᵀ, so Aᵀuᵢ = σᵢvᵢ, the sign coming out right by itself).
    var v = Matrix(rows: n, columns: r)
    for i in 0..<r {
        for row in 0..<a.rows {
            let coefficient = u.elements[row * r + i] / values[i]
            guard coefficient != 0 else { continue }
            for j in 0..<n { v.elements[j * r + i] += a.elements[row * n + j] * coefficient }
        }
    }
    return LeadingSingularPairs(singularValues: values, u: u, v: v)
}

/// Every singular value of a matrix, with the vectors of only the leading few.
public struct LeadingSingularPairs: Sendable {
    /// All of them, non-negative and descending.
    public let singularValues: [Double]
    /// `m × r`: the left vectors of the first `r` values.
    public let u: Matrix
    /// `n × r`: the right vectors of the first `r` values.
    public let v: Matrix
}

extension SingularValueDecomposition {
    /// Every value with only the first `r` vector pairs.
    func leading(_ r: Int) -> LeadingSingularPairs {
        func prefix(_ m: Matrix) -> Matrix {
            var out = Matrix(rows: m.rows, columns: r)
            for row in 0..<m.rows {
                for c in 0..<r { out.elements[row * r + c] = m.elements[row * m.columns + c] }
            }
            return out
        }
        return LeadingSingularPairs(singularValues: singularValues, u: prefix(u), v: prefix(v))
    }
}

/// The singular values of `a` alone, descending (cheaper than the full decomposition).
public func singularValues(_ a: Matrix) -> [Double] {
    guard min(a.rows, a.columns) > 0 else { return [] }
    let work = ColumnMajorBuffer(a, transposed: a.rows < a.columns)
    let values = BidiagonalSVD.decompose(work, vectors: false).values
    return descendingOrder(values).map { abs(values[$0]) }
}

/// Indices of `values` ordered by descending magnitude (ties keep their order, so results are deterministic).
private func descendingOrder(_ values: [Double]) -> [Int] {
    // NaN (from non-finite input) sorts first, keeping the ordering total.
    let keys = values.map { $0.isNaN ? Double.infinity : abs($0) }
    return values.indices.sorted { i, j in
        keys[i] != keys[j] ? keys[i] > keys[j] : i < j
    }
}

/// Golub–Kahan–Reinsch SVD of a column-major `m × n` buffer with `m ≥ n ≥ 1`.
enum BidiagonalSVD {
    struct Output {
        /// Signed, unordered singular values.
        var values: [Double]
        /// `m × n`, left singular vectors (nil when vectors were not asked for).
        var left: ColumnMajorBuffer?
        /// `n × n`, right singular vectors.
        var right: ColumnMajorBuffer?
    }

    /// Decomposes `a` (which it overwrites).
    static func decompose(_ a: ColumnMajorBuffer, vectors: Bool, rightVectors: Bool = true) -> Output {
        let (m, n) = (a.rows, a.columns)
        precondition(m >= n && n >= 1)
        var d = [Double](repeating: 0, count: n)
        var e = [Double](repeating: 0, count: n)
        var tauLeft = [Double](repeating: 0, count: n)
        var tauRight = [Double](repeating: 0, count: n)
        // Column k holds the right Householder vector of step k in rows k+1..<n.
        let rightReflectors = ColumnMajorBuffer(rows: n, columns: n)
        let scratch = ColumnMajorBuffer(rows: m, columns: 1)
        // Squares of the entries appear in norms and shifts: bring huge or tiny matrices near 1 by an exact
        // power of two, and scale the singular values back at the end.
        let largest = VectorKernels.maxMagnitude(a.base, a.storedCount)
        var exponent = 0
        if largest > 0 && largest.isFinite && (largest > 0x1p100 || largest < 0x1p-100) {
            exponent = max(largest.exponent, -1000)
            VectorKernels.scale(a.base, a.storedCount, by: Double(sign: .plus, exponent: -exponent, significand: 1))
        }

        // 1. A = Q_L · B · Q_Rᵀ with B upper bidiagonal (d on the diagonal, e above it).
        for k in 0..<n {
            let leftVector = a.column(k) + k
            let height = m - k
            let (beta, tau) = Householder.make(leftVector, height)
            d[k] = beta
            tauLeft[k] = tau
            if tau != 0 && k + 1 < n {
                qk_reflect_columns(-1, leftVector, tau, a.column(k + 1) + k, a.stride, Int32(n - k - 1), Int32(height))
            }
            guard k < n - 1 else { continue }
            let width = n - k - 1
            let rightVector = rightReflectors.column(k) + k + 1
            for t in 0..<width {
                rightVector[t] = a.column(k + 1 + t)[k]
            }
            let (betaRight, tauR) = Householder.make(rightVector, width)
            e[k] = betaRight
            tauRight[k] = tauR
            if tauR != 0 {
                // Rows below k: A ← A − τ (A v) vᵀ, as two sweeps over contiguous columns.
                qk_reflect_rows(-1, rightVector, tauR, a.column(k + 1) + k + 1, a.stride, Int32(width), Int32(m - k - 1),
                                scratch.base)
            }
        }

        // 2. Accumulate Q_L (thin, m × n) and Q_R (n × n) backwards, touching only their active corners.
        var left: ColumnMajorBuffer? = nil
        var right: ColumnMajorBuffer? = nil
        if vectors {
            let u = ColumnMajorBuffer(rows: m, columns: n)
            for j in 0..<n {
                u.column(j)[j] = 1
            }
            for k in stride(from: n - 1, through: 0, by: -1) where tauLeft[k] != 0 {
                qk_reflect_columns(-1, a.column(k) + k, tauLeft[k], u.column(k) + k, u.stride, Int32(n - k), Int32(m - k))
            }
            left = u
            if rightVectors {
                let v = ColumnMajorBuffer(rows: n, columns: n)
                for j in 0..<n {
                    v.column(j)[j] = 1
                }
                for k in stride(from: n - 2, through: 0, by: -1) where tauRight[k] != 0 {
                    qk_reflect_columns(-1, rightReflectors.column(k) + k + 1, tauRight[k], v.column(k + 1) + k + 1, v.stride,
                                       Int32(n - k - 1), Int32(n - k - 1))
                }
                right = v
            }
        }

        // 3. Diagonalize B; rotations go into the columns of U and V.
        var qr = BidiagonalQR(d: d, e: e, left: left, right: right)
        qr.run()
        let values = exponent == 0 ? qr.d : qr.d.map { Double(sign: .plus, exponent: exponent, significand: $0) }
        return Output(values: values, left: left, right: right)
    }
}

/// Householder reflectors `H = I − τ v vᵀ` with `v[0] = 1`.
enum Householder {
    /// Turns `x` into the vector `v` of the reflector with `H x = β e₁`, in place; returns `β` and `τ`.
    static func make(_ x: UnsafeMutablePointer<Double>, _ count: Int) -> (beta: Double, tau: Double) {
        let alpha = x[0]
        guard count > 1 else {
            x[0] = 1
            return (alpha, 0)
        }
        let tailSquares = VectorKernels.dot(x + 1, x + 1, count - 1)
        guard tailSquares != 0 else {
            x[0] = 1
            return (alpha, 0)
        }
        var norm = (alpha * alpha + tailSquares).squareRoot()
        if !(norm.isFinite && norm > 1e-145) {
            // Squares over- or underflowed: measure the norm at a safe scale.
            var scale = 0.0
            for i in 0..<count {
                scale = max(scale, abs(x[i]))
            }
            var sum = 0.0
            for i in 0..<count {
                let scaled = x[i] / scale
                sum += scaled * scaled
            }
            norm = scale * sum.squareRoot()
        }
        let beta = alpha >= 0 ? -norm : norm
        let tau = (beta - alpha) / beta
        let factor = 1 / (alpha - beta)
        for i in 1..<count {
            x[i] *= factor
        }
        x[0] = 1
        return (beta, tau)
    }

    /// `y ← (I − τ v vᵀ) y`.
    @inline(__always)
    static func apply(_ v: UnsafePointer<Double>, _ tau: Double, to y: UnsafeMutablePointer<Double>, _ count: Int) {
        let w = VectorKernels.dot(v, y, count)
        if w != 0 {
            VectorKernels.axpy(-tau * w, v, y, count)
        }
    }
}

/// Implicit-shift QR iteration on an upper bidiagonal matrix (Golub & Van Loan, algorithm 8.6.2).
struct BidiagonalQR {
    /// Diagonal; ends as the (signed) singular values.
    var d: [Double]
    /// Superdiagonal: `e[i]` is entry `(i, i + 1)`; `e[n − 1]` is unused.
    var e: [Double]
    /// Receives the left rotations (columns), if any.
    let left: ColumnMajorBuffer?
    /// Receives the right rotations (columns), if any.
    let right: ColumnMajorBuffer?

    /// One sweep's rotations, kept so that they reach U and V in one pass each.
    private var leftCosines: [Double]
    private var leftSines: [Double]
    private var rightCosines: [Double]
    private var rightSines: [Double]

    init(d: [Double], e: [Double], left: ColumnMajorBuffer?, right: ColumnMajorBuffer?) {
        self.d = d
        self.e = e
        self.left = left
        self.right = right
        leftCosines = Array(repeating: 1, count: d.count)
        leftSines = Array(repeating: 0, count: d.count)
        rightCosines = Array(repeating: 1, count: d.count)
        rightSines = Array(repeating: 0, count: d.count)
    }

    /// `(c, s, r)` with `c·f + s·g = r` and `−s·f + c·g = 0`.
    @inline(__always)
    static func givens(_ f: Double, _ g: Double) -> (c: Double, s: Double, r: Double) {
        if g == 0 { return (1, 0, f) }
        if f == 0 { return (0, 1, g) }
        var r = (f * f + g * g).squareRoot()
        if !(r.isFinite && r > 1e-145) {
            // Squares over- or underflowed.
            let scale = max(abs(f), abs(g))
            let (fs, gs) = (f / scale, g / scale)
            r = scale * (fs * fs + gs * gs).squareRoot()
        }
        return (f / r, g / r, r)
    }

    mutating func run() {
        let n = d.count
        guard n > 1 else { return }
        var norm = 0.0
        for i in 0..<n {
            norm = max(norm, abs(d[i]) + abs(e[i]))
        }
        // A NaN or an infinity would never deflate: leave it to show in the result.
        guard norm > 0, norm.isFinite, d.allSatisfy(\.isFinite), e.allSatisfy(\.isFinite) else { return }
        // Entries below ε‖B‖ are round-off: dropping them perturbs B by no more than the bidiagonalization did.
        let negligible = Double.ulpOfOne * norm
        let maximumSweeps = 100 * n
        var sweeps = 0
        var hi = n - 1
        while hi > 0 && sweeps < maximumSweeps {
            for i in 0..<hi {
                let bound = Double.ulpOfOne * (abs(d[i]) + abs(d[i + 1]))
                if abs(e[i]) <= bound || abs(e[i]) <= negligible {
                    e[i] = 0
                }
            }
            if e[hi - 1] == 0 {
                hi -= 1
                continue
            }
            var lo = hi - 1
            while lo > 0 && e[lo - 1] != 0 {
                lo -= 1
            }
            // B[lo...hi] is unreduced; a zero on its diagonal must be chased out before QR can converge.
            if let zero = (lo...hi).first(where: { abs(d[$0]) <= negligible }) {
                d[zero] = 0
                if zero < hi {
                    chaseRow(zero, hi: hi)
                } else {
                    chaseColumn(hi, lo: lo)
                }
                continue
            }
            sweep(lo: lo, hi: hi)
            sweeps += 1
        }
    }

    /// With `d[i] = 0`, zeroes row i's superdiagonal by left rotations against rows i+1…hi.
    private mutating func chaseRow(_ i: Int, hi: Int) {
        var bulge = e[i]
        e[i] = 0
        for j in (i + 1)...hi {
            let (c, s, r) = Self.givens(d[j], bulge)
            d[j] = r
            if j < hi {
                bulge = -s * e[j]
                e[j] = c * e[j]
            }
            if let left {
                VectorKernels.rotate(left.column(j), left.column(i), left.rows, c: c, s: s)
            }
        }
    }

    /// With `d[hi] = 0`, zeroes column hi's superdiagonal by right rotations against columns hi−1…lo.
    private mutating func chaseColumn(_ hi: Int, lo: Int) {
        var bulge = e[hi - 1]
        e[hi - 1] = 0
        for j in stride(from: hi - 1, through: lo, by: -1) {
            let (c, s, r) = Self.givens(d[j], bulge)
            d[j] = r
            if j > lo {
                bulge = -s * e[j - 1]
                e[j - 1] = c * e[j - 1]
            }
            if let right {
                VectorKernels.rotate(right.column(j), right.column(hi), right.rows, c: c, s: s)
            }
        }
    }

    /// One Golub–Kahan step on the unreduced block `lo...hi`, with the Wilkinson shift of its trailing corner.
    private mutating func sweep(lo: Int, hi: Int) {
        // Eigenvalue of the trailing 2 × 2 of BᵀB that is closer to its last diagonal entry.
        let t11 = d[hi - 1] * d[hi - 1] + (hi - 1 > lo ? e[hi - 2] * e[hi - 2] : 0)
        let t12 = d[hi - 1] * e[hi - 1]
        let t22 = d[hi] * d[hi] + e[hi - 1] * e[hi - 1]
        let delta = (t11 - t22) / 2
        let root = (delta * delta + t12 * t12).squareRoot()
        let denominator = delta >= 0 ? delta + root : delta - root
        let shift = denominator != 0 ? t22 - t12 * t12 / denominator : t22

        var y = d[lo] * d[lo] - shift
        var z = d[lo] * e[lo]
        for k in lo..<hi {
            // Right rotation of columns k, k+1: clears z (the bulge above, or the shift's start).
            var (c, s, r) = Self.givens(y, z)
            if k > lo {
                e[k - 1] = r
            }
            let diagonal = c * d[k] + s * e[k]
            e[k] = c * e[k] - s * d[k]
            let below = s * d[k + 1]
            d[k + 1] = c * d[k + 1]
            rightCosines[k] = c
            rightSines[k] = s
            // Left rotation of rows k, k+1: clears the bulge below the diagonal.
            (c, s, r) = Self.givens(diagonal, below)
            d[k] = r
            let superdiagonal = e[k]
            e[k] = c * superdiagonal + s * d[k + 1]
            d[k + 1] = c * d[k + 1] - s * superdiagonal
            if k + 1 < hi {
                z = s * e[k + 1]
                e[k + 1] = c * e[k + 1]
                y = e[k]
            }
            leftCosines[k] = c
            leftSines[k] = s
        }
        if let left {
            Self.applyChain(left, lo: lo, hi: hi, cosines: leftCosines, sines: leftSines)
        }
        if let right {
            Self.applyChain(right, lo: lo, hi: hi, cosines: rightCosines, sines: rightSines)
        }
    }

    /// Applies the rotations `k = lo..<hi` of columns `(k, k+1)`, in order, to `buffer`.
    private static func applyChain(_ buffer: ColumnMajorBuffer, lo: Int, hi: Int, cosines: [Double], sines: [Double]) {
        cosines.withUnsafeBufferPointer { c in
            sines.withUnsafeBufferPointer { s in
                qk_rotate_chain(-1, buffer.base, Int32(buffer.rows), buffer.stride, Int32(lo), Int32(hi), c.baseAddress!,
                                s.baseAddress!)
            }
        }
    }
}
