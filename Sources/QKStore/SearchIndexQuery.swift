import CSQLite
import Foundation

/// Which entries a search's filters let through, decided on the entry's own fields.
struct EntryFilter {
    var checkpoints: Set<UInt32>?
    var features: Set<UInt32>?
    var valueCode: UInt32?
    var layer: UInt16?
    var head: UInt16?
    /// Captures that can hold a match (nil: any).
    var captures: Set<Int64>?

    @inline(__always)
    func accepts(_ entry: SearchIndex.Entry) -> Bool {
        if let layer, entry.layer != layer { return false }
        if let head, entry.head != head { return false }
        if let valueCode, entry.valueCode != valueCode { return false }
        if let checkpoints, !checkpoints.contains(entry.checkpointID) { return false }
        if let features, !features.contains(entry.featureID) { return false }
        return true
    }
}

extension Catalog {
    /// The most relevant components for `words` within `filters`, read from the impact-ordered index; the same
    /// ids, scores and order as the full-text path (`componentsByFullText`). Nil when the words or the filter suit
    /// the full-text path better: a word of several tokens (a phrase), a repeated word, a selective filter, more
    /// group combinations than `impactCombinationLimit`, or a capture missing from the index.
    func componentsByImpact(_ words: [String], _ filters: SearchFilters, limit: Int)
        throws(StoreError) -> [(id: Int64, score: Double?)]?
    {
        let tokenizer = try searchTokenizer()
        var terms: [String] = []
        for word in words {
            let tokens = tokenizer.tokens(word)
            guard tokens.count == 1 else { return nil }
            terms.append(tokens[0])
        }
        // Repeated as FTS5 sees terms: bytes (canonically equivalent spellings are equal Swift strings).
        guard Set(terms.map(ExactText.init)).count == terms.count else { return nil }
        // A capture not indexed (an upgrade interrupted before its index was built, a component deleted by hand):
        // FTS5 covers everything until a writable open builds it.
        guard try searchIndexIsComplete() else { return nil }
        let facets = SearchText.facetTerms(filters)
        if !facets.isEmpty {
            let gathered = try database.scalarInt("""
                SELECT count(*) FROM (SELECT rowid FROM component_search WHERE component_search MATCH ? LIMIT ?)
                """, [.text(facets.joined(separator: " AND ")), .integer(impactFilterThreshold + 1)]) ?? 0
            if gathered <= impactFilterThreshold { return nil }
        }
        guard let filter = try entryFilter(filters) else { return [] }

        // Each word's document count as the full-text path gives it to qkrank: from search_terms, or (-1) counted
        // by FTS5 as qkrank would (a word not plain ASCII, or held only by text written by hand in SQL).
        let documents = try documentCounts(words)
        var counted: [Int] = []
        for (word, count) in zip(words, documents) {
            if count >= 0 { counted.append(count); continue }
            let live = try database.scalarInt("SELECT count(*) FROM component_search WHERE component_search MATCH ?",
                                              [.text(SearchRanking.searchableColumns + " : " + SearchText.quoted(word))]) ?? 0
            guard live > 0 else { return [] }
            counted.append(live)
        }
        // Corpus statistics as qkrank reads them (one matching row suffices).
        let corpusText = try database.scalarText("""
            SELECT \(SearchRanking.corpusFunctionName)(component_search) FROM component_search
             WHERE component_search MATCH ? LIMIT 1
            """, [.text(SearchRanking.searchableColumns + " : " + SearchText.quoted(words[0]))])
        guard let corpusText else { return [] }
        guard let corpus = SearchRanking.parseCorpus(corpusText) else {
            throw .corrupt("\(SearchRanking.corpusFunctionName) returned \(corpusText)")
        }
        let inverse = counted.map { SearchRanking.inverseDocumentFrequency(rows: corpus.rows, documents: $0) }

        let stale = try staleComponents()
        guard var results = try impactWalk(terms: terms, inverse: inverse, averageLength: corpus.averageLength,
                                           filter: filter, stale: stale, limit: limit) else { return nil }
        if !stale.pending.isEmpty {
            // Rows relabelled without the overlay following (SQL by hand): FTS5 scores them with qkrank, as the
            // full-text path would, and they take their place among the others.
            results += try componentsByFullText(words, facets: facets, documents: documents, limit: limit,
                                                rowids: stale.pending)
            results.sort { a, b in
                SearchRanking.Rank(score: a.score, sigma: a.sigma, rowid: a.id)
                    < SearchRanking.Rank(score: b.score, sigma: b.sigma, rowid: b.id)
            }
            if results.count > limit { results.removeLast(results.count - limit) }
        }
        return results.map { ($0.id, $0.score) }
    }

