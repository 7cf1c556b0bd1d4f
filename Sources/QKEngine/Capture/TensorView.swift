import CQKKernels
import Foundation

/// A capture's query and key tensors for one layer.
public struct LayerTensors: @unchecked Sendable {
    public let layer: Int
    /// `layers.{L}.q`, shape `[P, n_heads, d_head]`.
    public let queries: TensorView
    /// `layers.{L}.k`, shape `[K, n_kv_heads, d_head]`.
    public let keys: TensorView

    public init(layer: Int, queries: TensorView, keys: TensorView) {
        self.layer = layer
        self.queries = queries
        self.keys = keys
    }

    /// Drops both tensors' pages from the resident set (see `TensorView.releasePages()`).
    public func releasePages() {
        queries.releasePages()
        keys.releasePages()
    }
}

/// A validated floating-point tensor inside memory-mapped safetensors files.
///
/// A tensor is usually in one file; the shards of a data-parallel capture, joined without copying,
/// hold it in pieces of consecutive rows, one per file (`joining`). The view keeps its files mapped
/// for as long as it exists. It is immutable and reads only, so several threads may decode from one
/// view at once.
public struct TensorView: @unchecked Sendable {
    /// The file holding the tensor, relative to the capture directory (the pieces' files, comma-separated).
    public let file: String
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Rows `rows` of the tensor are the bytes `fileRange` of `mapping`.
    struct Piece {
        let mapping: MappedFile
        let fileRange: Range<Int>
        let rows: Range<Int>
    }
    let pieces: [Piece]

    init(mapping: MappedFile, name: String, dtype: TensorDType, shape: [Int], fileRange: Range<Int>) {
        self.file = mapping.displayName
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.pieces = [Piece(mapping: mapping, fileRange: fileRange, rows: 0..<(shape.first ?? 1))]
    }

    /// One tensor from its pieces in row order; they share the dtype and every axis but the first.
    init(joining views: [TensorView]) {
        let first = views[0]
        precondition(views.allSatisfy { $0.dtype == first.dtype && $0.shape.dropFirst() == first.shape.dropFirst() },
                     "pieces of '\(first.name)' differ in dtype or trailing shape")
        var pieces: [Piece] = []
        var row = 0
        for piece in views.flatMap(\.pieces) {
            pieces.append(Piece(mapping: piece.mapping, fileRange: piece.fileRange, rows: row..<(row + piece.rows.count)))
            row += piece.rows.count
        }
        self.file = views.map(\.file).joined(separator: ", ")
        self.name = first.name
        self.dtype = first.dtype
        self.shape = [row] + first.shape.dropFirst()
        self.pieces = pieces
    }

    /// Size of the tensor's data in bytes.
    public var byteCount: Int { pieces.reduce(0) { $0 + $1.fileRange.count } }

    /// Number of elements (product of the shape).
    public var elementCount: Int { shape.reduce(1, *) }

