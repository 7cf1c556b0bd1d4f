import Foundation
import QKEngine

extension Catalog {
    // MARK: Show

    /// One component with its decomposition's numbers, examples and the cited prompts' tokens.
    public func component(id: Int64) throws(StoreError) -> ComponentDetail {
        guard let decompositionID = try database.scalarInt(
            "SELECT decomposition_id FROM components WHERE id = ?", [.integer(Int(id))])
        else { throw .notFound(what: "component \(id)") }
        let loader = try DecompositionLoader(database: database)
        guard let decomposition = try loader.decomposition(id: Int64(decompositionID), withComponents: false) else {
            throw .notFound(what: "decomposition \(decompositionID)")
        }
        guard let component = try loader.component(id: id) else { throw .notFound(what: "component \(id)") }
        let prompts = try loader.prompts(Set(component.examples.map(\.promptRowID)))
        return ComponentDetail(decomposition: decomposition, component: component, prompts: prompts)
    }

    /// The decompositions of the heads matching `filters`, in catalog order, with the cited prompts.
    public func decompositions(_ filters: SearchFilters) throws(StoreError) -> DecompositionsWithContext {
        let cursor = try exportDecompositions(filters)
        var records: [DecompositionRecord] = []
        while let record = try cursor.next() { records.append(record) }
        let promptRows = records.flatMap { $0.components.flatMap { $0.examples.map(\.promptRowID) } }
        return DecompositionsWithContext(decompositions: records, prompts: try cursor.prompts(Set(promptRows)))
    }

    // MARK: Export

    /// Every decomposition matching `filters`, loaded one at a time, in catalog order.
    public func exportDecompositions(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> DecompositionCursor {
        DecompositionCursor(ids: try decompositionIDs(filters), loader: try DecompositionLoader(database: database))
    }

    func decompositionIDs(_ filters: SearchFilters) throws(StoreError) -> [Int64] {
        let exact = filters.condition(.catalog)
        return try database.rows("""
            SELECT d.id
              FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
             \(exact.whereClause)
             ORDER BY m.name, ck.ordinal, ck.name, h.layer, h.head, f.name, d.value IS NOT NULL, d.value, f.capture_id
            """, exact.values) { statement throws(StoreError) in try statement.required(0) }
    }
}

/// Yields decompositions one at a time so an export's memory stays small.
public final class DecompositionCursor {
    private let ids: [Int64]
    private var position = 0
    private let loader: DecompositionLoader

    init(ids: [Int64], loader: DecompositionLoader) {
        self.ids = ids
        self.loader = loader
    }

    /// How many decompositions the cursor yields in all.
    public var count: Int { ids.count }

    /// The next decomposition with its components, examples and aggregates; nil at the end.
    public func next() throws(StoreError) -> DecompositionRecord? {
        while position < ids.count {
            defer { position += 1 }
            if let record = try loader.decomposition(id: ids[position], withComponents: true) { return record }
        }
        return nil
    }

    /// The cited prompts' contexts for `rows` (e.g. for CSV or text output).
    public func prompts(_ rows: Set<Int64>) throws(StoreError) -> [Int64: PromptContext] { try loader.prompts(rows) }
}

/// Reads decompositions, components and prompts with statements prepared once.
final class DecompositionLoader {
    private let decompositionStatement: Statement
    private let componentsStatement: Statement
    private let componentStatement: Statement
    private let examplesStatement: Statement
    private let aggregatesStatement: Statement
    private let promptStatement: Statement

    init(database: Database) throws(StoreError) {
        decompositionStatement = try database.prepare("""
            SELECT d.id, f.capture_id, m.name, ck.name, h.layer, h.head, h.kv_head, h.d_head, f.name, f.kind, d.value,
                   d.energy, d.n_pos_pairs, d.n_neg_pairs, d.frobenius, d.rank, d.singular_values
              FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
             WHERE d.id = ?
            """)
        let componentColumns = "id, component_index, sigma, energy_share, u, v, auto_label, human_label, note"
        componentsStatement = try database.prepare(
            "SELECT \(componentColumns) FROM components WHERE decomposition_id = ? ORDER BY component_index")
        componentStatement = try database.prepare("SELECT \(componentColumns) FROM components WHERE id = ?")
        examplesStatement = try database.prepare("""
            SELECT e.side, e.extreme, e.rank, e.prompt_id, p.prompt_key, e.position, e.token, e.score
              FROM examples e JOIN prompts p ON p.id = e.prompt_id
             WHERE e.component_id = ?
             ORDER BY e.side = 'key', e.extreme = 'low', e.rank
            """)
        aggregatesStatement = try database.prepare("""
            SELECT side, extreme, rank, token, count, mean_score FROM token_aggregates
             WHERE component_id = ?
             ORDER BY side = 'key', extreme = 'low', rank
            """)
        promptStatement = try database.prepare(
            "SELECT id, capture_id, prompt_index, prompt_key, tokens_json FROM prompts WHERE id = ?")
    }

