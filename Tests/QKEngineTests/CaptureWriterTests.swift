import Foundation
import Testing
@testable import QKEngine
import QKTestSupport

/// Largest relative error a dtype's rounding of a Float may introduce (half an ulp at its precision).
private func tolerance(_ dtype: TensorDType) -> Float {
    switch dtype {
    case .f32, .f64: return 0
    case .f16: return 1.0 / 2048
    case .bf16: return 1.0 / 256
    }
}

/// Every head's slice of `tensor`, concatenated back into `[N][H][d]` order.
private func decodeByHeads(_ tensor: TensorView) throws -> [Float] {
    let (rows, heads, width) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
    var result = [Float](repeating: .nan, count: rows * heads * width)
    var slice = [Float](repeating: .nan, count: rows * width)
    for head in 0..<heads {
        try slice.withUnsafeMutableBufferPointer { try tensor.decodeSlice(head: head, into: $0) }
        for row in 0..<rows {
            for i in 0..<width { result[(row * heads + head) * width + i] = slice[row * width + i] }
        }
    }
    return result
}

private func expectClose(_ actual: [Float], _ expected: [Float], relative: Float, _ what: String) {
    #expect(actual.count == expected.count, "\(what): count")
    let worst = zip(actual, expected).map { abs($0 - $1) / max(abs($1), 1e-30) }.max() ?? 0
    #expect(worst <= relative, "\(what): worst relative error \(worst) > \(relative)")
}

@Suite("Capture writer and reader round trip")
struct CaptureRoundTripTests {
    @Test("every dtype round-trips within its rounding", arguments: TensorDType.allCases)
    func roundTrip(dtype: TensorDType) throws {
        let directory = try TemporaryDirectory()
        let capture = try writeSmallCapture(to: directory.url, dtype: dtype, promptCount: 5, seed: 7)
        let reader = try CaptureReader.open(directory.url)

        #expect(reader.header == CaptureHeader(
            version: 1, model: SmallCapture.defaultModel, positional: "post-rope", layers: [1, 3],
            tensorFiles: ["activations.safetensors"], features: capture.features,
            datasetJSON: #"{"description":"test fixture","name":"small-lists"}"#))
        for layer in capture.layers {
            let tensors = try reader.layerTensors(layer)
            #expect(tensors.layer == layer)
            #expect(tensors.queries.dtype == dtype && tensors.keys.dtype == dtype)
            #expect(tensors.queries.name == "layers.\(layer).q" && tensors.queries.file == "activations.safetensors")
            #expect(tensors.queries.shape == [5, 4, 8])
            #expect(tensors.keys.shape == [capture.keyCount, 2, 8])
            #expect(tensors.queries.byteCount == 5 * 4 * 8 * dtype.byteSize)
            expectClose(try decodeByHeads(tensors.queries), capture.queries[layer]!, relative: tolerance(dtype), "q \(layer)")
            expectClose(try decodeByHeads(tensors.keys), capture.keys[layer]!, relative: tolerance(dtype), "k \(layer)")
            var all = [Float](repeating: .nan, count: tensors.keys.elementCount)
            try all.withUnsafeMutableBufferPointer { try tensors.keys.decodeAll(into: $0) }
            expectClose(all, capture.keys[layer]!, relative: tolerance(dtype), "k all \(layer)")
        }
    }

