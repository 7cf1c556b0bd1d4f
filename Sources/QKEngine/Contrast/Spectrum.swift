import Foundation

/// Rank selection and the sign convention applied to every singular pair.
public enum Spectrum {
    /// The smallest `r` with `σ₁² + … + σᵣ² ≥ energy · Σσᵢ²`, capped at `maxRank`; 0 for a zero spectrum.
    public static func rank(of singularValues: [Double], energy: Double, maxRank: Int? = nil) -> Int {
        let squares = singularValues.map { $0 * $0 }
        let total = squares.reduce(0, +)
        guard total > 0 else { return 0 }
        var cumulative = 0.0
        var r = squares.count
        for (i, s) in squares.enumerated() {
            cumulative += s
            // A relative slack keeps energy = 1 from demanding round-off-level tails.
            if cumulative >= energy * total * (1 - 1e-12) {
                r = i + 1
                break
            }
        }
        if let maxRank { r = min(r, maxRank) }
        return r
    }

    /// The sign (+1 or −1) that makes `(s·u, s·v)` follow qkcat's convention.
    ///
    /// The mean of `uᵢ·q` over the capture's queries must be non-negative, so a component
    /// points the way typical queries do. When that mean is zero to round-off, the entry of
    /// `uᵢ` largest in magnitude (the first of equals) is made positive instead.
    public static func conventionalSign(u: [Double], meanQuery: [Double]) -> Double {
        var projection = 0.0, queryNorm = 0.0
        for i in u.indices {
            projection += u[i] * meanQuery[i]
            queryNorm += meanQuery[i] * meanQuery[i]
        }
        if abs(projection) > 1e-10 * max(queryNorm.squareRoot(), 1e-300) {
            return projection < 0 ? -1 : 1
        }
        var largest = 0
        for i in u.indices where abs(u[i]) > abs(u[largest]) { largest = i }
        return u.isEmpty || u[largest] >= 0 ? 1 : -1
    }
}
