import CSQLite
import Foundation

/// The impact-ordered search index (`search_postings`): per capture and term, the components holding the term,
/// grouped by weighted frequency and searchable length (all that bm25 needs of a row besides corpus statistics)
/// and sorted by σ within a group. A search scores groups, not rows, and reads the best groups first.
enum SearchIndex {
    /// Bytes per entry: id i64, σ f64, checkpoint u32, feature u32, value code u32, layer u16, head u16.
    static let entrySize = 32

    /// One row of the index: a component as search filters and orders it.
    struct Entry: Equatable {
        var componentID: Int64
        var sigma: Double
        var checkpointID: UInt32
        var featureID: UInt32
        var valueCode: UInt32
        var layer: UInt16
        var head: UInt16

        /// Search order within a score: σ largest first, then id.
        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            sigma != other.sigma ? sigma > other.sigma : componentID < other.componentID
        }

        func write(to buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
            buffer.storeBytes(of: componentID.littleEndian, toByteOffset: offset, as: Int64.self)
            buffer.storeBytes(of: sigma.bitPattern.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
            buffer.storeBytes(of: checkpointID.littleEndian, toByteOffset: offset + 16, as: UInt32.self)
            buffer.storeBytes(of: featureID.littleEndian, toByteOffset: offset + 20, as: UInt32.self)
            buffer.storeBytes(of: valueCode.littleEndian, toByteOffset: offset + 24, as: UInt32.self)
            buffer.storeBytes(of: layer.littleEndian, toByteOffset: offset + 28, as: UInt16.self)
            buffer.storeBytes(of: head.littleEndian, toByteOffset: offset + 30, as: UInt16.self)
        }

        @inline(__always)
        init(reading buffer: UnsafeRawBufferPointer, at offset: Int) {
            componentID = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            sigma = Double(bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
            checkpointID = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
            featureID = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
            valueCode = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 24, as: UInt32.self))
            layer = UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 28, as: UInt16.self))
            head = UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 30, as: UInt16.self))
        }

        init(componentID: Int64, sigma: Double, checkpointID: UInt32, featureID: UInt32, valueCode: UInt32, layer: UInt16,
             head: UInt16) {
            self.componentID = componentID
            self.sigma = sigma
            self.checkpointID = checkpointID
            self.featureID = featureID
            self.valueCode = valueCode
            self.layer = layer
            self.head = head
        }
    }

    /// The code of `value` in search_values (0 for pooled), creating it when missing.
    static func valueCode(_ value: String?, in database: Database) throws(StoreError) -> UInt32 {
        guard let value else { return 0 }
        if let id = try database.scalarInt("SELECT id FROM search_values WHERE value = ?", [.text(value)]) {
            return UInt32(id)
        }
        let insert = try database.prepare("INSERT INTO search_values (value) VALUES (?)")
        try insert.bind(value, at: 1)
        try insert.run()
        return UInt32(database.lastInsertRowID)
    }

    /// Ids that must fit an entry's fields.
    static func narrow<T: FixedWidthInteger>(_ value: some BinaryInteger, _ what: String) throws(StoreError) -> T {
        guard let narrowed = T(exactly: value) else {
            throw .invalidArgument("search index: \(what) \(value) does not fit \(T.bitWidth) bits")
        }
        return narrowed
    }
}

// MARK: - Building

/// A text compared and hashed by its UTF-8 bytes, as SQLite compares text: Swift's String equality is canonical
/// (a Hangul syllable equals its conjoining jamo) and would merge what FTS5 and UNIQUE keep apart. Short texts stay
/// inline (no allocation), which a byte array would not.
struct ExactText: Hashable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (a: ExactText, b: ExactText) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }

    func hash(into hasher: inout Hasher) {
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Collects one capture's components and writes their groups and term counts (inside the caller's transaction).
final class SearchIndexBuilder {
    /// Terms compare by their bytes, as FTS5's do.
    private struct GroupKey: Hashable {
        var term: ExactText
        var frequency: Double
        var length: Int
    }

