import Foundation
import Testing
@testable import QKCommands

@Suite("export")
struct ExportTests {
    let db = SharedCatalog.shared.db

    @Test("JSON Lines carry every documented field")
    func jsonl() throws {
        let lines = try jsonLines(qkcat(["export", "--db", db, "--checkpoint", "main", "--layer", "1"]).out)
        #expect(lines.count == 4 * (2 + 4 + 4))   // heads × (pooled ×2 features + per-value 4 + 4)
        for line in lines {
            for field in ["model", "checkpoint", "layer", "head", "kv_head", "feature", "value", "energy", "rank",
                          "n_pos_pairs", "n_neg_pairs", "frobenius", "singular_values", "components"] {
                #expect(line[field] != nil, "missing \(field)")
            }
            let components = line["components"] as! [[String: Any]]
            #expect(components.count == line["rank"] as! Int)
            for c in components {
                let u = c["u"] as! [Double]
                #expect(u.count == 16)
                #expect(abs(u.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
                let keys = c["top_keys"] as! [[String: Any]]
                #expect(zip(keys, keys.dropFirst()).allSatisfy { ($0["score"] as! Double) >= ($1["score"] as! Double) })
            }
        }
    }

    @Test("CSV has one row per component and quotes labels")
    func csv() throws {
        let out = qkcat(["export", "--db", db, "--checkpoint", "step2", "--format", "csv"]).out
        let rows = out.split(separator: "\n")
        #expect(rows[0] == Substring(QKCat.csvHeader.joined(separator: ",")))
        let lines = try jsonLines(qkcat(["export", "--db", db, "--checkpoint", "step2"]).out)
        let components = lines.reduce(0) { $0 + ($1["components"] as! [Any]).count }
        #expect(rows.count == components + 1)
        #expect(QKCat.csvField("a, \"b\"") == "\"a, \"\"b\"\"\"")
        #expect(QKCat.csvField("plain") == "plain")
    }
}