    /// Whether every capture is in the impact-ordered index (searches use the full-text path until it is; opening
    /// the catalog for writing builds what is missing).
    public func searchIndexIsComplete() throws(StoreError) -> Bool {
        try database.scalarInt("""
            SELECT count(*) FROM captures WHERE id NOT IN (SELECT capture_id FROM search_indexed_captures)
            """) == 0
    }

    /// The tokenizer of this catalog's connection (made once).
    func searchTokenizer() throws(StoreError) -> SearchTokenizer {
        if let cached = cachedSearchTokenizer { return cached }
        let made = try SearchTokenizer(database: database)
        cachedSearchTokenizer = made
        return made
    }

    /// Components whose text changed after their capture's groups were written (human labels and notes): `all`
    /// are skipped in their capture's groups; `pending` ones are not in the overlay either.
    struct StaleComponents {
        var all = Set<Int64>()
        var pending = Set<Int64>()
    }

    private func staleComponents() throws(StoreError) -> StaleComponents {
        let statement = try database.prepare("SELECT component_id, indexed FROM search_stale")
        var stale = StaleComponents()
        while try statement.step() {
            let id = statement.int64(at: 0) ?? 0
            stale.all.insert(id)
            if statement.int(at: 1) == 0 { stale.pending.insert(id) }
        }
        return stale
    }

    /// `filters` as entry fields; nil when nothing can match (an unknown name or value, a layer outside u16).
    func entryFilter(_ filters: SearchFilters) throws(StoreError) -> EntryFilter? {
        var filter = EntryFilter()
        if let layer = filters.layer {
            guard let narrow = UInt16(exactly: layer) else { return nil }
            filter.layer = narrow
        }
        if let head = filters.head {
            guard let narrow = UInt16(exactly: head) else { return nil }
            filter.head = narrow
        }
        if let value = filters.value {
            guard let code = try database.scalarInt("SELECT id FROM search_values WHERE value = ?", [.text(value)]),
                  let narrow = UInt32(exactly: code) else { return nil }
            filter.valueCode = narrow
        }
        var captureConditions = FilterSQL()
        if let ids = try checkpointIDs(filters) {
            if ids.isEmpty { return nil }
            filter.checkpoints = Set(ids.compactMap { UInt32(exactly: $0) })
            captureConditions.conditions.append("checkpoint_id IN (\(ids.map(String.init).joined(separator: ", ")))")
        }
        if let ids = try featureIDs(filters) {
            if ids.isEmpty { return nil }
            filter.features = Set(ids.compactMap { UInt32(exactly: $0) })
            captureConditions.conditions.append(
                "id IN (SELECT capture_id FROM features WHERE id IN (\(ids.map(String.init).joined(separator: ", "))))")
        }
        if !captureConditions.conditions.isEmpty {
            let ids = try integers("SELECT id FROM captures WHERE " + captureConditions.whereBody, [])
            if ids.isEmpty { return nil }
            filter.captures = Set(ids)
        }
        return filter
    }

    /// A ranked hit with what orders it.
    struct RankedID {
        var id: Int64
        var score: Double
        var sigma: Double
    }

    /// One group of a term, as listed by the index.
    private struct PostingGroup {
        var rowID: Int64
        var captureID: Int64
        var frequency: Double
        var length: Int
        var documents: Int
    }