    private let tokenizer: SearchTokenizer
    private var groups: [GroupKey: [SearchIndex.Entry]] = [:]
    private var documentCounts: [ExactText: Int] = [:]
    private var frequencies: [ExactText: Double] = [:]

    init(tokenizer: SearchTokenizer) { self.tokenizer = tokenizer }

    /// Adds a component with its searchable texts, one per searchable column (`SearchRanking.columnWeights` order);
    /// returns its searchable length (the row's token count, as `qklength` reads it from FTS5).
    func add(_ entry: SearchIndex.Entry, columns: [String]) -> Int {
        precondition(columns.count == SearchRanking.columnWeights.count, "one text per searchable column")
        frequencies.removeAll(keepingCapacity: true)
        var length = 0
        for (column, text) in columns.enumerated() where !text.isEmpty {
            let weight = SearchRanking.columnWeights[column]
            tokenizer.forEachToken(in: text) { bytes in
                length += 1
                frequencies[ExactText(String(decoding: bytes, as: UTF8.self)), default: 0] += weight
            }
        }
        for (term, frequency) in frequencies {
            groups[GroupKey(term: term, frequency: frequency, length: length), default: []].append(entry)
            documentCounts[term, default: 0] += 1
        }
        return length
    }

    /// Writes the groups of `captureID`, adds the term counts to search_terms and records the capture as indexed.
    func write(captureID: Int64, database: Database) throws(StoreError) {
        try writeGroups(captureID: captureID, database: database)
        let count = try database.prepare("""
            INSERT INTO search_terms (term, documents) VALUES (?, ?)
            ON CONFLICT (term) DO UPDATE SET documents = documents + excluded.documents
            """)
        for (term, documents) in documentCounts {
            try count.bind(term.text, at: 1)
            try count.bind(documents, at: 2)
            try count.run()
        }
        documentCounts = [:]
    }

    /// Writes the groups of `captureID` and records the capture as indexed, or (nil) the overlay's groups
    /// (search_terms untouched).
    func writeGroups(captureID: Int64?, database: Database) throws(StoreError) {
        let insert = try database.prepare("""
            INSERT INTO search_postings (term, capture_id, frequency, length, documents, entries) VALUES (?, ?, ?, ?, ?, ?)
            """)
        var buffer = Data()
        for (key, unsorted) in groups {
            let entries = unsorted.sorted { $0.precedes($1) }
            buffer.count = entries.count * SearchIndex.entrySize
            buffer.withUnsafeMutableBytes { raw in
                for (index, entry) in entries.enumerated() { entry.write(to: raw, at: index * SearchIndex.entrySize) }
            }
            try insert.bind(key.term.text, at: 1)
            try insert.bind(captureID, at: 2)
            try insert.bind(key.frequency, at: 3)
            try insert.bind(key.length, at: 4)
            try insert.bind(entries.count, at: 5)
            try insert.bind(buffer, at: 6)
            try insert.run()
        }
        if let captureID {
            let indexed = try database.prepare("INSERT INTO search_indexed_captures (capture_id) VALUES (?)")
            try indexed.bind(captureID, at: 1)
            try indexed.run()
        }
        groups = [:]
    }
}

extension SearchIndex {
    /// Builds the index of every capture not yet in it (catalogs migrated from before the index), each in its own
    /// transaction. Rows already counted in search_terms are not counted again: only groups and lengths are written.
    static func buildMissing(in database: Database) throws(StoreError) {
        let missing = try database.prepare("""
            SELECT id FROM captures WHERE id NOT IN (SELECT capture_id FROM search_indexed_captures) ORDER BY id
            """)
        var captures: [Int64] = []
        while try missing.step() { captures.append(missing.int64(at: 0) ?? 0) }
        guard !captures.isEmpty else { return }
        let tokenizer = try SearchTokenizer(database: database)
        for captureID in captures {
            try database.transaction { () throws(StoreError) in
                // Re-read inside the write lock: another process may have indexed it meanwhile.
                guard try database.scalarInt("SELECT count(*) FROM search_indexed_captures WHERE capture_id = ?",
                                             [.integer(Int(captureID))]) == 0 else { return }
                try build(captureID: captureID, tokenizer: tokenizer, database: database)
                try rebuildOverlay(tokenizer: tokenizer, database: database)
            }
        }
    }