    func decomposition(id: Int64, withComponents: Bool) throws(StoreError) -> DecompositionRecord? {
        let statement = decompositionStatement
        defer { statement.reset() }
        try statement.bind(id, at: 1)
        guard try statement.step() else { return nil }
        var record = try DecompositionRecord(
            id: id, captureID: statement.required(1), model: statement.required(2), checkpoint: statement.required(3),
            layer: statement.required(4), head: statement.required(5), kvHead: statement.required(6),
            headDimension: statement.required(7), feature: statement.required(8), featureKind: statement.required(9),
            value: statement.text(at: 10), energy: statement.required(11), positivePairs: statement.required(12),
            negativePairs: statement.required(13), frobenius: statement.required(14), rank: statement.required(15),
            singularValues: (statement.float32Blob(at: 16) ?? []).map(Double.init), components: [])
        if withComponents {
            try componentsStatement.bind(id, at: 1)
            record.components = try componentsStatement.rows { components throws(StoreError) in
                try readComponent(components, dimension: record.headDimension)
            }
            for offset in record.components.indices { try attachExamples(&record.components[offset]) }
        }
        return record
    }

    func component(id: Int64) throws(StoreError) -> ComponentRecord? {
        let statement = componentStatement
        defer { statement.reset() }
        try statement.bind(id, at: 1)
        guard try statement.step() else { return nil }
        var record = try readComponent(statement, dimension: nil)
        try attachExamples(&record)
        return record
    }

    private func readComponent(_ statement: Statement, dimension: Int?) throws(StoreError) -> ComponentRecord {
        let id = try statement.required(0, as: Int64.self)
        let u = try statement.float32Blob(at: 4) ?? []
        let v = try statement.float32Blob(at: 5) ?? []
        if let dimension, u.count != dimension || v.count != dimension {
            throw .corrupt("component \(id): u has \(u.count) and v \(v.count) values, d_head is \(dimension)")
        }
        return try ComponentRecord(
            id: id, index: statement.required(1), sigma: statement.required(2), energyShare: statement.required(3),
            u: u, v: v, autoLabel: statement.required(6), humanLabel: statement.text(at: 7),
            note: statement.text(at: 8), examples: [], tokenAggregates: [])
    }

    private func attachExamples(_ record: inout ComponentRecord) throws(StoreError) {
        try examplesStatement.bind(record.id, at: 1)
        record.examples = try examplesStatement.rows { examples throws(StoreError) in
            try StoredExample(
                side: Side(rawValue: examples.required(0)) ?? .query,
                extreme: Extreme(rawValue: examples.required(1)) ?? .high, rank: examples.required(2),
                promptRowID: examples.required(3), promptID: examples.required(4), position: examples.required(5),
                token: examples.required(6), score: examples.required(7))
        }
        try aggregatesStatement.bind(record.id, at: 1)
        record.tokenAggregates = try aggregatesStatement.rows { aggregates throws(StoreError) in
            try StoredTokenAggregate(
                side: Side(rawValue: aggregates.required(0)) ?? .query,
                extreme: Extreme(rawValue: aggregates.required(1)) ?? .high, rank: aggregates.required(2),
                token: aggregates.required(3), count: aggregates.required(4), meanScore: aggregates.required(5))
        }
    }

    func prompts(_ rows: Set<Int64>) throws(StoreError) -> [Int64: PromptContext] {
        var contexts: [Int64: PromptContext] = [:]
        let statement = promptStatement
        for row in rows.sorted() {
            defer { statement.reset() }
            try statement.bind(row, at: 1)
            guard try statement.step() else { continue }
            guard let tokens = JSONArrays.strings(try statement.required(4)) else {
                throw .corrupt("prompt row \(row): tokens_json is not an array of strings")
            }
            contexts[row] = try PromptContext(
                rowID: row, captureID: statement.required(1), index: statement.required(2),
                promptID: statement.required(3), tokens: tokens)
        }
        return contexts
    }
}