    /// Decodes head `head` of a 3-D tensor `[N, H, d]` into `destination` as `N × d` floats, row-major `[n][d]`.
    ///
    /// Throws `.nonFiniteValue` with the full `[n, h, i]` index of the first NaN or infinity (an F64 value
    /// beyond Float's range counts as infinite once narrowed).
    public func decodeSlice(head: Int, into destination: UnsafeMutableBufferPointer<Float>) throws(EngineError) {
        precondition(shape.count == 3, "decodeSlice needs a 3-D tensor, '\(name)' has shape \(shape)")
        let heads = shape[1], width = shape[2]
        precondition(head >= 0 && head < heads, "head \(head) outside 0..<\(heads) of '\(name)'")
        precondition(destination.count >= shape[0] * width, "destination holds \(destination.count) floats, needs \(shape[0] * width)")
        guard width > 0 else { return }
        let elementSize = dtype.byteSize
        let rowStride = heads * width * elementSize
        for piece in pieces where !piece.rows.isEmpty {
            let rows = piece.rows.count
            let source = piece.mapping.base + piece.fileRange.lowerBound + head * width * elementSize
            let output = destination.baseAddress! + piece.rows.lowerBound * width
            // One dtype switch per slice, so each row loop calls a known (inlined) decoder; BF16 and F32
            // (the common cases) through the C kernels, compiled for the CPU's vector units.
            let badRow: Int?
            switch dtype {
            case .bf16: badRow = TensorDecoder.decodeRows(QK_DECODE_BF16, source, rowStride, output, width, rows)
            case .f16: badRow = TensorDecoder.decodeRows(TensorDecoder.decodeF16, source, rowStride, output, width, rows)
            case .f32: badRow = TensorDecoder.decodeRows(QK_DECODE_F32, source, rowStride, output, width, rows)
            case .f64: badRow = TensorDecoder.decodeRows(TensorDecoder.decodeF64, source, rowStride, output, width, rows)
            }
            try piece.mapping.checkIntact()
            if let row = badRow {
                let bad = TensorDecoder.firstNonFinite(output + row * width, count: width)
                throw .nonFiniteValue(file: piece.mapping.displayName, tensor: name,
                                      index: [piece.rows.lowerBound + row, head, bad])
            }
        }
    }

    /// Decodes the whole tensor, in its own row-major order, into `destination` (`elementCount` floats).
    ///
    /// Throws `.nonFiniteValue` with the full multi-dimensional index of the first NaN or infinity.
    public func decodeAll(into destination: UnsafeMutableBufferPointer<Float>) throws(EngineError) {
        try decodeRows(0..<(shape.first ?? 1), into: destination)
    }

    /// Decodes rows `rows` of the first axis (every head of them, contiguous in the file) into `destination`,
    /// row-major; with a block of rows at a time a caller can work on all heads while they are in cache.
    ///
    /// Throws `.nonFiniteValue` with the full multi-dimensional index of the first NaN or infinity.
    public func decodeRows(_ rows: Range<Int>, into destination: UnsafeMutableBufferPointer<Float>) throws(EngineError) {
        let rowCount = shape.first ?? 1
        precondition(rows.lowerBound >= 0 && rows.upperBound <= rowCount, "rows \(rows) outside 0..<\(rowCount) of '\(name)'")
        let rowElements = shape.isEmpty ? 1 : shape.dropFirst().reduce(1, *)
        let total = rows.count * rowElements
        precondition(destination.count >= total, "destination holds \(destination.count) floats, needs \(total)")
        guard total > 0 else { return }
        for piece in pieces {
            let part = rows.clamped(to: piece.rows)
            guard !part.isEmpty else { continue }
            try decode(piece, rows: part, rowElements: rowElements,
                       into: destination.baseAddress! + (part.lowerBound - rows.lowerBound) * rowElements)
        }
    }

    /// Decodes rows `rows` (tensor row numbers, inside `piece`) to `output`.
    private func decode(_ piece: Piece, rows: Range<Int>, rowElements: Int,
                        into output: UnsafeMutablePointer<Float>) throws(EngineError) {
        let total = rows.count * rowElements
        let chunk = 1 << 16
        let first = rows.lowerBound * rowElements
        let source = piece.mapping.base + piece.fileRange.lowerBound
            + (rows.lowerBound - piece.rows.lowerBound) * rowElements * dtype.byteSize
        var start = 0
        while start < total {
            let count = min(chunk, total - start)
            if !TensorDecoder.decode(dtype, from: source + start * dtype.byteSize, to: output + start, count: count) {
                try piece.mapping.checkIntact()
                var flat = first + start + TensorDecoder.firstNonFinite(output + start, count: count)
                var index = [Int](repeating: 0, count: shape.count)
                for axis in shape.indices.reversed() {
                    index[axis] = flat % shape[axis]
                    flat /= shape[axis]
                }
                throw .nonFiniteValue(file: piece.mapping.displayName, tensor: name, index: index)
            }
            start += count
        }
        try piece.mapping.checkIntact()
    }

