import Foundation

/// A validated QK capture directory (format version 1), with its tensors memory-mapped.
///
/// `open` checks everything the format requires before any tensor data is touched; finiteness is
/// checked as values are decoded. Errors name files relative to the capture directory.
///
/// `prompts.jsonl`: blank lines (empty or whitespace only) are skipped and are not prompts; line
/// numbers in errors are 1-based physical lines of the file. Fields beyond those the format defines
/// are ignored. The reader is immutable and safe to share across threads.
public final class CaptureReader: Sendable {
    /// The newest format version this reader knows.
    public static let supportedVersion = 1
    public static let headerFileName = "capture.json"
    public static let promptsFileName = "prompts.jsonl"

    public let directory: URL
    public let header: CaptureHeader
    public let prompts: PromptTable
    private let tensors: [Int: LayerTensors]
    /// Every file of the capture as it was when opened.
    private let stamps: [FileStamp]

    private init(directory: URL, header: CaptureHeader, prompts: PromptTable, tensors: [Int: LayerTensors],
                 stamps: [FileStamp]) {
        self.directory = directory
        self.header = header
        self.prompts = prompts
        self.tensors = tensors
        self.stamps = stamps
    }

    /// Opens and validates the capture in `directory`.
    public static func open(_ directory: URL) throws(EngineError) -> CaptureReader {
        let header = try CaptureHeaderParser.parse(directory.appendingPathComponent(headerFileName))
        let prompts = try PromptTableReader.read(directory.appendingPathComponent(promptsFileName), header: header)
        let tensors = try locateTensors(directory: directory, header: header, prompts: prompts)
        var stamps: [FileStamp] = []
        for name in [headerFileName, promptsFileName] + header.tensorFiles {
            stamps.append(try FileStamp(directory: directory, name: name))
        }
        return CaptureReader(directory: directory, header: header, prompts: prompts, tensors: tensors, stamps: stamps)
    }

    /// Throws when a file of the capture was replaced, written or resized since `open`: what was computed from it
    /// mixes two versions of the capture and must not be stored.
    public func checkUnchanged() throws(EngineError) {
        for stamp in stamps {
            let now = try? FileStamp(directory: directory, name: stamp.name)
            guard now != stamp else { continue }
            let what = now.map { $0.size == stamp.size ? "was rewritten" : "went from \(stamp.size) to \($0.size) bytes" } ?? "is gone"
            throw .io(path: stamp.name, message: "changed while the capture was being read (it \(what)); "
                + "a capture must not change during an ingest")
        }
    }

    /// The query and key tensors of captured layer `layer`.
    public func layerTensors(_ layer: Int) throws(EngineError) -> LayerTensors {
        guard let tensors = tensors[layer] else {
            throw .invalidOption(name: "layer", message: "layer \(layer) is not in the capture (layers \(header.layers))")
        }
        return tensors
    }

    /// Prompt `p`'s token strings, re-read from `prompts.jsonl`.
    public func tokens(ofPrompt p: Int) throws(EngineError) -> [String] {
        guard p >= 0 && p < prompts.promptCount else {
            throw .invalidOption(name: "prompt", message: "prompt \(p) is outside 0..<\(prompts.promptCount)")
        }
        let file = CaptureReader.promptsFileName
        let reader = try LineReader(url: directory.appendingPathComponent(file), displayName: file,
                                    offset: prompts.lineOffsets[p], chunkSize: 1 << 16)
        guard let line = try reader.next() else {
            throw .io(path: file, message: "ends before prompt \(p) (byte \(prompts.lineOffsets[p])); was it changed?")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(line.bytes)
        } catch {
            throw .invalidJSON(file: file, line: nil, message: "prompt \(p) at byte \(prompts.lineOffsets[p]): \(error.message)")
        }
        let fields = FieldReader(file: file, line: nil)
        let object = try fields.object(value, "prompt \(p)")
        return try fields.strings(fields.require(object, "tokens", in: ""), "tokens")
    }

