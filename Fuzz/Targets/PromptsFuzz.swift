import Foundation
@testable import QKEngine

/// `prompts.jsonl` under a fixed small header: the line reader splits any bytes exactly as a plain split does
/// (through a 16-byte buffer that must slide and grow), the prompt table is built or the error names the line,
/// and an accepted table opens as a capture (with tensors of its shape) whose prompts re-read to the same tokens
/// and decompose without a crash.
enum PromptsFixture {
    static let model = ModelInfo(name: "fuzz/model", checkpoint: "main", layerCount: 1, headCount: 2, kvHeadCount: 1,
                                 headDimension: 2)
    static let header = CaptureHeader(
        version: 1, model: model, positional: "none", layers: [0], tensorFiles: ["activations.safetensors"],
        features: [FeatureInfo(name: "category", kind: "semantic"), FeatureInfo(name: "order", kind: "binding")],
        datasetJSON: nil)
    static let headerJSON = """
        {"format": "qk-capture", "version": 1, "positional": "none", "layers": [0],
         "model": {"name": "fuzz/model", "checkpoint": "main", "n_layers": 1, "n_heads": 2, "n_kv_heads": 1, "d_head": 2},
         "tensor_files": ["activations.safetensors"],
         "features": {"category": {"kind": "semantic"}, "order": {"kind": "binding"}}}
        """
    static let directory: URL = {
        let url = Scratch.directory.appendingPathComponent("capture")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try! Data(headerJSON.utf8).write(to: url.appendingPathComponent("capture.json"))
        return url
    }()

    /// Deterministic, varied values (a capture of zeros would decompose trivially).
    static func values(_ count: Int, seed: UInt32) -> [Float] {
        var state = seed &* 2_654_435_761 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 17; state ^= state << 5
            return Float(Int32(bitPattern: state) % 1000) / 250
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPrompts(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let directory = PromptsFixture.directory
    let url = directory.appendingPathComponent("prompts.jsonl")
    try! Data(bytes).write(to: url)

    // The line reader against a plain split.
    var expected = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
    if expected.last?.isEmpty == true { expected.removeLast() }
    let lines = try! LineReader(url: url, displayName: "prompts.jsonl", chunkSize: 16)
    var offset = 0
    for (index, line) in expected.enumerated() {
        guard let read = try! lines.next() else { fatalError("the line reader stopped before line \(index + 1)") }
        require(read.bytes == line && read.number == index + 1 && read.offset == offset, "line \(index + 1) differs")
        offset += line.count + 1
    }
    require(try! lines.next() == nil, "the line reader found a line past the end")

    let table: PromptTable
    do {
        table = try PromptTableReader.read(url, header: PromptsFixture.header)
    } catch {
        require(error.description.hasPrefix("prompts.jsonl"), "an error that does not name prompts.jsonl: \(error)")
        return 0
    }
    let prompts = table.promptCount, keys = table.keyCount
    require(table.keyStart.count == prompts + 1 && zip(table.keyStart, table.keyStart.dropFirst()).allSatisfy { $0 <= $1 },
            "keyStart is not a monotone prefix sum")
    for feature in table.features {
        require(feature.queryCodes.count == prompts && feature.keyCodes.count == keys, "label arrays of \(feature.name)")
        require((feature.queryCodes + feature.keyCodes).allSatisfy { $0 >= -1 && $0 < feature.values.count },
                "a label code outside \(feature.name)'s values")
    }

    let model = PromptsFixture.model
    let tensors = [
        SafetensorsTensor(name: "layers.0.q", dtype: .f32, shape: [prompts, model.headCount, model.headDimension],
                          values: PromptsFixture.values(prompts * model.headCount * model.headDimension, seed: 1)),
        SafetensorsTensor(name: "layers.0.k", dtype: .f32, shape: [keys, model.kvHeadCount, model.headDimension],
                          values: PromptsFixture.values(keys * model.kvHeadCount * model.headDimension, seed: 2)),
    ]
    try! SafetensorsWriter.write(tensors, to: directory.appendingPathComponent("activations.safetensors"))
    let reader: CaptureReader
    do {
        reader = try CaptureReader.open(directory)
    } catch {
        fatalError("an accepted prompts.jsonl with tensors of its shape does not open: \(error)")
    }
    require(reader.prompts == table, "the reader built another table")
    for prompt in 0..<prompts {
        let tokens = try! reader.tokens(ofPrompt: prompt)
        require(tokens.count == Int(table.tokenCounts[prompt]), "prompt \(prompt) re-reads to other tokens")
    }
    do {
        let decomposer = try Decomposer(reader: reader, options: DecompositionOptions(perValue: true, topCount: 2, threads: 1))
        for layer in try decomposer.runAll() {
            for decomposition in layer.decompositions {
                require(decomposition.rank <= model.headDimension && decomposition.rank == decomposition.components.count,
                        "rank \(decomposition.rank)")
                require(decomposition.singularValues.allSatisfy { $0 >= 0 && $0.isFinite }, "singular values")
            }
        }
    } catch {
        fatalError("decomposing an accepted capture failed: \(error)")
    }
    return 0
}
