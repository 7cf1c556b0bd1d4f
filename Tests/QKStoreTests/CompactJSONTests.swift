import Foundation
import QKEngine
import Testing
@testable import QKStore

/// Doubles of every kind, reproducibly: random bit patterns (subnormal, tiny, huge, negative), float32 values widened
/// (what dot products of float vectors often give), everyday magnitudes, and the edge values.
func assortedDoubles(count: Int, seed: UInt64, binaryExponents: ClosedRange<Int> = -1074 ... 1023) -> [Double] {
    var random = SeededGenerator(seed: seed)
    var values: [Double] = [0, 1, -1, 2, 0.1, 0.30000000000000004, 1e16, 1e-5, 123456789012345678]
    values += [Double.leastNonzeroMagnitude, -Double.leastNonzeroMagnitude, Double.leastNormalMagnitude,
               Double.greatestFiniteMagnitude, -Double.greatestFiniteMagnitude]
        .filter { binaryExponents.contains(Int($0.exponent)) }
    while values.count < count {
        let value: Double
        switch random.next() % 3 {
        case 0: value = Double(bitPattern: random.next())
        case 1: value = Double(Float(bitPattern: UInt32(truncatingIfNeeded: random.next())))
        default: value = (random.nextUnit() - 0.5) * pow(10, Double(Int(random.next() % 25) - 12))
        }
        guard value.isFinite, value == 0 || binaryExponents.contains(Int(value.exponent)) else { continue }
        values.append(value)
    }
    return values
}

@Suite struct CompactJSONTests {
    @Test func doublesReadBackBitForBitThroughSQLitesJSON() throws {
        let database = try Database(path: ":memory:")
        let read = try database.prepare("SELECT value, typeof(value) FROM json_each(?)")
        let values = assortedDoubles(count: 100_000, seed: 11)
        #expect(values.contains { $0.isSubnormal } && values.contains { abs($0) > 1e300 })
        var mismatches: [String] = []
        for start in stride(from: 0, to: values.count, by: 1000) {
            let chunk = values[start ..< min(start + 1000, values.count)]
            var writer = CompactJSONWriter()
            writer.raw("[")
            for (offset, value) in chunk.enumerated() {
                if offset > 0 { writer.raw(",") }
                writer.number(value)
            }
            writer.raw("]")
            try read.bind(utf8: writer.bytes, at: 1)
            var got: [Double] = []
            while try read.step() {
                if read.text(at: 1) != "real" { mismatches.append("type \(read.text(at: 1) ?? "")") }
                got.append(read.double(at: 0) ?? .nan)
            }
            read.reset()
            #expect(got.count == chunk.count)
            for (value, back) in zip(chunk, got) where value.bitPattern != back.bitPattern {
                mismatches.append("\(value) read back as \(back)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test func infinitiesAreWrittenAsNumbersSQLiteReadsAsInfinite() throws {
        var writer = CompactJSONWriter()
        writer.raw("[")
        writer.number(.infinity)
        writer.raw(",")
        writer.number(-.infinity)
        writer.raw(",")
        writer.number(-0.0)
        writer.raw("]")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "[1e999,-1e999,-0.0]")
        let database = try Database(path: ":memory:")
        let read = try database.prepare("SELECT value FROM json_each(?)")
        try read.bind(utf8: writer.bytes, at: 1)
        var got: [Double] = []
        while try read.step() { got.append(read.double(at: 0) ?? .nan) }
        #expect(got == [.infinity, -.infinity, 0])
    }

    @Test func integersOfEveryWidth() throws {
        let values = [0, 7, -7, 10, 1_000_000_007, Int.max, Int.min]
        var writer = CompactJSONWriter()
        writer.raw("[")
        for (offset, value) in values.enumerated() {
            if offset > 0 { writer.raw(",") }
            writer.integer(value)
        }
        writer.raw("]")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "[" + values.map(String.init).joined(separator: ",") + "]")
        let database = try Database(path: ":memory:")
        let read = try database.prepare("SELECT value, typeof(value) FROM json_each(?)")
        try read.bind(utf8: writer.bytes, at: 1)
        var got: [Int] = []
        while try read.step() {
            #expect(read.text(at: 1) == "integer")
            got.append(read.int(at: 0) ?? -1)
        }
        #expect(got == values)
    }

    static let nastyTokens = [
        "", "plain", "\"", "\\", "\\\"", "\"\\\"\\", "a\nb\tc\r", "\u{8}\u{c}", "\u{7f}", "é", "日本語", "😀", "Ġbanana", "Ċ",
        "</script>", "\\u0041", "\u{2028}\u{2029}", "\u{FEFF}x", "\u{10FFFF}", "'single' \"double\"",
        String((1 ... 31).map { Character(UnicodeScalar(UInt8($0))) }),
    ]

    @Test func escapingIsExactForTheCharactersJSONReserves() {
        var writer = CompactJSONWriter()
        writer.string("a\"b\\c\nd\u{1}e\u{1f}é😀")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #""a\"b\\c\nd\u0001e\u001fé😀""#)
        writer.removeAll()
        writer.string("")
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #""""#)
    }

    @Test func nastyTokensReadBackUnchangedThroughSQLiteAndFoundation() throws {
        let database = try Database(path: ":memory:")
        let read = try database.prepare("SELECT value, typeof(value) FROM json_each(?)")
        // U+0000 too for Foundation; SQLite 3.40's JSON functions cut a string at an escaped NUL, so not there.
        for (tokens, viaSQLite) in [(Self.nastyTokens, true), (Self.nastyTokens + ["a\u{0}b"], false)] {
            var writer = CompactJSONWriter()
            writer.raw("[")
            for (offset, token) in tokens.enumerated() {
                if offset > 0 { writer.raw(",") }
                writer.string(token)
            }
            writer.raw("]")
            // Foundation's parser drops a string's leading U+FEFF, so that one token is left to SQLite.
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String])
            #expect(parsed.count == tokens.count)
            for (back, token) in zip(parsed, tokens) where !token.hasPrefix("\u{FEFF}") { #expect(back == token) }
            guard viaSQLite else { continue }
            #expect(try database.scalarInt("SELECT json_valid(?)", [.text(String(decoding: writer.bytes, as: UTF8.self))]) == 1)
            try read.bind(utf8: writer.bytes, at: 1)
            var got: [String] = []
            while try read.step() {
                #expect(read.text(at: 1) == "text")
                got.append(read.text(at: 0) ?? "<NULL>")
            }
            read.reset()
            #expect(got == tokens)
        }
    }
}