    private static func locateTensors(directory: URL, header: CaptureHeader, prompts: PromptTable)
        throws(EngineError) -> [Int: LayerTensors]
    {
        var files: [SafetensorsFile] = []
        let realDirectory = realpath(directory.path, nil).map { pointer in
            defer { free(pointer) }
            return String(cString: pointer)
        }
        for (index, name) in header.tensorFiles.enumerated() {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw .invalidField(file: headerFileName, line: nil, field: "tensor_files[\(index)]",
                                    message: "'\(name)' does not exist")
            }
            // A symbolic link may point elsewhere inside the capture, never outside it.
            if let realDirectory, let target = realpath(url.path, nil) {
                let resolved = String(cString: target)
                free(target)
                guard resolved.hasPrefix(realDirectory.hasSuffix("/") ? realDirectory : realDirectory + "/") else {
                    throw .invalidField(file: headerFileName, line: nil, field: "tensor_files[\(index)]",
                                        message: "'\(name)' is a symbolic link to \(resolved), outside the capture directory")
                }
            }
            files.append(try SafetensorsFile(url: url, displayName: name))
        }
        let model = header.model
        // A tensor in several files is stored in pieces of rows, in tensor_files order (joined shards).
        func find(_ name: String, expected: [Int], meaning: String) throws(EngineError) -> TensorView {
            var pieces: [TensorView] = []
            for file in files {
                guard let result = file.floatTensor(named: name) else { continue }
                switch result {
                case let .success(view):
                    if let first = pieces.first, view.dtype != first.dtype || view.shape.dropFirst() != first.shape.dropFirst() {
                        throw .invalidTensor(file: view.file, tensor: name, message:
                            "a piece of a tensor also in '\(first.file)' must share its dtype and all axes but the first "
                            + "(\(view.dtype.rawValue) \(view.shape) vs \(first.dtype.rawValue) \(first.shape))")
                    }
                    pieces.append(view)
                case let .failure(error): throw error
                }
            }
            guard !pieces.isEmpty else {
                throw .invalidTensor(file: header.tensorFiles.joined(separator: ", "), tensor: name,
                                     message: "missing (capture.json lists its layer)")
            }
            let view = pieces.count == 1 ? pieces[0] : TensorView(joining: pieces)
            guard view.shape == expected else {
                throw .invalidTensor(file: view.file, tensor: name,
                                     message: "shape \(view.shape) does not match \(meaning) = \(expected)")
            }
            return view
        }
        var tensors: [Int: LayerTensors] = [:]
        for layer in header.layers {
            let queries = try find("layers.\(layer).q", expected: [prompts.promptCount, model.headCount, model.headDimension],
                                   meaning: "[P, n_heads, d_head]")
            let keys = try find("layers.\(layer).k", expected: [prompts.keyCount, model.kvHeadCount, model.headDimension],
                                meaning: "[K, n_kv_heads, d_head]")
            tensors[layer] = LayerTensors(layer: layer, queries: queries, keys: keys)
        }
        return tensors
    }
}

/// A file's identity and version as `stat` tells them: a file replaced, written or resized gets another stamp.
struct FileStamp: Equatable {
    var name: String
    var device: UInt64
    var inode: UInt64
    var size: Int
    var modified: timespec

