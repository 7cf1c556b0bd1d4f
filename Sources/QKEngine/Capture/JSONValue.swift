import Foundation

/// A parsed JSON value that keeps integers apart from floating-point numbers.
///
/// The capture reader parses with its own small parser rather than `JSONSerialization` so that
/// validation can tell `1` from `1.0` and `true`, reject duplicate keys, and give the same
/// error messages on every platform.
enum JSONValue: Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The value's kind as an error message names it ("a string", "an integer", ...).
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer: return "an integer"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Compact JSON with sorted object keys (deterministic, for provenance fields).
    var compactSortedJSON: String {
        var json = CompactJSONWriter()
        write(to: &json)
        return json.text
    }

    private func write(to json: inout CompactJSONWriter) {
        switch self {
        case .null: json.raw("null")
        case let .bool(value): json.raw(value ? "true" : "false")
        case let .integer(value): json.integer(value)
        case let .number(value): json.number(value)
        case let .string(value): json.string(value)
        case let .array(items):
            json.raw("[")
            for (index, item) in items.enumerated() {
                if index > 0 { json.raw(",") }
                item.write(to: &json)
            }
            json.raw("]")
        case let .object(members):
            json.raw("{")
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { json.raw(",") }
                json.string(key)
                json.raw(":")
                members[key]!.write(to: &json)
            }
            json.raw("}")
        }
    }
}

/// A JSON syntax error: what went wrong and at which 1-based byte column.
package struct JSONSyntaxError: Error, Equatable {
    package var message: String

    package init(message: String) { self.message = message }
}

