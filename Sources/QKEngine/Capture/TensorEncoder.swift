import Foundation

/// Conversion of Float values to a tensor dtype's little-endian bytes.
public enum TensorEncoder {
    /// The BF16 bit pattern nearest to `value`, ties to even (NaN stays a quiet NaN of the same sign).
    @inline(__always)
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; carries ripple into the exponent.
        let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Appends `values` encoded as `dtype` to `bytes`.
    public static func append(_ values: UnsafeBufferPointer<Float>, as dtype: TensorDType, to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: values.count * dtype.byteSize))
        bytes.withUnsafeMutableBytes { raw in
            encode(values, as: dtype, into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
    }

    /// `values` encoded as `dtype`.
    public static func encode(_ values: [Float], as dtype: TensorDType) -> [UInt8] {
        var bytes: [UInt8] = []
        values.withUnsafeBufferPointer { append($0, as: dtype, to: &bytes) }
        return bytes
    }

    /// Writes `values` as `dtype` into `destination`, which holds exactly `values.count × byteSize` bytes.
    static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: TensorDType, into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count == values.count * dtype.byteSize)
        guard let output = destination.baseAddress, values.count > 0 else { return }
        let input = values.baseAddress!
        // Index loops over unaligned stores, which LLVM vectorizes.
        switch dtype {
        case .f32:
            for index in 0..<values.count {
                output.storeBytes(of: input[index].bitPattern.littleEndian, toByteOffset: index &* 4, as: UInt32.self)
            }
        case .f16:
            for index in 0..<values.count {
                output.storeBytes(of: Float16(input[index]).bitPattern.littleEndian, toByteOffset: index &* 2, as: UInt16.self)
            }
        case .bf16:
            for index in 0..<values.count {
                output.storeBytes(of: bf16Bits(input[index]).littleEndian, toByteOffset: index &* 2, as: UInt16.self)
            }
        case .f64:
            for index in 0..<values.count {
                output.storeBytes(of: Double(input[index]).bitPattern.littleEndian, toByteOffset: index &* 8, as: UInt64.self)
            }
        }
    }
}