    @Test("the prompt table holds ids, positions, interned tokens and sorted label codes")
    func promptTable() throws {
        let directory = try TemporaryDirectory()
        let capture = try writeSmallCapture(to: directory.url, promptCount: 4)
        let table = try CaptureReader.open(directory.url).prompts

        #expect(table.promptIDs == ["p0", "p1", "p2", "p3"])
        #expect(table.keyStart == [0, 3, 5, 8, 11])
        #expect(table.keyCount == capture.keyCount)
        #expect(table.queryPositions == [5, 4, 5, 5])
        #expect(table.keyPositions == [1, 2, 3, 1, 2, 1, 2, 4, 1, 2, 3])
        #expect(table.tokenCounts == [6, 5, 6, 6])
        #expect(table.queryTokens.map { table.tokenStrings[Int($0)] } == [" fruit", " animal", " fruit", " fruit"])
        #expect(table.keyTokens.map { table.tokenStrings[Int($0)] }
            == [" apple", " dog", " pear", " cat", " plum", " fig", " cow", ":", " apple", " dog", " pear"])
        #expect(Set(table.tokenStrings).count == table.tokenStrings.count)
        #expect(table.prompt(ofKey: 0) == 0 && table.prompt(ofKey: 4) == 1 && table.prompt(ofKey: 5) == 2
            && table.prompt(ofKey: 10) == 3)

        #expect(table.features.map(\.name) == ["category", "order"])
        let category = try #require(table.labels(of: "category"))
        #expect(category.values == ["animal", "fruit"])
        #expect(category.queryCodes == [1, 0, 1, 1])
        #expect(category.keyCodes == [1, 0, 1, 0, 1, 1, 0, -1, 1, 0, 1])
        let order = try #require(table.labels(of: "order"))
        #expect(order.values == ["0", "1", "2"])
        #expect(order.queryCodes == [-1, -1, -1, -1])
        #expect(order.keyCodes == [0, 1, 2, 0, 1, 0, 1, -1, 0, 1, 2])
    }

    @Test("tokens(ofPrompt:) re-reads each prompt, odd characters included")
    func tokensOfPrompt() throws {
        let directory = try TemporaryDirectory()
        let odd = ["<s>", "\"quoted\"", "back\\slash", "new\nline", "tab\t", "\u{01}", "/slash", "émoji 🍐", "\u{2028}", "\u{08}\u{0C}\u{1F}"]
        let capture = try writeSmallCapture(to: directory.url, promptCount: 3) { capture in
            capture.prompts[1].tokens = odd
            capture.prompts[1].keys = [.init(position: 7, labels: ["category": "fruit \"pear\""])]
            capture.prompts[1].queryPosition = 8
        }
        let reader = try CaptureReader.open(directory.url)
        for p in 0..<3 { #expect(try reader.tokens(ofPrompt: p) == capture.prompts[p].tokens) }
        #expect(reader.prompts.labels(of: "category")!.values.contains("fruit \"pear\""))
        #expect(reader.prompts.tokenStrings[Int(reader.prompts.queryTokens[1])] == "\u{2028}")
        #expect(throws: EngineError.invalidOption(name: "prompt", message: "prompt 3 is outside 0..<3")) {
            try reader.tokens(ofPrompt: 3)
        }
    }

    @Test("grouped-query shapes: 8 query heads over 2 kv heads, and plain multi-head")
    func groupedQueryShapes() throws {
        for (heads, kvHeads) in [(8, 2), (3, 3), (6, 1)] {
            let directory = try TemporaryDirectory()
            let model = ModelInfo(name: "gqa", checkpoint: "step1", layerCount: 2, headCount: heads, kvHeadCount: kvHeads,
                                  headDimension: 16)
            let capture = try writeSmallCapture(to: directory.url, dtype: .bf16, model: model, layers: [0], promptCount: 3)
            let reader = try CaptureReader.open(directory.url)
            #expect(reader.header.model == model)
            #expect(reader.header.model.kvHead(forHead: heads - 1) == kvHeads - 1)
            let tensors = try reader.layerTensors(0)
            #expect(tensors.queries.shape == [3, heads, 16])
            #expect(tensors.keys.shape == [capture.keyCount, kvHeads, 16])
            expectClose(try decodeByHeads(tensors.keys), capture.keys[0]!, relative: tolerance(.bf16), "gqa keys")
        }
    }

    @Test("an unknown layer is refused")
    func unknownLayer() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        let reader = try CaptureReader.open(directory.url)
        #expect(throws: EngineError.invalidOption(name: "layer", message: "layer 2 is not in the capture (layers [1, 3])")) {
            try reader.layerTensors(2)
        }
    }

    @Test("the writer leaves only the capture's three files")
    func writerOutputFiles() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.url.path).sorted()
        #expect(names == ["activations.safetensors", "capture.json", "prompts.jsonl"])
        // The data area starts 8-byte aligned and the tensors are laid out q, k per layer.
        let (header, _) = try CaptureEditing.readSafetensors(directory.path("activations.safetensors"))
        let offsets = ["layers.1.q", "layers.1.k", "layers.3.q", "layers.3.k"].map {
            (header[$0] as! [String: Any])["data_offsets"] as! [Int]
        }
        #expect(offsets == [[0, 384], [384, 896], [896, 1280], [1280, 1792]])  // q: 3×4×8×4 bytes, k: 8×2×8×4
    }

    @Test("the writer refuses bad prompts with clear errors")
    func writerErrors() throws {
        let directory = try TemporaryDirectory()
        let model = ModelInfo(name: "m", checkpoint: "main", layerCount: 2, headCount: 2, kvHeadCount: 1, headDimension: 2)
        #expect(throws: EngineError.invalidOption(name: "model", message: "n_heads 3 is not a multiple of n_kv_heads 2")) {
            _ = try CaptureWriter(directory: directory.url, model: ModelInfo(name: "m", checkpoint: "c", layerCount: 1, headCount: 3,
                                  kvHeadCount: 2, headDimension: 2), positional: "none", layers: [0], features: [],
                                  dataset: nil, dtype: .f32)
        }
        #expect(throws: EngineError.invalidOption(name: "layers", message: "2 is outside [0, 2)")) {
            _ = try CaptureWriter(directory: directory.url, model: model, positional: "none", layers: [2], features: [],
                                  dataset: nil, dtype: .f32)
        }
        let writer = try CaptureWriter(directory: directory.url, model: model, positional: "none", layers: [1],
                                       features: [FeatureInfo(name: "f", kind: "semantic")], dataset: nil, dtype: .f16)
        #expect(throws: EngineError.invalidOption(name: "prompts", message: "a capture needs at least one prompt")) {
            try writer.finish()
        }
        let q: [Int: [Float]] = [1: [1, 2, 3, 4]]
        let k: [Int: [Float]] = [1: [1, 2]]
        try writer.addPrompt(id: "a", tokens: ["x", "y"], queryPosition: 1, queryLabels: ["f": "v"],
                             keys: [(0, ["f": "v"])], queries: q, keys: k)
        #expect(throws: EngineError.invalidOption(name: "id", message: "duplicate prompt id 'a'")) {
            try writer.addPrompt(id: "a", tokens: ["x"], queryPosition: 0, queryLabels: [:], keys: [(0, [:])], queries: q, keys: k)
        }
        #expect(throws: EngineError.invalidOption(name: "keys[0].position", message: "2 is outside tokens (2 tokens)")) {
            try writer.addPrompt(id: "b", tokens: ["x", "y"], queryPosition: 0, queryLabels: [:], keys: [(2, [:])], queries: q, keys: k)
        }
        #expect(throws: EngineError.invalidOption(name: "labels", message: "feature 'g' is not declared")) {
            try writer.addPrompt(id: "b", tokens: ["x"], queryPosition: 0, queryLabels: ["g": "v"], keys: [(0, [:])], queries: q, keys: k)
        }
        #expect(throws: EngineError.invalidOption(name: "queries[1]", message: "holds 3 floats, expected n_heads × d_head = 4")) {
            try writer.addPrompt(id: "b", tokens: ["x"], queryPosition: 0, queryLabels: [:], keys: [(0, [:])],
                                 queries: [1: [1, 2, 3]], keys: k)
        }
        #expect(throws: EngineError.invalidOption(name: "keys[1]",
                                                  message: "holds 2 floats, expected keys × n_kv_heads × d_head = 4")) {
            try writer.addPrompt(id: "b", tokens: ["x"], queryPosition: 0, queryLabels: [:], keys: [(0, [:]), (0, [:])],
                                 queries: q, keys: k)
        }
        try writer.finish()
        let reader = try CaptureReader.open(directory.url)
        #expect(reader.prompts.promptIDs == ["a"])
        #expect(reader.header.datasetJSON == nil && reader.header.positional == "none")
    }
}