/// Recursive-descent JSON parser over UTF-8 bytes (RFC 8259; duplicate object keys rejected).
///
/// `parse` builds a `JSONValue`. The `read…` methods pull a value of a known shape without building one, over the same
/// scanning of strings, numbers and delimiters: the store decodes the JSON it keeps with them.
package struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    /// Numbers beyond Double's range read as ±infinity instead of failing.
    private let infiniteNumbers: Bool
    private static let maximumDepth = 256

    /// Parses exactly one JSON value, with only whitespace around it.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        try parser.readEnd()
        return value
    }

    static func parse(_ data: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        do {
            return try data.withUnsafeBufferPointer { buffer in try parse(buffer) }
        } catch let error as JSONSyntaxError {
            throw error
        } catch {
            throw JSONSyntaxError(message: "\(error)")
        }
    }

    /// A reader at the start of `bytes`. With `infiniteNumbers`, a number too large for a Double reads as ±infinity,
    /// as SQLite reads the ±1e999 that `CompactJSONWriter` writes for infinite scores; otherwise it is an error.
    package init(bytes: UnsafeBufferPointer<UInt8>, infiniteNumbers: Bool = false) {
        self.bytes = bytes
        self.infiniteNumbers = infiniteNumbers
    }

    private func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(message: "\(message) at column \(index + 1)")
    }

    private func describeCurrent() -> String {
        guard index < bytes.count else { return "end of input" }
        let byte = bytes[index]
        if byte >= 0x21 && byte < 0x7F { return "character '\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected \(describeCurrent())")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        let start = literal.utf8Start
        guard index + count <= bytes.count else { throw error("unexpected \(describeCurrent())") }
        for offset in 0..<count where bytes[index + offset] != start[offset] {
            throw error("unexpected \(describeCurrent())")
        }
        index += count
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > JSONParser.maximumDepth { throw error("nesting deeper than \(JSONParser.maximumDepth)") }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONValue {
        var members: [String: JSONValue] = [:]
        try readObject { (key, parser) throws(JSONSyntaxError) in
            let keyStart = parser.keyStart
            if members.updateValue(try parser.parseValue(), forKey: key) != nil {
                throw JSONSyntaxError(message: "duplicate key \"\(key)\" at column \(keyStart + 1)")
            }
        }
        return .object(members)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        var items: [JSONValue] = []
        try readArray { (_, parser) throws(JSONSyntaxError) in items.append(try parser.parseValue()) }
        return .array(items)
    }

    /// Where the key `readObject` last handed out starts.
    private var keyStart = 0

    /// Reads an object, calling `member` with each key and the parser at the start of its value, which `member`
    /// must read whole.
    package mutating func readObject(_ member: (String, inout JSONParser) throws(JSONSyntaxError) -> Void)
        throws(JSONSyntaxError)
    {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else {
            throw error("expected an object, found \(describeCurrent())")
        }
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("expected a string key, found \(describeCurrent())")
            }
            keyStart = index
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                throw error("expected ':', found \(describeCurrent())")
            }
            index += 1
            skipWhitespace()
            try member(key, &self)
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return }
            throw error("expected ',' or '}', found \(describeCurrent())")
        }
    }

    /// Reads an array, calling `element` with each element's position and the parser at its start; `element` must
    /// read the element whole.
    package mutating func readArray(_ element: (Int, inout JSONParser) throws(JSONSyntaxError) -> Void)
        throws(JSONSyntaxError)
    {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else {
            throw error("expected an array, found \(describeCurrent())")
        }
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        var position = 0
        while true {
            skipWhitespace()
            try element(position, &self)
            position += 1
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return }
            throw error("expected ',' or ']', found \(describeCurrent())")
        }
    }

    /// Reads a string.
    package mutating func readString() throws(JSONSyntaxError) -> String {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            throw error("expected a string, found \(describeCurrent())")
        }
        return try parseString()
    }

    /// Reads a number written as an integer that fits an `Int`.
    package mutating func readInteger() throws(JSONSyntaxError) -> Int {
        skipWhitespace()
        let start = index
        guard case let .integer(value) = try parseNumber() else {
            index = start
            throw error("expected an integer")
        }
        return value
    }

    /// Reads a number, integer or not.
    package mutating func readNumber() throws(JSONSyntaxError) -> Double {
        skipWhitespace()
        let start = index
        let isInteger = try scanNumber()
        if isInteger, index - start <= 18 {
            let value = integerValue(start)
            // "-0" is negative zero, as a double.
            if value == 0 && bytes[start] == UInt8(ascii: "-") { return -0.0 }
            return Double(value)
        }
        return try doubleValue(start)
    }

    /// Checks that only whitespace follows.
    package mutating func readEnd() throws(JSONSyntaxError) {
        skipWhitespace()
        if index < bytes.count {
            throw error("unexpected \(describeCurrent()) after the value")
        }
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes (and, for ASCII, nothing to validate).
        var anyNonASCII: UInt8 = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                guard let string = anyNonASCII < 0x80 ? String(decoding: slice, as: UTF8.self) : Self.validString(slice) else {
                    throw JSONSyntaxError(message: "invalid UTF-8 in a string at column \(start + 1)")
                }
                index += 1
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("unescaped control character in a string") }
            anyNonASCII |= byte
            index += 1
        }
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                guard let string = utf8.withUnsafeBufferPointer(Self.validString) else {
                    throw JSONSyntaxError(message: "invalid UTF-8 in a string at column \(start + 1)")
                }
                index += 1
                return string
            }
            if byte < 0x20 { throw error("unescaped control character in a string") }
            if byte != UInt8(ascii: "\\") {
                utf8.append(byte)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): utf8.append(0x22)
            case UInt8(ascii: "\\"): utf8.append(0x5C)
            case UInt8(ascii: "/"): utf8.append(0x2F)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalarValue = try parseHex4()
                if (0xD800..<0xDC00).contains(scalarValue) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                          bytes[index + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate escape")
                    }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate escape") }
                    scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalarValue) {
                    throw error("unpaired surrogate escape")
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { throw error("invalid \\u escape") }
                utf8.append(contentsOf: String(scalar).utf8)
            default:
                index -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))'")
            }
        }
        throw error("unterminated string")
    }

    /// `bytes` as a String, or nil when they are not UTF-8. Decoding repairs each invalid sequence with U+FFFD (itself
    /// valid), so the text decodes to its own bytes exactly when it is valid: cheaper than the generic validating
    /// initializer.
    private static func validString(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var string = String(decoding: bytes, as: UTF8.self)
        let unchanged = string.withUTF8 { decoded in
            decoded.count == bytes.count && (bytes.isEmpty || memcmp(decoded.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
        }
        return unchanged ? string : nil
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = index
        let isInteger = try scanNumber()
        if isInteger {
            // Up to 18 digits always fit an Int; longer ones are checked.
            if index - start <= 18 { return .integer(integerValue(start)) }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if let value = Int(text) { return .integer(value) }
        }
        return .number(try doubleValue(start))
    }

    /// Moves past a number's text (RFC 8259 grammar) and tells whether it has neither fraction nor exponent.
    private mutating func scanNumber() throws(JSONSyntaxError) -> Bool {
        var isInteger = true
        guard index < bytes.count else { throw error("unexpected end of input") }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count && isDigit(bytes[index]) { throw error("leading zero in a number") }
        } else {
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
            isInteger = false
            index += 1
            if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        return isInteger
    }

    /// The scanned integer from `start` to here, at most 18 digits.
    private func integerValue(_ start: Int) -> Int {
        var position = start
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        var value = 0
        while position < index {
            value = value &* 10 &+ Int(bytes[position] &- UInt8(ascii: "0"))
            position += 1
        }
        return negative ? -value : value
    }

    /// The scanned number from `start` to here as the nearest Double (strtod, correctly rounded, on a NUL-terminated
    /// copy; Swift's own conversion if strtod reads the text differently, as under a locale with another decimal mark).
    private func doubleValue(_ start: Int) throws(JSONSyntaxError) -> Double {
        if let value = exactDouble(start) { return value }
        let count = index - start
        let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
        let parsed: Double? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(slice))
            buffer[count] = 0
            var end: UnsafeMutablePointer<CChar>?
            let value = strtod(buffer.baseAddress!, &end)
            return end == buffer.baseAddress! + count ? value : nil
        }
        let text = { String(decoding: slice, as: UTF8.self) }
        guard let value = parsed ?? Double(text()) else {
            throw JSONSyntaxError(message: "number \(text()) out of range at column \(start + 1)")
        }
        guard value.isFinite || infiniteNumbers else {
            throw JSONSyntaxError(message: "number \(text()) out of range at column \(start + 1)")
        }
        return value
    }

    /// Powers of ten that are exact doubles.
    private static let exactPowersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ]

    /// The scanned number when a single operation on exact doubles gives it (Clinger's fast path): digits that fit
    /// 2^53 times or over a power of ten up to 10^22, each operand exact, so the one rounding is the correct one,
    /// the same as strtod's. Nil otherwise (more digits, a larger exponent).
    private func exactDouble(_ start: Int) -> Double? {
        var position = start
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        var mantissa: UInt64 = 0, digits = 0, exponent = 0
        var fraction = false
        while position < index {
            let byte = bytes[position]
            if byte == UInt8(ascii: ".") {
                fraction = true
            } else if isDigit(byte) {
                if mantissa > 0 || byte != UInt8(ascii: "0") { digits += 1 }
                guard digits <= 17 else { return nil }
                mantissa = mantissa * 10 + UInt64(byte - UInt8(ascii: "0"))
                if fraction { exponent -= 1 }
            } else {
                break   // e or E
            }
            position += 1
        }
        if position < index {
            position += 1
            var sign = 1
            if bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "+") {
                if bytes[position] == UInt8(ascii: "-") { sign = -1 }
                position += 1
            }
            guard index - position <= 4 else { return nil }
            var written = 0
            while position < index {
                written = written * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                position += 1
            }
            exponent += sign * written
        }
        guard mantissa <= 1 << 53 else { return nil }
        var value = Double(mantissa)
        if mantissa != 0 {
            guard exponent >= -22, exponent <= 22 else { return nil }
            value = exponent < 0 ? value / Self.exactPowersOfTen[-exponent] : value * Self.exactPowersOfTen[exponent]
        }
        return negative ? -value : value
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// The engine's JSON parser for the arrays the catalog stores (prompt tokens, captured layers), shared with the
/// store through package access; nil when the text is not such an array.
package enum JSONArrays {
    package static func strings(_ text: String) -> [String]? {
        guard case let .array(elements)? = try? JSONParser.parse(Array(text.utf8)) else { return nil }
        var strings: [String] = []
        for element in elements {
            guard case let .string(string) = element else { return nil }
            strings.append(string)
        }
        return strings
    }

    package static func integers(_ text: String) -> [Int]? {
        guard case let .array(elements)? = try? JSONParser.parse(Array(text.utf8)) else { return nil }
        var integers: [Int] = []
        for element in elements {
            guard case let .integer(integer) = element else { return nil }
            integers.append(integer)
        }
        return integers
    }
}
