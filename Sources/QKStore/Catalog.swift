import Foundation
import QKEngine

/// The qkcat catalog: one SQLite file of decompositions, components and their examples.
public final class Catalog {
    public let database: Database
    public var path: String { database.path }
    /// The full-text tokenizer, made on the first worded search.
    var cachedSearchTokenizer: SearchTokenizer?
    /// How many components a filter must let through for a worded search to walk the impact-ordered index: below
    /// it, FTS5 intersects the words with the filter's facet tokens and scores the few rows left.
    var impactFilterThreshold = 4000
    /// How many group combinations (a group per word, at one capture and length) a worded search walks at most;
    /// beyond it (four or more common words: a few thousand combinations, most with no row in common) FTS5's scan
    /// is cheaper. Measured at a million components: 3 common words, 1,360 combinations, 4.8 ms through the index
    /// and 11.6 ms through FTS5; 4 words, 7,592 combinations, 30 ms and 9.8 ms.
    var impactCombinationLimit = 4000

    init(database: Database) { self.database = database }

    /// Opens (creating and migrating when writable) the catalog at `path`; statements, the migrations included,
    /// wait up to `busyTimeoutMilliseconds` for another writer's lock.
    ///
    /// A catalog written by a newer qkcat is refused before anything is written to it.
    public static func open(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 5000)
        throws(StoreError) -> Catalog
    {
        let exists = FileManager.default.fileExists(atPath: path)
        if readOnly && !exists { throw .notFound(what: "catalog \(path)") }
        if exists {
            // Probe through a read-only connection, which never writes or checkpoints the file.
            let probe = try Database(path: path, mode: .readOnly, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            let found = try Migrator.checkCompatible(probe)
            if readOnly && found < Migrator.currentVersion {
                throw .outdatedCatalog(path: path, found: found, current: Migrator.currentVersion)
            }
        }
        let database = try Database(path: path, mode: readOnly ? .readOnly : .readWriteCreate,
                                    busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        try database.enableWriteAheadLog()
        if !readOnly {
            try Migrator.migrate(database)
            try SearchIndex.buildMissing(in: database)
        }
        try SearchRanking.register(on: database)
        return Catalog(database: database)
    }

    // MARK: Captures

    /// The capture with this content hash, if it was ingested.
    public func capture(withHash contentHash: String) throws(StoreError) -> CaptureRecord? {
        try captures(where: "cap.content_hash = ?", [.text(contentHash)]).first
    }

    /// Every capture, optionally of one model or checkpoint.
    public func listCaptures(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [CaptureRecord] {
        var sql = FilterSQL()
        sql.add("m.name = ?", filters.model.map(SQLValue.text))
        sql.add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        return try captures(where: sql.conditions.isEmpty ? "1" : sql.whereBody, sql.values)
    }

    private func captures(where condition: String, _ values: [SQLValue]) throws(StoreError) -> [CaptureRecord] {
        let statement = try database.prepare("""
            SELECT cap.id, m.name, ck.name, cap.content_hash, cap.dataset_json, cap.positional, cap.layers_json,
                   cap.n_prompts, cap.n_keys, cap.ingested_at, cap.qkcat_version, cap.energy, cap.options_json
              FROM captures cap
              JOIN checkpoints ck ON ck.id = cap.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             WHERE \(condition)
             ORDER BY m.name, ck.ordinal, ck.name, cap.id
            """)
        try statement.bind(values)
        var records: [CaptureRecord] = []
        while try statement.step() {
            let layersJSON = statement.text(at: 6) ?? "[]"
            let layers = (try? JSONDecoder().decode([Int].self, from: Data(layersJSON.utf8))) ?? []
            records.append(CaptureRecord(
                id: statement.int64(at: 0) ?? 0, model: statement.text(at: 1) ?? "", checkpoint: statement.text(at: 2) ?? "",
                contentHash: statement.text(at: 3) ?? "", datasetJSON: statement.text(at: 4),
                positional: statement.text(at: 5) ?? "", layers: layers, promptCount: statement.int(at: 7) ?? 0,
                keyCount: statement.int(at: 8) ?? 0, ingestedAt: statement.text(at: 9) ?? "",
                qkcatVersion: statement.text(at: 10) ?? "", energy: statement.double(at: 11) ?? 0,
                optionsJSON: statement.text(at: 12) ?? "{}"))
        }
        return records
    }

    // MARK: Search

    /// Components matching `query` (ranked by relevance, ties by σ) and `filters`; an empty query lists by σ,
    /// largest first (equal σ by id).
    ///
    /// Every whitespace-separated word is quoted as an FTS5 string, so no input is read as FTS5 syntax.
    /// Relevance is bm25 over the words alone (`qkrank`); column weights: human label 5, automatic label, note,
    /// feature and tokens 1, model/checkpoint names 0.5. Filters are exact facet tokens of the full-text index.
    public func search(_ query: String, filters: SearchFilters = SearchFilters(), limit: Int = 20)
        throws(StoreError) -> [ComponentHit]
    {
        guard limit > 0 else { throw .invalidArgument("search limit must be positive, got \(limit)") }
        let words = SearchText.words(query)
        // One read transaction: the index, the statistics and the rows come from one snapshot.
        let ownsTransaction = !database.inTransaction
        if ownsTransaction { try database.execute("BEGIN") }
        defer { if ownsTransaction { try? database.execute("COMMIT") } }
        if words.isEmpty {
            return try hits(try componentsBySigma(filters, limit: limit).map { ($0, nil) })
        }
        if let ranked = try componentsByImpact(words, filters, limit: limit) {
            let found = try hits(ranked)
            // A component deleted by hand leaves its entries behind: the full-text index knows better.
            if found.count == ranked.count { return found }
        }
        return try hits(try componentsByFullText(words, filters, limit: limit))
    }

    /// How many filtered components the σ listing gathers from the full-text index before it scans by σ instead
    /// (about √(limit × components) balances the two at a million components).
    var sigmaListingGatherLimit = 4000

    /// Ids of the strongest components passing `filters`.
    ///
    /// A selective filter is listed whole from the full-text index (its facet tokens) and sorted; a broad one
    /// (more than `sigmaListingGatherLimit` components) scans the σ index from the top, where matches are dense.
    func componentsBySigma(_ filters: SearchFilters, limit: Int) throws(StoreError) -> [Int64] {
        let order = "ORDER BY k.sigma DESC, k.component_id LIMIT ?"
        let facets = SearchText.facetTerms(filters).joined(separator: " AND ")
        let statement: Statement
        let gathered = facets.isEmpty ? Int.max : try database.scalarInt("""
            SELECT count(*) FROM (SELECT rowid FROM component_search WHERE component_search MATCH ? LIMIT ?)
            """, [.text(facets), .integer(sigmaListingGatherLimit + 1)]) ?? 0
        if gathered <= sigmaListingGatherLimit {
            statement = try database.prepare("""
                SELECT k.component_id
                  FROM (SELECT rowid AS id FROM component_search WHERE component_search MATCH ?) s
                 CROSS JOIN component_search_keys k ON k.component_id = s.id
                 \(order)
                """)
            try statement.bind([.text(facets), .integer(limit)])
        } else {
            guard let exact = try exactKeyFilter(filters) else { return [] }
            statement = try database.prepare("""
                SELECT k.component_id FROM component_search_keys k INDEXED BY component_search_keys_by_sigma
                 \(exact.conditions.isEmpty ? "" : "WHERE " + exact.whereBody) \(order)
                """)
            try statement.bind(exact.values + [.integer(limit)])
        }
        var ids: [Int64] = []
        while try statement.step() { ids.append(statement.int64(at: 0) ?? 0) }
        return ids
    }

    /// Conditions on `component_search_keys k` equal to `filters`; nil when a named model, checkpoint, feature or
    /// kind is not in the catalog (nothing can match).
    func exactKeyFilter(_ filters: SearchFilters) throws(StoreError) -> FilterSQL? {
        var exact = FilterSQL()
        if let ids = try checkpointIDs(filters) {
            if ids.isEmpty { return nil }
            exact.conditions.append("k.checkpoint_id IN (\(ids.map(String.init).joined(separator: ", ")))")
        }
        exact.add("k.layer = ?", filters.layer.map(SQLValue.integer))
        exact.add("k.head = ?", filters.head.map(SQLValue.integer))
        if let ids = try featureIDs(filters) {
            if ids.isEmpty { return nil }
            exact.conditions.append("k.feature_id IN (\(ids.map(String.init).joined(separator: ", ")))")
        }
        exact.add("k.value = ?", filters.value.map(SQLValue.text))
        return exact
    }

    /// The checkpoints the model and checkpoint filters name (empty: none in the catalog); nil without those filters.
    func checkpointIDs(_ filters: SearchFilters) throws(StoreError) -> [Int64]? {
        guard filters.model != nil || filters.checkpoint != nil else { return nil }
        var names = FilterSQL()
        names.add("m.name = ?", filters.model.map(SQLValue.text))
        names.add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        return try integers("SELECT ck.id FROM checkpoints ck JOIN models m ON m.id = ck.model_id WHERE "
            + names.whereBody, names.values)
    }

    /// The features the feature and kind filters name (empty: none in the catalog); nil without those filters.
    func featureIDs(_ filters: SearchFilters) throws(StoreError) -> [Int64]? {
        guard filters.feature != nil || filters.kind != nil else { return nil }
        var names = FilterSQL()
        names.add("name = ?", filters.feature.map(SQLValue.text))
        names.add("kind = ?", filters.kind.map(SQLValue.text))
        return try integers("SELECT id FROM features WHERE " + names.whereBody, names.values)
    }

    /// The first column of every row of `sql`, as integers.
    func integers(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> [Int64] {
        let statement = try database.prepare(sql)
        try statement.bind(values)
        var result: [Int64] = []
        while try statement.step() { result.append(statement.int64(at: 0) ?? 0) }
        return result
    }

    /// Ids and scores of the most relevant components for `words` within `filters`: best score first, equal
    /// scores by σ (largest first), then id.
    func componentsByFullText(_ words: [String], _ filters: SearchFilters, limit: Int)
        throws(StoreError) -> [(id: Int64, score: Double?)]
    {
        try componentsByFullText(words, facets: SearchText.facetTerms(filters), documents: try documentCounts(words),
                                 limit: limit)
            .map { ($0.id, $0.score) }
    }

    /// Document counts of the words as qkrank takes them: from search_terms for a plain ASCII term it holds; -1
    /// (qkrank counts them) for a word that is not one plain ASCII term, or that no ingested text holds.
    func documentCounts(_ words: [String]) throws(StoreError) -> [Int] {
        let lookup = try database.prepare("SELECT documents FROM search_terms WHERE term = ?")
        var documents: [Int] = []
        for word in words {
            guard let term = SearchRanking.simpleTerm(word) else { documents.append(-1); continue }
            try lookup.bind(term, at: 1)
            documents.append(try lookup.step() ? (lookup.int(at: 0) ?? -1) : -1)
            lookup.reset()
        }
        return documents
    }

    /// The full-text path: FTS5 matches the words and facet conditions, qkrank scores every match.
    func componentsByFullText(_ words: [String], facets: [String], documents: [Int], limit: Int,
                              rowids: Set<Int64>? = nil) throws(StoreError) -> [RankedID]
    {
        let expression = (words.map { SearchRanking.searchableColumns + " : " + SearchText.quoted($0) } + facets)
            .joined(separator: " AND ")
        // qkrank drops (NULL) the rows that cannot reach the first `limit`, so few are sorted; the row's length comes
        // with its σ from component_search_keys, so ranking looks up one small row per match.
        let arguments = ([limit, words.count] + documents).map(String.init).joined(separator: ", ")
        let statement = try database.prepare("""
            SELECT component_search.rowid,
                   \(SearchRanking.functionName)(component_search, k.search_length, k.sigma, \(arguments)) AS score,
                   k.sigma
              FROM component_search
             CROSS JOIN component_search_keys k ON k.component_id = component_search.rowid
             WHERE component_search MATCH ? AND score IS NOT NULL
                   \(rowids.map { "AND component_search.rowid IN (\($0.sorted().map(String.init).joined(separator: ", ")))" } ?? "")
             ORDER BY score, k.sigma DESC, k.component_id
             LIMIT ?
            """)
        try statement.bind([.text(expression), .integer(limit)])
        var ranked: [RankedID] = []
        while try statement.step() {
            ranked.append(RankedID(id: statement.int64(at: 0) ?? 0, score: statement.double(at: 1) ?? 0,
                                   sigma: statement.double(at: 2) ?? 0))
        }
        return ranked
    }

    /// The hits for `ranked` ids, in that order.
    func hits(_ ranked: [(id: Int64, score: Double?)]) throws(StoreError) -> [ComponentHit] {
        guard !ranked.isEmpty else { return [] }
        let statement = try database.prepare("""
            SELECT \(Self.hitColumns) FROM components c \(Self.hitJoins)
             WHERE c.id IN (\(ranked.map { String($0.id) }.joined(separator: ", ")))
            """)
        var byID: [Int64: ComponentHit] = [:]
        while try statement.step() {
            let hit = Self.readHit(statement)
            byID[hit.id] = hit
        }
        return ranked.compactMap { entry in
            guard var hit = byID[entry.id] else { return nil }
            hit.score = entry.score
            return hit
        }
    }

    static let hitColumns = """
        c.id, m.name, ck.name, h.layer, h.head, h.kv_head, f.name, f.kind, d.value, c.component_index, c.sigma,
        c.energy_share, c.auto_label, c.human_label, c.note
        """

    static let hitJoins = """
        JOIN decompositions d ON d.id = c.decomposition_id
        JOIN heads h ON h.id = d.head_id
        JOIN checkpoints ck ON ck.id = h.checkpoint_id
        JOIN models m ON m.id = ck.model_id
        JOIN features f ON f.id = d.feature_id
        """

    static func readHit(_ statement: Statement) -> ComponentHit {
        ComponentHit(
            id: statement.int64(at: 0) ?? 0, model: statement.text(at: 1) ?? "", checkpoint: statement.text(at: 2) ?? "",
            layer: statement.int(at: 3) ?? 0, head: statement.int(at: 4) ?? 0, kvHead: statement.int(at: 5) ?? 0,
            feature: statement.text(at: 6) ?? "", kind: statement.text(at: 7) ?? "", value: statement.text(at: 8),
            index: statement.int(at: 9) ?? 0, sigma: statement.double(at: 10) ?? 0,
            energyShare: statement.double(at: 11) ?? 0, autoLabel: statement.text(at: 12) ?? "",
            humanLabel: statement.text(at: 13), note: statement.text(at: 14), score: nil)
    }

    // MARK: Labels

    /// Sets a component's human label (nil or empty clears it) and note (nil keeps it, empty clears it).
    /// The full-text index follows at once (a trigger updates it in the same transaction).
    public func setHumanLabel(componentID: Int64, label: String?, note: String? = nil) throws(StoreError) {
        let statement = try database.prepare("""
            UPDATE components
               SET human_label = nullif(?1, ''),
                   note = CASE WHEN ?2 IS NULL THEN note ELSE nullif(?2, '') END
             WHERE id = ?3
            """)
        try statement.bind(label, at: 1)
        try statement.bind(note, at: 2)
        try statement.bind(componentID, at: 3)
        try database.transaction { () throws(StoreError) in
            // search_terms follows: the terms only the old text held lose the row, those only the new one holds gain it.
            let tokenizer = try searchTokenizer()
            let before = Set(tokenizer.tokens(try searchableText(componentID: componentID)).map(ExactText.init))
            try statement.run()
            guard database.changes == 1 else { throw .notFound(what: "component \(componentID)") }
            let after = Set(tokenizer.tokens(try searchableText(componentID: componentID)).map(ExactText.init))
            let count = try database.prepare("""
                INSERT INTO search_terms (term, documents) VALUES (?, ?)
                ON CONFLICT (term) DO UPDATE SET documents = documents + excluded.documents
                """)
            for (terms, change) in [(before.subtracting(after), -1), (after.subtracting(before), 1)] {
                for term in terms {
                    try count.bind(term.text, at: 1)
                    try count.bind(change, at: 2)
                    try count.run()
                }
            }
            try database.execute("DELETE FROM search_terms WHERE documents <= 0")
            // The trigger marked the row stale; the overlay indexes it with its new text.
            try SearchIndex.rebuildOverlay(tokenizer: tokenizer, database: database)
        }
    }

    /// The searchable columns of a component's full-text row, as one text (empty when it has none).
    private func searchableText(componentID: Int64) throws(StoreError) -> String {
        let statement = try database.prepare("""
            SELECT coalesce(auto_label, '') || char(10) || coalesce(human_label, '') || char(10) || coalesce(note, '')
                   || char(10) || coalesce(feature, '') || char(10) || coalesce(tokens, '') || char(10) || coalesce(names, '')
              FROM component_search
             WHERE rowid = ?
            """)
        try statement.bind(componentID, at: 1)
        return try statement.step() ? (statement.text(at: 0) ?? "") : ""
    }

    // MARK: Show

    /// One component with its decomposition's numbers, examples and the cited prompts' tokens.
    public func component(id: Int64) throws(StoreError) -> ComponentDetail {
        guard let decompositionID = try database.scalarInt(
            "SELECT decomposition_id FROM components WHERE id = ?", [.integer(Int(id))])
        else { throw .notFound(what: "component \(id)") }
        let loader = try DecompositionLoader(database: database)
        guard var decomposition = try loader.decomposition(id: Int64(decompositionID), withComponents: false) else {
            throw .notFound(what: "decomposition \(decompositionID)")
        }
        guard let component = try loader.component(id: id) else { throw .notFound(what: "component \(id)") }
        decomposition.components = []
        let prompts = try loader.prompts(Set(component.examples.map(\.promptRowID)))
        return ComponentDetail(decomposition: decomposition, component: component, prompts: prompts)
    }

    /// The decompositions of the heads matching `filters`, in catalog order, with the cited prompts.
    public func decompositions(_ filters: SearchFilters) throws(StoreError) -> DecompositionsWithContext {
        let ids = try decompositionIDs(filters)
        let loader = try DecompositionLoader(database: database)
        var records: [DecompositionRecord] = []
        var promptRows = Set<Int64>()
        for id in ids {
            guard let record = try loader.decomposition(id: id, withComponents: true) else { continue }
            for component in record.components { promptRows.formUnion(component.examples.map(\.promptRowID)) }
            records.append(record)
        }
        return DecompositionsWithContext(decompositions: records, prompts: try loader.prompts(promptRows))
    }

    /// `show --model M --layer L --head H [--feature F]`.
    public func decompositions(model: String?, checkpoint: String? = nil, layer: Int? = nil, head: Int? = nil,
                               feature: String? = nil) throws(StoreError) -> DecompositionsWithContext {
        try decompositions(SearchFilters(model: model, checkpoint: checkpoint, layer: layer, head: head, feature: feature))
    }

    // MARK: Export

    /// Every decomposition matching `filters`, loaded one at a time, in catalog order.
    public func exportDecompositions(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> DecompositionCursor {
        DecompositionCursor(ids: try decompositionIDs(filters), loader: try DecompositionLoader(database: database))
    }

    func decompositionIDs(_ filters: SearchFilters) throws(StoreError) -> [Int64] {
        var exact = FilterSQL()
        exact.addExact(filters)
        let statement = try database.prepare("""
            SELECT d.id
              FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
             \(exact.conditions.isEmpty ? "" : "WHERE " + exact.whereBody)
             ORDER BY m.name, ck.ordinal, ck.name, h.layer, h.head, f.name, d.value IS NOT NULL, d.value, f.capture_id
            """)
        try statement.bind(exact.values)
        var ids: [Int64] = []
        while try statement.step() { ids.append(statement.int64(at: 0) ?? 0) }
        return ids
    }

    // MARK: Lists

    public func listModels() throws(StoreError) -> [ModelRecord] {
        let statement = try database.prepare("""
            SELECT m.id, m.name, m.n_layers, m.n_heads, m.n_kv_heads, m.d_head,
                   (SELECT count(*) FROM checkpoints ck WHERE ck.model_id = m.id)
              FROM models m ORDER BY m.name
            """)
        var records: [ModelRecord] = []
        while try statement.step() {
            records.append(ModelRecord(
                id: statement.int64(at: 0) ?? 0, name: statement.text(at: 1) ?? "", layerCount: statement.int(at: 2) ?? 0,
                headCount: statement.int(at: 3) ?? 0, kvHeadCount: statement.int(at: 4) ?? 0,
                headDimension: statement.int(at: 5) ?? 0, checkpointCount: statement.int(at: 6) ?? 0))
        }
        return records
    }

    /// Checkpoints in training order (`step2 < step10 < main`) per model.
    public func listCheckpoints(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [CheckpointRecord] {
        var sql = FilterSQL()
        sql.add("m.name = ?", filters.model.map(SQLValue.text))
        sql.add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        let statement = try database.prepare("""
            SELECT ck.id, m.name, ck.name, ck.ordinal,
                   (SELECT count(*) FROM captures cap WHERE cap.checkpoint_id = ck.id)
              FROM checkpoints ck JOIN models m ON m.id = ck.model_id
             \(sql.conditions.isEmpty ? "" : "WHERE " + sql.whereBody)
             ORDER BY m.name, ck.ordinal, ck.name
            """)
        try statement.bind(sql.values)
        var records: [CheckpointRecord] = []
        while try statement.step() {
            records.append(CheckpointRecord(
                id: statement.int64(at: 0) ?? 0, model: statement.text(at: 1) ?? "", name: statement.text(at: 2) ?? "",
                ordinal: statement.int64(at: 3) ?? 0, captureCount: statement.int(at: 4) ?? 0))
        }
        return records
    }

    /// Heads matching the model/checkpoint/layer/head filters and having a decomposition of the
    /// feature/value/kind filters when those are given.
    public func listHeads(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [HeadRecord] {
        var sql = FilterSQL()
        sql.add("m.name = ?", filters.model.map(SQLValue.text))
        sql.add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        sql.add("h.layer = ?", filters.layer.map(SQLValue.integer))
        sql.add("h.head = ?", filters.head.map(SQLValue.integer))
        var inner = FilterSQL()
        inner.add("f.name = ?", filters.feature.map(SQLValue.text))
        inner.add("d.value = ?", filters.value.map(SQLValue.text))
        inner.add("f.kind = ?", filters.kind.map(SQLValue.text))
        let counted = "(SELECT count(*) FROM decompositions d JOIN features f ON f.id = d.feature_id WHERE d.head_id = h.id"
            + (inner.conditions.isEmpty ? "" : " AND " + inner.whereBody) + ")"
        if !inner.conditions.isEmpty { sql.conditions.append("\(counted) > 0") }
        let statement = try database.prepare("""
            SELECT h.id, m.name, ck.name, h.layer, h.head, h.kv_head, h.d_head, \(counted)
              FROM heads h
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             \(sql.conditions.isEmpty ? "" : "WHERE " + sql.whereBody)
             ORDER BY m.name, ck.ordinal, ck.name, h.layer, h.head
            """)
        // The counted subquery appears twice when feature filters are given: bind its values for both.
        try statement.bind(inner.values + sql.values + (inner.conditions.isEmpty ? [] : inner.values))
        var records: [HeadRecord] = []
        while try statement.step() {
            records.append(HeadRecord(
                id: statement.int64(at: 0) ?? 0, model: statement.text(at: 1) ?? "", checkpoint: statement.text(at: 2) ?? "",
                layer: statement.int(at: 3) ?? 0, head: statement.int(at: 4) ?? 0, kvHead: statement.int(at: 5) ?? 0,
                headDimension: statement.int(at: 6) ?? 0, decompositionCount: statement.int(at: 7) ?? 0))
        }
        return records
    }

    /// Features as each capture declared them, with their decomposition counts and per-value values.
    public func listFeatures(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [FeatureRecord] {
        var sql = FilterSQL()
        sql.add("m.name = ?", filters.model.map(SQLValue.text))
        sql.add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        sql.add("f.name = ?", filters.feature.map(SQLValue.text))
        sql.add("f.kind = ?", filters.kind.map(SQLValue.text))
        let statement = try database.prepare("""
            SELECT f.id, f.capture_id, m.name, ck.name, f.name, f.kind, f.description,
                   (SELECT count(*) FROM decompositions d WHERE d.feature_id = f.id)
              FROM features f
              JOIN captures cap ON cap.id = f.capture_id
              JOIN checkpoints ck ON ck.id = cap.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             \(sql.conditions.isEmpty ? "" : "WHERE " + sql.whereBody)
             ORDER BY m.name, ck.ordinal, ck.name, f.name, f.capture_id
            """)
        try statement.bind(sql.values)
        let valuesOf = try database.prepare(
            "SELECT DISTINCT value FROM decompositions WHERE feature_id = ? AND value IS NOT NULL ORDER BY value")
        var records: [FeatureRecord] = []
        while try statement.step() {
            let id = statement.int64(at: 0) ?? 0
            try valuesOf.bind(id, at: 1)
            var values: [String] = []
            while try valuesOf.step() { values.append(valuesOf.text(at: 0) ?? "") }
            valuesOf.reset()
            records.append(FeatureRecord(
                id: id, captureID: statement.int64(at: 1) ?? 0, model: statement.text(at: 2) ?? "",
                checkpoint: statement.text(at: 3) ?? "", name: statement.text(at: 4) ?? "", kind: statement.text(at: 5) ?? "",
                description: statement.text(at: 6), decompositionCount: statement.int(at: 7) ?? 0, values: values))
        }
        return records
    }
}

/// Conditions joined by AND with their bound values, in order.
struct FilterSQL {
    var conditions: [String] = []
    var values: [SQLValue] = []

    var whereBody: String { conditions.joined(separator: " AND ") }

    mutating func add(_ condition: String, _ value: SQLValue?) {
        guard let value else { return }
        conditions.append(condition)
        values.append(value)
    }

    /// Every filter, on the aliases m, ck, h, f, d.
    mutating func addExact(_ filters: SearchFilters) {
        add("m.name = ?", filters.model.map(SQLValue.text))
        add("ck.name = ?", filters.checkpoint.map(SQLValue.text))
        add("h.layer = ?", filters.layer.map(SQLValue.integer))
        add("h.head = ?", filters.head.map(SQLValue.integer))
        add("f.name = ?", filters.feature.map(SQLValue.text))
        add("d.value = ?", filters.value.map(SQLValue.text))
        add("f.kind = ?", filters.kind.map(SQLValue.text))
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
        var record = DecompositionRecord(
            id: id, captureID: statement.int64(at: 1) ?? 0, model: statement.text(at: 2) ?? "",
            checkpoint: statement.text(at: 3) ?? "", layer: statement.int(at: 4) ?? 0, head: statement.int(at: 5) ?? 0,
            kvHead: statement.int(at: 6) ?? 0, headDimension: statement.int(at: 7) ?? 0, feature: statement.text(at: 8) ?? "",
            featureKind: statement.text(at: 9) ?? "", value: statement.text(at: 10), energy: statement.double(at: 11) ?? 0,
            positivePairs: statement.int(at: 12) ?? 0, negativePairs: statement.int(at: 13) ?? 0,
            frobenius: statement.double(at: 14) ?? 0, rank: statement.int(at: 15) ?? 0,
            singularValues: (try statement.float32Blob(at: 16) ?? []).map(Double.init), components: [])
        statement.reset()
        if withComponents {
            let components = componentsStatement
            defer { components.reset() }
            try components.bind(id, at: 1)
            var rows: [ComponentRecord] = []
            while try components.step() { rows.append(try readComponent(components, dimension: record.headDimension)) }
            components.reset()
            for offset in rows.indices { try attachExamples(&rows[offset]) }
            record.components = rows
        }
        return record
    }

    func component(id: Int64) throws(StoreError) -> ComponentRecord? {
        let statement = componentStatement
        defer { statement.reset() }
        try statement.bind(id, at: 1)
        guard try statement.step() else { return nil }
        var record = try readComponent(statement, dimension: nil)
        statement.reset()
        try attachExamples(&record)
        return record
    }

    private func readComponent(_ statement: Statement, dimension: Int?) throws(StoreError) -> ComponentRecord {
        let id = statement.int64(at: 0) ?? 0
        let u = try statement.float32Blob(at: 4) ?? []
        let v = try statement.float32Blob(at: 5) ?? []
        if let dimension, u.count != dimension || v.count != dimension {
            throw .corrupt("component \(id): u has \(u.count) and v \(v.count) values, d_head is \(dimension)")
        }
        return ComponentRecord(
            id: id, index: statement.int(at: 1) ?? 0, sigma: statement.double(at: 2) ?? 0,
            energyShare: statement.double(at: 3) ?? 0, u: u, v: v, autoLabel: statement.text(at: 6) ?? "",
            humanLabel: statement.text(at: 7), note: statement.text(at: 8), examples: [], tokenAggregates: [])
    }

    private func attachExamples(_ record: inout ComponentRecord) throws(StoreError) {
        let examples = examplesStatement
        defer { examples.reset() }
        try examples.bind(record.id, at: 1)
        while try examples.step() {
            record.examples.append(StoredExample(
                side: Side(rawValue: examples.text(at: 0) ?? "") ?? .query,
                extreme: Extreme(rawValue: examples.text(at: 1) ?? "") ?? .high, rank: examples.int(at: 2) ?? 0,
                promptRowID: examples.int64(at: 3) ?? 0, promptID: examples.text(at: 4) ?? "",
                position: examples.int(at: 5) ?? 0, token: examples.text(at: 6) ?? "", score: examples.double(at: 7) ?? 0))
        }
        let aggregates = aggregatesStatement
        defer { aggregates.reset() }
        try aggregates.bind(record.id, at: 1)
        while try aggregates.step() {
            record.tokenAggregates.append(StoredTokenAggregate(
                side: Side(rawValue: aggregates.text(at: 0) ?? "") ?? .query,
                extreme: Extreme(rawValue: aggregates.text(at: 1) ?? "") ?? .high, rank: aggregates.int(at: 2) ?? 0,
                token: aggregates.text(at: 3) ?? "", count: aggregates.int(at: 4) ?? 0,
                meanScore: aggregates.double(at: 5) ?? 0))
        }
    }

    func prompts(_ rows: Set<Int64>) throws(StoreError) -> [Int64: PromptContext] {
        var contexts: [Int64: PromptContext] = [:]
        let statement = promptStatement
        for row in rows.sorted() {
            defer { statement.reset() }
            try statement.bind(row, at: 1)
            guard try statement.step() else { continue }
            let json = statement.text(at: 4) ?? "[]"
            guard let tokens = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
                throw .corrupt("prompt row \(row): tokens_json is not an array of strings")
            }
            contexts[row] = PromptContext(
                rowID: row, captureID: statement.int64(at: 1) ?? 0, index: statement.int(at: 2) ?? 0,
                promptID: statement.text(at: 3) ?? "", tokens: tokens)
        }
        return contexts
    }
}
