import Foundation
import Testing
@testable import QKEngine
import QKTestSupport

private let fileName = "t.safetensors"

/// Writes a safetensors file from a raw header and data area and opens it.
private func openRaw(_ directory: TemporaryDirectory, header: String, data: [UInt8]) throws(EngineError) -> SafetensorsFile {
    let url = directory.path(fileName)
    do {
        try CaptureEditing.writeSafetensors(url, headerText: header, data: Data(data))
    } catch {
        throw .io(path: fileName, message: "test setup failed: \(error)")
    }
    return try SafetensorsFile(url: url, displayName: fileName)
}

private func tensor(_ file: SafetensorsFile, _ name: String) throws -> TensorView {
    try #require(file.floatTensor(named: name)).get()
}

private func decodeSlice(_ view: TensorView, head: Int) throws(EngineError) -> [Float] {
    var out = [Float](repeating: .nan, count: view.shape[0] * view.shape[2])
    var failure: EngineError?
    out.withUnsafeMutableBufferPointer { buffer in
        do throws(EngineError) { try view.decodeSlice(head: head, into: buffer) } catch { failure = error }
    }
    if let failure { throw failure }
    return out
}

private func decodeAll(_ view: TensorView) throws(EngineError) -> [Float] {
    var out = [Float](repeating: .nan, count: view.elementCount)
    var failure: EngineError?
    out.withUnsafeMutableBufferPointer { buffer in
        do throws(EngineError) { try view.decodeAll(into: buffer) } catch { failure = error }
    }
    if let failure { throw failure }
    return out
}

/// Values exactly representable in every dtype (small integers over powers of two).
private func representable(_ count: Int, seed: Int = 0) -> [Float] {
    (0..<count).map { Float(($0 * 37 + seed) % 61 - 30) / 8 }
}

@Suite("Safetensors header validation")
struct SafetensorsHeaderTests {
    private static let f32Pair = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#

    @Test("a valid header with metadata and a non-float tensor opens")
    func validHeader() throws {
        let directory = try TemporaryDirectory()
        let header = #"{"__metadata__":{"format":"pt"},"ids":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"x":\#(Self.f32Pair)}"#
        let file = try openRaw(directory, header: header, data: [UInt8](repeating: 0, count: 16))
        #expect(file.entries.keys.sorted() == ["ids", "x"])
        #expect(file.entries["x"]!.fileRange == (8 + header.utf8.count)..<(16 + header.utf8.count))
        #expect(try tensor(file, "x").shape == [2])
        #expect(file.floatTensor(named: "absent") == nil)
    }

