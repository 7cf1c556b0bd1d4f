import Foundation
import Testing
@testable import QKEngine
import QKTestSupport

/// A way to break the default small capture (3 prompts with 3, 2 and 3 keys; layers 1 and 3 of 4;
/// 4 heads over 2 kv heads, d_head 8) and the exact error the reader must give.
struct Malformed: Sendable, CustomTestStringConvertible {
    var name: String
    var expected: EngineError
    var damage: @Sendable (URL) throws -> Void
    var testDescription: String { name }

    init(_ name: String, _ expected: EngineError, _ damage: @escaping @Sendable (URL) throws -> Void) {
        self.name = name
        self.expected = expected
        self.damage = damage
    }
}

private func header(_ field: String, _ message: String) -> EngineError {
    .invalidField(file: "capture.json", line: nil, field: field, message: message)
}

private func prompt(_ line: Int, _ field: String, _ message: String) -> EngineError {
    .invalidField(file: "prompts.jsonl", line: line, field: field, message: message)
}

private func setHeader(_ key: String, _ value: Any) -> @Sendable (URL) throws -> Void {
    nonisolated(unsafe) let value = value
    return { url in try CaptureEditing.editHeader(in: url) { $0[key] = value } }
}

private func removeHeader(_ key: String) -> @Sendable (URL) throws -> Void {
    { url in try CaptureEditing.editHeader(in: url) { $0.removeValue(forKey: key) } }
}

private func setModel(_ key: String, _ value: Any?) -> @Sendable (URL) throws -> Void {
    nonisolated(unsafe) let value = value
    return { url in try CaptureEditing.editHeaderObject(in: url, "model") { $0[key] = value } }
}

/// Replaces prompt line 2 (three valid-looking keys are not needed: these errors come before tensor checks).
private func line2(_ text: String) -> @Sendable (URL) throws -> Void {
    { url in try CaptureEditing.replacePromptLine(2, in: url, with: text) }
}

private let goodTokens = #""tokens": ["<s>", " cat", " plum", ":", " animal"]"#
private let goodQuery = #""query": {"position": 4, "labels": {"category": "animal"}}"#
private let goodKeys = #""keys": [{"position": 1}, {"position": 2}]"#

