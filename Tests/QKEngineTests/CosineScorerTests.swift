import Foundation
import Testing
import QKEngine

@Suite struct CosineScorerTests {
    @Test func scoresUnalignedLittleEndianBytesAsCosines() throws {
        let d = 13   // not a multiple of the kernel's width
        var noise = Noise(state: 21)
        let u = noise.vector(d).map(Float.init), v = noise.vector(d).map(Float.init)
        let scorer = try #require(CosineScorer(u: u.map { $0 * 4 }, v: v))
        let candidateU = u.map { -2 * $0 }   // the same direction, opposite sign, another length
        let candidateV = noise.vector(d).map(Float.init)
        // Bytes at an odd offset, as SQLite may hand out.
        var bytes = [UInt8](repeating: 0, count: 1 + 8 * d)
        for (i, x) in (candidateU + candidateV).enumerated() {
            withUnsafeBytes(of: x.bitPattern.littleEndian) { for (j, b) in $0.enumerated() { bytes[1 + 4 * i + j] = b } }
        }
        let (queryCosine, keyCosine) = bytes.withUnsafeBytes { raw in
            scorer.cosines(raw.baseAddress! + 1, raw.baseAddress! + 1 + 4 * d)
        }
        #expect(abs(queryCosine - 1) < 1e-6)
        let dot = zip(v, candidateV).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let norms = (v.reduce(0.0) { $0 + Double($1 * $1) } * candidateV.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
        #expect(abs(keyCosine - abs(dot) / norms) < 1e-6)
    }

    @Test func zeroVectorsScoreNothing() throws {
        #expect(CosineScorer(u: [0, 0], v: [1, 0]) == nil)
        let scorer = try #require(CosineScorer(u: [1, 0], v: [0, 1]))
        let zeros = [Float](repeating: 0, count: 2)
        let (q, k) = zeros.withUnsafeBytes { scorer.cosines($0.baseAddress!, $0.baseAddress!) }
        #expect(q == 0 && k == 0)
    }
}
