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

/// A validated floating-point tensor inside a memory-mapped safetensors file.
///
/// The view keeps its file mapped for as long as it exists. It is immutable and reads only, so
/// several threads may decode from one view at once.
public struct TensorView: @unchecked Sendable {
    /// The file holding the tensor, relative to the capture directory.
    public let file: String
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    let mapping: MappedFile
    /// The tensor's bytes within the mapped file.
    let fileRange: Range<Int>

    init(mapping: MappedFile, name: String, dtype: TensorDType, shape: [Int], fileRange: Range<Int>) {
        self.file = mapping.displayName
        self.mapping = mapping
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.fileRange = fileRange
    }

    /// Size of the tensor's data in bytes.
    public var byteCount: Int { fileRange.count }

    /// Number of elements (product of the shape).
    public var elementCount: Int { shape.reduce(1, *) }

    /// Decodes head `head` of a 3-D tensor `[N, H, d]` into `destination` as `N × d` floats, row-major `[n][d]`.
    ///
    /// Throws `.nonFiniteValue` with the full `[n, h, i]` index of the first NaN or infinity (an F64 value
    /// beyond Float's range counts as infinite once narrowed).
    public func decodeSlice(head: Int, into destination: UnsafeMutableBufferPointer<Float>) throws(EngineError) {
        precondition(shape.count == 3, "decodeSlice needs a 3-D tensor, '\(name)' has shape \(shape)")
        let rows = shape[0], heads = shape[1], width = shape[2]
        precondition(head >= 0 && head < heads, "head \(head) outside 0..<\(heads) of '\(name)'")
        precondition(destination.count >= rows * width, "destination holds \(destination.count) floats, needs \(rows * width)")
        guard rows > 0, width > 0 else { return }
        let elementSize = dtype.byteSize
        let rowStride = heads * width * elementSize
        let source = mapping.base + fileRange.lowerBound + head * width * elementSize
        let output = destination.baseAddress!
        for row in 0..<rows {
            let rowOutput = output + row * width
            if !TensorDecoder.decode(dtype, from: source + row * rowStride, to: rowOutput, count: width) {
                let bad = TensorDecoder.firstNonFinite(rowOutput, count: width)
                throw .nonFiniteValue(file: file, tensor: name, index: [row, head, bad])
            }
        }
    }

    /// Decodes the whole tensor, in its own row-major order, into `destination` (`elementCount` floats).
    ///
    /// Throws `.nonFiniteValue` with the full multi-dimensional index of the first NaN or infinity.
    public func decodeAll(into destination: UnsafeMutableBufferPointer<Float>) throws(EngineError) {
        let total = elementCount
        precondition(destination.count >= total, "destination holds \(destination.count) floats, needs \(total)")
        guard total > 0 else { return }
        let chunk = 1 << 16
        let source = mapping.base + fileRange.lowerBound
        let output = destination.baseAddress!
        var start = 0
        while start < total {
            let count = min(chunk, total - start)
            if !TensorDecoder.decode(dtype, from: source + start * dtype.byteSize, to: output + start, count: count) {
                var flat = start + TensorDecoder.firstNonFinite(output + start, count: count)
                var index = [Int](repeating: 0, count: shape.count)
                for axis in shape.indices.reversed() {
                    index[axis] = flat % shape[axis]
                    flat /= shape[axis]
                }
                throw .nonFiniteValue(file: file, tensor: name, index: index)
            }
            start += count
        }
    }

    /// Drops the tensor's pages from the resident set (`madvise(MADV_DONTNEED)`); the data stays readable.
    public func releasePages() {
        mapping.releasePages(fileRange)
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

    /// Index of the first NaN or infinity among `count` decoded floats (`count` if none).
    static func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int {
        (0..<count).first { !values[$0].isFinite } ?? count
    }

    static func decodeBF16(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        let rawOutput = UnsafeMutableRawPointer(output)
        var nonFinite = SIMDMask<SIMD16<Int32>>(repeating: false)
        var index = 0
        while index + 16 <= count {
            let raw = source.loadUnaligned(fromByteOffset: index * 2, as: SIMD16<UInt16>.self)
            let bits = SIMD16<UInt32>(truncatingIfNeeded: raw) &<< 16
            rawOutput.storeBytes(of: bits, toByteOffset: index * 4, as: SIMD16<UInt32>.self)
            nonFinite .|= (bits & exponentMask) .== exponentMask
            index += 16
        }
        var tailBad = false
        while index < count {
            let bits = UInt32(source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)) << 16
            output[index] = Float(bitPattern: bits)
            tailBad = tailBad || (bits & exponentMask) == exponentMask
            index += 1
        }
        return !any(nonFinite) && !tailBad
    }

    static func decodeF16(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        let rawOutput = UnsafeMutableRawPointer(output)
        var nonFinite = SIMDMask<SIMD16<Int16>>(repeating: false)
        let mask: UInt16 = 0x7C00
        var index = 0
        while index + 16 <= count {
            let raw = source.loadUnaligned(fromByteOffset: index * 2, as: SIMD16<UInt16>.self)
            let halves = unsafeBitCast(raw, to: SIMD16<Float16>.self)
            rawOutput.storeBytes(of: SIMD16<Float>(halves), toByteOffset: index * 4, as: SIMD16<Float>.self)
            nonFinite .|= (raw & mask) .== mask
            index += 16
        }
        var tailBad = false
        while index < count {
            let bits = source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)
            output[index] = Float(Float16(bitPattern: bits))
            tailBad = tailBad || (bits & mask) == mask
            index += 1
        }
        return !any(nonFinite) && !tailBad
    }

    static func decodeF32(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        let rawOutput = UnsafeMutableRawPointer(output)
        var nonFinite = SIMDMask<SIMD16<Int32>>(repeating: false)
        var index = 0
        while index + 16 <= count {
            let bits = source.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<UInt32>.self)
            rawOutput.storeBytes(of: bits, toByteOffset: index * 4, as: SIMD16<UInt32>.self)
            nonFinite .|= (bits & exponentMask) .== exponentMask
            index += 16
        }
        var tailBad = false
        while index < count {
            let bits = source.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)
            output[index] = Float(bitPattern: bits)
            tailBad = tailBad || (bits & exponentMask) == exponentMask
            index += 1
        }
        return !any(nonFinite) && !tailBad
    }

    static func decodeF64(_ source: UnsafeRawPointer, _ output: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
        let rawOutput = UnsafeMutableRawPointer(output)
        var nonFinite = SIMDMask<SIMD8<Int32>>(repeating: false)
        var index = 0
        while index + 8 <= count {
            let bits = source.loadUnaligned(fromByteOffset: index * 8, as: SIMD8<UInt64>.self)
            let narrowed = SIMD8<Float>(unsafeBitCast(bits, to: SIMD8<Double>.self))
            rawOutput.storeBytes(of: narrowed, toByteOffset: index * 4, as: SIMD8<Float>.self)
            let narrowedBits = unsafeBitCast(narrowed, to: SIMD8<UInt32>.self)
            nonFinite .|= (narrowedBits & exponentMask) .== exponentMask
            index += 8
        }
        var tailBad = false
        while index < count {
            let value = Float(Double(bitPattern: source.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)))
            output[index] = value
            tailBad = tailBad || !value.isFinite
            index += 1
        }
        return !any(nonFinite) && !tailBad
    }
}
