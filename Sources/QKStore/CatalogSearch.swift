import Foundation

/// Search order as integers: a component's `rank_key` (σ rounded to float32, largest first, then id) and the rowids
/// of its full-text rows (the rank key plus a tier).
enum SearchOrder {
    static let idBits = 30
    static let tierShift = 61
    /// Component ids must stay below this to fit a rank key.
    static let idLimit: Int64 = 1 << idBits
    static let rankKeyMask: Int64 = (1 << tierShift) - 1

    /// The rank key of a component: larger σ first (σ below zero or NaN as zero), then smaller id.
    static func rankKey(sigma: Double, id: Int64) -> Int64 {
        precondition((1 ..< idLimit).contains(id), "component id \(id) does not fit a rank key")
        let magnitude = sigma.isNaN ? 0 : Float(Swift.max(sigma, 0))
        return (Int64(0x7FFF_FFFF - magnitude.bitPattern) << idBits) | id
    }

    static func componentID(_ key: Int64) -> Int64 { key & (idLimit - 1) }

    /// The rowid of a component's full-text row of `tier`.
    static func rowid(_ rankKey: Int64, tier: Int) -> Int64 { rankKey | (Int64(tier) << tierShift) }


    /// `qkcat_rank_key(sigma, id)` in SQL (migration 4 fills component_keys with it).
    static func register(on database: Database) throws(StoreError) {
        try database.defineFunction("qkcat_rank_key", argumentCount: 2) { arguments in
            guard case let .integer(id) = arguments[1], (1 ..< Int(idLimit)).contains(id) else { return nil }
            switch arguments[0] {
            case let .real(sigma): return rankKey(sigma: sigma, id: Int64(id))
            case let .integer(sigma): return rankKey(sigma: Double(sigma), id: Int64(id))
            default: return nil
            }
        }
    }
}

