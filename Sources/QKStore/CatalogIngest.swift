import Foundation
import QKEngine

/// Writes one capture's results inside a single transaction: all of it is committed by `finish()`, or none.
///
/// Dropping an unfinished session, calling `rollback()`, or the process dying leaves the catalog as before.
public final class IngestSession {
    public let captureID: Int64
    private let catalog: Catalog
    private let header: CaptureHeader
    private let promptTable: PromptTable
    private let promptTokens: (Int) throws -> [String]
    private let energy: Double
    private var open = true
    private var summary: IngestSummary

    private let checkpointID: Int64
    private var featureIDs: [String: (id: Int64, kind: String)] = [:]
    private var headIDs: [Int: Int64] = [:]   // layer * headCount + head
    private var promptRowIDs: [Int: Int64] = [:]

    private let upsertHead: Statement
    private let insertDecomposition: Statement
    private let insertComponent: Statement
    private let insertKeys: Statement
    private let insertText: Statement
    private let insertExamples: Statement
    private let insertPrompt: Statement
    private let insertSkip: Statement

    fileprivate init(catalog: Catalog, header: CaptureHeader, contentHash: String, options: DecompositionOptions,
                     qkcatVersion: String, promptTable: PromptTable,
                     promptTokens: @escaping (Int) throws -> [String]) throws(StoreError) {
        self.catalog = catalog
        self.header = header
        self.promptTable = promptTable
        self.promptTokens = promptTokens
        self.energy = options.energy
        let database = catalog.database
        try Self.validate(header: header, promptTable: promptTable)

        try database.begin(.immediate)
        do throws(StoreError) {
            // Checked inside the write lock, so two concurrent ingests of one capture cannot both pass.
            if let existing = try catalog.capture(withHash: contentHash) {
                throw StoreError.alreadyIngested(contentHash: contentHash, captureID: existing.id)
            }
            let modelID = try Self.model(header.model, in: database)
            checkpointID = try Self.checkpoint(header.model.checkpoint, modelID: modelID, in: database)
            let capture = try database.prepare("""
                INSERT INTO captures (checkpoint_id, content_hash, dataset_json, positional, layers_json, n_prompts,
                                      n_keys, ingested_at, qkcat_version, energy, options_json)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            try capture.bind([
                .integer(Int(checkpointID)), .text(contentHash), header.datasetJSON.map(SQLValue.text) ?? .null,
                .text(header.positional), .text(CompactJSONWriter.array(header.layers)), .integer(promptTable.promptCount),
                .integer(promptTable.keyCount), .text(Timestamp.now()), .text(qkcatVersion), .real(options.energy),
                .text(Self.optionsJSON(options)),
            ])
            try capture.run()
            captureID = database.lastInsertRowID
            summary = IngestSummary(captureID: captureID)

            let feature = try database.prepare(
                "INSERT INTO features (capture_id, name, kind, description) VALUES (?, ?, ?, ?)")
            for info in header.features {
                try feature.bind([.integer(Int(captureID)), .text(info.name), .text(info.kind),
                                  info.description.map(SQLValue.text) ?? .null])
                try feature.run()
                featureIDs[info.name] = (database.lastInsertRowID, info.kind)
            }

            // A no-op update on conflict makes RETURNING yield the existing row's id too.
            upsertHead = try database.prepare("""
                INSERT INTO heads (checkpoint_id, layer, head, kv_head, d_head) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (checkpoint_id, layer, head) DO UPDATE SET kv_head = excluded.kv_head
                RETURNING id
                """)
            insertDecomposition = try database.prepare("""
                INSERT INTO decompositions (head_id, feature_id, value, n_pos_pairs, n_neg_pairs, frobenius, rank,
                                            energy, singular_values)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            insertComponent = try database.prepare("""
                INSERT INTO components (decomposition_id, component_index, sigma, energy_share, u, v, auto_label)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            insertKeys = try database.prepare("""
                INSERT INTO component_keys (rank_key, component_id, checkpoint_id, layer, head, feature, kind, value, sigma)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            insertText = try database.prepare("INSERT INTO component_text (rowid, words, label) VALUES (?, ?, '')")
            insertExamples = try database.prepare(
                "INSERT INTO component_examples (component_id, examples, token_aggregates) VALUES (?, ?, ?)")
            insertPrompt = try database.prepare(
                "INSERT INTO prompts (capture_id, prompt_index, prompt_key, tokens_json) VALUES (?, ?, ?, ?)")
            insertSkip = try database.prepare(
                "INSERT INTO skips (capture_id, layer, head, feature, value, reason) VALUES (?, ?, ?, ?, ?, ?)")
        } catch {
            database.rollback()
            throw error
        }
    }

    deinit { rollback() }

    /// Stores one layer's decompositions and skips. Throws `StoreError`, or what `promptTokens` throws.
    public func add(_ result: LayerResult) throws {
        guard open else { throw StoreError.invalidArgument("ingest session is already finished or rolled back") }
        for decomposition in result.decompositions { try add(decomposition) }
        for skip in result.skips {
            try insertSkip.bind([.integer(Int(captureID)), .integer(skip.layer), skip.head.map(SQLValue.integer) ?? .null,
                                 .text(skip.feature), skip.value.map(SQLValue.text) ?? .null, .text(skip.reason.rawValue)])
            try insertSkip.run()
            summary.skips += 1
        }
    }

    /// Commits everything added; the capture becomes visible to readers at once.
    public func finish() throws(StoreError) -> IngestSummary {
        guard open else { throw .invalidArgument("ingest session is already finished or rolled back") }
        do {
            // One segment: a search that checks rows one by one then seeks once per word, not once per segment.
            try catalog.database.execute("INSERT INTO component_text (component_text) VALUES ('optimize')")
            try catalog.database.commit()
        } catch {
            rollback()
            throw error
        }
        open = false
        return summary
    }

    /// Discards everything added (also done when an unfinished session is dropped).
    public func rollback() {
        guard open else { return }
        open = false
        catalog.database.rollback()
    }

    // MARK: Writing

    private func add(_ decomposition: Decomposition) throws {
        let model = header.model
        guard let feature = featureIDs[decomposition.feature] else {
            throw StoreError.invalidArgument("layer \(decomposition.layer) head \(decomposition.head): feature "
                + "\(decomposition.feature) is not declared by the capture")
        }
        guard (0 ..< model.layerCount).contains(decomposition.layer), (0 ..< model.headCount).contains(decomposition.head),
              (0 ..< model.kvHeadCount).contains(decomposition.kvHead)
        else {
            throw StoreError.invalidArgument("layer \(decomposition.layer) head \(decomposition.head) kv head "
                + "\(decomposition.kvHead) is outside the model's \(model.layerCount) layers × \(model.headCount) heads "
                + "(\(model.kvHeadCount) kv heads)")
        }
        let place = "layer \(decomposition.layer) head \(decomposition.head) feature \(decomposition.feature)"
        guard decomposition.components.allSatisfy({ $0.u.count == model.headDimension && $0.v.count == model.headDimension })
        else { throw StoreError.invalidArgument("\(place): a component vector's length is not d_head \(model.headDimension)") }

        let headID = try headRowID(layer: decomposition.layer, head: decomposition.head, kvHead: decomposition.kvHead)
        try insertDecomposition.bind([
            .integer(Int(headID)), .integer(Int(feature.id)), decomposition.value.map(SQLValue.text) ?? .null,
            .integer(decomposition.positivePairs), .integer(decomposition.negativePairs), .real(decomposition.frobenius),
            .integer(decomposition.rank), .real(energy),
            .blob(Float32Blob.encode(decomposition.singularValues.map(Float.init))),
        ])
        try insertDecomposition.run()
        let decompositionID = catalog.database.lastInsertRowID
        summary.decompositions += 1

        let featureText = [decomposition.feature, decomposition.value].compactMap { $0 }.joined(separator: " ")
        let names = "\(model.name) \(model.checkpoint)"
        for component in decomposition.components {
            let topKeys = try component.keys.highestTokens.map { aggregate throws(StoreError) in
                try tokenString(aggregate.token, place)
            }
            let label = SearchText.autoLabel(feature: decomposition.feature, value: decomposition.value,
                                             index: component.index, topKeyTokens: topKeys)
            try insertComponent.bind(decompositionID, at: 1)
            try insertComponent.bind(component.index, at: 2)
            try insertComponent.bind(component.sigma, at: 3)
            try insertComponent.bind(component.energyShare, at: 4)
            try insertComponent.bindFloat32Blob(component.u, at: 5)
            try insertComponent.bindFloat32Blob(component.v, at: 6)
            try insertComponent.bind(label, at: 7)
            try insertComponent.run()
            let componentID = catalog.database.lastInsertRowID
            summary.components += 1

            try addExamples(of: component, componentID: componentID, place: place)

            let topQueries = try component.queries.highestTokens.map { aggregate throws(StoreError) in
                try tokenString(aggregate.token, place)
            }
            guard componentID < SearchOrder.idLimit else {
                throw StoreError.invalidArgument("component id \(componentID) reaches \(SearchOrder.idLimit), past what "
                    + "search order holds")
            }
            let rankKey = SearchOrder.rankKey(sigma: component.sigma, id: componentID)
            try insertKeys.bind([.integer(Int(rankKey)), .integer(Int(componentID)), .integer(Int(checkpointID)),
                                 .integer(decomposition.layer), .integer(decomposition.head), .text(decomposition.feature),
                                 .text(feature.kind), decomposition.value.map(SQLValue.text) ?? .null,
                                 .real(component.sigma)])
            try insertKeys.run()
            let tokens = (topKeys + topQueries).joined(separator: " ")
            for (tier, words) in [(1, label), (2, [label, featureText, tokens, names].joined(separator: " "))] {
                try insertText.bind(SearchOrder.rowid(rankKey, tier: tier), at: 1)
                try insertText.bind(words, at: 2)
                try insertText.run()
            }
        }
    }

    private var examplesJSON = CompactJSONWriter(capacity: 1 << 14)
    private var aggregatesJSON = CompactJSONWriter(capacity: 1 << 12)

    /// Writes a component's examples and token aggregates as one `component_examples` row of compact JSON (one row
    /// per example cost most of the store phase). Components without any get no row.
    private func addExamples(of component: Component, componentID: Int64, place: String) throws {
        let sides = [component.keys, component.queries]
        guard sides.contains(where: { !$0.highest.isEmpty || !$0.lowest.isEmpty || !$0.highestTokens.isEmpty
                                      || !$0.lowestTokens.isEmpty })
        else { return }
        // Prompts rows are numbered on first citation, in this order (query side first, as rows were written).
        for examples in [component.queries, component.keys] {
            for example in examples.highest { _ = try promptRowID(example.prompt, place) }
            for example in examples.lowest { _ = try promptRowID(example.prompt, place) }
        }
        try Self.write(&examplesJSON, component, lists: { ($0.highest, $0.lowest) }) { json, example throws in
            guard !example.score.isNaN else { throw StoreError.invalidArgument("\(place): an example score is NaN") }
            json.raw("[")
            json.integer(Int(promptRowIDs[example.prompt] ?? 0))
            json.raw(",")
            json.integer(example.position)
            json.raw(",")
            json.string(try tokenString(example.token, place))
            json.raw(",")
            json.number(example.score)
            json.raw("]")
        }
        try Self.write(&aggregatesJSON, component, lists: { ($0.highestTokens, $0.lowestTokens) }) { json, aggregate throws in
            guard !aggregate.meanScore.isNaN else {
                throw StoreError.invalidArgument("\(place): a token aggregate's mean score is NaN")
            }
            json.raw("[")
            json.string(try tokenString(aggregate.token, place))
            json.raw(",")
            json.integer(aggregate.count)
            json.raw(",")
            json.number(aggregate.meanScore)
            json.raw("]")
        }
        for side in sides {
            summary.examples += side.highest.count + side.lowest.count
            summary.tokenAggregates += side.highestTokens.count + side.lowestTokens.count
        }
        try insertExamples.bind(componentID, at: 1)
        try insertExamples.bind(utf8: examplesJSON.bytes, at: 2)
        try insertExamples.bind(utf8: aggregatesJSON.bytes, at: 3)
        try insertExamples.run()
    }

    /// `{"key":{"high":[…],"low":[…]},"query":{…}}`: the two lists `lists` picks from each side, elements written by
    /// `element`.
    private static func write<Element>(_ json: inout CompactJSONWriter, _ component: Component,
                                       lists: (SideExamples) -> ([Element], [Element]),
                                       element: (inout CompactJSONWriter, Element) throws -> Void) throws {
        json.removeAll()
        for (opening, side) in [("{\"key\":{\"high\":[", component.keys), ("]},\"query\":{\"high\":[", component.queries)]
            as [(StaticString, SideExamples)] {
            let (high, low) = lists(side)
            for (opening, list) in [(opening, high), ("],\"low\":[", low)] as [(StaticString, [Element])] {
                json.raw(opening)
                for (rank, item) in list.enumerated() {
                    if rank > 0 { json.raw(",") }
                    try element(&json, item)
                }
            }
        }
        json.raw("]}}")
    }

    private func tokenString(_ token: Int32, _ place: String) throws(StoreError) -> String {
        guard token >= 0, Int(token) < promptTable.tokenStrings.count else {
            throw .invalidArgument("\(place): token index \(token) is outside the capture's "
                + "\(promptTable.tokenStrings.count) token strings")
        }
        return promptTable.tokenStrings[Int(token)]
    }

    private func headRowID(layer: Int, head: Int, kvHead: Int) throws(StoreError) -> Int64 {
        let key = layer * header.model.headCount + head
        if let id = headIDs[key] { return id }
        try upsertHead.bind([.integer(Int(checkpointID)), .integer(layer), .integer(head), .integer(kvHead),
                             .integer(header.model.headDimension)])
        defer { upsertHead.reset() }
        guard try upsertHead.step(), let id = upsertHead.int64(at: 0) else {
            throw .corrupt("no id returned for head \(layer).\(head)")
        }
        while try upsertHead.step() {}
        headIDs[key] = id
        return id
    }

    /// The prompts row of capture prompt `index`, written on its first citation (so only cited prompts are kept).
    private func promptRowID(_ index: Int, _ place: String) throws -> Int64 {
        if let id = promptRowIDs[index] { return id }
        guard (0 ..< promptTable.promptCount).contains(index) else {
            throw StoreError.invalidArgument("\(place): example cites prompt \(index), but the capture has "
                + "\(promptTable.promptCount) prompts")
        }
        let tokens = try promptTokens(index)
        try insertPrompt.bind([.integer(Int(captureID)), .integer(index), .text(promptTable.promptIDs[index]),
                               .text(CompactJSONWriter.array(tokens))])
        try insertPrompt.run()
        let id = catalog.database.lastInsertRowID
        promptRowIDs[index] = id
        summary.prompts += 1
        return id
    }

    // MARK: Models and checkpoints

    private static func validate(header: CaptureHeader, promptTable: PromptTable) throws(StoreError) {
        let model = header.model
        guard !model.name.isEmpty, !model.checkpoint.isEmpty else {
            throw .invalidArgument("capture header: model name and checkpoint must not be empty")
        }
        guard model.layerCount > 0, model.headCount > 0, model.kvHeadCount > 0, model.headDimension > 0,
              model.headCount % model.kvHeadCount == 0
        else { throw .invalidArgument("capture header: invalid model shape for \(model.name)") }
        guard promptTable.keyStart.count == promptTable.promptCount + 1 else {
            throw .invalidArgument("prompt table: keyStart has \(promptTable.keyStart.count) entries for "
                + "\(promptTable.promptCount) prompts")
        }
    }

    private static func model(_ info: ModelInfo, in database: Database) throws(StoreError) -> Int64 {
        let find = try database.prepare("SELECT id, n_layers, n_heads, n_kv_heads, d_head FROM models WHERE name = ?")
        try find.bind(info.name, at: 1)
        if try find.step() {
            let stored = (find.int(at: 1), find.int(at: 2), find.int(at: 3), find.int(at: 4))
            guard stored == (info.layerCount, info.headCount, info.kvHeadCount, info.headDimension) else {
                throw .invalidArgument("model \(info.name) is in the catalog with \(stored.0 ?? 0) layers × "
                    + "\(stored.1 ?? 0) heads (\(stored.2 ?? 0) kv heads, d_head \(stored.3 ?? 0)); the capture declares "
                    + "\(info.layerCount) × \(info.headCount) (\(info.kvHeadCount) kv heads, d_head \(info.headDimension))")
            }
            return try find.required(0, as: Int64.self)
        }
        let insert = try database.prepare(
            "INSERT INTO models (name, n_layers, n_heads, n_kv_heads, d_head) VALUES (?, ?, ?, ?, ?)")
        try insert.bind([.text(info.name), .integer(info.layerCount), .integer(info.headCount),
                         .integer(info.kvHeadCount), .integer(info.headDimension)])
        try insert.run()
        return database.lastInsertRowID
    }

    private static func checkpoint(_ name: String, modelID: Int64, in database: Database) throws(StoreError) -> Int64 {
        let upsert = try database.prepare("""
            INSERT INTO checkpoints (model_id, name, ordinal) VALUES (?, ?, ?)
            ON CONFLICT (model_id, name) DO UPDATE SET ordinal = excluded.ordinal
            RETURNING id
            """)
        try upsert.bind([.integer(Int(modelID)), .text(name), .integer(Int(CheckpointOrder.ordinal(of: name)))])
        guard try upsert.step(), let id = upsert.int64(at: 0) else { throw .corrupt("no id returned for checkpoint \(name)") }
        while try upsert.step() {}
        return id
    }

    /// Every decomposition option, with explicit nulls ("no limit" rather than left out), keys sorted.
    static func optionsJSON(_ options: DecompositionOptions) -> String {
        var json = CompactJSONWriter()
        json.raw("{\"energy\":")
        json.number(options.energy)
        json.raw(",\"features\":")
        if let features = options.features { json.array(features) } else { json.raw("null") }
        json.raw(",\"layers\":")
        if let layers = options.layers { json.array(layers) } else { json.raw("null") }
        json.raw(",\"max_rank\":")
        if let maxRank = options.maxRank { json.integer(maxRank) } else { json.raw("null") }
        json.raw(options.perValue ? ",\"per_value\":true,\"top\":" : ",\"per_value\":false,\"top\":")
        json.integer(options.topCount)
        json.raw("}")
        return json.text
    }
}

extension Catalog {
    /// Starts an ingest: takes the write lock (BEGIN IMMEDIATE) and records the model, checkpoint, capture
    /// and features. Throws `.alreadyIngested` when a capture with `contentHash` is present.
    ///
    /// `promptTokens(i)` returns the tokens of capture prompt `i`; it is called once per cited prompt.
    public func beginIngest(header: CaptureHeader, contentHash: String, options: DecompositionOptions,
                            qkcatVersion: String, promptTable: PromptTable,
                            promptTokens: @escaping (Int) throws -> [String]) throws(StoreError) -> IngestSession {
        try IngestSession(catalog: self, header: header, contentHash: contentHash, options: options,
                          qkcatVersion: qkcatVersion, promptTable: promptTable, promptTokens: promptTokens)
    }

    /// Ingests a whole capture in one transaction: `results` calls `sink` once per layer result.
    /// Any error (the producer's, `promptTokens`' or the store's) rolls everything back and is rethrown.
    public func ingest(header: CaptureHeader, contentHash: String, options: DecompositionOptions, qkcatVersion: String,
                       promptTable: PromptTable, promptTokens: @escaping (Int) throws -> [String],
                       results: (_ sink: (LayerResult) throws -> Void) throws -> Void) throws -> IngestSummary {
        let session = try beginIngest(header: header, contentHash: contentHash, options: options,
                                      qkcatVersion: qkcatVersion, promptTable: promptTable, promptTokens: promptTokens)
        do {
            try results { result in try session.add(result) }
            return try session.finish()
        } catch {
            session.rollback()
            throw error
        }
    }
}
