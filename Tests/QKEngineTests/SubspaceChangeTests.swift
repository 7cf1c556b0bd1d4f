import Foundation
import Testing
import QKEngine

private func axes(_ indices: [Int], d: Int) -> Subspace {
    Subspace(vectors: indices.map { i in (0..<d).map { $0 == i ? Float(1) : 0 } }, dimension: d)
}

/// Axis-aligned subspaces: `query` and `key` spanned by the given coordinate axes.
private func head(_ query: [Int], _ key: [Int], sigma1: Double = 2, frobenius: Double = 3) -> HeadSubspaces {
    HeadSubspaces(query: axes(query, d: 8), key: axes(key, d: 8), sigma1: sigma1, frobenius: frobenius)
}

@Suite struct SubspaceChangeTests {
    @Test func emergedAndVanishedHaveNoCosines() {
        let emerged = SubspaceChange(from: nil, to: head([0], [1]))
        #expect(emerged.status == .emerged && emerged.rankFrom == nil && emerged.rankTo == 1)
        #expect(emerged.queryCosines.isEmpty && emerged.similarity == 0 && emerged.change == 1)
        #expect(emerged.sigma1Change == nil && emerged.queryAngleDegrees == nil)
        let vanished = SubspaceChange(from: head([0], [1]), to: nil)
        #expect(vanished.status == .vanished && vanished.rankTo == nil)
    }

    @Test func rankChangesComeBeforeSimilarity() {
        let grew = SubspaceChange(from: head([0], [1]), to: head([0, 2], [1, 3]))
        #expect(grew.status == .grew)
        #expect(abs(grew.similarity - 0.5) < 1e-9)
        #expect(grew.queryCosines.count == 1)
        let shrank = SubspaceChange(from: head([0, 2], [1, 3]), to: head([0], [1]))
        #expect(shrank.status == .shrank)
        // A rank step below the threshold falls through to the similarity test.
        let lenient = CompareThresholds(stableSimilarity: 0.4, rankChange: 2)
        #expect(SubspaceChange(from: head([0], [1]), to: head([0, 2], [1, 3]), thresholds: lenient).status == .stable)
    }

    @Test func stableAndRotatedFollowTheThreshold() {
        let same = SubspaceChange(from: head([0, 1], [2, 3], sigma1: 2, frobenius: 3),
                                  to: head([1, 0], [3, 2], sigma1: 2.5, frobenius: 2))
        #expect(same.status == .stable && abs(same.similarity - 1) < 1e-9)
        #expect(abs(same.sigma1Change! - 0.5) < 1e-12 && abs(same.frobeniusChange! + 1) < 1e-12)
        // Query side half kept, key side intact: (1/2 + 1) / 2 = 0.75.
        let half = SubspaceChange(from: head([0, 1], [2, 3]), to: head([0, 4], [2, 3]))
        #expect(abs(half.querySimilarity - 0.5) < 1e-9 && abs(half.keySimilarity - 1) < 1e-9)
        #expect(abs(half.similarity - 0.75) < 1e-9)
        #expect(half.status == .rotated)
        #expect(abs(half.queryAngleDegrees! - 90) < 1e-6 && abs(half.keyAngleDegrees!) < 1e-6)
        #expect(SubspaceChange(from: head([0, 1], [2, 3]), to: head([0, 4], [2, 3]),
                               thresholds: CompareThresholds(stableSimilarity: 0.75)).status == .stable)
    }
}
