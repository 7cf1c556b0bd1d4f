#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// One tensor to write: its header entry and, for in-memory writes, its bytes.
public struct SafetensorsTensor: Sendable, Equatable {
    public var name: String
    /// The dtype as safetensors spells it (`F32`, `BF16`, ...; any string, so tests can write odd files).
    public var dtype: String
    public var shape: [Int]
    public var data: [UInt8]

    public init(name: String, dtype: String, shape: [Int], data: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// A tensor of Float values encoded as `dtype`.
    public init(name: String, dtype: TensorDType, shape: [Int], values: [Float]) {
        self.init(name: name, dtype: dtype.rawValue, shape: shape, data: TensorEncoder.encode(values, as: dtype))
    }
}

/// Writes safetensors files: an 8-byte little-endian header length, the JSON header padded with spaces
/// to a multiple of 8 bytes (so the data area is 8-byte aligned), then the tensors' bytes in the given order.
public enum SafetensorsWriter {
    /// The header (length prefix included) for tensors laid out back to back in the order given.
    public static func header(for tensors: [(name: String, dtype: String, shape: [Int], byteCount: Int)],
                              metadata: [String: String]? = nil) throws(EngineError) -> [UInt8] {
        var object: [String: Any] = [:]
        var offset = 0
        for tensor in tensors {
            object[tensor.name] = ["dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.byteCount]]
            offset += tensor.byteCount
        }
        if let metadata { object["__metadata__"] = metadata }
        var json: [UInt8]
        do {
            json = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
        } catch {
            throw .invalidOption(name: "tensors", message: "cannot encode the safetensors header: \(error)")
        }
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: json)
        return bytes
    }

    /// Writes `tensors` (held in memory) to `url`.
    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String]? = nil, to url: URL) throws(EngineError) {
        var bytes = try header(for: tensors.map { ($0.name, $0.dtype, $0.shape, $0.data.count) }, metadata: metadata)
        for tensor in tensors { bytes.append(contentsOf: tensor.data) }
        do {
            try Data(bytes).write(to: url)
        } catch {
            throw .io(path: url.lastPathComponent, message: "cannot write: \((error as NSError).localizedDescription)")
        }
    }
}

/// A buffered output file (C stdio) whose errors become `EngineError.io`.
final class OutputFile {
    private var stream: UnsafeMutablePointer<FILE>?
    let url: URL
    let displayName: String

    init(url: URL, displayName: String) throws(EngineError) {
        guard let stream = fopen(url.path, "wb") else {
            throw .io(path: displayName, message: "cannot create: \(String(cString: strerror(errno)))")
        }
        setvbuf(stream, nil, _IOFBF, 1 << 20)
        self.stream = stream
        self.url = url
        self.displayName = displayName
    }

    deinit { if let stream { fclose(stream) } }

    func write(_ bytes: UnsafeRawBufferPointer) throws(EngineError) {
        guard let stream, let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard fwrite(base, 1, bytes.count, stream) == bytes.count else {
            throw .io(path: displayName, message: "write failed: \(String(cString: strerror(errno)))")
        }
    }

    func write(_ bytes: ArraySlice<UInt8>) throws(EngineError) {
        guard let stream, !bytes.isEmpty else { return }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress!, 1, $0.count, stream) }
        guard written == bytes.count else {
            throw .io(path: displayName, message: "write failed: \(String(cString: strerror(errno)))")
        }
    }

    func write(_ bytes: [UInt8]) throws(EngineError) { try write(bytes[...]) }

    func close() throws(EngineError) {
        guard let stream else { return }
        self.stream = nil
        guard fclose(stream) == 0 else {
            throw .io(path: displayName, message: "close failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Appends the whole content of `source` in fixed-size chunks.
    func append(contentsOf source: URL, displayName sourceName: String) throws(EngineError) {
        guard let input = fopen(source.path, "rb") else {
            throw .io(path: sourceName, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(input) }
        var chunk = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, input) }
            try write(chunk[..<count])
            if count < chunk.count {
                if ferror(input) != 0 { throw .io(path: sourceName, message: "read failed: \(String(cString: strerror(errno)))") }
                return
            }
        }
    }
}
