import Testing
@testable import QKEngine

@Suite("ContrastPlan")
struct ContrastPlanTests {
    /// Three prompts; feature "c" with values a=0, b=1; "o" only on keys of prompt 0.
    private func table() -> PromptTable {
        // Prompt 0: query a; keys a, b, b, (none).  Prompt 1: query b; keys b, a.  Prompt 2: no query label; keys a.
        PromptTable(
            promptIDs: ["p0", "p1", "p2"], keyStart: [0, 4, 6, 7],
            queryPositions: [9, 9, 9], keyPositions: [1, 2, 3, 4, 1, 2, 1],
            tokenStrings: ["t"], queryTokens: [0, 0, 0], keyTokens: [0, 0, 0, 0, 0, 0, 0],
            tokenCounts: [10, 10, 10], lineOffsets: [0, 10, 20],
            features: [
                FeatureLabels(name: "c", values: ["a", "b"], queryCodes: [0, 1, -1], keyCodes: [0, 1, 1, -1, 1, 0, 0]),
                FeatureLabels(name: "o", values: ["x"], queryCodes: [0, -1, -1], keyCodes: [0, 0, -1, -1, -1, -1, -1]),
            ])
    }

    @Test("pooled pairs, weights and contributing prompts")
    func pooled() throws {
        let plan = ContrastPlan(prompts: table(), features: ["c"], perValue: false)
        let spec = try #require(plan.specs.first)
        #expect(plan.specs.count == 1)
        #expect(spec.positivePairs == 2)   // (p0, key0), (p1, key4)
        #expect(spec.negativePairs == 3)   // (p0, key1), (p0, key2), (p1, key5)
        #expect(spec.prompts == [0, 1])
        #expect(spec.keyIndices == [0, 1, 2, 4, 5])
        #expect(spec.keyRangeStart == [0, 3, 5])
        let expected: [Double] = [0.5, -1.0 / 3, -1.0 / 3, 0.5, -1.0 / 3]
        #expect(zip(spec.keyWeights, expected).allSatisfy { abs($0 - $1) < 1e-15 })
    }

    @Test("per-value contrasts and unformable ones")
    func perValue() {
        let plan = ContrastPlan(prompts: table(), features: ["c", "o"], perValue: true)
        let formed = plan.specs.map { "\($0.feature)=\($0.value ?? "*")" }
        #expect(formed == ["c=*", "c=a", "c=b"])
        // "o": every labelled key shares the query's value: no negative pair, pooled and per value.
        #expect(plan.unformable.map { "\($0.feature)=\($0.value ?? "*") \($0.reason.rawValue)" }
                == ["o=* no negative pair", "o=x no negative pair"])
        let a = plan.specs[1]
        #expect(a.positivePairs == 1 && a.negativePairs == 2 && a.prompts == [0])
    }
}
