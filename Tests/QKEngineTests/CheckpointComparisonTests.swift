import Testing
@testable import QKEngine

@Suite struct CheckpointComparisonTests {
    private struct Toy: ComparedDecomposition {
        var key: SubspaceKey
        var subspaces: HeadSubspaces
    }

    /// A rank-1 decomposition of head `head` along axis `axis` of a 4-dimensional head.
    private func toy(layer: Int = 0, head: Int, axis: Int) -> Toy {
        var basis: [Float] = [0, 0, 0, 0]
        basis[axis] = 1
        return Toy(key: SubspaceKey(layer: layer, head: head, feature: "category", value: nil),
                   subspaces: HeadSubspaces(u: [basis], v: [basis], dimension: 4, sigma1: 1, frobenius: 1))
    }

    @Test func everyKeyOfEitherSideIsComparedMostChangedFirst() {
        let rows = CheckpointComparison.compare([toy(head: 0, axis: 0), toy(head: 1, axis: 1)],
                                                [toy(head: 0, axis: 0), toy(head: 2, axis: 2)],
                                                thresholds: CompareThresholds())
        #expect(rows.map(\.key.head) == [1, 2, 0])
        #expect(rows.map(\.change.status) == [.vanished, .emerged, .stable])
    }

    @Test func permutedHeadsAreMatchedToTheirPartners() {
        let groups = CheckpointComparison.match([toy(head: 0, axis: 0), toy(head: 1, axis: 1), toy(head: 2, axis: 2)],
                                                [toy(head: 0, axis: 2), toy(head: 1, axis: 0), toy(head: 2, axis: 1)])
        #expect(groups.count == 1)
        #expect(groups[0].pairs.map { [$0.from.key.head, $0.to.key.head] } == [[0, 1], [1, 2], [2, 0]])
        #expect(abs(groups[0].total - 3) < 1e-9)
        #expect(groups[0].unmatchedFrom.isEmpty && groups[0].unmatchedTo.isEmpty)
    }
}
