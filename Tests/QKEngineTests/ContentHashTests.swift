import Foundation
import Testing
import QKTestSupport
@testable import QKEngine

@Suite("ContentHash")
struct ContentHashTests {
    private func xxh64(_ bytes: [UInt8]) -> String {
        String(format: "%016llx", bytes.withUnsafeBytes { XXH64.hash($0) })
    }

    @Test("XXH64 matches the published algorithm on reference inputs")
    func referenceVectors() {
        // Values from the reference implementation (python-xxhash 3.x, seed 0).
        #expect(xxh64([]) == "ef46db3751d8e999")
        #expect(xxh64(Array("a".utf8)) == "d24ec4f1a98c6e5b")
        #expect(xxh64(Array("abc".utf8)) == "44bc2cf5ad770999")
        #expect(xxh64(Array("0123456789abcdef0123456789abcdef0123456789".utf8)) == "a76190c3acf08a1c")
        #expect(xxh64(Array((0..<3).flatMap { _ in (0...255).map(UInt8.init) })) == "8e03c838c596036f")
    }

    @Test("the capture hash follows content, not location")
    func captureHash() throws {
        let first = try TemporaryDirectory()
        let second = try TemporaryDirectory()
        let spec = SyntheticCaptureSpec(
            model: ModelInfo(name: "m", checkpoint: "c", layerCount: 1, headCount: 2, kvHeadCount: 1, headDimension: 8),
            layers: [0], promptCount: 20, keysPerPrompt: 3,
            features: [SyntheticFeature(name: "f", valueCount: 3, rank: 1)], seed: 9)
        try SyntheticCapture.write(spec, to: first.url)
        try SyntheticCapture.write(spec, to: second.url)
        let a = try ContentHash.of(capture: try CaptureReader.open(first.url))
        let b = try ContentHash.of(capture: try CaptureReader.open(second.url), threads: 1)
        #expect(a == b)
        #expect(a.hasPrefix("xxh64:") && a.count == 22)
        // One byte more in the prompts file changes it.
        let prompts = second.url.appendingPathComponent("prompts.jsonl")
        var text = try String(contentsOf: prompts, encoding: .utf8)
        text += "\n"
        try text.write(to: prompts, atomically: true, encoding: .utf8)
        #expect(try ContentHash.of(capture: try CaptureReader.open(second.url)) != a)
    }
}
