import Foundation
import Testing
import QKTestSupport
@testable import QKCommands

@Suite("show")
struct ShowTests {
    let db = SharedCatalog.shared.db

    @Test("a head's decompositions: spectrum, counts, components with examples in context")
    func head() throws {
        let result = qkcat(["show", "--db", db, "--model", "planted/tiny", "--checkpoint", "step2", "--layer", "0",
                            "--head", "1", "--feature", "category", "--examples", "2"])
        #expect(result.code == 0, "\(result.err)")
        let text = result.out
        #expect(text.contains("planted/tiny @ step2  layer 0  head 1 (kv 0)  category (pooled)"))
        #expect(text.contains("category=category0 (") == false)
        #expect(text.contains("  σ1 "))
        #expect(text.contains("c0  id ") && text.contains("c1  id "))
        // Examples show their token in brackets inside the prompt's context.
        #expect(text.range(of: #"\[w\d_\d\]"#, options: .regularExpression) != nil)
        let json = qkcat(["show", "--db", db, "--model", "planted/tiny", "--checkpoint", "step2", "--layer", "0",
                          "--head", "1", "--feature", "category", "--json"])
        let decompositions = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as! [[String: Any]]
        // Pooled plus one per value (category0…category3).
        #expect(decompositions.count == 5)
        let pooled = try #require(decompositions.first { $0["value"] is NSNull })
        // 80 prompts: the planted rank 2 plus finite-sample leakage from the other feature.
        let rank = try #require(pooled["rank"] as? Int)
        #expect(rank >= 2)
        #expect(text.contains("rank \(rank) of 16 at energy 0.99"))
        let component = (pooled["components"] as! [[String: Any]])[0]
        let top = (component["top_keys"] as! [[String: Any]])[0]
        let context = top["context"] as! [String]
        #expect(context[top["position"] as! Int] == top["token"] as? String)
    }

    @Test("one component by id")
    func byID() throws {
        let hits = try JSONSerialization.jsonObject(with: Data(qkcat(["search", "order", "--db", db, "--json", "--limit", "1"]).out.utf8)) as! [[String: Any]]
        let id = hits[0]["id"] as! Int
        let result = qkcat(["show", String(id), "--db", db])
        #expect(result.code == 0)
        #expect(result.out.contains("id \(id) "))
        #expect(result.out.components(separatedBy: "  id ").count == 2)
    }

    @Test("bad requests")
    func errors() {
        #expect(qkcat(["show", "--db", db]).code == 64)
        #expect(qkcat(["show", "1", "--layer", "0", "--db", db]).code == 64)
        let missing = qkcat(["show", "987654", "--db", db])
        #expect(missing.code == 1)
        #expect(missing.err.hasPrefix("Error: "))
        let none = qkcat(["show", "--db", db, "--model", "planted/tiny", "--layer", "7", "--head", "0"])
        #expect(none.code == 1)
        #expect(none.err.hasPrefix("Error: no decomposition matches"))
    }
}