    /// Indexes one capture's components with their current texts; they are stale no more.
    private static func build(captureID: Int64, tokenizer: SearchTokenizer, database: Database) throws(StoreError) {
        // Groups written before a component of the capture was deleted go; the rest is rebuilt from the rows.
        try database.execute("DELETE FROM search_postings WHERE capture_id = \(captureID)")
        let builder = SearchIndexBuilder(tokenizer: tokenizer)
        try addRows(where: "k.feature_id IN (SELECT id FROM features WHERE capture_id = ?)", [.integer(Int(captureID))],
                    to: builder, database: database)
        // The terms were counted when the rows were written; only the groups are new.
        try builder.writeGroups(captureID: captureID, database: database)
        try database.execute("""
            DELETE FROM search_stale
             WHERE component_id IN (SELECT component_id FROM component_search_keys
                                     WHERE feature_id IN (SELECT id FROM features WHERE capture_id = \(captureID)))
            """)
    }

    /// Rewrites the overlay: the groups of every stale component, with its current text (after a label change).
    static func rebuildOverlay(tokenizer: SearchTokenizer, database: Database) throws(StoreError) {
        try database.execute("DELETE FROM search_postings WHERE capture_id IS NULL")
        let builder = SearchIndexBuilder(tokenizer: tokenizer)
        try addRows(where: "k.component_id IN (SELECT component_id FROM search_stale)", [], to: builder, database: database)
        try builder.writeGroups(captureID: nil, database: database)
        try database.execute("UPDATE search_stale SET indexed = 1 WHERE indexed = 0")
    }

    /// Adds the rows of component_search_keys matching `condition` (on `k`) with their full-text columns, and
    /// records each row's searchable length.
    private static func addRows(where condition: String, _ values: [SQLValue], to builder: SearchIndexBuilder,
                                database: Database) throws(StoreError) {
        let rows = try database.prepare("""
            SELECT k.component_id, k.sigma, k.checkpoint_id, k.feature_id, k.value, k.layer, k.head,
                   s.auto_label, s.human_label, s.note, s.feature, s.tokens, s.names
              FROM component_search_keys k
              JOIN component_search s ON s.rowid = k.component_id
             WHERE \(condition)
             ORDER BY k.component_id
            """)
        try rows.bind(values)
        var lengths: [(Int64, Int)] = []
        var valueCodes: [ExactText: UInt32] = [:]   // by bytes, as search_values compares them
        while try rows.step() {
            let value = rows.text(at: 4)
            var code: UInt32 = 0
            if let value {
                if let known = valueCodes[ExactText(value)] { code = known } else {
                    code = try valueCode(value, in: database)
                    valueCodes[ExactText(value)] = code
                }
            }
            let entry = Entry(componentID: rows.int64(at: 0) ?? 0, sigma: rows.double(at: 1) ?? 0,
                              checkpointID: try narrow(rows.int64(at: 2) ?? 0, "checkpoint id"),
                              featureID: try narrow(rows.int64(at: 3) ?? 0, "feature id"), valueCode: code,
                              layer: try narrow(rows.int(at: 5) ?? 0, "layer"), head: try narrow(rows.int(at: 6) ?? 0, "head"))
            let columns = (7 ..< 13).map { rows.text(at: Int32($0)) ?? "" }
            lengths.append((entry.componentID, builder.add(entry, columns: columns)))
        }
        let update = try database.prepare("UPDATE component_search_keys SET search_length = ? WHERE component_id = ?")
        for (id, length) in lengths {
            try update.bind(length, at: 1)
            try update.bind(id, at: 2)
            try update.run()
        }
    }
}
