import Foundation

/// Writes a QK capture (format version 1) one prompt at a time, in memory independent of the prompt count.
///
/// Each prompt's line goes straight to `prompts.jsonl`; each tensor's bytes go to a spool file of its own
/// (in a hidden folder inside the capture directory) and `finish()` assembles them into one
/// `activations.safetensors`, tensors contiguous per layer, then writes `capture.json` last, so a capture
/// whose writing stopped midway has no header and is refused by the reader.
public final class CaptureWriter {
    public static let tensorFileName = "activations.safetensors"

    public let directory: URL
    public let model: ModelInfo
    public let positional: String
    public let layers: [Int]
    public let features: [FeatureInfo]
    public let dataset: [String: String]?
    public let dtype: TensorDType

    public private(set) var promptCount = 0
    public private(set) var keyCount = 0

    private let featureNames: Set<String>
    private let spoolDirectory: URL
    private var promptsFile: OutputFile?
    private var querySpools: [Int: OutputFile] = [:]
    private var keySpools: [Int: OutputFile] = [:]
    private var seenIDs: Set<String> = []
    private var scratch: [UInt8] = []
    private var finished = false

    public init(directory: URL, model: ModelInfo, positional: String, layers: [Int], features: [FeatureInfo],
                dataset: [String: String]?, dtype: TensorDType) throws(EngineError) {
        guard model.layerCount > 0, model.headCount > 0, model.kvHeadCount > 0, model.headDimension > 0 else {
            throw .invalidOption(name: "model", message: "n_layers, n_heads, n_kv_heads and d_head must be positive")
        }
        guard model.headCount % model.kvHeadCount == 0 else {
            throw .invalidOption(name: "model", message: "n_heads \(model.headCount) is not a multiple of n_kv_heads \(model.kvHeadCount)")
        }
        guard CaptureHeaderParser.positionalKinds.contains(positional) else {
            throw .invalidOption(name: "positional", message: "expected one of post-rope, pre-rope, none; found \"\(positional)\"")
        }
        guard !layers.isEmpty else { throw .invalidOption(name: "layers", message: "must list at least one layer") }
        for layer in layers where layer < 0 || layer >= model.layerCount {
            throw .invalidOption(name: "layers", message: "\(layer) is outside [0, \(model.layerCount))")
        }
        guard Set(layers).count == layers.count else { throw .invalidOption(name: "layers", message: "a layer is listed twice") }
        let featureNames = Set(features.map(\.name))
        guard featureNames.count == features.count else {
            throw .invalidOption(name: "features", message: "a feature name is listed twice")
        }
        self.directory = directory
        self.model = model
        self.positional = positional
        self.layers = layers
        self.features = features
        self.dataset = dataset
        self.dtype = dtype
        self.featureNames = featureNames
        self.spoolDirectory = directory.appendingPathComponent(".qk-spool-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: spoolDirectory, withIntermediateDirectories: true)
        } catch {
            throw .io(path: directory.path, message: "cannot create: \((error as NSError).localizedDescription)")
        }
        promptsFile = try OutputFile(url: directory.appendingPathComponent(CaptureReader.promptsFileName),
                                     displayName: CaptureReader.promptsFileName)
        for layer in layers {
            querySpools[layer] = try OutputFile(url: spoolDirectory.appendingPathComponent("\(layer).q"), displayName: "layers.\(layer).q spool")
            keySpools[layer] = try OutputFile(url: spoolDirectory.appendingPathComponent("\(layer).k"), displayName: "layers.\(layer).k spool")
        }
    }

    deinit {
        if !finished { try? FileManager.default.removeItem(at: spoolDirectory) }
    }

