import Foundation

/// Helpers that damage a valid capture on purpose, for validation tests.
public enum CaptureEditing {
    /// Rewrites `capture.json` after `edit` changes its parsed object (written back with sorted keys).
    public static func editHeader(in directory: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = directory.appendingPathComponent("capture.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]).write(to: url)
    }

    /// Edits a nested object of `capture.json`, e.g. `model`.
    public static func editHeaderObject(in directory: URL, _ key: String, _ edit: (inout [String: Any]) -> Void) throws {
        try editHeader(in: directory) { header in
            var inner = header[key] as! [String: Any]
            edit(&inner)
            header[key] = inner
        }
    }

    /// Replaces `capture.json` with `text` verbatim.
    public static func writeHeader(in directory: URL, _ text: String) throws {
        try Data(text.utf8).write(to: directory.appendingPathComponent("capture.json"))
    }

    /// The lines of a text file (split at `\n`; a final newline adds no line).
    public static func lines(of url: URL) throws -> [String] {
        var lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// Replaces the 1-based line `number` of `prompts.jsonl` with `text` (which may hold several lines).
    public static func replacePromptLine(_ number: Int, in directory: URL, with text: String) throws {
        let url = directory.appendingPathComponent("prompts.jsonl")
        var lines = try lines(of: url)
        lines[number - 1] = text
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
    }

    /// Rewrites line `number` of `prompts.jsonl` after `edit` changes its parsed object.
    public static func editPromptLine(_ number: Int, in directory: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let url = directory.appendingPathComponent("prompts.jsonl")
        let line = try lines(of: url)[number - 1]
        var object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        edit(&object)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        try replacePromptLine(number, in: directory, with: text)
    }

    /// Replaces `prompts.jsonl` with `text` verbatim.
    public static func writePrompts(in directory: URL, _ text: String) throws {
        try Data(text.utf8).write(to: directory.appendingPathComponent("prompts.jsonl"))
    }

    /// A safetensors file's header JSON and data area.
    public static func readSafetensors(_ url: URL) throws -> (header: [String: Any], data: Data) {
        let bytes = try Data(contentsOf: url)
        let length = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as! [String: Any]
        return (header, bytes.subdata(in: (8 + length)..<bytes.count))
    }

    /// Writes a safetensors file from a raw header text and data area (no padding, no checks).
    public static func writeSafetensors(_ url: URL, headerText: String, data: Data) throws {
        var bytes = Data()
        let header = Data(headerText.utf8)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(header)
        bytes.append(data)
        try bytes.write(to: url)
    }

    /// Rewrites a safetensors file's header after `edit` changes it; the data area is kept as it was.
    public static func editSafetensorsHeader(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        var (header, data) = try readSafetensors(url)
        edit(&header)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)
        try writeSafetensors(url, headerText: text, data: data)
    }

    /// Overwrites bytes of a file at `offset`.
    public static func patchBytes(_ url: URL, at offset: Int, with patch: [UInt8]) throws {
        var bytes = try Data(contentsOf: url)
        bytes.replaceSubrange(offset..<(offset + patch.count), with: patch)
        try bytes.write(to: url)
    }
}