    @Test("a file shorter than the length prefix")
    func tooShort() throws {
        let directory = try TemporaryDirectory()
        try Data([1, 2, 3, 4, 5]).write(to: directory.path(fileName))
        #expect(throws: EngineError.invalidContent(file: fileName, line: nil,
                                                   message: "file is 5 bytes, too short for a safetensors header (8 bytes at least)")) {
            try SafetensorsFile(url: directory.path(fileName), displayName: fileName)
        }
    }

    @Test("a header length beyond the file")
    func headerLengthOutside() throws {
        let directory = try TemporaryDirectory()
        var bytes = Data()
        withUnsafeBytes(of: UInt64(1000).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array("{}        ".utf8))
        try bytes.write(to: directory.path(fileName))
        #expect(throws: EngineError.invalidContent(file: fileName, line: nil, message: "header length 1000 exceeds the file (18 bytes)")) {
            try SafetensorsFile(url: directory.path(fileName), displayName: fileName)
        }
    }

    @Test("a missing file")
    func missingFile() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: EngineError.io(path: fileName, message: "cannot open: No such file or directory")) {
            try SafetensorsFile(url: directory.path(fileName), displayName: fileName)
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var header: String
        var dataSize: Int = 16
        var expected: EngineError
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "JSON cut short", header: #"{"a": "#,
             expected: .invalidJSON(file: fileName, line: nil, message: "header: unexpected end of input at column 7")),
        Case(name: "trailing garbage", header: #"{} x"#,
             expected: .invalidJSON(file: fileName, line: nil, message: "header: unexpected character 'x' after the value at column 4")),
        Case(name: "top level not an object", header: "[1]",
             expected: .invalidContent(file: fileName, line: nil, message: "header must be a JSON object, found an array")),
        Case(name: "entry not an object", header: #"{"x": 3}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "header entry must be an object, found an integer")),
        Case(name: "dtype missing", header: #"{"x": {"shape": [2], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "header entry lacks 'dtype'")),
        Case(name: "dtype not a string", header: #"{"x": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'dtype' must be a string, found an integer")),
        Case(name: "dtype unknown", header: #"{"x": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "unknown dtype 'F7'")),
        Case(name: "shape missing", header: #"{"x": {"dtype": "F32", "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "header entry lacks 'shape'")),
        Case(name: "shape not an array", header: #"{"x": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x",
                                      message: "'shape' must be an array of non-negative integers, found a string")),
        Case(name: "shape negative", header: #"{"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'shape' must be an array of non-negative integers")),
        Case(name: "shape fractional", header: #"{"x": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'shape' must be an array of non-negative integers")),
        Case(name: "offsets missing", header: #"{"x": {"dtype": "F32", "shape": [2]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "header entry lacks 'data_offsets'")),
        Case(name: "offsets one number", header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'data_offsets' must be [begin, end] with 0 <= begin <= end")),
        Case(name: "offsets reversed", header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'data_offsets' must be [begin, end] with 0 <= begin <= end")),
        Case(name: "offsets negative", header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "'data_offsets' must be [begin, end] with 0 <= begin <= end")),
        Case(name: "offsets past the data area", header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x", message: "data_offsets [12, 20] lie outside the data area (16 bytes)")),
        Case(name: "size not shape × dtype", header: #"{"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x",
                                      message: "data_offsets [0, 8] hold 8 bytes but shape [2, 2] of F32 needs 16")),
        Case(name: "shape product overflows",
             header: #"{"x": {"dtype": "F64", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "x",
                                      message: "data_offsets [0, 8] hold 8 bytes but shape [4611686018427387904, 4] of F64 needs more than 9223372036854775807")),
        Case(name: "overlapping tensors",
             header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
             expected: .invalidTensor(file: fileName, tensor: "b", message: "data overlaps tensor 'a'")),
        Case(name: "metadata not strings", header: #"{"__metadata__": {"step": 3}}"#,
             expected: .invalidField(file: fileName, line: nil, field: "__metadata__", message: "expected an object of strings")),
        Case(name: "duplicate tensor name",
             header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}"#,
             expected: .invalidJSON(file: fileName, line: nil, message: "header: duplicate key \"a\" at column 63")),
    ]

    @Test("each malformed header gives its exact error", arguments: cases)
    func malformed(_ testCase: Case) throws {
        let directory = try TemporaryDirectory()
        #expect(throws: testCase.expected) {
            try openRaw(directory, header: testCase.header, data: [UInt8](repeating: 0, count: testCase.dataSize))
        }
    }

    @Test("a non-float dtype is refused for a q/k tensor")
    func nonFloatTensor() throws {
        let directory = try TemporaryDirectory()
        let file = try openRaw(directory, header: #"{"x": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}"#,
                               data: [UInt8](repeating: 0, count: 8))
        #expect(throws: EngineError.invalidTensor(file: fileName, tensor: "x",
                                                  message: "dtype I32 is not supported for q/k tensors (F32, F16, BF16 or F64)")) {
            try file.floatTensor(named: "x")!.get()
        }
    }
}

@Suite("Tensor decoding")
struct TensorDecodingTests {
    /// A file whose data area starts at an odd offset and whose tensor follows a 1-byte tensor, so nothing is aligned.
    private func unalignedFile(_ directory: TemporaryDirectory, dtype: TensorDType, shape: [Int], values: [Float]) throws -> SafetensorsFile {
        let data = [UInt8(7)] + TensorEncoder.encode(values, as: dtype)
        let header = #"{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"\#(dtype.rawValue)","shape":\#(shape),"data_offsets":[1,\#(data.count)]}}"#
        let padded = (8 + header.utf8.count) % 2 == 1 ? header : header + " "
        return try openRaw(directory, header: padded, data: data)
    }

    @Test("unaligned slices of every dtype decode exactly, SIMD blocks and tails alike",
          arguments: TensorDType.allCases, [1, 19, 40])
    func unalignedSlices(dtype: TensorDType, width: Int) throws {
        let directory = try TemporaryDirectory()
        let (rows, heads) = (3, 4)
        let values = representable(rows * heads * width)
        let file = try unalignedFile(directory, dtype: dtype, shape: [rows, heads, width], values: values)
        #expect((file.entries["t"]!.fileRange.lowerBound) % 2 == 0)  // odd data start + 1
        let view = try tensor(file, "t")
        for head in 0..<heads {
            var expected: [Float] = []
            for row in 0..<rows {
                let start = (row * heads + head) * width
                expected += values[start..<(start + width)]
            }
            #expect(try decodeSlice(view, head: head) == expected)
        }
        #expect(try decodeAll(view) == values)
    }

    @Test("special F16 and BF16 values decode as their types define them")
    func specialValues() throws {
        let directory = try TemporaryDirectory()
        let halves: [UInt16] = [0x0001, 0x03FF, 0x3C00, 0xC000, 0x7BFF, 0x8000] + Array(repeating: 0x3555, count: 12)
        let data = halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let header = #"{"h":{"dtype":"F16","shape":[1,1,18],"data_offsets":[0,36]},"b":{"dtype":"BF16","shape":[1,1,18],"data_offsets":[36,72]}}"#
        let file = try openRaw(directory, header: header, data: data + data)
        #expect(try decodeSlice(tensor(file, "h"), head: 0) == halves.map { Float(Float16(bitPattern: $0)) })
        #expect(try decodeSlice(tensor(file, "b"), head: 0) == halves.map { Float(bitPattern: UInt32($0) << 16) })
    }

    struct BadValue: Sendable, CustomTestStringConvertible {
        var dtype: TensorDType
        var value: Float
        var index: [Int]
        var testDescription: String { "\(dtype) \(value) at \(index)" }
    }

    @Test("the first non-finite value is reported with its full index", arguments: [
        BadValue(dtype: .f32, value: .nan, index: [1, 2, 3]),
        BadValue(dtype: .f16, value: .infinity, index: [2, 2, 0]),
        BadValue(dtype: .bf16, value: -.infinity, index: [0, 2, 17]),
        BadValue(dtype: .bf16, value: .nan, index: [1, 2, 5]),
        BadValue(dtype: .f64, value: .nan, index: [2, 2, 18]),
        BadValue(dtype: .f16, value: 70000, index: [1, 2, 4]),  // beyond F16's range: stored as infinity
    ])
    func nonFinite(_ bad: BadValue) throws {
        let directory = try TemporaryDirectory()
        let (rows, heads, width) = (3, 4, 19)
        var values = representable(rows * heads * width)
        values[(bad.index[0] * heads + bad.index[1]) * width + bad.index[2]] = bad.value
        values[(2 * heads + 3) * width + 1] = .nan  // a later one, in another head
        let file = try unalignedFile(directory, dtype: bad.dtype, shape: [rows, heads, width], values: values)
        let view = try tensor(file, "t")
        #expect(throws: EngineError.nonFiniteValue(file: fileName, tensor: "t", index: bad.index)) {
            try decodeSlice(view, head: 2)
        }
        #expect(throws: EngineError.nonFiniteValue(file: fileName, tensor: "t", index: bad.index)) { try decodeAll(view) }
        _ = try decodeSlice(view, head: 0)  // other heads are clean
        #expect(throws: EngineError.nonFiniteValue(file: fileName, tensor: "t", index: [2, 3, 1])) { try decodeSlice(view, head: 3) }
    }

    @Test("an F64 value beyond Float's range counts as non-finite once narrowed")
    func f64Overflow() throws {
        let directory = try TemporaryDirectory()
        let doubles: [Double] = [1, 2, 1e300, 4]
        let data = doubles.flatMap { value in (0..<8).map { UInt8(truncatingIfNeeded: value.bitPattern >> (8 * $0)) } }
        let file = try openRaw(directory, header: #"{"t":{"dtype":"F64","shape":[2,1,2],"data_offsets":[0,32]}}"#, data: data)
        #expect(throws: EngineError.nonFiniteValue(file: fileName, tensor: "t", index: [1, 0, 0])) {
            try decodeSlice(tensor(file, "t"), head: 0)
        }
    }

    @Test("a view keeps its mapping alive and stays readable after releasing its pages")
    func mappingLifetime() throws {
        let directory = try TemporaryDirectory()
        let values = representable(2 * 3 * 40, seed: 5)
        let view = try {
            let file = try unalignedFile(directory, dtype: .bf16, shape: [2, 3, 40], values: values)
            return try tensor(file, "t")
        }()
        try FileManager.default.removeItem(at: directory.path(fileName))
        let before = try decodeAll(view)
        view.releasePages()
        #expect(try decodeAll(view) == before)
        #expect(before == values)
    }
}

