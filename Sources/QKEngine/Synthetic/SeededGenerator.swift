import Foundation

/// A small, fast, reproducible random generator (SplitMix64) for synthetic data and tests.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator whose stream depends on `seed` and every one of `parts`, e.g. (layer, head).
    public init(seed: UInt64, _ parts: Int...) {
        var mixer = SeededGenerator(seed: seed)
        var s = mixer.next()
        for part in parts {
            mixer = SeededGenerator(seed: s ^ UInt64(bitPattern: Int64(part)) &* 0x9E37_79B9_7F4A_7C15)
            s = mixer.next()
        }
        state = s
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
