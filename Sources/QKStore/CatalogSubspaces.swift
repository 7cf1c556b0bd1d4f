import Foundation
import QKEngine

/// The query-side subspace of one pooled decomposition: the `u` of its kept components.
public struct QuerySubspaceRecord: Sendable, Equatable {
    public var decompositionID: Int64
    public var captureID: Int64
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var headDimension: Int
    public var feature: String
    /// `u` of components 0 ..< rank, in index order.
    public var vectors: [[Float]]
}

extension Catalog {
    /// Query subspaces of the pooled decompositions of `model` at `checkpoint`, optionally of one layer,
    /// head or set of features, ordered by layer, head and feature name.
    ///
    /// When several ingested captures decomposed the same head and feature, the most recently ingested
    /// one (highest capture id) is returned. Only `u` is read: no examples, no prompts.
    public func querySubspaces(model: String, checkpoint: String, layer: Int? = nil, head: Int? = nil,
                               features: [String]? = nil) throws(StoreError) -> [QuerySubspaceRecord] {
        var filter = SearchFilters(model: model, checkpoint: checkpoint, layer: layer, head: head).condition(.catalog)
        if let features {
            guard !features.isEmpty else { return [] }
            filter.terms.append("f.name IN (\(features.map { _ in "?" }.joined(separator: ", ")))")
            filter.values += features.map(SQLValue.text)
        }
        let statement = try database.prepare("""
            SELECT d.id, f.capture_id, h.layer, h.head, h.kv_head, h.d_head, f.name, c.u
              FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
              LEFT JOIN components c ON c.decomposition_id = d.id
             WHERE d.value IS NULL \(filter.andClause)
             ORDER BY h.layer, h.head, f.name, f.capture_id DESC, c.component_index
            """)
        try statement.bind(filter.values)
        var records: [QuerySubspaceRecord] = []
        while try statement.step() {
            let decompositionID = statement.int64(at: 0) ?? 0
            let layer = statement.int(at: 2) ?? 0, head = statement.int(at: 3) ?? 0
            let feature = statement.text(at: 6) ?? ""
            if var last = records.last, last.layer == layer, last.head == head, last.feature == feature {
                // Rows of an older capture's decomposition of the same head and feature are skipped.
                guard last.decompositionID == decompositionID else { continue }
                if let u = try statement.float32Blob(at: 7) {
                    guard u.count == last.headDimension else {
                        throw .corrupt("decomposition \(decompositionID): u has \(u.count) values, d_head is \(last.headDimension)")
                    }
                    last.vectors.append(u)
                    records[records.count - 1] = last
                }
                continue
            }
            var record = QuerySubspaceRecord(
                decompositionID: decompositionID, captureID: statement.int64(at: 1) ?? 0, layer: layer, head: head,
                kvHead: statement.int(at: 4) ?? 0, headDimension: statement.int(at: 5) ?? 0, feature: feature, vectors: [])
            if let u = try statement.float32Blob(at: 7) {
                guard u.count == record.headDimension else {
                    throw .corrupt("decomposition \(decompositionID): u has \(u.count) values, d_head is \(record.headDimension)")
                }
                record.vectors.append(u)
            }
            records.append(record)
        }
        return records
    }
}
