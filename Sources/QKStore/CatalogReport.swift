import Foundation
import QKEngine

extension Catalog {
    /// The decompositions of one layer of one checkpoint (optionally one feature), with their components, examples and
    /// token aggregates but without the component vectors (`u` and `v` are empty): what a report shows, read in two
    /// statements. Examples and aggregates are decoded from `component_examples` here rather than through the
    /// `examples` and `token_aggregates` views, which re-parse each item's JSON once per column. `promptID` of the
    /// examples is left empty: `promptContexts` gives it with the tokens. Order as `exportDecompositions`.
    public func reportDecompositions(model: String, checkpoint: String, layer: Int, feature: String? = nil)
        throws(StoreError) -> [DecompositionRecord]
    {
        let sql = SearchFilters(model: model, checkpoint: checkpoint, layer: layer, feature: feature)
            .condition(.catalog)
        let joins = """
              FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN features f ON f.id = d.feature_id
            """
        let decompositions = try database.prepare("""
            SELECT d.id, f.capture_id, h.head, h.kv_head, h.d_head, f.name, f.kind, d.value, d.energy, d.n_pos_pairs,
                   d.n_neg_pairs, d.frobenius, d.rank, d.singular_values
            \(joins)
             \(sql.whereClause)
             ORDER BY h.head, f.name, d.value IS NOT NULL, d.value, f.capture_id
            """)
        try decompositions.bind(sql.values)
        var records: [DecompositionRecord] = []
        var position: [Int64: Int] = [:]
        while try decompositions.step() {
            let id = decompositions.int64(at: 0) ?? 0
            position[id] = records.count
            records.append(DecompositionRecord(
                id: id, captureID: decompositions.int64(at: 1) ?? 0, model: model, checkpoint: checkpoint, layer: layer,
                head: decompositions.int(at: 2) ?? 0, kvHead: decompositions.int(at: 3) ?? 0,
                headDimension: decompositions.int(at: 4) ?? 0, feature: decompositions.text(at: 5) ?? "",
                featureKind: decompositions.text(at: 6) ?? "", value: decompositions.text(at: 7),
                energy: decompositions.double(at: 8) ?? 0, positivePairs: decompositions.int(at: 9) ?? 0,
                negativePairs: decompositions.int(at: 10) ?? 0, frobenius: decompositions.double(at: 11) ?? 0,
                rank: decompositions.int(at: 12) ?? 0,
                singularValues: (try decompositions.float32Blob(at: 13) ?? []).map(Double.init), components: []))
        }
        let components = try database.prepare("""
            SELECT c.decomposition_id, c.id, c.component_index, c.sigma, c.energy_share, c.auto_label, c.human_label, c.note,
                   ce.examples, ce.token_aggregates
            \(joins)
              JOIN components c ON c.decomposition_id = d.id
              LEFT JOIN component_examples ce ON ce.component_id = c.id
             \(sql.whereClause)
             ORDER BY c.decomposition_id, c.component_index
            """)
        try components.bind(sql.values)
        while try components.step() {
            guard let index = position[components.int64(at: 0) ?? 0] else { continue }
            let id = components.int64(at: 1) ?? 0
            var component = ComponentRecord(
                id: id, index: components.int(at: 2) ?? 0, sigma: components.double(at: 3) ?? 0,
                energyShare: components.double(at: 4) ?? 0, u: [], v: [], autoLabel: components.text(at: 5) ?? "",
                humanLabel: components.text(at: 6), note: components.text(at: 7), examples: [], tokenAggregates: [])
            do {
                if let json = components.text(at: 8) { component.examples = try ExamplesJSON.examples(json) }
                if let json = components.text(at: 9) { component.tokenAggregates = try ExamplesJSON.aggregates(json) }
            } catch {
                throw .corrupt("component \(id): component_examples is not the JSON ingest writes (\(error.message))")
            }
            records[index].components.append(component)
        }
        return records
    }

