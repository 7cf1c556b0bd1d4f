import CSQLite
import Foundation

/// `qkrank`, the FTS5 ranking function of search: bm25 over the user's words alone.
///
/// FTS5's `bm25()` ranks by every phrase of the query, filter tokens included, and counts the documents of each
/// phrase by walking its postings on every search: a filter token held by most components, or a common word,
/// costs time proportional to the catalog. `qkrank` takes the number of leading phrases that are user words and
/// their document counts (from `search_terms`; -1 asks it to count, as bm25 does), and scores with bm25's formula
/// (k1 1.2, b 0.75, IDF floored at 1e-6, negated: more negative is better) over the searchable columns only.
///
/// Called as `qkrank(component_search, length, sigma, keep, n, documents_1, …, documents_n)`. `length` is the row's
/// token count in the searchable columns when the caller knows it (`component_search_keys.search_length`), or NULL:
/// then qkrank reads it from the index's document sizes, one lookup per row. With `keep` > 0 it returns NULL for a
/// row that comes after the `keep` best seen so far in this query, in search order (score, then σ largest first,
/// then rowid): such a row cannot be among the `keep` best, so the caller need not sort it. Every filter must be in
/// the MATCH expression for this to hold.
enum SearchRanking {
    static let functionName = "qkrank"
    /// `qklength(component_search)`: the row's token count in the searchable columns.
    static let lengthFunctionName = "qklength"
    /// Weights of the searchable columns, in table order: auto_label, human_label, note, feature, tokens, names.
    /// The seventh column, facets, is never searched for user words and never scored.
    static let columnWeights: [Double] = [1, 5, 1, 1, 1, 0.5]
    /// FTS5 column filter restricting a phrase to the searchable columns.
    static let searchableColumns = "{auto_label human_label note feature tokens names}"
    /// The tokenizer of `component_search` (the schema's), for counting terms the same way.
    static let tokenizer = #"unicode61 remove_diacritics 2 separators 'ĠĊ'"#

    private static let k1 = 1.2
    private static let b = 0.75
    /// The pointer type name FTS5 checks when handing out its API (a C string that lives as long as the process).
    nonisolated(unsafe) private static let apiPointerType: UnsafeMutablePointer<CChar> = strdup("fts5_api_ptr")!
    nonisolated(unsafe) private static let cFunctionName: UnsafeMutablePointer<CChar> = strdup(functionName)!
    nonisolated(unsafe) private static let cLengthFunctionName: UnsafeMutablePointer<CChar> = strdup(lengthFunctionName)!

    /// Registers `qkrank` and `qklength` on the connection (search and ingest need them).
    static func register(on database: Database) throws(StoreError) {
        let api = try extensionAPI(of: database)
        guard let create = api.pointee.xCreateFunction else {
            throw .invalidArgument("this SQLite's FTS5 offers no extension API (version 2 or later needed)")
        }
        try database.check(create(api, cFunctionName, nil, rank, nil), sql: "fts5 xCreateFunction(\(functionName))")
        try database.check(create(api, cLengthFunctionName, nil, length, nil),
                           sql: "fts5 xCreateFunction(\(lengthFunctionName))")
        try database.check(create(api, cCorpusFunctionName, nil, corpus, nil),
                           sql: "fts5 xCreateFunction(\(corpusFunctionName))")
    }

    /// The connection's FTS5 API object (it lives as long as the connection).
    static func extensionAPI(of database: Database) throws(StoreError) -> UnsafeMutablePointer<fts5_api> {
        let statement = try database.prepare("SELECT fts5(?1)")
        var api: UnsafeMutablePointer<fts5_api>?
        let code = withUnsafeMutablePointer(to: &api) { pointer -> Int32 in
            let bound = sqlite3_bind_pointer(statement.handle, 1, pointer, apiPointerType, nil)
            guard bound == SQLITE_OK else { return bound }
            let stepped = sqlite3_step(statement.handle)
            return stepped == SQLITE_ROW ? SQLITE_OK : stepped
        }
        statement.reset()
        try database.check(code, sql: statement.sql)
        guard let api, api.pointee.iVersion >= 2 else {
            throw .invalidArgument("this SQLite's FTS5 offers no extension API (version 2 or later needed)")
        }
        return api
    }