@Suite("Tensor row blocks")
struct TensorRowBlockTests {
    @Test("decodeRows returns a block of rows with every head, and indexes a bad value in the whole tensor")
    func rowBlocks() throws {
        let directory = try TemporaryDirectory()
        let (rows, heads, width) = (5, 3, 4)
        var values = representable(rows * heads * width, seed: 2)
        let file = try openRaw(directory, header: #"{"t":{"dtype":"BF16","shape":[5,3,4],"data_offsets":[0,120]}}"#,
                               data: TensorEncoder.encode(values, as: .bf16))
        let view = try tensor(file, "t")
        var block = [Float](repeating: .nan, count: 2 * heads * width)
        try block.withUnsafeMutableBufferPointer { try view.decodeRows(2..<4, into: $0) }
        #expect(block == Array(values[(2 * heads * width)..<(4 * heads * width)]))

        values[(3 * heads + 1) * width + 2] = .infinity
        let bad = try openRaw(directory, header: #"{"t":{"dtype":"BF16","shape":[5,3,4],"data_offsets":[0,120]}}"#,
                              data: TensorEncoder.encode(values, as: .bf16))
        let badView = try tensor(bad, "t")
        #expect(throws: EngineError.nonFiniteValue(file: fileName, tensor: "t", index: [3, 1, 2])) {
            try block.withUnsafeMutableBufferPointer { try badView.decodeRows(2..<4, into: $0) }
        }
        try block.withUnsafeMutableBufferPointer { try badView.decodeRows(0..<2, into: $0) }
    }
}

