import Foundation
import QKEngine

/// Where `similar` looks for components like the reference one.
public enum SimilarScope: String, Sendable, Equatable, CaseIterable {
    /// The same layer and head of the same model, in every checkpoint.
    case head
    /// Every head of the same layer of the same model, in every checkpoint.
    case layer
    /// Every head of the same model, in every checkpoint.
    case model
    /// Every model in the catalog with the same d_head.
    case all
}

/// One component found by `similar`.
public struct SimilarHit: Sendable, Equatable {
    public var component: ComponentHit
    /// `|cos(uᵢ, uⱼ)| · |cos(vᵢ, vⱼ)|`.
    public var score: Double
    /// `|cos(uᵢ, uⱼ)|`.
    public var queryCosine: Double
    /// `|cos(vᵢ, vⱼ)|`.
    public var keyCosine: Double
}

/// What `similar` found: the reference component, how many components were scored, the best hits.
public struct SimilarResult: Sendable, Equatable {
    public var reference: ComponentHit
    public var headDimension: Int
    public var scope: SimilarScope
    /// Components scored (in scope and of the same d_head, the reference excluded).
    public var scanned: Int
    /// Best first; ties by component id.
    public var hits: [SimilarHit]
}

extension Catalog {
    // MARK: Lookups with clear errors

    /// The model called `name`; an error naming the catalog's models when there is none.
    public func model(named name: String) throws(StoreError) -> ModelRecord {
        let models = try listModels()
        guard let model = models.first(where: { $0.name == name }) else {
            let known = models.map(\.name)
            throw .invalidArgument("model '\(name)' not found " + (known.isEmpty ? "(the catalog is empty)" : "(models: \(known.joined(separator: ", ")))"))
        }
        return model
    }

    /// The checkpoint `name` of `model`; an error naming the model's checkpoints when there is none.
    public func checkpoint(_ name: String, ofModel model: String) throws(StoreError) -> CheckpointRecord {
        _ = try self.model(named: model)
        let checkpoints = try listCheckpoints(SearchFilters(model: model))
        guard let checkpoint = checkpoints.first(where: { $0.name == name }) else {
            throw .invalidArgument("checkpoint '\(name)' of model '\(model)' not found (checkpoints: \(checkpoints.map(\.name).joined(separator: ", ")))")
        }
        return checkpoint
    }

    /// One (layer, head, feature, value) of `model` in every checkpoint, in training order; nil where a
    /// checkpoint lacks it. `value` nil means the pooled decomposition.
    public func trajectory(model: String, layer: Int, head: Int, feature: String, value: String?)
        throws(StoreError) -> [(checkpoint: CheckpointRecord, subspaces: StoredSubspaces?)]
    {
        _ = try self.model(named: model)
        let filters = SearchFilters(layer: layer, head: head, feature: feature, value: value)
        var rows: [(checkpoint: CheckpointRecord, subspaces: StoredSubspaces?)] = []
        for checkpoint in try listCheckpoints(SearchFilters(model: model)) {
            let found = try subspaces(model: model, checkpoint: checkpoint.name, filters: filters, pooledOnly: true)
            rows.append((checkpoint, found.first))
        }
        return rows
    }

    // MARK: Similar components