@Suite("Capture validation: capture.json")
struct CaptureHeaderValidationTests {
    static let cases: [Malformed] = [
        Malformed("capture.json missing", .io(path: "capture.json", message: "cannot open: No such file or directory")) {
            try FileManager.default.removeItem(at: $0.appendingPathComponent("capture.json"))
        },
        Malformed("not JSON", .invalidJSON(file: "capture.json", line: nil, message: "unexpected character '}' at column 12")) {
            try CaptureEditing.writeHeader(in: $0, #"{"format": }"#)
        },
        Malformed("not an object", .invalidContent(file: "capture.json", line: nil, message: "must hold a JSON object, found an array")) {
            try CaptureEditing.writeHeader(in: $0, "[]")
        },
        Malformed("format missing", header("format", "missing"), removeHeader("format")),
        Malformed("format wrong", header("format", #"expected "qk-capture", found "qk-capture2""#), setHeader("format", "qk-capture2")),
        Malformed("format not a string", header("format", "expected a string, found an integer"), setHeader("format", 3)),
        Malformed("version missing", header("version", "missing"), removeHeader("version")),
        Malformed("version a string", header("version", "expected an integer, found a string"), setHeader("version", "1")),
        Malformed("version fractional", header("version", "expected an integer, found a number"), setHeader("version", 1.5)),
        Malformed("version newer", .unsupportedVersion(file: "capture.json", found: 2, supported: 1), setHeader("version", 2)),
        Malformed("version zero", header("version", "must be at least 1, found 0"), setHeader("version", 0)),
        Malformed("model missing", header("model", "missing"), removeHeader("model")),
        Malformed("model not an object", header("model", "expected an object, found an array"), setHeader("model", [1])),
        Malformed("model.name missing", header("model.name", "missing"), setModel("name", nil)),
        Malformed("model.checkpoint not a string", header("model.checkpoint", "expected a string, found an integer"),
                  setModel("checkpoint", 5)),
        Malformed("model.n_layers missing", header("model.n_layers", "missing"), setModel("n_layers", nil)),
        Malformed("model.n_heads zero", header("model.n_heads", "must be positive, found 0"), setModel("n_heads", 0)),
        Malformed("model.n_kv_heads negative", header("model.n_kv_heads", "must be positive, found -2"), setModel("n_kv_heads", -2)),
        Malformed("model.d_head a boolean", header("model.d_head", "expected an integer, found a boolean"), setModel("d_head", true)),
        Malformed("model.d_head fractional", header("model.d_head", "expected an integer, found a number"), setModel("d_head", 8.5)),
        Malformed("n_heads not a multiple of n_kv_heads", header("model.n_heads", "4 is not a multiple of model.n_kv_heads (3)"),
                  setModel("n_kv_heads", 3)),
        Malformed("positional missing", header("positional", "missing"), removeHeader("positional")),
        Malformed("positional unknown", header("positional", #"expected one of post-rope, pre-rope, none; found "rope""#),
                  setHeader("positional", "rope")),
        Malformed("layers missing", header("layers", "missing"), removeHeader("layers")),
        Malformed("layers not an array", header("layers", "expected an array, found a string"), setHeader("layers", "1")),
        Malformed("layers empty", header("layers", "must list at least one layer"), setHeader("layers", [Int]())),
        Malformed("layer not an integer", header("layers[1]", "expected an integer, found a string"), setHeader("layers", [1, "3"] as [Any])),
        Malformed("layer too large", header("layers[1]", "4 is outside [0, 4) (model.n_layers)"), setHeader("layers", [1, 4])),
        Malformed("layer negative", header("layers[0]", "-1 is outside [0, 4) (model.n_layers)"), setHeader("layers", [-1, 3])),
        Malformed("layer twice", header("layers[2]", "layer 1 is listed twice"), setHeader("layers", [1, 3, 1])),
        Malformed("tensor_files missing", header("tensor_files", "missing"), removeHeader("tensor_files")),
        Malformed("tensor_files empty", header("tensor_files", "must list at least one file"), setHeader("tensor_files", [String]())),
        Malformed("tensor file not a string", header("tensor_files[0]", "expected a string, found an integer"), setHeader("tensor_files", [3])),
        Malformed("tensor file outside the directory",
                  header("tensor_files[0]", "'../activations.safetensors' must be a relative path inside the capture directory"),
                  setHeader("tensor_files", ["../activations.safetensors"])),
        Malformed("tensor file absolute", header("tensor_files[0]", "'/tmp/a.safetensors' must be a relative path inside the capture directory"),
                  setHeader("tensor_files", ["/tmp/a.safetensors"])),
        Malformed("tensor file twice", header("tensor_files[1]", "'activations.safetensors' is listed twice"),
                  setHeader("tensor_files", ["activations.safetensors", "activations.safetensors"])),
        Malformed("tensor file absent", header("tensor_files[1]", "'more.safetensors' does not exist"),
                  setHeader("tensor_files", ["activations.safetensors", "more.safetensors"])),
        Malformed("features missing", header("features", "missing"), removeHeader("features")),
        Malformed("features not an object", header("features", "expected an object, found an array"), setHeader("features", ["category"])),
        Malformed("feature not an object", header("features.category", "expected an object, found a string"),
                  setHeader("features", ["category": "semantic", "order": ["kind": "binding"]])),
        Malformed("feature kind missing", header("features.order.kind", "missing"),
                  setHeader("features", ["category": ["kind": "semantic"], "order": ["description": "x"]])),
        Malformed("feature kind not a string", header("features.category.kind", "expected a string, found an integer"),
                  setHeader("features", ["category": ["kind": 1], "order": ["kind": "binding"]])),
        Malformed("feature description not a string", header("features.order.description", "expected a string, found an integer"),
                  setHeader("features", ["category": ["kind": "semantic"], "order": ["kind": "binding", "description": 3]])),
        Malformed("dataset not an object", header("dataset", "expected an object, found a string"), setHeader("dataset", "lists")),
    ]

    @Test("each malformed capture.json gives its exact error", arguments: cases)
    func malformed(_ testCase: Malformed) throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        try testCase.damage(directory.url)
        #expect(throws: testCase.expected) { try CaptureReader.open(directory.url) }
    }

    @Test("optional fields: no dataset, a null dataset, no description, unknown extra fields")
    func optionalFields() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        try CaptureEditing.editHeader(in: directory.url) { header in
            header.removeValue(forKey: "dataset")
            header["extra"] = ["anything": 1]
            header["features"] = ["category": ["kind": "semantic"], "order": ["kind": "binding", "description": "slot"]]
        }
        var reader = try CaptureReader.open(directory.url)
        #expect(reader.header.datasetJSON == nil)
        #expect(reader.header.features == [FeatureInfo(name: "category", kind: "semantic"),
                                           FeatureInfo(name: "order", kind: "binding", description: "slot")])
        try CaptureEditing.editHeader(in: directory.url) { $0["dataset"] = NSNull() }
        reader = try CaptureReader.open(directory.url)
        #expect(reader.header.datasetJSON == nil)
        try CaptureEditing.editHeader(in: directory.url) { $0["dataset"] = ["b": [1, 2.5, "x/y"], "a": ["z": NSNull(), "y": true]] }
        reader = try CaptureReader.open(directory.url)
        #expect(reader.header.datasetJSON == #"{"a":{"y":true,"z":null},"b":[1,2.5,"x/y"]}"#)
    }

