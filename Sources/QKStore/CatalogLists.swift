import Foundation
import QKEngine

extension Catalog {
    // MARK: Captures

    /// The capture with this content hash, if it was ingested.
    public func capture(withHash contentHash: String) throws(StoreError) -> CaptureRecord? {
        try captures(SQLCondition(terms: ["cap.content_hash = ?"], values: [.text(contentHash)])).first
    }

    /// Every capture, optionally of one model or checkpoint.
    public func listCaptures(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [CaptureRecord] {
        try captures(SearchFilters(model: filters.model, checkpoint: filters.checkpoint)
            .condition(FilterColumns(checkpointID: "cap.checkpoint_id")))
    }

    private func captures(_ condition: SQLCondition) throws(StoreError) -> [CaptureRecord] {
        try database.rows("""
            SELECT cap.id, m.name, ck.name, cap.content_hash, cap.dataset_json, cap.positional, cap.layers_json,
                   cap.n_prompts, cap.n_keys, cap.ingested_at, cap.qkcat_version, cap.energy, cap.options_json
              FROM captures cap
              JOIN checkpoints ck ON ck.id = cap.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             \(condition.whereClause)
             ORDER BY m.name, ck.ordinal, ck.name, cap.id
            """, condition.values) { statement throws(StoreError) in
            guard let layers = JSONArrays.integers(try statement.required(6)) else {
                throw .corrupt("capture \(try statement.required(0, as: Int64.self)): layers_json is not an array of integers")
            }
            return try CaptureRecord(
                id: statement.required(0), model: statement.required(1), checkpoint: statement.required(2),
                contentHash: statement.required(3), datasetJSON: statement.text(at: 4),
                positional: statement.required(5), layers: layers, promptCount: statement.required(7),
                keyCount: statement.required(8), ingestedAt: statement.required(9),
                qkcatVersion: statement.required(10), energy: statement.required(11),
                optionsJSON: statement.text(at: 12) ?? "{}")
        }
    }

    // MARK: Lists

    public func listModels() throws(StoreError) -> [ModelRecord] {
        try database.rows("""
            SELECT m.id, m.name, m.n_layers, m.n_heads, m.n_kv_heads, m.d_head,
                   (SELECT count(*) FROM checkpoints ck WHERE ck.model_id = m.id)
              FROM models m ORDER BY m.name
            """) { statement throws(StoreError) in
            try ModelRecord(
                id: statement.required(0), name: statement.required(1), layerCount: statement.required(2),
                headCount: statement.required(3), kvHeadCount: statement.required(4),
                headDimension: statement.required(5), checkpointCount: statement.required(6))
        }
    }

    /// Checkpoints in training order (`step2 < step10 < main`) per model.
    public func listCheckpoints(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [CheckpointRecord] {
        let sql = SearchFilters(model: filters.model, checkpoint: filters.checkpoint)
            .condition(FilterColumns(checkpointID: "ck.id"))
        return try database.rows("""
            SELECT ck.id, m.name, ck.name, ck.ordinal,
                   (SELECT count(*) FROM captures cap WHERE cap.checkpoint_id = ck.id)
              FROM checkpoints ck JOIN models m ON m.id = ck.model_id
             \(sql.whereClause)
             ORDER BY m.name, ck.ordinal, ck.name
            """, sql.values) { statement throws(StoreError) in
            try CheckpointRecord(
                id: statement.required(0), model: statement.required(1), name: statement.required(2),
                ordinal: statement.required(3), captureCount: statement.required(4))
        }
    }

    /// Heads matching the model/checkpoint/layer/head filters and having a decomposition of the
    /// feature/value/kind filters when those are given.
    public func listHeads(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [HeadRecord] {
        var sql = SearchFilters(model: filters.model, checkpoint: filters.checkpoint, layer: filters.layer, head: filters.head)
            .condition(.catalog)
        let inner = SearchFilters(feature: filters.feature, value: filters.value, kind: filters.kind).condition(.catalog)
        let counted = """
            (SELECT count(*) FROM decompositions d JOIN features f ON f.id = d.feature_id WHERE d.head_id = h.id \(inner.andClause))
            """
        if !inner.isEmpty { sql.terms.append("\(counted) > 0") }
        // The counted subquery appears twice when feature filters are given: bind its values for both.
        return try database.rows("""
            SELECT h.id, m.name, ck.name, h.layer, h.head, h.kv_head, h.d_head, \(counted)
              FROM heads h
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             \(sql.whereClause)
             ORDER BY m.name, ck.ordinal, ck.name, h.layer, h.head
            """, inner.values + sql.values + (inner.isEmpty ? [] : inner.values)) { statement throws(StoreError) in
            try HeadRecord(
                id: statement.required(0), model: statement.required(1), checkpoint: statement.required(2),
                layer: statement.required(3), head: statement.required(4), kvHead: statement.required(5),
                headDimension: statement.required(6), decompositionCount: statement.required(7))
        }
    }

    /// Features as each capture declared them, with their decomposition counts and per-value values.
    public func listFeatures(_ filters: SearchFilters = SearchFilters()) throws(StoreError) -> [FeatureRecord] {
        let sql = SearchFilters(model: filters.model, checkpoint: filters.checkpoint, feature: filters.feature,
                                kind: filters.kind)
            .condition(FilterColumns(checkpointID: "cap.checkpoint_id", feature: "f.name", kind: "f.kind"))
        let valuesOf = try database.prepare(
            "SELECT DISTINCT value FROM decompositions WHERE feature_id = ? AND value IS NOT NULL ORDER BY value")
        return try database.rows("""
            SELECT f.id, f.capture_id, m.name, ck.name, f.name, f.kind, f.description,
                   (SELECT count(*) FROM decompositions d WHERE d.feature_id = f.id)
              FROM features f
              JOIN captures cap ON cap.id = f.capture_id
              JOIN checkpoints ck ON ck.id = cap.checkpoint_id
              JOIN models m ON m.id = ck.model_id
             \(sql.whereClause)
             ORDER BY m.name, ck.ordinal, ck.name, f.name, f.capture_id
            """, sql.values) { statement throws(StoreError) in
            let id = try statement.required(0, as: Int64.self)
            try valuesOf.bind(id, at: 1)
            return try FeatureRecord(
                id: id, captureID: statement.required(1), model: statement.required(2),
                checkpoint: statement.required(3), name: statement.required(4), kind: statement.required(5),
                description: statement.text(at: 6), decompositionCount: statement.required(7),
                values: valuesOf.rows { values throws(StoreError) in try values.required(0) })
        }
    }
}