    /// A group per term, all of one capture and one length: the rows holding every term, scored alike.
    private struct Combination {
        var groups: [PostingGroup]
        var score: Double
    }

    /// The best `limit` non-stale rows holding every term and passing `filter`, best first (score, σ, id).
    /// Nil when the words make more group combinations than `impactCombinationLimit` (four common words or so),
    /// where walking them costs more than FTS5's scan.
    private func impactWalk(terms: [String], inverse: [Double], averageLength: Double, filter: EntryFilter,
                            stale: StaleComponents, limit: Int) throws(StoreError) -> [RankedID]? {
        let listing = try database.prepare("""
            SELECT id, capture_id, frequency, length, documents FROM search_postings WHERE term = ?
            """)
        // Per term: its groups by (capture, length).
        var byPlace: [[Place: [PostingGroup]]] = []
        for term in terms {
            try listing.bind(term, at: 1)
            var places: [Place: [PostingGroup]] = [:]
            while try listing.step() {
                // The overlay's groups (capture NULL) form a place of their own, filtered by their entries alone.
                let group = PostingGroup(rowID: listing.int64(at: 0) ?? 0, captureID: listing.int64(at: 1) ?? Self.overlay,
                                         frequency: listing.double(at: 2) ?? 0, length: listing.int(at: 3) ?? 0,
                                         documents: listing.int(at: 4) ?? 0)
                if let captures = filter.captures, group.captureID != Self.overlay, !captures.contains(group.captureID) {
                    continue
                }
                places[Place(captureID: group.captureID, length: group.length), default: []].append(group)
            }
            listing.reset()
            byPlace.append(places)
        }
        // Combinations: one group per term at each place every term reaches, scored as qkrank sums its phrases.
        var combinations: [Combination] = []
        let places = byPlace.dropFirst().reduce(Set(byPlace[0].keys)) { $0.intersection($1.keys) }
        // Counted before they are made: many words multiply them.
        var count = 0
        for place in places {
            var product = 1
            for term in terms.indices {
                product = product.multipliedReportingOverflow(by: byPlace[term][place, default: []].count).partialValue
                if product > impactCombinationLimit { return nil }
            }
            count += product
            if count > impactCombinationLimit { return nil }
        }
        for place in places {
            let normalization = SearchRanking.lengthNormalization(length: Double(place.length), averageLength: averageLength)
            var partial: [[PostingGroup]] = [[]]
            for term in terms.indices {
                partial = partial.flatMap { prefix in byPlace[term][place, default: []].map { prefix + [$0] } }
            }
            for groups in partial {
                var score = 0.0
                for (term, group) in groups.enumerated() {
                    score += SearchRanking.termScore(inverseDocumentFrequency: inverse[term], frequency: group.frequency,
                                                     normalization: normalization)
                }
                combinations.append(Combination(groups: groups, score: score))
            }
        }
        combinations.sort { $0.score > $1.score }

        var results: [RankedID] = []
        var loaded: [Int64: PagedGroup] = [:]
        var pairs: [PairKey: [SearchIndex.Entry]] = [:]
        var start = 0
        while start < combinations.count && results.count < limit {
            // A level: combinations of equal score, whose rows order by σ then id among themselves.
            var end = start + 1
            while end < combinations.count && combinations[end].score == combinations[start].score { end += 1 }
            let need = limit - results.count
            var level: [SearchIndex.Entry] = []
            for combination in combinations[start ..< end] {
                // A capture's groups skip every stale row; the overlay's skip the rows it does not hold yet.
                let skipped = combination.groups[0].captureID == Self.overlay ? stale.pending : stale.all
                level += try intersect(combination.groups, need: need, loaded: &loaded, pairs: &pairs, filter: filter,
                                       stale: skipped)
            }
            level.sort { $0.precedes($1) }
            let score = -combinations[start].score
            for entry in level.prefix(need) { results.append(RankedID(id: entry.componentID, score: score, sigma: entry.sigma)) }
            start = end
        }
        return results
    }

