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
            let id: Int64 = try decompositions.required(0)
            position[id] = records.count
            records.append(DecompositionRecord(
                id: id, captureID: try decompositions.required(1), model: model, checkpoint: checkpoint, layer: layer,
                head: try decompositions.required(2), kvHead: try decompositions.required(3),
                headDimension: try decompositions.required(4), feature: try decompositions.required(5),
                featureKind: try decompositions.required(6), value: decompositions.text(at: 7),
                energy: try decompositions.required(8), positivePairs: try decompositions.required(9),
                negativePairs: try decompositions.required(10), frobenius: try decompositions.required(11),
                rank: try decompositions.required(12),
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
            guard let index = position[try components.required(0)] else { continue }
            let id: Int64 = try components.required(1)
            var component = ComponentRecord(
                id: id, index: try components.required(2), sigma: try components.required(3),
                energyShare: try components.required(4), u: [], v: [], autoLabel: try components.required(5),
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
/// "low": […]}, "query": {…}}` and the same with `[token, count, mean score]` — with the engine's JSON reader, as
/// SQLite reads them (the ±1e999 that ingest's `CompactJSONWriter` writes for infinite scores read as ±infinity).
enum ExamplesJSON {
    struct Failure: Error { var message: String }

    static func examples(_ text: String) throws(Failure) -> [StoredExample] {
        var lists = [[StoredExample]](repeating: [], count: 4)
        try walk(text) { (side, extreme, rank, parser) throws(JSONSyntaxError) in
            var row = 0, position = 0, token = "", score = 0.0, fields = 0
            try parser.readArray { (field, parser) throws(JSONSyntaxError) in
                switch field {
                case 0: row = try parser.readInteger()
                case 1: position = try parser.readInteger()
                case 2: token = try parser.readString()
                case 3: score = try parser.readNumber()
                default: throw JSONSyntaxError(message: "an example is not [prompt, position, token, score]")
                }
                fields += 1
            }
            guard fields == 4 else { throw JSONSyntaxError(message: "an example is not [prompt, position, token, score]") }
            lists[order(side, extreme)].append(StoredExample(
                side: side, extreme: extreme, rank: rank, promptRowID: Int64(row), promptID: "", position: position,
                token: token, score: score))
        }
        return Array(lists.joined())
    }

    static func aggregates(_ text: String) throws(Failure) -> [StoredTokenAggregate] {
        var lists = [[StoredTokenAggregate]](repeating: [], count: 4)
        try walk(text) { (side, extreme, rank, parser) throws(JSONSyntaxError) in
            var token = "", count = 0, mean = 0.0, fields = 0
            try parser.readArray { (field, parser) throws(JSONSyntaxError) in
                switch field {
                case 0: token = try parser.readString()
                case 1: count = try parser.readInteger()
                case 2: mean = try parser.readNumber()
                default: throw JSONSyntaxError(message: "a token aggregate is not [token, count, mean]")
                }
                fields += 1
            }
            guard fields == 3 else { throw JSONSyntaxError(message: "a token aggregate is not [token, count, mean]") }
            lists[order(side, extreme)].append(StoredTokenAggregate(
                side: side, extreme: extreme, rank: rank, token: token, count: count, meanScore: mean))
        }
        return Array(lists.joined())
    }

    /// The loader's views give query before key, high before low.
    private static func order(_ side: Side, _ extreme: Extreme) -> Int { (side == .key ? 2 : 0) + (extreme == .low ? 1 : 0) }

    /// Calls `item` with the parser at the start of every item of every list, each list in rank order.
    private static func walk(_ text: String, _ item: (Side, Extreme, Int, inout JSONParser) throws(JSONSyntaxError) -> Void)
        throws(Failure)
    {
        var text = text
        let failure = text.withUTF8 { (bytes: UnsafeBufferPointer<UInt8>) -> JSONSyntaxError? in
            var parser = JSONParser(bytes: bytes, infiniteNumbers: true)
            do throws(JSONSyntaxError) {
                try parser.readObject { (sideName, parser) throws(JSONSyntaxError) in
                    guard let side = Side(rawValue: sideName) else { throw JSONSyntaxError(message: "unknown side '\(sideName)'") }
                    try parser.readObject { (extremeName, parser) throws(JSONSyntaxError) in
                        guard let extreme = Extreme(rawValue: extremeName) else {
                            throw JSONSyntaxError(message: "unknown end '\(extremeName)'")
                        }
                        try parser.readArray { (rank, parser) throws(JSONSyntaxError) in try item(side, extreme, rank, &parser) }
                    }
                }
                try parser.readEnd()
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw Failure(message: failure.message) }
    }
}