    /// The tokens and ids of the cited prompts `rows` (prompt row ids, as in `StoredExample.promptRowID`).
    public func promptContexts(_ rows: Set<Int64>) throws(StoreError) -> [Int64: PromptContext] {
        try DecompositionLoader(database: database).prompts(rows)
    }
}

/// Decodes the two JSON texts of `component_examples` — `{"key": {"high": [[prompt row, position, token, score], …],
/// "low": […]}, "query": {…}}` and the same with `[token, count, mean score]` — as ingest's `CompactJSONWriter`
/// writes them (any valid JSON of that shape is read).
enum ExamplesJSON {
    struct Failure: Error { var message: String }

    static func examples(_ text: String) throws(Failure) -> [StoredExample] {
        var result: [StoredExample] = []
        try walk(text) { (side: Side, extreme: Extreme, rank: Int, item: [Item]) throws(Failure) in
            guard item.count == 4, case .number(let row) = item[0], case .number(let position) = item[1],
                  case .string(let token) = item[2], case .number(let score) = item[3] else {
                throw Failure(message: "an example is not [prompt, position, token, score]")
            }
            result.append(StoredExample(side: side, extreme: extreme, rank: rank, promptRowID: Int64(row), promptID: "",
                                        position: Int(position), token: token, score: score))
        }
        return result
    }

    static func aggregates(_ text: String) throws(Failure) -> [StoredTokenAggregate] {
        var result: [StoredTokenAggregate] = []
        try walk(text) { (side: Side, extreme: Extreme, rank: Int, item: [Item]) throws(Failure) in
            guard item.count == 3, case .string(let token) = item[0], case .number(let count) = item[1],
                  case .number(let mean) = item[2] else {
                throw Failure(message: "a token aggregate is not [token, count, mean]")
            }
            result.append(StoredTokenAggregate(side: side, extreme: extreme, rank: rank, token: token, count: Int(count),
                                               meanScore: mean))
        }
        return result
    }

    enum Item { case number(Double), string(String) }

