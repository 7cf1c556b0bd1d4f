/// Text made safe for HTML, and tokens made legible.
///
/// Every string a report shows comes from a catalog — model names, labels, notes, tokens of arbitrary prompts — so
/// every one goes through `escape` (or `token`, which also makes invisible characters visible) on its way into a page.
enum HTML {
    /// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attribute values.
    static func escape(_ text: String) -> String {
        if isPlain(text) { return text }
        var output = ""
        output.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    /// A token as a reader should see it, not yet escaped: byte-level BPE's `Ġ` (space) and `Ċ` (newline) as a space
    /// and ↵, tabs as →, other control characters as their Unicode control pictures (␀, ␛), and characters that would
    /// reorder or hide text (bidirectional controls, zero-width characters, byte-order marks) as `⟨U+200F⟩`.
    static func displayToken(_ token: String) -> String {
        if isPlain(token) { return token }
        var output = ""
        for scalar in token.unicodeScalars {
            switch scalar.value {
            case 0x120: output += " "                    // Ġ
            case 0x10A, 0x0A, 0x0D: output += "↵"        // Ċ, newline, carriage return
            case 0x09: output += "→"
            case 0x00...0x1F: output.unicodeScalars.append(Unicode.Scalar(0x2400 + scalar.value)!)
            case 0x7F: output += "␡"
            case 0x80...0x9F, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF, 0x061C:
                output += "⟨U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(4, with: "0") + "⟩"
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    /// Printable ASCII without markup characters: what most text is, and what neither function changes.
    private static func isPlain(_ text: String) -> Bool {
        func plain(_ byte: UInt8) -> Bool {
            byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "<") && byte != UInt8(ascii: ">")
                && byte != UInt8(ascii: "&") && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "'")
        }
        return text.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(plain) } ?? text.utf8.allSatisfy(plain)
    }

    /// A token, displayed and escaped.
    static func token(_ token: String) -> String { escape(displayToken(token)) }

    /// A path segment for a file name: letters, digits, `.`, `_` and `-` kept, anything else as `-`.
    static func slug(_ text: String) -> String {
        var output = ""
        for scalar in text.unicodeScalars {
            let keep = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "." || scalar == "_" || scalar == "-"
            output += keep ? String(scalar) : "-"
        }
        while output.hasPrefix(".") { output.removeFirst() }
        return output.isEmpty ? "-" : output
    }

    /// A page: the shared stylesheet and script, a title, a breadcrumb trail and a body. `root` is the relative path
    /// from the page to the report's top folder ("" or "../../").
    static func page(title: String, root: String, breadcrumbs: [(String, String?)], body: String,
                     scripts: [String] = []) -> String {
        pageStart(title: title, root: root, breadcrumbs: breadcrumbs) + body + pageEnd(root: root, scripts: scripts)
    }

    /// What `page` writes before the body.
    static func pageStart(title: String, root: String, breadcrumbs: [(String, String?)]) -> String {
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:">
            <title>\(escape(title))</title>
            <link rel="stylesheet" href="\(root)assets/report.css">
            </head><body>
            <nav class="crumbs">
            """
        html += breadcrumbs.map { text, href in
            href.map { "<a href=\"\(escape($0))\">\(escape(text))</a>" } ?? "<span>\(escape(text))</span>"
        }.joined(separator: " <span class=\"sep\">/</span> ")
        return html + "</nav>\n<main>\n"
    }

    /// What `page` writes after the body.
    static func pageEnd(root: String, scripts: [String] = []) -> String {
        var html = "\n</main>\n"
        html += "<footer>qkcat report · contrastive QK decomposition (Lee, Belinkov, Viégas, Wattenberg, 2026)</footer>\n"
        for script in scripts { html += "<script src=\"\(root)assets/\(script)\"></script>\n" }
        html += "<script src=\"\(root)assets/report.js\"></script>\n</body></html>\n"
        return html
    }
}

/// A page written as UTF-8 bytes in place. Head pages, the bulk of a report, are built this way: appending to a
/// byte array costs a copy, growing a String piece by piece costs several checks per piece as well.
struct HTMLBuffer {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    var count: Int { bytes.count }

    static func += (buffer: inout HTMLBuffer, text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ buffer.bytes.append(contentsOf: $0) }) == nil {
            buffer.bytes.append(contentsOf: text.utf8)
        }
    }

    static func += (buffer: inout HTMLBuffer, bytes: ArraySlice<UInt8>) {
        buffer.bytes.append(contentsOf: bytes)
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character) -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
