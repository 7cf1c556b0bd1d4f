import CSQLite
import Foundation

/// The catalog's full-text tokenizer (FTS5 unicode61 with the schema's options), callable from Swift.
///
/// The search index must split texts exactly as `component_search` does, so it asks FTS5 for the very tokenizer
/// the table uses rather than reimplementing unicode61's case folding, diacritics and separators.
final class SearchTokenizer {
    /// The schema's tokenizer arguments after the name (`unicode61 remove_diacritics 2 separators 'ĠĊ'`).
    static let arguments = ["remove_diacritics", "2", "separators", "ĠĊ"]

    private let module: fts5_tokenizer
    private let instance: OpaquePointer

    init(database: Database) throws(StoreError) {
        let api = try SearchRanking.extensionAPI(of: database)
        guard let find = api.pointee.xFindTokenizer else {
            throw .invalidArgument("this SQLite's FTS5 cannot look up tokenizers")
        }
        var context: UnsafeMutableRawPointer?
        var module = fts5_tokenizer()
        try database.check(find(api, "unicode61", &context, &module), sql: "fts5 xFindTokenizer(unicode61)")
        guard let create = module.xCreate, module.xTokenize != nil else {
            throw .invalidArgument("FTS5's unicode61 tokenizer has no create or tokenize function")
        }
        let cArguments = Self.arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        var argumentPointers = cArguments.map { UnsafePointer<CChar>($0) }
        var created: OpaquePointer?
        let code = argumentPointers.withUnsafeMutableBufferPointer { buffer in
            create(context, buffer.baseAddress, Int32(buffer.count), &created)
        }
        try database.check(code, sql: "fts5 unicode61 xCreate")
        guard let created else { throw .invalidArgument("FTS5's unicode61 tokenizer returned no instance") }
        self.module = module
        self.instance = created
    }

    deinit { module.xDelete?(instance) }

    /// Calls `body` with each token of `text` (UTF-8 bytes, valid only during the call), in order.
    func forEachToken(in text: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            var callback = escapable
            var text = text
            text.withUTF8 { utf8 in
                withUnsafeMutablePointer(to: &callback) { callbackPointer in
                    _ = module.xTokenize!(instance, callbackPointer, FTS5_TOKENIZE_DOCUMENT,
                                          utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                                          Int32(utf8.count)) { context, _, token, count, _, _ in
                        guard let context else { return SQLITE_OK }
                        let body = context.assumingMemoryBound(to: ((UnsafeRawBufferPointer) -> Void).self).pointee
                        body(UnsafeRawBufferPointer(start: token, count: Int(count)))
                        return SQLITE_OK
                    }
                }
            }
        }
    }

    /// The tokens of `text`, in order.
    func tokens(_ text: String) -> [String] {
        var tokens: [String] = []
        forEachToken(in: text) { bytes in tokens.append(String(decoding: bytes, as: UTF8.self)) }
        return tokens
    }
}
