import Foundation
import Testing
import QKEngine
import QKTestSupport

private func subspace(_ name: String, _ columns: [[Double]]) -> FeatureSubspace {
    FeatureSubspace(name: name, vectors: columns.map { $0.map(Float.init) })
}

@Suite("CaptureAttribution")
struct CaptureAttributionTests {
    @Test("planted subspaces explain the queries fully; a subspace orthogonal to them explains nothing")
    func plantedExplainedFractions() throws {
        let directory = try TemporaryDirectory(prefix: "attr-planted")
        let capture = try SpanCapture(writingTo: directory.url, promptCount: 200)
        let reader = try CaptureReader.open(directory.url)
        let attributor = CaptureAttributor(reader: reader)
        for head in 0..<2 {
            let bases = capture.queryBases[head]
            let planted = try QuerySplitter(features: [subspace("category", bases["category"]!), subspace("order", bases["order"]!)],
                                            dimension: 16, method: .orthogonalize)
            let null = try QuerySplitter(features: [subspace("null", bases["null"]!)], dimension: 16, method: .orthogonalize)
            for prompt in stride(from: 0, to: 200, by: 17) {
                let full = try attributor.attribute(prompt: prompt, layer: 0, head: head, splitter: planted)
                #expect(abs(full.explainedFraction! - 1) < 1e-5)
                let none = try attributor.attribute(prompt: prompt, layer: 0, head: head, splitter: null)
                #expect(abs(none.explainedFraction!) < 1e-5)
                #expect(full.keys.count == SpanCapture.keysPerPrompt)
                for key in full.keys { #expect(abs(key.parts.reduce(key.residual, +) - key.total) < 1e-9 * max(1, abs(key.total))) }
            }
            let summary = try #require(try attributor.summarize(heads: [
                HeadSplitter(layer: 0, head: head, splitter: planted),
            ]).first)
            #expect(summary.promptCount == 200)
            #expect(abs(summary.explained.mean - 1) < 1e-4 && summary.explained.standardDeviation < 1e-4)
            let category = try #require(summary.features[0]), order = try #require(summary.features[1])
            // What the features add sums to the explained fraction, prompt by prompt, hence in the means too.
            #expect(abs(category.mean + order.mean - 1) < 1e-4)
            #expect(category.median > 0 && order.median > 0)
        }
    }

    @Test("the all-prompt summary matches per-prompt attributions", arguments: AttributionMethod.allCases)
    func summaryMatchesPerPrompt(method: AttributionMethod) throws {
        let directory = try TemporaryDirectory(prefix: "attr-summary")
        let capture = try SpanCapture(writingTo: directory.url, promptCount: 60)
        let reader = try CaptureReader.open(directory.url)
        let attributor = CaptureAttributor(reader: reader)
        // Overlapping, partial subspaces, so that fractions vary between prompts; one feature absent.
        var heads: [HeadSplitter] = []
        for head in [1, 0] {
            let bases = capture.queryBases[head]
            let mixed = (0..<16).map { 0.6 * bases["category"]![0][$0] + 0.8 * bases["order"]![1][$0] }
            let splitter = try QuerySplitter(
                features: [subspace("category", [bases["category"]![0]]), subspace("mixed", [mixed]),
                           FeatureSubspace(name: "absent", vectors: [])],
                dimension: 16, method: method)
            heads.append(HeadSplitter(layer: 0, head: head, splitter: splitter))
        }
        let summaries = try attributor.summarize(heads: heads, threads: 2, promptsPerBlock: 7)
        #expect(summaries.map(\.head) == [1, 0])
        for (summary, entry) in zip(summaries, heads) {
            let results = try (0..<60).map { try attributor.attribute(prompt: $0, layer: 0, head: entry.head, splitter: entry.splitter) }
            let explained = results.map { $0.explainedFraction! }
            let mean = explained.reduce(0, +) / 60
            let spread = (explained.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 60).squareRoot()
            #expect(summary.promptCount == 60)
            #expect(abs(summary.explained.mean - mean) < 1e-4)
            #expect(abs(summary.explained.standardDeviation - spread) < 1e-4)
            #expect(spread > 0.01)
            #expect(abs(summary.explained.minimum - explained.min()!) < 1e-4)
            #expect(abs(summary.explained.maximum - explained.max()!) < 1e-4)
            let sorted = explained.sorted()
            #expect(abs(summary.explained.median - (sorted[29] + sorted[30]) / 2) < 1e-4)
            for f in 0..<2 {
                let values = results.map { $0.featureFractions[f]! }
                #expect(abs(summary.features[f]!.mean - values.reduce(0, +) / 60) < 1e-4)
            }
            #expect(summary.features[2] == nil)
        }
    }

    @Test("prompt ids, layers, heads and dimensions the capture lacks are refused")
    func errors() throws {
        let directory = try TemporaryDirectory(prefix: "attr-errors")
        _ = try SpanCapture(writingTo: directory.url, promptCount: 5)
        let attributor = CaptureAttributor(reader: try CaptureReader.open(directory.url))
        #expect(throws: EngineError.invalidOption(name: "prompt", message: "the capture has no prompt 'p9' (its 5 prompts: p0, p1, p2, …)")) {
            try attributor.promptIndex(id: "p9")
        }
        #expect(try attributor.promptIndex(id: "p3") == 3)
        let splitter = try QuerySplitter(features: [FeatureSubspace(name: "a", vectors: [[Float](repeating: 0.25, count: 16)])],
                                         dimension: 16, method: .orthogonalize)
        #expect(throws: EngineError.invalidOption(name: "layer", message: "layer 1 is not in the capture (it holds: 0)")) {
            try attributor.attribute(prompt: 0, layer: 1, head: 0, splitter: splitter)
        }
        #expect(throws: EngineError.invalidOption(name: "head", message: "head 2 is outside 0..<2 (the capture's n_heads)")) {
            try attributor.summarize(heads: [HeadSplitter(layer: 0, head: 2, splitter: splitter)])
        }
        let narrow = try QuerySplitter(features: [FeatureSubspace(name: "a", vectors: [[1, 0]])], dimension: 2, method: .residualize)
        #expect(throws: EngineError.invalidOption(name: "features", message: "the subspaces have 2 dimensions, the capture's d_head is 16")) {
            try attributor.attribute(prompt: 0, layer: 0, head: 0, splitter: narrow)
        }
    }
}
