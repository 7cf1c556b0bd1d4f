import Testing
import QKEngine

@Suite("Spectrum")
struct SpectrumTests {
    @Test("rank is the smallest r holding the energy")
    func rankByEnergy() {
        // Squares 16, 9, 1: total 26; 99% needs 25.74 → r = 3; 90% needs 23.4 → r = 2; 50% → r = 1.
        #expect(Spectrum.rank(of: [4, 3, 1], energy: 0.99) == 3)
        #expect(Spectrum.rank(of: [4, 3, 1], energy: 0.9) == 2)
        #expect(Spectrum.rank(of: [4, 3, 1], energy: 0.5) == 1)
        #expect(Spectrum.rank(of: [4, 3, 1], energy: 0.99, maxRank: 1) == 1)
        // Squares 16, 9, 0.25: the first two hold 99.0099%, just enough.
        #expect(Spectrum.rank(of: [4, 3, 0.5], energy: 0.99) == 2)
        #expect(Spectrum.rank(of: [1, 1, 1, 1], energy: 1) == 4)
        #expect(Spectrum.rank(of: [0, 0], energy: 0.99) == 0)
        #expect(Spectrum.rank(of: [], energy: 0.99) == 0)
    }

    @Test("the sign follows the mean query, then the largest entry")
    func sign() {
        #expect(Spectrum.conventionalSign(u: [1, 0], meanQuery: [-2, 5]) == -1)
        #expect(Spectrum.conventionalSign(u: [0.6, 0.8], meanQuery: [1, 0]) == 1)
        // Mean query orthogonal to u: fall back to the largest-magnitude entry.
        #expect(Spectrum.conventionalSign(u: [0.6, -0.8], meanQuery: [0, 0]) == -1)
        #expect(Spectrum.conventionalSign(u: [0.8, -0.6], meanQuery: [0.6, 0.8]) == 1)
    }
}
