import Foundation

/// Identifies one decomposition within a checkpoint: (layer, head, feature, value); value nil = pooled.
public struct SubspaceKey: Hashable, Sendable, Comparable {
    public var layer: Int
    public var head: Int
    public var feature: String
    public var value: String?

    public init(layer: Int, head: Int, feature: String, value: String?) {
        self.layer = layer
        self.head = head
        self.feature = feature
        self.value = value
    }

    /// Layer, head, feature, then pooled before per-value, values by name.
    public static func < (a: SubspaceKey, b: SubspaceKey) -> Bool {
        if a.layer != b.layer { return a.layer < b.layer }
        if a.head != b.head { return a.head < b.head }
        if a.feature != b.feature { return a.feature < b.feature }
        switch (a.value, b.value) {
        case (nil, nil): return false
        case (nil, _): return true
        case (_, nil): return false
        case let (x?, y?): return x < y
        }
    }
}

/// What a comparison needs of a decomposition: its place and its subspaces.
public protocol ComparedDecomposition {
    var key: SubspaceKey { get }
    var subspaces: HeadSubspaces { get }
}

/// Pairs two checkpoints' (or models') decompositions and compares them: `qkcat compare`'s logic.
public enum CheckpointComparison {
    public struct Row: Sendable {
        public var key: SubspaceKey
        public var change: SubspaceChange
    }

    /// Every key in `a` or `b`, compared; sorted by change (largest first), then by key.
    public static func compare<D: ComparedDecomposition>(_ a: [D], _ b: [D], thresholds: CompareThresholds) -> [Row] {
        let fromByKey = Dictionary(a.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let toByKey = Dictionary(b.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let keys = Set(fromByKey.keys).union(toByKey.keys)
        let rows = keys.map { key in
            Row(key: key, change: SubspaceChange(from: fromByKey[key]?.subspaces, to: toByKey[key]?.subspaces,
                                                 thresholds: thresholds))
        }
        return rows.sorted { x, y in
            x.change.change != y.change.change ? x.change.change > y.change.change : x.key < y.key
        }
    }

    public struct MatchedPair<D: ComparedDecomposition> {
        public var from: D
        public var to: D
        public var similarity: PairSimilarity
    }

    /// The optimal assignment of one (layer, feature, value).
    public struct MatchGroup<D: ComparedDecomposition> {
        public var layer: Int
        public var feature: String
        public var value: String?
        /// In the order of `from`'s head.
        public var pairs: [MatchedPair<D>]
        public var total: Double
        public var unmatchedFrom: [Int]
        public var unmatchedTo: [Int]
    }

    /// For every (layer, feature, value) of `a` also in `b`: the one-to-one assignment of heads of `a` to heads
    /// of `b` maximizing the total similarity. Groups in layer, feature, value order.
    public static func match<D: ComparedDecomposition>(_ a: [D], _ b: [D]) -> [MatchGroup<D>] {
        // Groups are keyed by (layer, feature, value): the key with head 0.
        func group(_ records: [D]) -> [SubspaceKey: [D]] {
            Dictionary(grouping: records) { SubspaceKey(layer: $0.key.layer, head: 0, feature: $0.key.feature, value: $0.key.value) }
        }
        let fromGroups = group(a), toGroups = group(b)
        var result: [MatchGroup<D>] = []
        for key in fromGroups.keys.sorted() {
            guard let from = fromGroups[key]?.sorted(by: { $0.key.head < $1.key.head }),
                  let to = toGroups[key]?.sorted(by: { $0.key.head < $1.key.head }) else { continue }
            let matches = matchHeads(from.map(\.subspaces), to.map(\.subspaces))
            let pairs = matches.map { MatchedPair(from: from[$0.from], to: to[$0.to], similarity: $0.similarity) }
            let usedFrom = Set(matches.map(\.from)), usedTo = Set(matches.map(\.to))
            result.append(MatchGroup(
                layer: key.layer, feature: key.feature, value: key.value, pairs: pairs,
                total: pairs.reduce(0) { $0 + $1.similarity.combined },
                unmatchedFrom: from.indices.filter { !usedFrom.contains($0) }.map { from[$0].key.head },
                unmatchedTo: to.indices.filter { !usedTo.contains($0) }.map { to[$0].key.head }))
        }
        return result
    }
}