    /// Calls `visit` for every item, sides and ends in the order the loader's views give (query before key, high
    /// before low), each list in rank order.
    private static func walk(_ text: String, _ visit: (Side, Extreme, Int, [Item]) throws(Failure) -> Void) throws(Failure) {
        var lists: [(side: Side, extreme: Extreme, items: [[Item]])] = []
        var text = text
        do {
            try text.withUTF8 { (bytes: UnsafeBufferPointer<UInt8>) throws in
                var parser = Parser(bytes: bytes)
                try parser.object { (sideName: String, parser: inout Parser) throws(Failure) in
                    guard let side = Side(rawValue: sideName) else { throw Failure(message: "unknown side '\(sideName)'") }
                    try parser.object { (extremeName: String, parser: inout Parser) throws(Failure) in
                        guard let extreme = Extreme(rawValue: extremeName) else { throw Failure(message: "unknown end '\(extremeName)'") }
                        var items: [[Item]] = []
                        try parser.array { (parser: inout Parser) throws(Failure) in
                            var item: [Item] = []
                            try parser.array { (parser: inout Parser) throws(Failure) in item.append(try parser.scalar()) }
                            items.append(item)
                        }
                        lists.append((side, extreme, items))
                    }
                }
                parser.skipSpace()
                guard parser.offset == bytes.count else { throw Failure(message: "text after the object") }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(message: "\(error)")
        }
        lists.sort { ($0.side == .key ? 1 : 0, $0.extreme == .low ? 1 : 0) < ($1.side == .key ? 1 : 0, $1.extreme == .low ? 1 : 0) }
        for list in lists {
            for (rank, item) in list.items.enumerated() { try visit(list.side, list.extreme, rank, item) }
        }
    }

    /// A byte-level reader of the JSON subset above: objects, arrays, strings (every escape), numbers.
    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var offset = 0

        mutating func skipSpace() {
            while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            skipSpace()
            guard offset < bytes.count, bytes[offset] == byte else {
                throw Failure(message: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(offset)")
            }
            offset += 1
        }

        /// True (and consumed) when the next byte is `byte`.
        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard offset < bytes.count, bytes[offset] == byte else { return false }
            offset += 1
            return true
        }

        mutating func object(_ member: (String, inout Parser) throws(Failure) -> Void) throws(Failure) {
            try expect(UInt8(ascii: "{"))
            if take(UInt8(ascii: "}")) { return }
            repeat {
                skipSpace()
                let key = try string()
                try expect(UInt8(ascii: ":"))
                try member(key, &self)
            } while take(UInt8(ascii: ","))
            try expect(UInt8(ascii: "}"))
        }

        mutating func array(_ element: (inout Parser) throws(Failure) -> Void) throws(Failure) {
            try expect(UInt8(ascii: "["))
            if take(UInt8(ascii: "]")) { return }
            repeat { try element(&self) } while take(UInt8(ascii: ","))
            try expect(UInt8(ascii: "]"))
        }

        mutating func scalar() throws(Failure) -> Item {
            skipSpace()
            guard offset < bytes.count else { throw Failure(message: "unexpected end") }
            return bytes[offset] == UInt8(ascii: "\"") ? .string(try string()) : .number(try number())
        }

        mutating func number() throws(Failure) -> Double {
            let start = offset
            while offset < bytes.count, Self.isNumberByte(bytes[offset]) { offset += 1 }
            // A delimiter always follows a number inside the object, so strtod stops within the buffer. It reads the
            // writer's ±1e999 as ±infinity, as SQLite does.
            guard offset > start, offset < bytes.count, let base = bytes.baseAddress else {
                throw Failure(message: "bad number at byte \(start)")
            }
            var end: UnsafeMutablePointer<CChar>?
            let value = UnsafeRawPointer(base + start).withMemoryRebound(to: CChar.self, capacity: offset - start) { strtod($0, &end) }
            let consumed = end.map { UnsafeRawPointer($0) - UnsafeRawPointer(base + start) } ?? -1
            guard consumed == offset - start else {
                throw Failure(message: "bad number at byte \(start)")
            }
            return value
        }

        private static func isNumberByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                 UInt8(ascii: "e"), UInt8(ascii: "E"): true
            default: false
            }
        }

        mutating func string() throws(Failure) -> String {
            try expect(UInt8(ascii: "\""))
            var output: [UInt8] = []
            var start = offset
            while offset < bytes.count {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<offset]))
                    offset += 1
                    return String(decoding: output, as: UTF8.self)
                }
                guard byte == UInt8(ascii: "\\") else { offset += 1; continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<offset]))
                guard offset + 1 < bytes.count else { break }
                let escaped = bytes[offset + 1]
                offset += 2
                switch escaped {
                case UInt8(ascii: "n"): output.append(0x0A)
                case UInt8(ascii: "t"): output.append(0x09)
                case UInt8(ascii: "r"): output.append(0x0D)
                case UInt8(ascii: "b"): output.append(0x08)
                case UInt8(ascii: "f"): output.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"),
                       bytes[offset + 1] == UInt8(ascii: "u") {
                        offset += 2
                        let low = try hex4()
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    output.append(contentsOf: Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8))
                default: output.append(escaped)   // \" \\ \/
                }
                start = offset
            }
            throw Failure(message: "unterminated string")
        }

        private mutating func hex4() throws(Failure) -> UInt32 {
            guard offset + 4 <= bytes.count,
                  let value = UInt32(String(decoding: UnsafeBufferPointer(rebasing: bytes[offset..<offset + 4]), as: UTF8.self), radix: 16)
            else { throw Failure(message: "bad \\u escape at byte \(offset)") }
            offset += 4
            return value
        }
    }
}
