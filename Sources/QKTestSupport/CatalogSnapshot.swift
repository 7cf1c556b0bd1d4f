import Foundation
import QKStore

/// Every row of every table of a catalog, rendered as sorted text, to prove that an operation
/// left a catalog's content exactly as it was.
public enum CatalogSnapshot {
    /// The catalog's full content (schema included) and the result of `PRAGMA integrity_check`.
    public static func take(_ path: String) throws -> (content: String, integrity: String) {
        let database = try Database(path: path, readOnly: true)
        var tables: [(String, String)] = []
        let list = try database.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        while try list.step() { tables.append((list.text(at: 0) ?? "", list.text(at: 1) ?? "")) }
        var content = ""
        for (name, sql) in tables {
            content += "== \(name)\n\(sql)\n"
            let rows = try database.prepare("SELECT * FROM \"\(name.replacingOccurrences(of: "\"", with: "\"\""))\"")
            var rendered: [String] = []
            while try rows.step() {
                rendered.append((0..<Int32(rows.columnCount)).map { column in
                    switch rows.value(at: column) {
                    case .null: "NULL"
                    case .integer(let i): String(i)
                    case .real(let r): String(r)
                    case .text(let t): t.debugDescription
                    case .blob(let b): b.map { String(format: "%02x", $0) }.joined()
                    }
                }.joined(separator: "|"))
            }
            content += rendered.sorted().joined(separator: "\n") + "\n"
        }
        let integrity = try database.scalarText("PRAGMA integrity_check") ?? ""
        return (content, integrity)
    }
}