    /// Drops the tensor's pages from the resident set (`madvise(MADV_DONTNEED)`); the data stays readable.
    public func releasePages() {
        for piece in pieces { piece.mapping.releasePages(piece.fileRange) }
    }
}

/// Conversion of little-endian tensor elements to Float, with a fused finiteness check.
///
/// Sources may be unaligned (safetensors offsets are byte offsets), so every load is unaligned.
enum TensorDecoder {
    private static let exponentMask: UInt32 = 0x7F80_0000

    /// Converts `count` elements; returns false if any decoded value is NaN or infinite.
    @inline(__always)
    static func decode(_ dtype: TensorDType, from source: UnsafeRawPointer, to output: UnsafeMutablePointer<Float>,
                       count: Int) -> Bool {
        switch dtype {
        case .bf16: return decodeBF16(source, output, count)
        case .f16: return decodeF16(source, output, count)
        case .f32: return decodeF32(source, output, count)
        case .f64: return decodeF64(source, output, count)
        }
    }

    /// Decodes `rows` rows of `width` elements, `rowStride` bytes apart, into consecutive output rows;
    /// returns the first row holding a non-finite value, if any.
    @inline(__always)
    static func decodeRows(_ decodeRow: (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Bool,
                           _ source: UnsafeRawPointer, _ rowStride: Int, _ output: UnsafeMutablePointer<Float>,
                           _ width: Int, _ rows: Int) -> Int? {
        for row in 0..<rows where !decodeRow(source + row &* rowStride, output + row &* width, width) {
            return row
        }
        return nil
    }

    /// `decodeRows` by the C kernel for `type`.
    static func decodeRows(_ type: qk_decode_type, _ source: UnsafeRawPointer, _ rowStride: Int,
                           _ output: UnsafeMutablePointer<Float>, _ width: Int, _ rows: Int) -> Int? {
        let bad = qk_decode_rows(-1, type, source, rowStride, output, Int32(width), Int32(rows))
        return bad < 0 ? nil : Int(bad)
    }

    /// Index of the first NaN or infinity among `count` decoded floats (`count` if none).
    static func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int {
        (0..<count).first { !values[$0].isFinite } ?? count
    }

    // Plain loops that LLVM vectorizes (vpmovzxwd + shift, vcvtph2ps, vcvtpd2ps); finiteness is an
    // unsigned max over the magnitude bits, a reduction that vectorizes too, checked once per call.

    @inline(__always)
    static func decodeBF16(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        var largestMagnitude: UInt32 = 0
        for index in 0..<count {
            let bits = UInt32(source.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self)) &<< 16
            output[index] = Float(bitPattern: bits)
            largestMagnitude = max(largestMagnitude, bits & 0x7FFF_FFFF)
        }
        return largestMagnitude < exponentMask
    }

    @inline(__always)
    static func decodeF16(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        var largestMagnitude: UInt16 = 0
        for index in 0..<count {
            let bits = source.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self)
            output[index] = Float(Float16(bitPattern: bits))
            largestMagnitude = max(largestMagnitude, bits & 0x7FFF)
        }
        return largestMagnitude < 0x7C00
    }

    @inline(__always)
    static func decodeF32(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        var largestMagnitude: UInt32 = 0
        for index in 0..<count {
            let bits = source.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self)
            output[index] = Float(bitPattern: bits)
            largestMagnitude = max(largestMagnitude, bits & 0x7FFF_FFFF)
        }
        return largestMagnitude < exponentMask
    }

    @inline(__always)
    static func decodeF64(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        var largestMagnitude: UInt32 = 0
        for index in 0..<count {
            let value = Float(Double(bitPattern: source.loadUnaligned(fromByteOffset: index &* 8, as: UInt64.self)))
            output[index] = value
            largestMagnitude = max(largestMagnitude, value.bitPattern & 0x7FFF_FFFF)
        }
        return largestMagnitude < exponentMask
    }
}