    /// The capture id standing for the overlay's groups.
    private static let overlay: Int64 = -1

    /// Two groups whose rows in common a search keeps (the smaller first).
    struct PairKey: Hashable {
        var first: Int64
        var second: Int64
    }

    private struct Place: Hashable {
        var captureID: Int64
        var length: Int
    }

    /// The first `need` rows (in σ order) present in every group, passing `filter` and not stale.
    ///
    /// One group is read a chunk at a time; several are intersected by galloping from the smallest, so a large group
    /// costs a logarithm per row of the small one and only the blocks probed are read.
    private func intersect(_ groups: [PostingGroup], need: Int, loaded: inout [Int64: PagedGroup],
                           pairs: inout [PairKey: [SearchIndex.Entry]], filter: EntryFilter,
                           stale: Set<Int64>) throws(StoreError) -> [SearchIndex.Entry] {
        var found: [SearchIndex.Entry] = []
        if groups.count == 1 {
            let group = try PagedGroup(database: database, rowID: groups[0].rowID, count: groups[0].documents)
            for index in 0 ..< group.count {
                let entry = try group.entry(index)
                if filter.accepts(entry) && !stale.contains(entry.componentID) {
                    found.append(entry)
                    if found.count == need { break }
                }
            }
            return found
        }
        var lists: [PagedGroup] = []
        for group in groups.sorted(by: { $0.documents < $1.documents }) {
            if let cached = loaded[group.rowID] { lists.append(cached); continue }
            let made = try PagedGroup(database: database, rowID: group.rowID, count: group.documents)
            loaded[group.rowID] = made
            lists.append(made)
        }
        let ordered = groups.sorted(by: { $0.documents < $1.documents })
        var leadEntries: [SearchIndex.Entry]? = nil
        var others = Array(lists.dropFirst())
        if lists.count >= 3 {
            // Three words or more: the two smallest groups' rows in common, filtered, are worked out once and kept;
            // the combinations that share the pair (the other words' groups vary) walk only those.
            let key = PairKey(first: ordered[0].rowID, second: ordered[1].rowID)
            if let known = pairs[key] { leadEntries = known } else {
                var common: [SearchIndex.Entry] = []
                var position = 0
                let (small, large) = (lists[0], lists[1])
                for index in 0 ..< small.count {
                            let entry = try small.entry(index)
                    guard filter.accepts(entry) else { continue }
                    position = try large.firstNotPreceding(entry, from: position)
                    guard position < large.count else { break }
                    if try large.componentID(position) == entry.componentID { common.append(entry) }
                }
                pairs[key] = common
                leadEntries = common
            }
            others = Array(lists.dropFirst(2))
        }
        let lead = lists[0]
        let leadCount = leadEntries?.count ?? lead.count
        var positions = Array(repeating: 0, count: others.count)
        rows: for index in 0 ..< leadCount {
            let entry: SearchIndex.Entry
            if let leadEntries { entry = leadEntries[index] } else { entry = try lead.entry(index) }
            guard filter.accepts(entry) else { continue }
            for (number, other) in others.enumerated() {
                let position = try other.firstNotPreceding(entry, from: positions[number])
                positions[number] = position
                guard position < other.count else { break rows }
                if try other.componentID(position) != entry.componentID { continue rows }
            }
            guard !stale.contains(entry.componentID) else { continue }
            found.append(entry)
            if found.count == need { break }
        }
        return found
    }
}

/// A group's entries read in blocks on demand through one open blob handle (kept for the search: combinations
/// share groups), so galloping through a group of eighty thousand reads the few blocks it probes.
final class PagedGroup {
    private static let blockEntries = 128
    private let blob: OpaquePointer
    private let database: Database
    let count: Int
    /// The blocks read so far (4 KB each; nil: not yet read). Small allocations: the heap reuses them from one
    /// search to the next, where one buffer for a whole group would be fresh pages every time. A raw table, not an
    /// array: probes read it in the innermost loop.
    private let blocks: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let blockCount: Int