    /// Adds one prompt: its line in `prompts.jsonl` and its vectors for every layer.
    ///
    /// `queries[layer]` holds `n_heads × d_head` floats (`[head][i]`); `keyVectors[layer]` holds
    /// `keys.count × n_kv_heads × d_head` floats (`[key][kvHead][i]`).
    public func addPrompt(id: String, tokens: [String], queryPosition: Int, queryLabels: [String: String],
                          keys: [(position: Int, labels: [String: String])], queries: [Int: [Float]],
                          keys keyVectors: [Int: [Float]]) throws(EngineError) {
        precondition(!finished, "addPrompt after finish")
        guard !seenIDs.contains(id) else { throw .invalidOption(name: "id", message: "duplicate prompt id '\(id)'") }
        guard queryPosition >= 0 && queryPosition < tokens.count else {
            throw .invalidOption(name: "queryPosition", message: "\(queryPosition) is outside tokens (\(tokens.count) tokens)")
        }
        for (index, key) in keys.enumerated() where key.position < 0 || key.position >= tokens.count {
            throw .invalidOption(name: "keys[\(index)].position", message: "\(key.position) is outside tokens (\(tokens.count) tokens)")
        }
        for name in (Array(queryLabels.keys) + keys.flatMap { $0.labels.keys }).sorted() where !featureNames.contains(name) {
            throw .invalidOption(name: "labels", message: "feature '\(name)' is not declared")
        }
        let queryWidth = model.headCount * model.headDimension
        let keyWidth = keys.count * model.kvHeadCount * model.headDimension
        for layer in layers {
            guard let query = queries[layer] else { throw .invalidOption(name: "queries", message: "no query vector for layer \(layer)") }
            guard query.count == queryWidth else {
                throw .invalidOption(name: "queries[\(layer)]", message: "holds \(query.count) floats, expected n_heads × d_head = \(queryWidth)")
            }
            guard let key = keyVectors[layer] else { throw .invalidOption(name: "keys", message: "no key vectors for layer \(layer)") }
            guard key.count == keyWidth else {
                throw .invalidOption(name: "keys[\(layer)]",
                                     message: "holds \(key.count) floats, expected keys × n_kv_heads × d_head = \(keyWidth)")
            }
        }

        // The line is built by hand (keys in sorted order): JSONSerialization took most of the writer's time on the
        // benchmark capture.
        var line = CompactJSONWriter(capacity: 256)
        line.raw("{\"id\":")
        line.string(id)
        line.raw(",\"keys\":[")
        for (index, key) in keys.enumerated() {
            line.raw(index == 0 ? "{" : ",{")
            if !key.labels.isEmpty {
                line.raw("\"labels\":")
                CaptureWriter.writeLabels(key.labels, to: &line)
                line.raw(",")
            }
            line.raw("\"position\":")
            line.integer(key.position)
            line.raw("}")
        }
        line.raw("],\"query\":{\"labels\":")
        CaptureWriter.writeLabels(queryLabels, to: &line)
        line.raw(",\"position\":")
        line.integer(queryPosition)
        line.raw("},\"tokens\":")
        line.array(tokens)
        line.raw("}\n")
        try promptsFile!.write(line.bytes)
        for layer in layers {
            try spool(queries[layer]!, to: querySpools[layer]!)
            try spool(keyVectors[layer]!, to: keySpools[layer]!)
        }
        seenIDs.insert(id)
        promptCount += 1
        keyCount += keys.count
    }

    private static func writeLabels(_ labels: [String: String], to json: inout CompactJSONWriter) {
        json.raw("{")
        for (index, name) in labels.keys.sorted().enumerated() {
            if index > 0 { json.raw(",") }
            json.string(name)
            json.raw(":")
            json.string(labels[name]!)
        }
        json.raw("}")
    }

    private func spool(_ values: [Float], to file: OutputFile) throws(EngineError) {
        scratch.removeAll(keepingCapacity: true)
        values.withUnsafeBufferPointer { TensorEncoder.append($0, as: dtype, to: &scratch) }
        try file.write(scratch)
    }

    /// Writes the safetensors file and `capture.json`, and removes the spool files.
    public func finish() throws(EngineError) {
        precondition(!finished, "finish called twice")
        guard promptCount > 0 else { throw .invalidOption(name: "prompts", message: "a capture needs at least one prompt") }
        finished = true
        defer { try? FileManager.default.removeItem(at: spoolDirectory) }
        try promptsFile!.close()
        promptsFile = nil
        for layer in layers {
            try querySpools[layer]!.close()
            try keySpools[layer]!.close()
        }

        let queryShape = [promptCount, model.headCount, model.headDimension]
        let keyShape = [keyCount, model.kvHeadCount, model.headDimension]
        var entries: [(name: String, dtype: String, shape: [Int], byteCount: Int)] = []
        for layer in layers {
            entries.append(("layers.\(layer).q", dtype.rawValue, queryShape, queryShape.reduce(1, *) * dtype.byteSize))
            entries.append(("layers.\(layer).k", dtype.rawValue, keyShape, keyShape.reduce(1, *) * dtype.byteSize))
        }
        let tensorFile = try OutputFile(url: directory.appendingPathComponent(CaptureWriter.tensorFileName),
                                        displayName: CaptureWriter.tensorFileName)
        try tensorFile.write(try SafetensorsWriter.header(for: entries))
        for layer in layers {
            for spool in [querySpools[layer]!, keySpools[layer]!] {
                try tensorFile.append(contentsOf: spool.url, displayName: spool.displayName)
                try? FileManager.default.removeItem(at: spool.url)
            }
        }
        try tensorFile.close()

        var featureObject: [String: Any] = [:]
        for feature in features {
            var entry: [String: Any] = ["kind": feature.kind]
            if let description = feature.description { entry["description"] = description }
            featureObject[feature.name] = entry
        }
        var header: [String: Any] = [
            "format": "qk-capture",
            "version": CaptureReader.supportedVersion,
            "model": [
                "name": model.name, "checkpoint": model.checkpoint, "n_layers": model.layerCount,
                "n_heads": model.headCount, "n_kv_heads": model.kvHeadCount, "d_head": model.headDimension,
            ] as [String: Any],
            "positional": positional,
            "layers": layers,
            "tensor_files": [CaptureWriter.tensorFileName],
            "features": featureObject,
        ]
        if let dataset { header["dataset"] = dataset }
        do {
            var data = try JSONSerialization.data(withJSONObject: header,
                                                  options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            data.append(0x0A)
            try data.write(to: directory.appendingPathComponent(CaptureReader.headerFileName))
        } catch {
            throw .io(path: CaptureReader.headerFileName, message: "cannot write: \((error as NSError).localizedDescription)")
        }
    }
}