    /// The `limit` components closest to component `id` by `|cos(uᵢ, uⱼ)| · |cos(vᵢ, vⱼ)|` among those
    /// of the same d_head in `scope`.
    ///
    /// One pass over the components table reads each row's `u` and `v` BLOBs in place (no copies) and
    /// scores them with a vectorized kernel; only the best `limit` are kept, then described. Nothing is written.
    public func similarComponents(to id: Int64, scope: SimilarScope = .all, limit: Int = 10)
        throws(StoreError) -> SimilarResult
    {
        guard limit > 0 else { throw .invalidArgument("similar: limit must be positive, got \(limit)") }
        let reference = try database.prepare("""
            SELECT c.u, c.v, h.layer, h.head, h.d_head, ck.model_id
              FROM components c
              JOIN decompositions d ON d.id = c.decomposition_id
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
             WHERE c.id = ?
            """)
        try reference.bind(id, at: 1)
        guard try reference.step() else { throw .notFound(what: "component \(id)") }
        let u = try reference.float32Blob(at: 0) ?? []
        let v = try reference.float32Blob(at: 1) ?? []
        let (layer, head, dimension) = (try reference.required(2, as: Int.self), try reference.required(3, as: Int.self), try reference.required(4, as: Int.self))
        let modelID = try reference.required(5, as: Int64.self)
        reference.reset()
        guard u.count == dimension, v.count == dimension, dimension > 0 else {
            throw .corrupt("component \(id): u has \(u.count) and v \(v.count) values, d_head is \(dimension)")
        }
        guard let scorer = CosineScorer(u: u, v: v) else {
            throw .invalidArgument("component \(id) has a zero vector; it is similar to nothing")
        }

        // Decompositions in scope, as a bitmap over decomposition ids.
        var scopeSQL = SQLCondition()
        scopeSQL.add("h.d_head = ?", .integer(dimension))
        if scope != .all { scopeSQL.add("ck.model_id = ?", .integer(Int(modelID))) }
        if scope == .head || scope == .layer { scopeSQL.add("h.layer = ?", .integer(layer)) }
        if scope == .head { scopeSQL.add("h.head = ?", .integer(head)) }
        let decompositionIDs = try database.rows("""
            SELECT d.id FROM decompositions d
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
             \(scopeSQL.whereClause)
            """, scopeSQL.values) { row throws(StoreError) in try row.required(0, as: Int64.self) }
        let totalDecompositions = try database.scalarInt("SELECT count(*) FROM decompositions") ?? 0

        let byteCount = dimension * 4
        var best = TopScores(capacity: limit)
        var scanned = 0
        if decompositionIDs.count * 4 < totalDecompositions {
            // A narrow scope: read only its decompositions' components, through the (decomposition, index) key.
            let components = try database.prepare("SELECT id, u, v FROM components WHERE decomposition_id = ?")
            for decompositionID in decompositionIDs {
                try components.bind(decompositionID, at: 1)
                while try components.step() {
                    try Self.score(components, idColumn: 0, uColumn: 1, excluding: id, byteCount: byteCount, scorer: scorer,
                                   into: &best, scanned: &scanned)
                }
                components.reset()
            }
        } else {
            let maxID = Int(decompositionIDs.max() ?? 0)
            var wanted = [Bool](repeating: false, count: maxID + 1)
            for decompositionID in decompositionIDs { wanted[Int(decompositionID)] = true }
            let filter = decompositionIDs.count == totalDecompositions ? nil : wanted
            let partials = try scanTable(excluding: id, filter: filter, byteCount: byteCount, scorer: scorer,
                                         limit: limit)
            for partial in partials {
                scanned += partial.count
                for entry in partial.best.sorted() {
                    best.offer(score: entry.score, id: entry.id, queryCosine: entry.queryCosine, keyCosine: entry.keyCosine)
                }
            }
        }

        let described = try hits(best.sorted().map { ($0.id, nil) } + [(id, nil)])
        guard let reference = described.last, reference.id == id else { throw .notFound(what: "component \(id)") }
        let byID = Dictionary(described.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let hits = try best.sorted().map { entry throws(StoreError) in
            guard let component = byID[entry.id] else { throw .notFound(what: "component \(entry.id)") }
            return SimilarHit(component: component, score: entry.score, queryCosine: entry.queryCosine,
                              keyCosine: entry.keyCosine)
        }
        return SimilarResult(reference: reference, headDimension: dimension, scope: scope, scanned: scanned, hits: hits)
    }

    /// One pass over the components table, filtered by a bitmap of decomposition ids, split by component id
    /// across one read-only connection per core (each reads its pages memory-mapped) when it covers more than
    /// `similarSplitAbove` components.
    private func scanTable(excluding id: Int64, filter: [Bool]?, byteCount: Int, scorer: CosineScorer, limit: Int)
        throws(StoreError) -> [(best: TopScores, count: Int)] {
        let lowest = Int64(try database.scalarInt("SELECT min(id) FROM components") ?? 0)
        let highest = Int64(try database.scalarInt("SELECT max(id) FROM components") ?? 0)
        let canSplit = !path.isEmpty && path != ":memory:" && highest - lowest > similarSplitAbove
        let workers = canSplit ? max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8)) : 1
        let span = (highest - lowest) / Int64(workers) + 1
        let ranges = (0..<workers).map { worker in
            (lowest + Int64(worker) * span, min(highest, lowest + Int64(worker + 1) * span - 1))
        }
        let partials = PartialScans<StoreError>(count: workers)
        let scan = { @Sendable (worker: Int, connection: Database) throws(StoreError) -> Void in
            try connection.execute("PRAGMA mmap_size = 2147418112")
            let components = try connection.prepare(
                "SELECT id, decomposition_id, u, v FROM components WHERE id BETWEEN ? AND ?")
            try components.bind(ranges[worker].0, at: 1)
            try components.bind(ranges[worker].1, at: 2)
            var local = TopScores(capacity: limit)
            var count = 0
            while try components.step() {
                if let filter {
                    let decompositionID = Int(try components.required(1, as: Int64.self))
                    guard decompositionID < filter.count, filter[decompositionID] else { continue }
                }
                try Self.score(components, idColumn: 0, uColumn: 2, excluding: id, byteCount: byteCount, scorer: scorer,
                               into: &local, scanned: &count)
            }
            partials.set(worker, .success((local, count)))
        }
        if workers == 1 {
            try scan(0, database)
        } else {
            let path = self.path
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                do throws(StoreError) {
                    try scan(worker, try Database(path: path, readOnly: true))
                } catch {
                    partials.set(worker, .failure(error))
                }
            }
        }
        return try partials.results()
    }

    /// Scores one row (`id`, then `u` and `v` at `uColumn`, `uColumn + 1`) unless it is the reference.
    @inline(__always)
    private static func score(_ statement: Statement, idColumn: Int32, uColumn: Int32, excluding reference: Int64,
                              byteCount: Int, scorer: CosineScorer, into best: inout TopScores,
                              scanned: inout Int) throws(StoreError) {
        let componentID: Int64 = try statement.required(idColumn)
        guard componentID != reference else { return }
        guard let uBytes = statement.rawBlob(at: uColumn), let vBytes = statement.rawBlob(at: uColumn + 1),
              uBytes.count == byteCount, vBytes.count == byteCount, let u = uBytes.baseAddress, let v = vBytes.baseAddress
        else {
            throw .corrupt("component \(componentID): vectors are not \(byteCount / 4) float32 values")
        }
        scanned += 1
        let (queryCosine, keyCosine) = scorer.cosines(u, v)
        best.offer(score: queryCosine * keyCosine, id: componentID, queryCosine: queryCosine, keyCosine: keyCosine)
    }
}

