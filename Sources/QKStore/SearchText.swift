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

    /// Facet tokens of one component (indexed in the `facets` column): exact, so a match needs no re-check.
    static func facets(model: String, checkpoint: String, layer: Int, head: Int, feature: String, kind: String,
                       value: String?) -> String {
        facetTokens(model: model, checkpoint: checkpoint, layer: layer, head: head, feature: feature, kind: kind,
                    value: value).joined(separator: " ")
    }

    /// FTS5 conditions on the `facets` column for `filters` (to be joined by AND).
    static func facetTerms(_ filters: SearchFilters) -> [String] {
        facetTokens(model: filters.model, checkpoint: filters.checkpoint, layer: filters.layer, head: filters.head,
                    feature: filters.feature, kind: filters.kind, value: filters.value).map { "facets : \"\($0)\"" }
    }

    /// `fl<layer>`, `fh<head>` and `fm`/`fc`/`ff`/`fk`/`fv` + the hex of the name's UTF-8: one unicode61 token each
    /// (letters and digits only), equal only for equal names. (A negative layer gives the phrase `fl 1`, which no
    /// facets column holds: no match, as no component has one.)
    static func facetTokens(model: String?, checkpoint: String?, layer: Int?, head: Int?, feature: String?, kind: String?,
                            value: String?) -> [String] {
        var tokens: [String] = []
        if let layer { tokens.append("fl\(layer)") }
        if let head { tokens.append("fh\(head)") }
        if let model { tokens.append("fm" + hex(model)) }
        if let checkpoint { tokens.append("fc" + hex(checkpoint)) }
        if let feature { tokens.append("ff" + hex(feature)) }
        if let kind { tokens.append("fk" + hex(kind)) }
        if let value { tokens.append("fv" + hex(value)) }
        return tokens
    }

    /// Lowercase hex of the UTF-8 bytes.
    static func hex(_ string: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.utf8.count * 2)
        for byte in string.utf8 {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: bytes, as: UTF8.self)
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
