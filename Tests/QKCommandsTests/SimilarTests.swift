import Foundation
import QKStore
import QKTestSupport
import Testing
@testable import QKCommands

/// The id of the pooled component `index` of (model, checkpoint, layer, head) in the series catalog.
private func componentID(model: String, checkpoint: String, layer: Int, head: Int, index: Int = 0) throws -> Int {
    let catalog = try Catalog.open(path: CompareSeries.path, readOnly: true)
    let hits = try catalog.search("", filters: SearchFilters(model: model, checkpoint: checkpoint, layer: layer, head: head), limit: 100)
    return Int(try #require(hits.first { $0.value == nil && $0.index == index }).id)
}

@Suite struct SimilarTests {
    @Test func findsTheSameComponentInOtherCheckpointsAndPermutedHeads() throws {
        let id = try componentID(model: "planted", checkpoint: "step2", layer: 0, head: 2)
        let result = CompareSeries.run(["similar", String(id), "--limit", "3", "--json"])
        #expect(result.code == 0, "\(result.err)")
        let hits = result.rows
        #expect(hits.count == 3)
        // The untouched head in step10 and main, and the shuffled model's head that carries head 2's bases.
        let places = Set(hits.map { "\($0["model"] as! String)/\($0["checkpoint"] as! String)/\($0["head"] as! Int)" })
        let shuffledHead = PlantedCatalog.permutation.firstIndex(of: 2)!
        let expected: Set<String> = ["planted/step10/2", "planted/main/2", "shuffled/seed2/\(shuffledHead)"]
        #expect(places == expected)
        #expect(hits.allSatisfy { ($0["score"] as? Double ?? 0) > 0.999 })
        #expect(!hits.contains { $0["id"] as? Int == id })
        let scores = hits.map { $0["score"] as? Double ?? 0 }
        #expect(scores == scores.sorted(by: >))
        // Nothing is written next to the catalog.
        let written = try FileManager.default.contentsOfDirectory(atPath: CompareSeries.directory.path)
        #expect(!written.contains { $0.contains(".vectors") })
    }

    @Test func scopesNarrowTheCandidates() throws {
        let id = try componentID(model: "planted", checkpoint: "step10", layer: 0, head: 1)
        for (scope, check) in [
            ("head", { (hit: [String: Any]) in hit["model"] as? String == "planted" && hit["layer"] as? Int == 0 && hit["head"] as? Int == 1 }),
            ("layer", { (hit: [String: Any]) in hit["model"] as? String == "planted" && hit["layer"] as? Int == 0 }),
            ("model", { (hit: [String: Any]) in hit["model"] as? String == "planted" }),
        ] {
            let hits = CompareSeries.run(["similar", String(id), "--scope", scope, "--limit", "100", "--json"]).rows
            #expect(!hits.isEmpty)
            #expect(hits.allSatisfy(check), "scope \(scope)")
        }
        // head scope: the head's other component in step10, both components in step2 and in main.
        #expect(CompareSeries.run(["similar", String(id), "--scope", "head", "--limit", "100", "--json"]).rows.count == 5)
        // d_head 24 components (model wide) are never candidates.
        let all = CompareSeries.run(["similar", String(id), "--scope", "all", "--limit", "1000", "--json"]).rows
        // planted: 3 checkpoints × 3 layers × 4 heads × rank 2, one head of rank 1 in step2; shuffled the same
        // as step2; minus the reference itself.
        let plantedCount = 3 * 3 * 4 * 2 - 1
        let shuffledCount = 3 * 4 * 2 - 1
        #expect(all.count == plantedCount + shuffledCount - 1)
        #expect(!all.contains { $0["model"] as? String == "wide" })
        // The rotated head in main is the same subspace; in step2 it is 30° away on both sides.
        let main = try #require(all.first { hit in
            hit["checkpoint"] as? String == "main" && hit["layer"] as? Int == 0 && hit["head"] as? Int == 1 && hit["index"] as? Int == 0
        })
        #expect((main["score"] as? Double ?? 0) > 0.999)
    }

    @Test func textOutputDescribesTheReference() throws {
        let id = try componentID(model: "planted", checkpoint: "main", layer: 1, head: 0)
        let result = CompareSeries.run(["similar", String(id), "--limit", "2"])
        #expect(result.code == 0)
        let lines = result.out.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("Component \(id): planted main layer 1 head 0 category c0 σ "))
        #expect(lines[1] == "Closest of 93 components (scope all, d_head 16):")
        #expect(lines[2].hasPrefix("SCORE  |COS U|  |COS V|"))
        #expect(lines.count == 5)
    }

    @Test func errors() {
        let missing = CompareSeries.run(["similar", "999999"])
        #expect(missing.code == 1)
        #expect(missing.err == "Error: component 999999 not found\n")
        #expect(CompareSeries.run(["similar", "abc"]).code == 64)
        #expect(CompareSeries.run(["similar", "1", "--limit", "0"]).code == 64)
        #expect(CompareSeries.run(["similar", "1", "--scope", "galaxy"]).code == 64)
    }
}