    @Test("model.attention_scale (optional, written by qkcapture.capture_hf) is accepted and ignored")
    func attentionScaleIsIgnored() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        let before = try CaptureReader.open(directory.url).header.model
        try CaptureEditing.editHeaderObject(in: directory.url, "model") { $0["attention_scale"] = 0.35355339059327373 }
        let reader = try CaptureReader.open(directory.url)
        #expect(reader.header.model == before)
    }
}

@Suite("Capture validation: prompts.jsonl")
struct CapturePromptValidationTests {
    static let cases: [Malformed] = [
        Malformed("prompts.jsonl missing", .io(path: "prompts.jsonl", message: "cannot open: No such file or directory")) {
            try FileManager.default.removeItem(at: $0.appendingPathComponent("prompts.jsonl"))
        },
        Malformed("no prompts", .invalidContent(file: "prompts.jsonl", line: nil, message: "holds no prompts")) {
            try CaptureEditing.writePrompts(in: $0, "\n  \n\r\n")
        },
        Malformed("a line cut short", .invalidJSON(file: "prompts.jsonl", line: 2, message: "unexpected end of input at column 8"),
                  line2(#"{"id": "#)),
        Malformed("a line not an object",
                  .invalidContent(file: "prompts.jsonl", line: 2, message: "a prompt must be a JSON object, found an array"), line2("[1]")),
        Malformed("id missing", prompt(2, "id", "missing"), line2("{\(goodTokens), \(goodQuery), \(goodKeys)}")),
        Malformed("id not a string", prompt(2, "id", "expected a string, found an integer"),
                  line2(#"{"id": 7, \#(goodTokens), \#(goodQuery), \#(goodKeys)}"#)),
        Malformed("id repeated", prompt(3, "id", "duplicate id 'p0' (first on line 1)")) {
            try CaptureEditing.editPromptLine(3, in: $0) { $0["id"] = "p0" }
        },
        Malformed("tokens missing", prompt(2, "tokens", "missing"), line2(#"{"id": "p1", \#(goodQuery), \#(goodKeys)}"#)),
        Malformed("tokens not an array", prompt(2, "tokens", "expected an array, found a string"),
                  line2(#"{"id": "p1", "tokens": "cat", \#(goodQuery), \#(goodKeys)}"#)),
        Malformed("a token not a string", prompt(2, "tokens[1]", "expected a string, found null"),
                  line2(#"{"id": "p1", "tokens": ["<s>", null, "x", "y", "z"], \#(goodQuery), \#(goodKeys)}"#)),
        Malformed("query missing", prompt(2, "query", "missing"), line2(#"{"id": "p1", \#(goodTokens), \#(goodKeys)}"#)),
        Malformed("query not an object", prompt(2, "query", "expected an object, found an integer"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": 4, \#(goodKeys)}"#)),
        Malformed("query.position missing", prompt(2, "query.position", "missing"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"labels": {}}, \#(goodKeys)}"#)),
        Malformed("query.position fractional", prompt(2, "query.position", "expected an integer, found a number"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": 4.0}, \#(goodKeys)}"#)),
        Malformed("query.position past the tokens", prompt(2, "query.position", "5 is outside tokens (5 tokens)"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": 5}, \#(goodKeys)}"#)),
        Malformed("query.position negative", prompt(2, "query.position", "-1 is outside tokens (5 tokens)"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": -1}, \#(goodKeys)}"#)),
        Malformed("query.labels not an object", prompt(2, "query.labels", "expected an object, found a string"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": 4, "labels": "animal"}, \#(goodKeys)}"#)),
        Malformed("a query label not a string", prompt(2, "query.labels.category", "expected a string, found an integer"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": 4, "labels": {"category": 3}}, \#(goodKeys)}"#)),
        Malformed("a query label undeclared", prompt(2, "query.labels.colour", "feature 'colour' is not declared in capture.json"),
                  line2(#"{"id": "p1", \#(goodTokens), "query": {"position": 4, "labels": {"colour": "red"}}, \#(goodKeys)}"#)),
        Malformed("keys missing", prompt(2, "keys", "missing"), line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery)}"#)),
        Malformed("keys not an array", prompt(2, "keys", "expected an array, found an object"),
                  line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery), "keys": {"position": 1}}"#)),
        Malformed("a key not an object", prompt(2, "keys[1]", "expected an object, found an integer"),
                  line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery), "keys": [{"position": 1}, 2]}"#)),
        Malformed("a key position missing", prompt(2, "keys[0].position", "missing"),
                  line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery), "keys": [{"labels": {}}, {"position": 2}]}"#)),
        Malformed("a key position past the tokens", prompt(3, "keys[2].position", "40 is outside tokens (6 tokens)")) {
            try CaptureEditing.editPromptLine(3, in: $0) { line in
                var keys = line["keys"] as! [[String: Any]]
                keys[2]["position"] = 40
                line["keys"] = keys
            }
        },
        Malformed("a key label not a string", prompt(2, "keys[1].labels.order", "expected a string, found an integer"),
                  line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery), "keys": [{"position": 1}, {"position": 2, "labels": {"order": 1}}]}"#)),
        Malformed("a key label undeclared", prompt(2, "keys[0].labels.size", "feature 'size' is not declared in capture.json"),
                  line2(#"{"id": "p1", \#(goodTokens), \#(goodQuery), "keys": [{"position": 1, "labels": {"size": "big"}}, {"position": 2}]}"#)),
        Malformed("errors count physical lines, blank ones included", prompt(4, "id", "duplicate id 'p0' (first on line 1)")) {
            let lines = try CaptureEditing.lines(of: $0.appendingPathComponent("prompts.jsonl"))
            try CaptureEditing.writePrompts(in: $0, [lines[0], "", "   ", lines[0]].joined(separator: "\n"))
        },
    ]

    @Test("each malformed prompts.jsonl gives its exact error", arguments: cases)
    func malformed(_ testCase: Malformed) throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        try testCase.damage(directory.url)
        #expect(throws: testCase.expected) { try CaptureReader.open(directory.url) }
    }

    @Test("blank lines, CRLF endings and a missing final newline are accepted")
    func tolerantLines() throws {
        let directory = try TemporaryDirectory()
        let capture = try writeSmallCapture(to: directory.url)
        let reference = try CaptureReader.open(directory.url).prompts
        let lines = try CaptureEditing.lines(of: directory.path("prompts.jsonl"))
        try CaptureEditing.writePrompts(in: directory.url, "\n" + lines[0] + "\r\n \t\n\n" + lines[1] + "\n" + lines[2])
        let reader = try CaptureReader.open(directory.url)
        var table = reader.prompts
        #expect(table.lineOffsets == [1, lines[0].utf8.count + 7, lines[0].utf8.count + lines[1].utf8.count + 8])
        table.lineOffsets = reference.lineOffsets
        #expect(table == reference)
        for p in 0..<3 { #expect(try reader.tokens(ofPrompt: p) == capture.prompts[p].tokens) }
    }

    @Test("a line reader splits lines that straddle its buffer and reports offsets")
    func lineReaderChunks() throws {
        let directory = try TemporaryDirectory()
        let text = "short\n" + String(repeating: "x", count: 100) + "\n\nlast"
        try Data(text.utf8).write(to: directory.path("lines"))
        let reader = try LineReader(url: directory.path("lines"), displayName: "lines", chunkSize: 16)
        var lines: [(String, Int, Int)] = []
        while let line = try reader.next() { lines.append((String(decoding: line.bytes, as: UTF8.self), line.number, line.offset)) }
        #expect(lines.map(\.0) == ["short", String(repeating: "x", count: 100), "", "last"])
        #expect(lines.map(\.1) == [1, 2, 3, 4])
        #expect(lines.map(\.2) == [0, 6, 107, 108])
    }
}

@Suite("Capture validation: tensors")
struct CaptureTensorValidationTests {
    static let tensorFile = "activations.safetensors"

    static let cases: [Malformed] = [
        Malformed("one more prompt than queries",
                  .invalidTensor(file: tensorFile, tensor: "layers.1.q", message: "shape [3, 4, 8] does not match [P, n_heads, d_head] = [4, 4, 8]")) {
            let lines = try CaptureEditing.lines(of: $0.appendingPathComponent("prompts.jsonl"))
            try CaptureEditing.writePrompts(in: $0, (lines + [#"{"id": "extra", "tokens": ["a"], "query": {"position": 0}, "keys": []}"#])
                .joined(separator: "\n"))
        },
        Malformed("one key fewer than the key tensor",
                  .invalidTensor(file: tensorFile, tensor: "layers.1.k", message: "shape [8, 2, 8] does not match [K, n_kv_heads, d_head] = [7, 2, 8]")) {
            try CaptureEditing.editPromptLine(1, in: $0) { line in line["keys"] = Array((line["keys"] as! [Any]).prefix(2)) }
        },
        Malformed("kv heads declared differently",
                  .invalidTensor(file: tensorFile, tensor: "layers.1.k", message: "shape [8, 2, 8] does not match [K, n_kv_heads, d_head] = [8, 4, 8]"),
                  setModel("n_kv_heads", 4)),
        Malformed("d_head declared differently",
                  .invalidTensor(file: tensorFile, tensor: "layers.1.q", message: "shape [3, 4, 8] does not match [P, n_heads, d_head] = [3, 4, 16]"),
                  setModel("d_head", 16)),
        Malformed("a declared layer without tensors",
                  .invalidTensor(file: tensorFile, tensor: "layers.2.q", message: "missing (capture.json lists its layer)"),
                  setHeader("layers", [1, 2])),
        Malformed("a key tensor missing",
                  .invalidTensor(file: tensorFile, tensor: "layers.3.k", message: "missing (capture.json lists its layer)")) {
            try CaptureEditing.editSafetensorsHeader($0.appendingPathComponent(tensorFile)) { $0.removeValue(forKey: "layers.3.k") }
        },
        Malformed("a tensor in two files holds the rows of both",
                  .invalidTensor(file: "activations.safetensors, copy.safetensors", tensor: "layers.1.q",
                                 message: "shape [6, 4, 8] does not match [P, n_heads, d_head] = [3, 4, 8]")) {
            try FileManager.default.copyItem(at: $0.appendingPathComponent(tensorFile), to: $0.appendingPathComponent("copy.safetensors"))
            try CaptureEditing.editHeader(in: $0) { $0["tensor_files"] = [tensorFile, "copy.safetensors"] }
        },
        Malformed("a q tensor of integers",
                  .invalidTensor(file: tensorFile, tensor: "layers.3.q",
                                 message: "dtype I32 is not supported for q/k tensors (F32, F16, BF16 or F64)")) {
            try CaptureEditing.editSafetensorsHeader($0.appendingPathComponent(tensorFile)) { header in
                var entry = header["layers.3.q"] as! [String: Any]
                entry["dtype"] = "I32"
                header["layers.3.q"] = entry
            }
        },
        Malformed("a tensor's bytes past the end of the file",
                  .invalidTensor(file: tensorFile, tensor: "layers.3.k", message: "data_offsets [1280, 1800] lie outside the data area (1792 bytes)")) {
            try CaptureEditing.editSafetensorsHeader($0.appendingPathComponent(tensorFile)) { header in
                var entry = header["layers.3.k"] as! [String: Any]
                entry["data_offsets"] = [1280, 1800]
                header["layers.3.k"] = entry
            }
        },
        Malformed("a header length beyond the file",
                  .invalidContent(file: tensorFile, line: nil, message: "header length 4294967584 exceeds the file (2088 bytes)")) {
            // The header is 288 bytes; setting byte 4 adds 2^32 to its length.
            try CaptureEditing.patchBytes($0.appendingPathComponent(tensorFile), at: 4, with: [1])
        },
    ]

    @Test("each malformed tensor layout gives its exact error", arguments: cases)
    func malformed(_ testCase: Malformed) throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        try testCase.damage(directory.url)
        #expect(throws: testCase.expected) { try CaptureReader.open(directory.url) }
    }

    @Test("tensors spread over two files are found in either")
    func twoFiles() throws {
        let directory = try TemporaryDirectory()
        let capture = try writeSmallCapture(to: directory.url, dtype: .f16)
        let first = directory.path("activations.safetensors")
        let (_, data) = try CaptureEditing.readSafetensors(first)
        let layer3 = try CaptureEditing.readSafetensors(first).header.filter { $0.key.hasPrefix("layers.3.") }
        // The second file holds layer 3 only; the first keeps its bytes but no longer lists layer 3.
        try CaptureEditing.writeSafetensors(directory.path("late.safetensors"),
                                            headerText: String(decoding: try JSONSerialization.data(withJSONObject: layer3), as: UTF8.self),
                                            data: data)
        try CaptureEditing.editSafetensorsHeader(first) { header in
            header.removeValue(forKey: "layers.3.q")
            header.removeValue(forKey: "layers.3.k")
        }
        try CaptureEditing.editHeader(in: directory.url) { $0["tensor_files"] = ["activations.safetensors", "late.safetensors"] }
        let reader = try CaptureReader.open(directory.url)
        #expect(reader.header.tensorFiles == ["activations.safetensors", "late.safetensors"])
        let tensors = try reader.layerTensors(3)
        #expect(tensors.queries.file == "late.safetensors" && tensors.keys.file == "late.safetensors")
        #expect(try reader.layerTensors(1).queries.file == "activations.safetensors")
        var keys = [Float](repeating: .nan, count: tensors.keys.elementCount)
        try keys.withUnsafeMutableBufferPointer { try tensors.keys.decodeAll(into: $0) }
        let worst = zip(keys, capture.keys[3]!).map { abs($0 - $1) / abs($1) }.max()!
        #expect(worst <= 1.0 / 2048)
    }

    @Test("a tensor stored by rows in files of sub-folders (joined shards) reads as one")
    func piecesInSubfolders() throws {
        let directory = try TemporaryDirectory()
        let capture = try writeSmallCapture(to: directory.url) { capture in
            capture.keys[1]![(4 * 2 + 1) * 8 + 5] = .nan  // layer 1: key 4 (in the second piece), kv head 1, i 5
        }
        try FileManager.default.removeItem(at: directory.path("activations.safetensors"))
        // Prompt 0 (3 keys) in the first shard, prompts 1 and 2 (5 keys) in the second.
        let parts = [("shards/a/activations.safetensors", 0..<1, 0..<3), ("shards/b/activations.safetensors", 1..<3, 3..<8)]
        for (name, prompts, keys) in parts {
            let tensors = capture.layers.flatMap { layer in [
                SafetensorsTensor(name: "layers.\(layer).q", dtype: .f32, shape: [prompts.count, 4, 8],
                                  values: Array(capture.queries[layer]![(prompts.lowerBound * 32)..<(prompts.upperBound * 32)])),
                SafetensorsTensor(name: "layers.\(layer).k", dtype: .f32, shape: [keys.count, 2, 8],
                                  values: Array(capture.keys[layer]![(keys.lowerBound * 16)..<(keys.upperBound * 16)])),
            ] }
            try FileManager.default.createDirectory(at: directory.path(name).deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try SafetensorsWriter.write(tensors, to: directory.path(name))
        }
        try CaptureEditing.editHeader(in: directory.url) { $0["tensor_files"] = parts.map(\.0) }
        let reader = try CaptureReader.open(directory.url)
        let tensors = try reader.layerTensors(3)
        #expect(tensors.queries.shape == [3, 4, 8] && tensors.keys.shape == [8, 2, 8])
        #expect(tensors.keys.file == "shards/a/activations.safetensors, shards/b/activations.safetensors")
        #expect(tensors.keys.byteCount == 8 * 2 * 8 * 4)
        var all = [Float](repeating: .nan, count: tensors.queries.elementCount)
        try all.withUnsafeMutableBufferPointer { try tensors.queries.decodeAll(into: $0) }
        #expect(all == capture.queries[3]!)
        var head1 = [Float](repeating: .nan, count: 8 * 8)
        try head1.withUnsafeMutableBufferPointer { try tensors.keys.decodeSlice(head: 1, into: $0) }
        let keys3 = capture.keys[3]!
        var expected: [Float] = []
        for key in 0..<8 {
            let start: Int = (key * 2 + 1) * 8
            expected += keys3[start..<(start + 8)]
        }
        #expect(head1 == expected)
        var across = [Float](repeating: .nan, count: 3 * 16)  // keys 2..<5 straddle the two files
        try across.withUnsafeMutableBufferPointer { try tensors.keys.decodeRows(2..<5, into: $0) }
        #expect(across == Array(capture.keys[3]![(2 * 16)..<(5 * 16)]))
        let planted = try reader.layerTensors(1).keys
        let error = EngineError.nonFiniteValue(file: "shards/b/activations.safetensors", tensor: "layers.1.k", index: [4, 1, 5])
        #expect(throws: error) { try head1.withUnsafeMutableBufferPointer { try planted.decodeSlice(head: 1, into: $0) } }
        var rows = [Float](repeating: 0, count: 8 * 16)
        #expect(throws: error) { try rows.withUnsafeMutableBufferPointer { try planted.decodeAll(into: $0) } }
    }

    @Test("pieces of one tensor must share its dtype and trailing axes")
    func piecesDisagree() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url)
        try FileManager.default.createDirectory(at: directory.path("more"), withIntermediateDirectories: true)
        try SafetensorsWriter.write([SafetensorsTensor(name: "layers.1.q", dtype: .f16, shape: [1, 4, 8],
                                                       values: [Float](repeating: 0, count: 32))],
                                    to: directory.path("more/extra.safetensors"))
        try CaptureEditing.editHeader(in: directory.url) { $0["tensor_files"] = ["activations.safetensors", "more/extra.safetensors"] }
        #expect(throws: EngineError.invalidTensor(file: "more/extra.safetensors", tensor: "layers.1.q", message:
            "a piece of a tensor also in 'activations.safetensors' must share its dtype and all axes but the first "
            + "(F16 [1, 4, 8] vs F32 [3, 4, 8])")) { try CaptureReader.open(directory.url) }
    }

    @Test("a NaN planted in a capture is reported with its tensor and index")
    func plantedNaN() throws {
        let directory = try TemporaryDirectory()
        try writeSmallCapture(to: directory.url, dtype: .bf16) { capture in
            capture.queries[3]![(1 * 4 + 2) * 8 + 3] = .nan  // prompt 1, head 2, i 3
        }
        let reader = try CaptureReader.open(directory.url)
        let queries = try reader.layerTensors(3).queries
        var slice = [Float](repeating: 0, count: 3 * 8)
        #expect(throws: EngineError.nonFiniteValue(file: "activations.safetensors", tensor: "layers.3.q", index: [1, 2, 3])) {
            try slice.withUnsafeMutableBufferPointer { try queries.decodeSlice(head: 2, into: $0) }
        }
        #expect(EngineError.nonFiniteValue(file: "activations.safetensors", tensor: "layers.3.q", index: [1, 2, 3]).description
            == "activations.safetensors: tensor 'layers.3.q': non-finite value at [1, 2, 3]")
    }

    @Test("error messages name the file and the line, tensor or field")
    func messages() {
        #expect(prompt(17, "keys[2].position", "40 is outside tokens (12 tokens)").description
            == "prompts.jsonl:17: field 'keys[2].position': 40 is outside tokens (12 tokens)")
        #expect(EngineError.unsupportedVersion(file: "capture.json", found: 2, supported: 1).description
            == "capture.json: capture format version 2 is newer than this qkcat reads (1); upgrade qkcat")
        #expect(EngineError.invalidContent(file: "prompts.jsonl", line: nil, message: "holds no prompts").description
            == "prompts.jsonl: holds no prompts")
    }
}

@Suite("Capture JSON parsing")
struct CaptureJSONTests {
    private func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test("values keep integers apart from numbers and decode escapes")
    func values() throws {
        #expect(try parse(#" {"a": [1, -0, 1.0, 2e3, true, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83c\udf50"} "#)
            == .object(["a": .array([.integer(1), .integer(0), .number(1), .number(2000), .bool(true), .null]),
                        "b": .string("x\"\\/\u{8}\u{c}\n\r\té🍐")]))
        #expect(try parse("123456789012345678901234567890") == .number(123456789012345678901234567890))
    }

    @Test("syntax errors are reported with their column", arguments: [
        ("01", "leading zero in a number at column 2"),
        ("[1,]", "unexpected character ']' at column 4"),
        ("{\"a\" 1}", "expected ':', found character '1' at column 6"),
        ("\"a\u{01}\"", "unescaped control character in a string at column 3"),
        (#""\ud800""#, "unpaired surrogate escape at column 8"),
        (#""\x""#, "invalid escape '\\x' at column 3"),
        ("tru", "unexpected character 't' at column 1"),
        ("1e999", "number 1e999 out of range at column 1"),
        (String(repeating: "[", count: 300), "nesting deeper than 256 at column 257"),
    ])
    func syntaxErrors(text: String, message: String) {
        #expect(throws: JSONSyntaxError(message: message)) { try parse(text) }
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() throws {
        #expect(throws: JSONSyntaxError(message: "invalid UTF-8 in a string at column 2")) {
            try JSONParser.parse([0x22, 0xC3, 0x28, 0x22])
        }
        // A truncated 4-byte sequence (decoded as one U+FFFD of the same length), with and without an escape after it.
        #expect(throws: JSONSyntaxError(message: "invalid UTF-8 in a string at column 2")) {
            try JSONParser.parse([0x22, 0xF0, 0x9F, 0x98, 0x61, 0x22])
        }
        #expect(throws: JSONSyntaxError(message: "invalid UTF-8 in a string at column 2")) {
            try JSONParser.parse([0x22, 0xF0, 0x9F, 0x98, 0x5C, 0x6E, 0x22])
        }
        #expect(try JSONParser.parse(Array(#""\ufffd é 😀""#.utf8)) == .string("\u{FFFD} é 😀"))
    }

    /// Reads `text` with `body`, then checks that nothing follows.
    private func read<T>(_ text: String, infiniteNumbers: Bool = false,
                         _ body: (inout JSONParser) throws(JSONSyntaxError) -> T) throws(JSONSyntaxError) -> T {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
            var parser = JSONParser(bytes: buffer, infiniteNumbers: infiniteNumbers)
            let value = try body(&parser)
            try parser.readEnd()
            return value
        }
    }

    @Test("the readers pull a known shape: members in order, positions, integers, numbers, infinities on request")
    func readers() throws {
        var members: [String] = []
        var items: [(Int, Int, Double)] = []
        try read(#" {"b": [[1, 2.5], [-3, 1e999]], "a": []} "#, infiniteNumbers: true) { (parser) throws(JSONSyntaxError) in
            try parser.readObject { (key, parser) throws(JSONSyntaxError) in
                members.append(key)
                try parser.readArray { (position, parser) throws(JSONSyntaxError) in
                    var pair: (Int, Double) = (0, 0)
                    try parser.readArray { (field, parser) throws(JSONSyntaxError) in
                        if field == 0 { pair.0 = try parser.readInteger() } else { pair.1 = try parser.readNumber() }
                    }
                    items.append((position, pair.0, pair.1))
                }
            }
        }
        #expect(members == ["b", "a"])
        #expect(items.map(\.0) == [0, 1] && items.map(\.1) == [1, -3] && items.map(\.2) == [2.5, .infinity])
        #expect(try read(" -1e999 ", infiniteNumbers: true) { (parser) throws(JSONSyntaxError) in try parser.readNumber() } == -.infinity)
        #expect(try read("123456789012345678") { (parser) throws(JSONSyntaxError) in try parser.readInteger() } == 123456789012345678)
        #expect(try read("-9223372036854775808") { (parser) throws(JSONSyntaxError) in try parser.readInteger() } == .min)
        #expect(try read(#""a\"b""#) { (parser) throws(JSONSyntaxError) in try parser.readString() } == "a\"b")
        #expect(throws: JSONSyntaxError(message: "number 1e999 out of range at column 1")) {
            try read("1e999") { (parser) throws(JSONSyntaxError) in try parser.readNumber() }
        }
        #expect(try read("-0.0") { (parser) throws(JSONSyntaxError) in try parser.readNumber() }.sign == .minus)
        #expect(try read("-0") { (parser) throws(JSONSyntaxError) in try parser.readNumber() }.sign == .minus)
        #expect(try read("0") { (parser) throws(JSONSyntaxError) in try parser.readNumber() }.sign == .plus)
    }

    @Test("numbers read bit for bit as Swift reads them, in the forms the writers use")
    func numbersRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [0.1, 0.3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 9007199254740993,
                                4.668299932195239, -5.3699408766109835, 1e22, 1e23, 123456789e-30]
        for _ in 0..<3000 {
            values.append(Double.random(in: -10...10, using: &generator))
            values.append(Double(Float.random(in: -1000...1000, using: &generator)))
            let bits = Double(bitPattern: generator.next())
            if bits.isFinite { values.append(bits) }
        }
        for value in values {
            for text in [value.description, String(format: "%.17g", value), String(format: "%.6e", value), String(format: "%.3f", value)] {
                let read = try read(text) { (parser) throws(JSONSyntaxError) in try parser.readNumber() }
                #expect(read.bitPattern == Double(text)!.bitPattern, "\(text)")
            }
        }
        #expect(throws: JSONSyntaxError(message: "expected an integer at column 1")) {
            try read("2.0") { (parser) throws(JSONSyntaxError) in try parser.readInteger() }
        }
        #expect(throws: JSONSyntaxError(message: "expected an integer at column 1")) {
            try read("9223372036854775808") { (parser) throws(JSONSyntaxError) in try parser.readInteger() }
        }
        #expect(throws: JSONSyntaxError(message: "expected an object, found character '[' at column 2")) {
            try read(" []") { (parser) throws(JSONSyntaxError) in try parser.readObject { (_, _) throws(JSONSyntaxError) in } }
        }
        #expect(throws: JSONSyntaxError(message: "unexpected character 'x' after the value at column 4")) {
            try read("[] x") { (parser) throws(JSONSyntaxError) in try parser.readArray { (_, _) throws(JSONSyntaxError) in } }
        }
    }
}