@Suite("Safetensors writer")
struct SafetensorsWriterTests {
    @Test("written files read back: metadata, 8-byte aligned data area, every tensor in order")
    func writeAndRead() throws {
        let directory = try TemporaryDirectory()
        let values = representable(2 * 3 * 5)
        try SafetensorsWriter.write([
            SafetensorsTensor(name: "b", dtype: .f16, shape: [2, 3, 5], values: values),
            SafetensorsTensor(name: "a", dtype: "U8", shape: [3], data: [1, 2, 3]),
            SafetensorsTensor(name: "c", dtype: .f64, shape: [2, 3, 5], values: values),
        ], metadata: ["source": "test"], to: directory.path(fileName))
        let file = try SafetensorsFile(url: directory.path(fileName), displayName: fileName)
        let dataStart = file.entries["b"]!.fileRange.lowerBound
        #expect(dataStart % 8 == 0)
        #expect(file.entries["a"]!.fileRange == (dataStart + 60)..<(dataStart + 63))
        #expect(file.entries["c"]!.fileRange == (dataStart + 63)..<(dataStart + 303))
        #expect(try decodeAll(tensor(file, "b")) == values)
        #expect(try decodeAll(tensor(file, "c")) == values)
        #expect(file.mapping.size == dataStart + 303)
    }
}
