import Foundation
import QKEngine

/// One stored decomposition reduced to what comparisons need: its place, rank, scale and vectors.
public struct StoredSubspaces: ComparedDecomposition, Sendable, Equatable {
    public var decompositionID: Int64
    /// The capture that decomposed it (the latest one when several did).
    public var captureID: Int64
    public var model: String
    public var checkpoint: String
    public var layer: Int
    public var head: Int
    public var kvHead: Int
    public var headDimension: Int
    public var feature: String
    /// nil for the pooled decomposition.
    public var value: String?
    public var rank: Int
    /// σ₁ of ΔC (0 when no singular value is stored).
    public var sigma1: Double
    public var frobenius: Double
    /// The kept components' query-side vectors, by component index.
    public var u: [[Float]]
    /// The kept components' key-side vectors, by component index.
    public var v: [[Float]]

    public var key: SubspaceKey { SubspaceKey(layer: layer, head: head, feature: feature, value: value) }

    /// The engine's view: the spans of `u` and `v`.
    public var subspaces: HeadSubspaces {
        HeadSubspaces(u: u, v: v, dimension: headDimension, sigma1: sigma1, frobenius: frobenius)
    }
}

extension Catalog {
    /// Every decomposition of one checkpoint matching `filters`' layer, head, feature and value (model
    /// and checkpoint come from the arguments), with its component vectors; `pooledOnly` drops the
    /// per-value ones when no value is asked for. Sorted by `SubspaceKey`.
    ///
    /// When several captures of the checkpoint decomposed the same head and feature, the most recently
    /// ingested one counts.
    public func subspaces(model: String, checkpoint: String, filters: SearchFilters = SearchFilters(),
                          pooledOnly: Bool = false) throws(StoreError) -> [StoredSubspaces] {
        var exact = filters
        exact.model = model
        exact.checkpoint = checkpoint
        var sql = exact.condition(.catalog)
        if pooledOnly && filters.value == nil { sql.terms.append("d.value IS NULL") }
        let statement = try database.prepare("""
            SELECT d.id, h.layer, h.head, h.kv_head, h.d_head, f.name, d.value, d.rank, d.frobenius, d.singular_values,
                   f.capture_id, c.component_index, c.u, c.v
              FROM checkpoints ck
              JOIN models m ON m.id = ck.model_id
              JOIN heads h ON h.checkpoint_id = ck.id
              JOIN decompositions d ON d.head_id = h.id
              JOIN features f ON f.id = d.feature_id
              LEFT JOIN components c ON c.decomposition_id = d.id
             \(sql.whereClause)
            """)
        try statement.bind(sql.values)
        var byID: [Int64: (record: StoredSubspaces, vectors: [(index: Int, u: [Float], v: [Float])])] = [:]
        while try statement.step() {
            let id = try statement.required(0, as: Int64.self)
            if byID[id] == nil {
                let singularValues = try statement.float32Blob(at: 9) ?? []
                byID[id] = (try StoredSubspaces(
                    decompositionID: id, captureID: statement.required(10), model: model, checkpoint: checkpoint,
                    layer: statement.required(1), head: statement.required(2), kvHead: statement.required(3),
                    headDimension: statement.required(4), feature: statement.required(5), value: statement.text(at: 6),
                    rank: statement.required(7), sigma1: singularValues.first.map(Double.init) ?? 0,
                    frobenius: statement.required(8), u: [], v: []), [])
            }
            guard let index = statement.int(at: 11) else { continue }   // a decomposition without components
            let u = try statement.float32Blob(at: 12) ?? []
            let v = try statement.float32Blob(at: 13) ?? []
            let dimension = byID[id]!.record.headDimension
            guard u.count == dimension, v.count == dimension else {
                throw .corrupt("decomposition \(id) component \(index): u has \(u.count) and v \(v.count) values, d_head is \(dimension)")
            }
            byID[id]!.vectors.append((index, u, v))
        }
        // The latest capture wins for one key.
        var latest: [SubspaceKey: StoredSubspaces] = [:]
        for (record, vectors) in byID.values where latest[record.key].map({ $0.captureID < record.captureID }) ?? true {
            let ordered = vectors.sorted { $0.index < $1.index }
            latest[record.key] = record
            latest[record.key]!.u = ordered.map(\.u)
            latest[record.key]!.v = ordered.map(\.v)
        }
        return latest.values.sorted { $0.key < $1.key }
    }
}