/// The user's words.
enum SearchText {
    /// Separated by whitespace and control characters (NUL among them).
    static func words(_ query: String) -> [String] {
        query.unicodeScalars.split { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
            .map { String(String.UnicodeScalarView($0)) }
    }

    /// A word as an FTS5 string: never read as FTS5 syntax.
    static func quoted(_ word: String) -> String {
        "\"" + word.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The automatic label: `category=fruit c0: apple, mango, pear` (feature alone when pooled).
    static func autoLabel(feature: String, value: String?, index: Int, topKeyTokens: [String]) -> String {
        let subject = value.map { "\(feature)=\($0)" } ?? feature
        let words = topKeyTokens.prefix(3).map(displayToken)
        return words.isEmpty ? "\(subject) c\(index)" : "\(subject) c\(index): \(words.joined(separator: ", "))"
    }

    /// A token for a label: surrounding spaces trimmed; a token of only spaces shown quoted.
    static func displayToken(_ token: String) -> String {
        let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "\"\(token)\"" : trimmed
    }
}

extension Catalog {
    /// Components matching every word of `query` and `filters`, best first; an empty query lists by σ.
    ///
    /// Order: components whose human label or note holds every word, then those whose automatic label does, then
    /// the others; within each, σ largest first (as float32), then id. Words are matched whole (case and
    /// diacritics folded) and taken literally: no input is read as FTS5 syntax.
    public func search(_ query: String, filters: SearchFilters = SearchFilters(), limit: Int = 20)
        throws(StoreError) -> [ComponentHit]
    {
        guard limit > 0 else { throw .invalidArgument("search limit must be positive, got \(limit)") }
        // Every word quoted and ANDed (nil: no words).
        let words = SearchText.words(query)
        let expression = words.isEmpty ? nil : words.map(SearchText.quoted).joined(separator: " AND ")
        return try database.transaction(.deferred) { () throws(StoreError) in
            try hits(try rankedComponents(expression, filters.condition(.keys), limit: limit))
        }
    }

    /// (component id, tier) of the best `limit` matches of the full-text `expression`.
    private func rankedComponents(_ expression: String?, _ filter: SQLCondition, limit: Int)
        throws(StoreError) -> [(id: Int64, tier: Int?)]
    {
        if !filter.isEmpty {
            let passing = try integers("SELECT rank_key FROM component_keys k \(filter.whereClause) LIMIT ?",
                                       filter.values + [.integer(filterLeadLimit + 1)])
            if passing.count <= filterLeadLimit {
                return try matching(expression, among: passing.sorted(), limit: limit)
            }
        }
        guard let expression else {
            let keys = try integers(
                "SELECT rank_key FROM component_keys k NOT INDEXED \(filter.whereClause) ORDER BY rank_key LIMIT ?",
                filter.values + [.integer(limit)])
            return keys.map { (SearchOrder.componentID($0), nil) }
        }
        // The words lead: their rows come in rowid order, tier by tier and σ first, so the first `limit` distinct
        // components passing the filter are the answer. CROSS JOIN keeps the full-text table outermost.
        let statement = try database.prepare("""
            SELECT component_text.rowid FROM component_text
            \(filter.isEmpty ? "" : "CROSS JOIN component_keys k ON k.rank_key = component_text.rowid & \(SearchOrder.rankKeyMask)")
             WHERE component_text MATCH ? \(filter.andClause)
             ORDER BY component_text.rowid
            """)
        try statement.bind([.text(expression)] + filter.values)
        var found: [(id: Int64, tier: Int?)] = []
        var seen = Set<Int64>()
        while found.count < limit, try statement.step() {
            let rowid: Int64 = try statement.required(0)
            let id = SearchOrder.componentID(rowid)
            if seen.insert(id).inserted { found.append((id, Int(rowid >> SearchOrder.tierShift))) }
        }
        return found
    }

    /// The best `limit` of `candidates` (rank keys in order) whose rows hold every word, tier by tier.
    ///
    /// Each tier merges the candidates with the words' rows of that tier, both in rowid order: the rows are read in
    /// order while they are dense among the candidates; once more than `seekCost` rows have been read per candidate
    /// passed (two more counted, so that one long gap early on does not decide), the row of each remaining candidate
    /// is sought instead, in the later tiers too (tier 2 holds every word of tiers 0 and 1). The switch is one-way:
    /// rows dense only after a long sparse stretch are sought one by one, which costs more than reading them would.
    private func matching(_ expression: String?, among candidates: [Int64], limit: Int)
        throws(StoreError) -> [(id: Int64, tier: Int?)]
    {
        guard let expression else { return candidates.prefix(limit).map { (SearchOrder.componentID($0), nil) } }
        let rows = try database.prepare("""
            SELECT rowid FROM component_text WHERE component_text MATCH ? AND rowid >= ? AND rowid <= ? ORDER BY rowid
            """)
        try rows.bind(expression, at: 1)
        var found: [(id: Int64, tier: Int?)] = []
        var remaining = candidates
        var reading = true
        for tier in 0 ... 2 where !remaining.isEmpty {
            try rows.bind(SearchOrder.rowid(remaining[0], tier: tier), at: 2)
            try rows.bind(SearchOrder.rowid(SearchOrder.rankKeyMask, tier: tier), at: 3)
            var missed: [Int64] = []
            var next = 0, read = 0
            while found.count < limit, next < remaining.count {
                if !reading {
                    rows.reset()
                    try rows.bind(SearchOrder.rowid(remaining[next], tier: tier), at: 2)
                }
                guard try rows.step() else { break }
                read += 1
                let key = try rows.required(0, as: Int64.self) & SearchOrder.rankKeyMask
                while next < remaining.count, remaining[next] < key {
                    missed.append(remaining[next])
                    next += 1
                }
                if next < remaining.count, remaining[next] == key {
                    found.append((SearchOrder.componentID(key), tier))
                    next += 1
                }
                reading = reading && read <= seekCost * (next + 2)
            }
            rows.reset()
            remaining = missed + remaining[next...]
        }
        return found
    }

    /// The first column of every row of `sql`, as integers.
    private func integers(_ sql: String, _ values: [SQLValue]) throws(StoreError) -> [Int64] {
        try database.rows(sql, values) { row throws(StoreError) in try row.required(0) }
    }

    /// The hits for `ranked` component ids, in that order; the tier is the hit's score.
    func hits(_ ranked: [(id: Int64, tier: Int?)]) throws(StoreError) -> [ComponentHit] {
        guard !ranked.isEmpty else { return [] }
        let found = try database.rows("""
            SELECT c.id, m.name, ck.name, h.layer, h.head, h.kv_head, f.name, f.kind, d.value, c.component_index,
                   c.sigma, c.energy_share, c.auto_label, c.human_label, c.note
              FROM components c
              JOIN decompositions d ON d.id = c.decomposition_id
              JOIN heads h ON h.id = d.head_id
              JOIN checkpoints ck ON ck.id = h.checkpoint_id
              JOIN models m ON m.id = ck.model_id
              JOIN features f ON f.id = d.feature_id
             WHERE c.id IN (\(ranked.map { String($0.id) }.joined(separator: ", ")))
            """) { statement throws(StoreError) in
            try ComponentHit(
                id: statement.required(0), model: statement.required(1), checkpoint: statement.required(2),
                layer: statement.required(3), head: statement.required(4), kvHead: statement.required(5),
                feature: statement.required(6), kind: statement.required(7), value: statement.text(at: 8),
                index: statement.required(9), sigma: statement.required(10), energyShare: statement.required(11),
                autoLabel: statement.required(12), humanLabel: statement.text(at: 13), note: statement.text(at: 14),
                score: nil)
        }
        let byID = Dictionary(found.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return ranked.compactMap { entry in
            guard var hit = byID[entry.id] else { return nil }
            hit.score = entry.tier.map(Double.init)
            return hit
        }
    }
}
