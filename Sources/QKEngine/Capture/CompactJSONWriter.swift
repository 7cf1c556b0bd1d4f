/// Compact JSON written straight into UTF-8 bytes: the one writer of the JSON the engine and the catalog write
/// (prompts.jsonl lines, provenance, examples, token lists, capture options), shared with the store through package
/// access.
///
/// Foundation's encoders cost more than the inserts they replace; this writes only what those layouts need.
package struct CompactJSONWriter {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// The text written so far.
    package var text: String { String(decoding: bytes, as: UTF8.self) }

    /// `[…]` of strings as one text.
    package static func array(_ strings: [String]) -> String {
        var writer = CompactJSONWriter()
        writer.array(strings)
        return writer.text
    }

    /// `[…]` of integers as one text.
    package static func array(_ integers: [Int]) -> String {
        var writer = CompactJSONWriter()
        writer.array(integers)
        return writer.text
    }

    package mutating func array(_ strings: [String]) {
        raw("[")
        for (offset, element) in strings.enumerated() {
            if offset > 0 { raw(",") }
            string(element)
        }
        raw("]")
    }

    package mutating func array(_ integers: [Int]) {
        raw("[")
        for (offset, element) in integers.enumerated() {
            if offset > 0 { raw(",") }
            integer(element)
        }
        raw("]")
    }

    /// Empties the buffer, keeping its storage for the next document.
    package mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Appends JSON punctuation or other text that needs no escaping.
    package mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    package mutating func integer(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// A finite double as Swift's shortest round-trip form (SQLite's JSON parser reads it back bit for bit, a
    /// REAL even when integral: "2.0"); ±infinity as ±1e999, which SQLite reads as ±Inf. NaN has no JSON form.
    package mutating func number(_ value: Double) {
        precondition(!value.isNaN, "NaN has no JSON form; callers reject it")
        if value.isInfinite {
            value < 0 ? raw("-1e999") : raw("1e999")
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped, and DEL, U+2028 and U+2029 as `\u`
    /// sequences (JavaScript once rejected the two separators in strings); everything else as UTF-8.
    package mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var pending = 0   // start of the bytes not yet copied
            for offset in utf8.indices {
                let byte = utf8[offset]
                let separator = byte == 0xE2 && offset + 2 < utf8.count && utf8[offset + 1] == 0x80
                    && (utf8[offset + 2] == 0xA8 || utf8[offset + 2] == 0xA9)
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F || separator
                else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[pending ..< offset]))
                if separator {
                    raw(utf8[offset + 2] == 0xA8 ? "\\u2028" : "\\u2029")
                    pending = offset + 3
                } else {
                    escape(byte)
                    pending = offset + 1
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[pending...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): raw("\\\"")
        case UInt8(ascii: "\\"): raw("\\\\")
        case 0x08: raw("\\b")
        case 0x0C: raw("\\f")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        default:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            raw("\\u00")
            bytes.append(hex[Int(byte >> 4)])
            bytes.append(hex[Int(byte & 0xF)])
        }
    }
}