@Suite("BF16 and F16 encoding")
struct TensorEncodingTests {
    @Test("BF16 rounds to nearest, ties to even", arguments: [
        (UInt32(0x3F80_0000), UInt16(0x3F80)),  // 1.0 exactly
        (0x3F80_7FFF, 0x3F80),  // just below half an ulp: down
        (0x3F80_8000, 0x3F80),  // tie, kept bit even: down
        (0x3F81_8000, 0x3F82),  // tie, kept bit odd: up to even
        (0x3F80_8001, 0x3F81),  // just above half: up
        (0xBF81_8000, 0xBF82),  // negative tie to even
        (0x3FFF_8000, 0x4000),  // carry into the exponent
        (0x7F7F_FFFF, 0x7F80),  // largest float rounds to +inf
        (0x7F7F_7FFF, 0x7F7F),  // stays finite below the tie
        (0x0000_8000, 0x0000),  // subnormal tie to even zero
        (0x8000_0000, 0x8000),  // -0
        (0x7F80_0000, 0x7F80),  // +inf
        (0x7F80_0001, 0x7FC0),  // NaN with a low payload stays NaN
        (0xFFC0_0000, 0xFFC0),  // negative quiet NaN
    ])
    func bf16Rounding(input: UInt32, expected: UInt16) {
        #expect(TensorEncoder.bf16Bits(Float(bitPattern: input)) == expected)
    }

    @Test("F16 encoding uses Float16's rounding and F64 widens exactly")
    func otherEncodings() {
        let values: [Float] = [1, -2.5, 65504, 1e-3, 0.1]
        let f16 = TensorEncoder.encode(values, as: .f16)
        for (index, value) in values.enumerated() {
            let bits = UInt16(f16[2 * index]) | UInt16(f16[2 * index + 1]) << 8
            #expect(bits == Float16(value).bitPattern)
        }
        let f64 = TensorEncoder.encode(values, as: .f64)
        #expect(f64.count == 40)
        let second = (0..<8).reduce(UInt64(0)) { $0 | UInt64(f64[8 + $1]) << (8 * $1) }
        #expect(Double(bitPattern: second) == -2.5)
    }
}