    private static let length: fts5_extension_function = { api, context, result, _, _ in
        guard let api, let context, let result else { return }
        switch searchableLength(api.pointee, context) {
        case let .success(tokens): sqlite3_result_int64(result, sqlite3_int64(tokens))
        case let .failure(failure): failure.report(result)
        }
    }

    private static func searchableLength(_ api: Fts5ExtensionApi, _ context: OpaquePointer) -> Result<Int, Failure> {
        var total = 0
        for column in 0 ..< Int32(columnWeights.count) {
            var tokens: Int32 = 0
            let code = api.xColumnSize(context, column, &tokens)
            if code != SQLITE_OK { return .failure(Failure(code: code)) }
            total += Int(tokens)
        }
        return .success(total)
    }

    /// A row's place in search order: smaller comes first.
    struct Rank: Comparable {
        var score: Double
        var sigma: Double
        var rowid: Int64

        static func < (a: Rank, b: Rank) -> Bool {
            if a.score != b.score { return a.score < b.score }
            if a.sigma != b.sigma { return a.sigma > b.sigma }
            return a.rowid < b.rowid
        }
    }

    /// Per-query values, computed on the first row and kept as FTS5 auxiliary data.
    private final class QueryStatistics {
        let inverseDocumentFrequencies: [Double]
        let averageLength: Double
        var frequencies: [Double]
        /// The best `keep` rows so far in search order, as a max-heap (the last of them first); empty when not pruning.
        let keep: Int
        var best: [Rank] = []
        /// The last row scored and its result: SQLite may evaluate the function more than once per row.
        var lastRowID: Int64 = .min
        var lastResult: Double? = nil

        init(inverseDocumentFrequencies: [Double], averageLength: Double, keep: Int) {
            self.inverseDocumentFrequencies = inverseDocumentFrequencies
            self.averageLength = averageLength
            self.frequencies = Array(repeating: 0, count: inverseDocumentFrequencies.count)
            self.keep = keep
            best.reserveCapacity(min(keep, 1024))   // keep may be any limit a user typed
        }

        /// Records a row; false when it comes after the `keep` best seen before it.
        func admit(_ score: Rank) -> Bool {
            guard keep > 0 else { return true }
            if best.count < keep {
                best.append(score)
                var child = best.count - 1
                while child > 0 {
                    let parent = (child - 1) / 2
                    guard best[parent] < best[child] else { break }
                    best.swapAt(parent, child)
                    child = parent
                }
                return true
            }
            if score > best[0] { return false }
            if score < best[0] {
                best[0] = score
                var parent = 0
                while true {
                    let left = 2 * parent + 1, right = left + 1
                    var largest = parent
                    if left < best.count && best[left] > best[largest] { largest = left }
                    if right < best.count && best[right] > best[largest] { largest = right }
                    if largest == parent { break }
                    best.swapAt(parent, largest)
                    parent = largest
                }
            }
            return true
        }
    }

