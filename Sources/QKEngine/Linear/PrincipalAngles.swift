/// Cosines of the principal angles between the column spaces of `a` (d × ra) and `b` (d × rb).
///
/// Both must have orthonormal columns; the cosines are the singular values of `aᵀb`: descending,
/// `min(ra, rb)` of them, clamped to `[0, 1]`. They ignore the sign and the choice of either basis.
public func principalAngleCosines(_ a: Matrix, _ b: Matrix) -> [Double] {
    precondition(a.rows == b.rows, "Principal angles need bases of the same dimension (\(a.rows) vs \(b.rows))")
    guard a.columns > 0, b.columns > 0 else { return [] }
    let cross = a.transposed() * b
    return singularValues(cross).map { min(max($0, 0), 1) }
}

/// An orthonormal basis `Q` (d × r) whose span holds the span of the r columns of `m` (d × r, r ≤ d).
///
/// Householder QR with R's diagonal made non-negative, so that for independent columns `Q` is the
/// Gram–Schmidt basis: column j of `Q` spans the same flag as the first j+1 columns of `m`. Dependent
/// columns still get orthonormal (arbitrary) completions.
public func orthonormalizedColumns(_ m: Matrix) -> Matrix {
    let (d, r) = (m.rows, m.columns)
    precondition(r <= d, "Cannot orthonormalize \(r) columns in dimension \(d)")
    guard r > 0 else { return m }
    let a = ColumnMajorBuffer(m)
    var taus = [Double](repeating: 0, count: r)
    var diagonal = [Double](repeating: 0, count: r)
    for k in 0..<r {
        let vector = a.column(k) + k
        let (beta, tau) = Householder.make(vector, d - k)
        diagonal[k] = beta
        taus[k] = tau
        if tau != 0 {
            for j in (k + 1)..<r {
                Householder.apply(vector, tau, to: a.column(j) + k, d - k)
            }
        }
    }
    let q = ColumnMajorBuffer(rows: d, columns: r)
    for j in 0..<r {
        q.column(j)[j] = 1
    }
    for k in stride(from: r - 1, through: 0, by: -1) where taus[k] != 0 {
        let vector = a.column(k) + k
        for j in k..<r {
            Householder.apply(vector, taus[k], to: q.column(j) + k, d - k)
        }
    }
    return q.matrix(columnOrder: Array(0..<r), signs: diagonal.map { $0 < 0 ? -1 : 1 })
}
