import QKEngine

/// Median wall time of one `singularValueDecomposition` of a random `size × size` matrix, per size.
///
/// Each size decomposes `repetitions` different Gaussian matrices (fixed seed) after one warm-up call,
/// timing every call separately; compare with `Benchmarks/svd_numpy.py` (numpy.linalg.svd, same sizes).
func svdBenchmark(sizes: [Int] = [32, 64, 128, 256], repetitions: Int = 50) -> [(size: Int, medianMilliseconds: Double)] {
    var random = BenchmarkRandom(seed: 0x5EED)
    var results: [(size: Int, medianMilliseconds: Double)] = []
    let clock = ContinuousClock()
    for size in sizes {
        let inputs = (0..<max(repetitions, 1)).map { _ in
            Matrix(rows: size, columns: size, elements: (0..<(size * size)).map { _ in random.symmetricUniform() })
        }
        var checksum = singularValueDecomposition(inputs[0]).singularValues[0]
        var times: [Double] = []
        for input in inputs {
            let elapsed = clock.measure {
                checksum += singularValueDecomposition(input).singularValues[0]
            }
            times.append(Double(elapsed.components.attoseconds) * 1e-15 + Double(elapsed.components.seconds) * 1e3)
        }
        // Keeps the optimizer from discarding the decompositions.
        precondition(checksum.isFinite)
        times.sort()
        let median = times.count % 2 == 1
            ? times[times.count / 2]
            : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        results.append((size, median))
    }
    return results
}

/// SplitMix64, for reproducible benchmark inputs.
private struct BenchmarkRandom {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    /// Uniform in [−1, 1).
    mutating func symmetricUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / 4_503_599_627_370_496.0 - 1
    }
}