    init(directory: URL, name: String) throws(EngineError) {
        var status = stat()
        guard stat(directory.appendingPathComponent(name).path, &status) == 0 else {
            throw .io(path: name, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        self.name = name
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int(status.st_size)
        modified = status.st_mtim
    }

    static func == (a: FileStamp, b: FileStamp) -> Bool {
        a.name == b.name && a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
    }
}

/// Typed access to parsed JSON fields, with errors naming the file, the line and the field path.
struct FieldReader {
    var file: String
    var line: Int?

    func fail(_ field: String, _ message: String) -> EngineError {
        .invalidField(file: file, line: line, field: field, message: message)
    }

    func mismatch(_ field: String, expected: String, found value: JSONValue) -> EngineError {
        fail(field, "expected \(expected), found \(value.kindName)")
    }

    /// `object[key]`, or an error naming `prefix.key` as missing.
    func require(_ object: [String: JSONValue], _ key: String, in prefix: String) throws(EngineError) -> JSONValue {
        guard let value = object[key] else { throw fail(prefix.isEmpty ? key : "\(prefix).\(key)", "missing") }
        return value
    }

    func object(_ value: JSONValue, _ field: String) throws(EngineError) -> [String: JSONValue] {
        guard case let .object(members) = value else { throw mismatch(field, expected: "an object", found: value) }
        return members
    }

    func array(_ value: JSONValue, _ field: String) throws(EngineError) -> [JSONValue] {
        guard case let .array(items) = value else { throw mismatch(field, expected: "an array", found: value) }
        return items
    }

    func string(_ value: JSONValue, _ field: String) throws(EngineError) -> String {
        guard case let .string(string) = value else { throw mismatch(field, expected: "a string", found: value) }
        return string
    }

    func integer(_ value: JSONValue, _ field: String) throws(EngineError) -> Int {
        guard case let .integer(integer) = value else { throw mismatch(field, expected: "an integer", found: value) }
        return integer
    }

    func strings(_ value: JSONValue, _ field: String) throws(EngineError) -> [String] {
        var result: [String] = []
        for (index, item) in try array(value, field).enumerated() {
            result.append(try string(item, "\(field)[\(index)]"))
        }
        return result
    }
}

/// Parses and validates `capture.json`.
enum CaptureHeaderParser {
    static let positionalKinds = ["post-rope", "pre-rope", "none"]

    static func parse(_ url: URL) throws(EngineError) -> CaptureHeader {
        try parse(contents: readWholeFile(url, displayName: CaptureReader.headerFileName))
    }

    /// Validates the bytes of a `capture.json`.
    static func parse(contents data: [UInt8]) throws(EngineError) -> CaptureHeader {
        let file = CaptureReader.headerFileName
        let root: JSONValue
        do {
            root = try JSONParser.parse(data)
        } catch {
            throw .invalidJSON(file: file, line: nil, message: error.message)
        }
        guard case let .object(top) = root else {
            throw .invalidContent(file: file, line: nil, message: "must hold a JSON object, found \(root.kindName)")
        }
        let fields = FieldReader(file: file, line: nil)

        let format = try fields.string(fields.require(top, "format", in: ""), "format")
        guard format == "qk-capture" else {
            throw fields.fail("format", "expected \"qk-capture\", found \"\(format)\"")
        }
        let version = try fields.integer(fields.require(top, "version", in: ""), "version")
        guard version <= CaptureReader.supportedVersion else {
            throw .unsupportedVersion(file: file, found: version, supported: CaptureReader.supportedVersion)
        }
        guard version >= 1 else { throw fields.fail("version", "must be at least 1, found \(version)") }

        let modelObject = try fields.object(fields.require(top, "model", in: ""), "model")
        let name = try fields.string(fields.require(modelObject, "name", in: "model"), "model.name")
        let checkpoint = try fields.string(fields.require(modelObject, "checkpoint", in: "model"), "model.checkpoint")
        func positive(_ key: String) throws(EngineError) -> Int {
            let value = try fields.integer(fields.require(modelObject, key, in: "model"), "model.\(key)")
            guard value > 0 else { throw fields.fail("model.\(key)", "must be positive, found \(value)") }
            return value
        }
        let layerCount = try positive("n_layers")
        let headCount = try positive("n_heads")
        let kvHeadCount = try positive("n_kv_heads")
        let headDimension = try positive("d_head")
        guard headCount % kvHeadCount == 0 else {
            throw fields.fail("model.n_heads", "\(headCount) is not a multiple of model.n_kv_heads (\(kvHeadCount))")
        }
        let model = ModelInfo(name: name, checkpoint: checkpoint, layerCount: layerCount, headCount: headCount,
                              kvHeadCount: kvHeadCount, headDimension: headDimension)

        let positional = try fields.string(fields.require(top, "positional", in: ""), "positional")
        guard positionalKinds.contains(positional) else {
            throw fields.fail("positional", "expected one of post-rope, pre-rope, none; found \"\(positional)\"")
        }

        let layerItems = try fields.array(fields.require(top, "layers", in: ""), "layers")
        guard !layerItems.isEmpty else { throw fields.fail("layers", "must list at least one layer") }
        var layers: [Int] = []
        for (index, item) in layerItems.enumerated() {
            let layer = try fields.integer(item, "layers[\(index)]")
            guard layer >= 0 && layer < layerCount else {
                throw fields.fail("layers[\(index)]", "\(layer) is outside [0, \(layerCount)) (model.n_layers)")
            }
            guard !layers.contains(layer) else { throw fields.fail("layers[\(index)]", "layer \(layer) is listed twice") }
            layers.append(layer)
        }

        let tensorFiles = try fields.strings(fields.require(top, "tensor_files", in: ""), "tensor_files")
        guard !tensorFiles.isEmpty else { throw fields.fail("tensor_files", "must list at least one file") }
        for (index, name) in tensorFiles.enumerated() {
            let components = name.split(separator: "/", omittingEmptySubsequences: false)
            guard !name.isEmpty, !name.hasPrefix("/"), !components.contains(".."), !components.contains("") else {
                throw fields.fail("tensor_files[\(index)]", "'\(name)' must be a relative path inside the capture directory")
            }
            guard tensorFiles.firstIndex(of: name) == index else {
                throw fields.fail("tensor_files[\(index)]", "'\(name)' is listed twice")
            }
        }

        let featureObject = try fields.object(fields.require(top, "features", in: ""), "features")
        var features: [FeatureInfo] = []
        for featureName in featureObject.keys.sorted() {
            let path = "features.\(featureName)"
            let entry = try fields.object(featureObject[featureName]!, path)
            let kind = try fields.string(fields.require(entry, "kind", in: path), "\(path).kind")
            var description: String?
            if let value = entry["description"] { description = try fields.string(value, "\(path).description") }
            features.append(FeatureInfo(name: featureName, kind: kind, description: description))
        }

        var datasetJSON: String?
        if let dataset = top["dataset"], dataset != .null {
            _ = try fields.object(dataset, "dataset")
            datasetJSON = dataset.compactSortedJSON
        }
        return CaptureHeader(version: version, model: model, positional: positional, layers: layers,
                             tensorFiles: tensorFiles, features: features, datasetJSON: datasetJSON)
    }
}

/// Streams `prompts.jsonl` into a `PromptTable`, validating every line against the header.
struct PromptTableReader {
    private let header: CaptureHeader
    private var promptIDs: [String] = []
    private var idLines: [String: Int] = [:]
    private var keyStart: [Int] = [0]
    private var queryPositions: [Int32] = []
    private var keyPositions: [Int32] = []
    private var tokenStrings: [String] = []
    private var tokenCodes: [String: Int32] = [:]
    private var queryTokens: [Int32] = []
    private var keyTokens: [Int32] = []
    private var tokenCounts: [Int32] = []
    private var lineOffsets: [Int] = []
    private var featureIndex: [String: Int] = [:]
    /// Per feature: values in order of first appearance, their provisional codes, and the codes seen.
    private var featureValues: [[String]]
    private var featureCodes: [[String: Int32]]
    private var queryCodes: [[Int32]]
    private var keyCodes: [[Int32]]

    private init(header: CaptureHeader) {
        self.header = header
        for (index, feature) in header.features.enumerated() { featureIndex[feature.name] = index }
        let count = header.features.count
        featureValues = Array(repeating: [], count: count)
        featureCodes = Array(repeating: [:], count: count)
        queryCodes = Array(repeating: [], count: count)
        keyCodes = Array(repeating: [], count: count)
    }

    static func read(_ url: URL, header: CaptureHeader) throws(EngineError) -> PromptTable {
        let file = CaptureReader.promptsFileName
        let lines = try LineReader(url: url, displayName: file)
        var reader = PromptTableReader(header: header)
        while let line = try lines.next() {
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            try reader.add(line)
        }
        guard !reader.promptIDs.isEmpty else {
            throw .invalidContent(file: file, line: nil, message: "holds no prompts")
        }
        return reader.table()
    }

    private mutating func intern(_ token: String) -> Int32 {
        if let code = tokenCodes[token] { return code }
        let code = Int32(tokenStrings.count)
        tokenStrings.append(token)
        tokenCodes[token] = code
        return code
    }

    /// Validates one labels object; returns per declared feature the provisional value code, or -1.
    private mutating func labelCodes(_ value: JSONValue?, _ path: String, _ fields: FieldReader) throws(EngineError) -> [Int32] {
        var codes = [Int32](repeating: -1, count: header.features.count)
        guard let value else { return codes }
        let labels = try fields.object(value, path)
        for name in labels.keys.sorted() {
            let field = "\(path).\(name)"
            let labelValue = try fields.string(labels[name]!, field)
            guard let feature = featureIndex[name] else {
                throw fields.fail(field, "feature '\(name)' is not declared in capture.json")
            }
            if let code = featureCodes[feature][labelValue] {
                codes[feature] = code
            } else {
                let code = Int32(featureValues[feature].count)
                featureValues[feature].append(labelValue)
                featureCodes[feature][labelValue] = code
                codes[feature] = code
            }
        }
        return codes
    }

    private mutating func add(_ line: LineReader.Line) throws(EngineError) {
        let file = CaptureReader.promptsFileName
        let value: JSONValue
        do {
            value = try JSONParser.parse(line.bytes)
        } catch {
            throw .invalidJSON(file: file, line: line.number, message: error.message)
        }
        guard case let .object(prompt) = value else {
            throw .invalidContent(file: file, line: line.number, message: "a prompt must be a JSON object, found \(value.kindName)")
        }
        let fields = FieldReader(file: file, line: line.number)

        let id = try fields.string(fields.require(prompt, "id", in: ""), "id")
        if let first = idLines[id] { throw fields.fail("id", "duplicate id '\(id)' (first on line \(first))") }
        let tokens = try fields.strings(fields.require(prompt, "tokens", in: ""), "tokens")
        func position(_ value: JSONValue, _ field: String) throws(EngineError) -> Int {
            let position = try fields.integer(value, field)
            guard position >= 0 && position < tokens.count else {
                throw fields.fail(field, "\(position) is outside tokens (\(tokens.count) tokens)")
            }
            return position
        }

        let query = try fields.object(fields.require(prompt, "query", in: ""), "query")
        let queryPosition = try position(fields.require(query, "position", in: "query"), "query.position")
        let queryLabelCodes = try labelCodes(query["labels"], "query.labels", fields)

        let keys = try fields.array(fields.require(prompt, "keys", in: ""), "keys")
        var positions: [Int] = []
        var keyLabelCodes: [[Int32]] = []
        for (index, item) in keys.enumerated() {
            let path = "keys[\(index)]"
            let key = try fields.object(item, path)
            positions.append(try position(fields.require(key, "position", in: path), "\(path).position"))
            keyLabelCodes.append(try labelCodes(key["labels"], "\(path).labels", fields))
        }

        // The line is valid: record it.
        idLines[id] = line.number
        promptIDs.append(id)
        lineOffsets.append(line.offset)
        tokenCounts.append(Int32(clamping: tokens.count))
        queryPositions.append(Int32(clamping: queryPosition))
        queryTokens.append(intern(tokens[queryPosition]))
        for feature in header.features.indices { queryCodes[feature].append(queryLabelCodes[feature]) }
        for (position, codes) in zip(positions, keyLabelCodes) {
            keyPositions.append(Int32(clamping: position))
            keyTokens.append(intern(tokens[position]))
            for feature in header.features.indices { keyCodes[feature].append(codes[feature]) }
        }
        keyStart.append(keyStart.last! + positions.count)
    }

    /// The final table, with each feature's values sorted and codes renumbered to match.
    private func table() -> PromptTable {
        var features: [FeatureLabels] = []
        for (index, feature) in header.features.enumerated() {
            let values = featureValues[index]
            let sorted = values.sorted()
            let rank = Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, Int32($0)) })
            let remap = values.map { rank[$0]! }
            func renumber(_ codes: [Int32]) -> [Int32] { codes.map { $0 < 0 ? -1 : remap[Int($0)] } }
            features.append(FeatureLabels(name: feature.name, values: sorted,
                                          queryCodes: renumber(queryCodes[index]), keyCodes: renumber(keyCodes[index])))
        }
        return PromptTable(promptIDs: promptIDs, keyStart: keyStart, queryPositions: queryPositions,
                           keyPositions: keyPositions, tokenStrings: tokenStrings, queryTokens: queryTokens,
                           keyTokens: keyTokens, tokenCounts: tokenCounts, lineOffsets: lineOffsets, features: features)
    }
}
