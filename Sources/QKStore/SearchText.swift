import Foundation

/// Building FTS5 queries and index text.
enum SearchText {
    /// The user's words: separated by whitespace and control characters (NUL among them).
    static func words(_ query: String) -> [String] {
        query.unicodeScalars.split { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
            .map { String(String.UnicodeScalarView($0)) }
    }

    /// A word as an FTS5 string: never read as FTS5 syntax.
    static func quoted(_ word: String) -> String {
        "\"" + word.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The user's words as FTS5 strings (to be joined by AND).
    static func quotedTerms(_ query: String) -> [String] { words(query).map(quoted) }

    /// Facet tokens of one component (indexed in the `facets` column).
    static func facets(model: String, checkpoint: String, layer: Int, head: Int, feature: String, kind: String,
                       value: String?) -> String {
        var tokens = ["fl\(layer)", "fh\(head)", "fm" + hash(model), "fc" + hash(checkpoint), "ff" + hash(feature),
                      "fk" + hash(kind)]
        if let value { tokens.append("fv" + hash(value)) }
        return tokens.joined(separator: " ")
    }

    /// FTS5 conditions on the `facets` column for `filters` (exact matching is redone in SQL).
    static func facetTerms(_ filters: SearchFilters) -> [String] {
        var tokens: [String] = []
        if let layer = filters.layer { tokens.append("fl\(layer)") }
        if let head = filters.head { tokens.append("fh\(head)") }
        if let model = filters.model { tokens.append("fm" + hash(model)) }
        if let checkpoint = filters.checkpoint { tokens.append("fc" + hash(checkpoint)) }
        if let feature = filters.feature { tokens.append("ff" + hash(feature)) }
        if let kind = filters.kind { tokens.append("fk" + hash(kind)) }
        if let value = filters.value { tokens.append("fv" + hash(value)) }
        // Negative layer/head numbers would give tokens like "fl-1"; no component has them anyway.
        return tokens.map { "facets : \"\($0)\"" }
    }

    /// FNV-1a 64 of the UTF-8 bytes, as 16 hex digits: stable across runs, unlike `Hasher`.
    static func hash(_ string: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in string.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
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

/// Checkpoint sort keys: the value of the trailing digits; names without them sort after all others.
public enum CheckpointOrder {
    public static let unnumbered = Int64.max

    public static func ordinal(of name: String) -> Int64 {
        let digits = name.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return unnumbered }
        let significant = String(digits.reversed()).drop { $0 == "0" }
        if significant.isEmpty { return 0 }
        // More digits than Int64 holds: clamp just below the unnumbered names.
        return Int64(significant) ?? (unnumbered - 1)
    }
}