    private static let rank: fts5_extension_function = { api, context, result, argumentCount, arguments in
        guard let api, let context, let result else { return }
        let extensionAPI = api.pointee
        let statistics: QueryStatistics
        if let stored = extensionAPI.xGetAuxdata(context, 0) {
            statistics = Unmanaged<QueryStatistics>.fromOpaque(stored).takeUnretainedValue()
        } else {
            switch prepareStatistics(extensionAPI, context, argumentCount, arguments) {
            case let .success(prepared):
                statistics = prepared
                let retained = Unmanaged.passRetained(prepared).toOpaque()
                let code = extensionAPI.xSetAuxdata(context, retained) { pointer in
                    if let pointer { Unmanaged<QueryStatistics>.fromOpaque(pointer).release() }
                }
                if code != SQLITE_OK { return sqlite3_result_error_code(result, code) }
            case let .failure(failure):
                return failure.report(result)
            }
        }

        let rowid = extensionAPI.xRowid(context)
        if rowid == statistics.lastRowID {
            if let last = statistics.lastResult { sqlite3_result_double(result, last) } else { sqlite3_result_null(result) }
            return
        }
        let phraseCount = statistics.frequencies.count
        // Only the user's phrases are walked (xInstCount would gather and sort the filter phrases' hits as well).
        for phrase in 0 ..< phraseCount {
            var iterator = Fts5PhraseIter()
            var column: Int32 = 0, offset: Int32 = 0
            let code = extensionAPI.xPhraseFirst(context, Int32(phrase), &iterator, &column, &offset)
            if code != SQLITE_OK { return sqlite3_result_error_code(result, code) }
            var frequency = 0.0
            while column >= 0 {
                if Int(column) < columnWeights.count { frequency += columnWeights[Int(column)] }
                extensionAPI.xPhraseNext(context, &iterator, &column, &offset)
            }
            statistics.frequencies[phrase] = frequency
        }
        var length: Double
        if let arguments, argumentCount > 0, sqlite3_value_type(arguments[0]) != SQLITE_NULL {
            length = Double(sqlite3_value_int64(arguments[0]))
        } else {
            switch searchableLength(extensionAPI, context) {
            case let .success(tokens): length = Double(tokens)
            case let .failure(failure): return failure.report(result)
            }
        }
        let normalization = lengthNormalization(length: length, averageLength: statistics.averageLength)
        var score = 0.0
        for index in 0 ..< phraseCount {
            score += termScore(inverseDocumentFrequency: statistics.inverseDocumentFrequencies[index],
                               frequency: statistics.frequencies[index], normalization: normalization)
        }
        statistics.lastRowID = rowid
        let sigma = argumentCount > 1 ? sqlite3_value_double(arguments![1]) : 0
        statistics.lastResult = statistics.admit(Rank(score: -score, sigma: sigma, rowid: rowid)) ? -score : nil
        if let kept = statistics.lastResult { sqlite3_result_double(result, kept) } else { sqlite3_result_null(result) }
    }

    private struct Failure: Error {
        var code: Int32
        var message: String?

        func report(_ result: OpaquePointer) {
            if let message { sqlite3_result_error(result, message, -1) } else { sqlite3_result_error_code(result, code) }
        }
    }

    private static func prepareStatistics(_ api: Fts5ExtensionApi, _ context: OpaquePointer, _ argumentCount: Int32,
                                          _ arguments: UnsafeMutablePointer<OpaquePointer?>?) -> Result<QueryStatistics, Failure> {
        guard argumentCount >= 4, let arguments else {
            return .failure(Failure(code: SQLITE_ERROR,
                                    message: "\(functionName): expected length, sigma, keep and the number of user phrases"))
        }
        let keep = Int(sqlite3_value_int64(arguments[2]))
        let userPhrases = Int(sqlite3_value_int64(arguments[3]))
        guard keep >= 0, userPhrases >= 0, userPhrases <= Int(api.xPhraseCount(context)),
              Int(argumentCount) == 4 + userPhrases else {
            return .failure(Failure(code: SQLITE_ERROR, message: "\(functionName): expected \(userPhrases) document counts"))
        }
        let corpus: Corpus
        switch corpusStatistics(api, context) {
        case let .success(read): corpus = read
        case let .failure(failure): return .failure(failure)
        }
        var code = SQLITE_OK
        var inverse: [Double] = []
        for phrase in 0 ..< userPhrases {
            var documents = sqlite3_value_int64(arguments[4 + phrase])
            if documents < 0 {
                documents = 0
                code = api.xQueryPhrase(context, Int32(phrase), &documents) { _, _, counter in
                    counter?.assumingMemoryBound(to: sqlite3_int64.self).pointee += 1
                    return SQLITE_OK
                }
                if code != SQLITE_OK { return .failure(Failure(code: code)) }
            }
            inverse.append(inverseDocumentFrequency(rows: corpus.rows, documents: Int(documents)))
        }
        return .success(QueryStatistics(inverseDocumentFrequencies: inverse, averageLength: corpus.averageLength,
                                        keep: keep))
    }

