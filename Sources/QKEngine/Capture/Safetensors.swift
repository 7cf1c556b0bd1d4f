import Foundation

/// One tensor entry of a safetensors header, validated against the file.
struct SafetensorsEntry: Equatable {
    var name: String
    /// The dtype string as the header spells it (`F32`, `I64`, ...).
    var dtypeName: String
    var shape: [Int]
    /// Byte range inside the whole file (data-area offsets shifted past the header).
    var fileRange: Range<Int>
}

/// A memory-mapped safetensors file whose header has been checked in full before any data is read.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON, then the data area. Each
/// header entry is `{"dtype", "shape", "data_offsets": [begin, end]}` with offsets relative to the data
/// area; `__metadata__` (string to string) is allowed.
final class SafetensorsFile: @unchecked Sendable {
    let mapping: MappedFile
    let entries: [String: SafetensorsEntry]
    var displayName: String { mapping.displayName }

    /// Element sizes of every dtype the safetensors format defines (others are refused as unknown).
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    ]

    init(url: URL, displayName: String) throws(EngineError) {
        let mapping = try MappedFile(url: url, displayName: displayName, minimumSize: 8)
        self.mapping = mapping
        self.entries = try SafetensorsFile.parseHeader(mapping)
    }

    private static func parseHeader(_ mapping: MappedFile) throws(EngineError) -> [String: SafetensorsEntry] {
        let file = mapping.displayName
        let headerLength = UInt64(littleEndian: mapping.base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(mapping.size - 8) else {
            throw .invalidContent(file: file, line: nil,
                                  message: "header length \(headerLength) exceeds the file (\(mapping.size) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = mapping.size - dataStart
        let headerBytes = UnsafeBufferPointer(start: mapping.base.assumingMemoryBound(to: UInt8.self) + 8,
                                              count: Int(headerLength))
        let header: JSONValue
        do {
            header = try JSONParser.parse(headerBytes)
        } catch {
            throw .invalidJSON(file: file, line: nil, message: "header: \(error.message)")
        }
        guard case let .object(members) = header else {
            throw .invalidContent(file: file, line: nil, message: "header must be a JSON object, found \(header.kindName)")
        }

        var entries: [String: SafetensorsEntry] = [:]
        for name in members.keys.sorted() {
            let value = members[name]!
            if name == "__metadata__" {
                guard case let .object(metadata) = value, metadata.values.allSatisfy({
                    if case .string = $0 { return true } else { return false }
                }) else {
                    throw .invalidField(file: file, line: nil, field: "__metadata__",
                                        message: "expected an object of strings")
                }
                continue
            }
            entries[name] = try parseEntry(name: name, value: value, file: file, dataStart: dataStart, dataSize: dataSize)
        }

        // Tensors must not share bytes: sort by start and compare neighbours (empty tensors take no bytes).
        let occupied = entries.values.filter { !$0.fileRange.isEmpty }
            .sorted { ($0.fileRange.lowerBound, $0.name) < ($1.fileRange.lowerBound, $1.name) }
        for (previous, next) in zip(occupied, occupied.dropFirst()) where next.fileRange.lowerBound < previous.fileRange.upperBound {
            throw .invalidTensor(file: file, tensor: next.name, message: "data overlaps tensor '\(previous.name)'")
        }
        return entries
    }

    private static func parseEntry(name: String, value: JSONValue, file: String, dataStart: Int, dataSize: Int)
        throws(EngineError) -> SafetensorsEntry
    {
        func fail(_ message: String) -> EngineError { .invalidTensor(file: file, tensor: name, message: message) }
        guard case let .object(fields) = value else {
            throw fail("header entry must be an object, found \(value.kindName)")
        }
        guard let dtypeValue = fields["dtype"] else { throw fail("header entry lacks 'dtype'") }
        guard case let .string(dtypeName) = dtypeValue else {
            throw fail("'dtype' must be a string, found \(dtypeValue.kindName)")
        }
        guard let elementSize = elementSizes[dtypeName] else { throw fail("unknown dtype '\(dtypeName)'") }

        guard let shapeValue = fields["shape"] else { throw fail("header entry lacks 'shape'") }
        guard case let .array(shapeItems) = shapeValue else {
            throw fail("'shape' must be an array of non-negative integers, found \(shapeValue.kindName)")
        }
        var shape: [Int] = []
        var elementCount = 1
        var overflow = false
        for item in shapeItems {
            guard case let .integer(extent) = item, extent >= 0 else {
                throw fail("'shape' must be an array of non-negative integers")
            }
            shape.append(extent)
            let (product, didOverflow) = elementCount.multipliedReportingOverflow(by: extent)
            elementCount = product
            overflow = overflow || didOverflow
        }

        guard let offsetsValue = fields["data_offsets"] else { throw fail("header entry lacks 'data_offsets'") }
        guard case let .array(offsetItems) = offsetsValue, offsetItems.count == 2,
              case let .integer(begin) = offsetItems[0], case let .integer(end) = offsetItems[1],
              begin >= 0, begin <= end else {
            throw fail("'data_offsets' must be [begin, end] with 0 <= begin <= end")
        }
        guard end <= dataSize else {
            throw fail("data_offsets [\(begin), \(end)] lie outside the data area (\(dataSize) bytes)")
        }
        let (needed, sizeOverflow) = elementCount.multipliedReportingOverflow(by: elementSize)
        guard !overflow, !sizeOverflow, end - begin == needed else {
            throw fail("data_offsets [\(begin), \(end)] hold \(end - begin) bytes but shape \(shape) of \(dtypeName) "
                + "needs \(overflow || sizeOverflow ? "more than \(Int.max)" : String(needed))")
        }
        return SafetensorsEntry(name: name, dtypeName: dtypeName, shape: shape,
                                fileRange: (dataStart + begin)..<(dataStart + end))
    }

    /// A view of tensor `name`, which must exist and have a floating-point dtype the engine decodes.
    func floatTensor(named name: String) -> Result<TensorView, EngineError>? {
        guard let entry = entries[name] else { return nil }
        guard let dtype = TensorDType(rawValue: entry.dtypeName) else {
            return .failure(.invalidTensor(file: displayName, tensor: name,
                                           message: "dtype \(entry.dtypeName) is not supported for q/k tensors (F32, F16, BF16 or F64)"))
        }
        return .success(TensorView(mapping: mapping, name: name, dtype: dtype, shape: entry.shape, fileRange: entry.fileRange))
    }
}