    init(database: Database, rowID: Int64, count: Int) throws(StoreError) {
        var opened: OpaquePointer?
        let code = sqlite3_blob_open(database.handle, "main", "search_postings", "entries", rowID, 0, &opened)
        guard code == SQLITE_OK, let opened else {
            if let opened { sqlite3_blob_close(opened) }
            try database.check(code == SQLITE_OK ? SQLITE_ERROR : code, sql: "blob open search_postings.entries \(rowID)")
            throw .corrupt("search_postings row \(rowID) could not be opened")
        }
        let size = Int(sqlite3_blob_bytes(opened))
        guard size == count * SearchIndex.entrySize else {
            sqlite3_blob_close(opened)
            throw .corrupt("search_postings row \(rowID): \(size) bytes for \(count) entries")
        }
        self.blob = opened
        self.database = database
        self.count = count
        blockCount = (count + Self.blockEntries - 1) / Self.blockEntries
        blocks = .allocate(capacity: max(blockCount, 1))
        blocks.initialize(repeating: nil, count: max(blockCount, 1))
    }

    deinit {
        sqlite3_blob_close(blob)
        for block in 0 ..< blockCount { blocks[block]?.deallocate() }
        blocks.deallocate()
    }

    /// The address of entry `index`, its block read if it was not.
    @inline(__always)
    private func address(_ index: Int) throws(StoreError) -> UnsafeRawPointer {
        let block = index / Self.blockEntries
        if let base = blocks[block] { return UnsafeRawPointer(base + (index % Self.blockEntries) * SearchIndex.entrySize) }
        let base = try load(block)
        return UnsafeRawPointer(base + (index % Self.blockEntries) * SearchIndex.entrySize)
    }

    private func load(_ block: Int) throws(StoreError) -> UnsafeMutableRawPointer {
        let first = block * Self.blockEntries * SearchIndex.entrySize
        let size = min(Self.blockEntries * SearchIndex.entrySize, count * SearchIndex.entrySize - first)
        let base = UnsafeMutableRawPointer.allocate(byteCount: Self.blockEntries * SearchIndex.entrySize, alignment: 8)
        let code = sqlite3_blob_read(blob, base, Int32(size), Int32(first))
        guard code == SQLITE_OK else {
            base.deallocate()
            try database.check(code, sql: "blob read search_postings.entries")
            throw .corrupt("blob read search_postings.entries returned \(code)")
        }
        blocks[block] = base
        return base
    }

    func entry(_ index: Int) throws(StoreError) -> SearchIndex.Entry {
        SearchIndex.Entry(reading: UnsafeRawBufferPointer(start: try address(index), count: SearchIndex.entrySize), at: 0)
    }

    func componentID(_ index: Int) throws(StoreError) -> Int64 {
        Int64(littleEndian: try address(index).loadUnaligned(as: Int64.self))
    }

    /// Whether the entry at `index` comes before `target` in search order.
    @inline(__always)
    private func precedes(_ index: Int, _ target: SearchIndex.Entry) throws(StoreError) -> Bool {
        let at = try address(index)
        let id = Int64(littleEndian: at.loadUnaligned(as: Int64.self))
        let sigma = Double(bitPattern: UInt64(littleEndian: at.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        return sigma != target.sigma ? sigma > target.sigma : id < target.componentID
    }

    /// The first index at or after `start` whose entry does not come before `target` (`count` if none): galloping,
    /// then a binary search.
    func firstNotPreceding(_ target: SearchIndex.Entry, from start: Int) throws(StoreError) -> Int {
        guard start < count, try precedes(start, target) else { return start }
        var low = start   // precedes(low) holds
        var step = 1
        var high = start + 1
        while high < count {
            guard try precedes(high, target) else { break }
            low = high
            step *= 2
            high = low + step
        }
        high = min(high, count)
        while high - low > 1 {
            let middle = (low + high) / 2
            if try precedes(middle, target) { low = middle } else { high = middle }
        }
        return high
    }
}