    // MARK: The formula (shared with the impact-ordered index, which must score exactly as qkrank does)

    /// The full-text index's row count and average searchable length, as bm25 needs them.
    struct Corpus: Equatable {
        var rows: Int
        var averageLength: Double
    }

    private static func corpusStatistics(_ api: Fts5ExtensionApi, _ context: OpaquePointer) -> Result<Corpus, Failure> {
        var rows: sqlite3_int64 = 0
        var code = api.xRowCount(context, &rows)
        if code != SQLITE_OK { return .failure(Failure(code: code)) }
        var totalTokens: sqlite3_int64 = 0
        for column in 0 ..< Int32(columnWeights.count) {
            var tokens: sqlite3_int64 = 0
            code = api.xColumnTotalSize(context, column, &tokens)
            if code != SQLITE_OK { return .failure(Failure(code: code)) }
            totalTokens += tokens
        }
        let rowCount = Double(max(rows, 1))
        return .success(Corpus(rows: Int(rows), averageLength: max(Double(totalTokens) / rowCount, 1)))
    }

    /// bm25's IDF over `rows` documents, `documents` of which hold the term (floored at 1e-6).
    static func inverseDocumentFrequency(rows: Int, documents: Int) -> Double {
        let rowCount = Double(max(rows, 1))
        let idf = log((rowCount - Double(documents) + 0.5) / (Double(documents) + 0.5))
        return idf > 0 ? idf : 1e-6
    }

    /// bm25's length normalization of a row of `length` searchable tokens.
    @inline(__always)
    static func lengthNormalization(length: Double, averageLength: Double) -> Double {
        k1 * (1 - b + b * length / averageLength)
    }

    /// One phrase's bm25 term (positive: larger is better); a row's score is the sum over phrases, in phrase order.
    @inline(__always)
    static func termScore(inverseDocumentFrequency: Double, frequency: Double, normalization: Double) -> Double {
        inverseDocumentFrequency * (frequency * (k1 + 1)) / (frequency + normalization)
    }

    /// `qkcorpus(component_search)`: the index's row count and average searchable length as `rows average`
    /// (text: one call reads both), for the impact-ordered search, which scores as qkrank does without FTS5.
    static let corpusFunctionName = "qkcorpus"
    nonisolated(unsafe) private static let cCorpusFunctionName: UnsafeMutablePointer<CChar> = strdup(corpusFunctionName)!

    private static let corpus: fts5_extension_function = { api, context, result, _, _ in
        guard let api, let context, let result else { return }
        switch corpusStatistics(api.pointee, context) {
        case let .success(corpus):
            // The average's exact bits travel as an integer: text would round it.
            sqlite3_result_text(result, "\(corpus.rows) \(corpus.averageLength.bitPattern)", -1, transientDestructor)
        case let .failure(failure): failure.report(result)
        }
    }

    /// Parses what `qkcorpus` returns.
    static func parseCorpus(_ text: String) -> Corpus? {
        let parts = text.split(separator: " ")
        guard parts.count == 2, let rows = Int(parts[0]), let bits = UInt64(parts[1]) else { return nil }
        return Corpus(rows: rows, averageLength: Double(bitPattern: bits))
    }

    // MARK: Document counts

    /// The one FTS5 term a word of ASCII letters and digits becomes (lowercased); nil for any other word, whose
    /// tokens only the tokenizer knows (its document count is then counted at query time).
    static func simpleTerm(_ word: String) -> String? {
        guard !word.isEmpty, word.utf8.allSatisfy({ byte in
            (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a") ... UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A") ... UInt8(ascii: "Z")).contains(byte)
        }) else { return nil }
        return word.lowercased()
    }
}
