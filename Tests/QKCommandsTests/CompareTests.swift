import Foundation
import QKStore
import QKTestSupport
import Testing
@testable import QKCommands

/// The planted compare series (see `PlantedCatalog.compareSeries`), built once for every suite here.
enum CompareSeries {
    static let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qkcat-compare-\(UUID().uuidString)")

    static let path: String = {
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Removed when the test process exits (a static has no deinit).
        atexit { try? FileManager.default.removeItem(at: CompareSeries.directory) }
        let path = directory.appendingPathComponent("series.sqlite").path
        let catalog = try! Catalog.open(path: path)
        try! PlantedCatalog.compareSeries(into: catalog)
        return path
    }()

    struct Result {
        var code: Int32
        var out: String
        var err: String

        /// The stdout parsed as JSON.
        var json: Any { (try? JSONSerialization.jsonObject(with: Data(out.utf8))) ?? NSNull() }
        var rows: [[String: Any]] { json as? [[String: Any]] ?? [] }
    }

    /// Runs `qkcat` in-process on the series catalog.
    static func run(_ arguments: [String], db: String? = nil, environment: [String: String] = [:]) -> Result {
        let out = StringOutput(), err = StringOutput()
        let code = QKCat.root.main(arguments: arguments + ["--db", db ?? path], environment: environment, stdout: out, stderr: err)
        return Result(code: code, out: out.text, err: err.text)
    }
}

private func row(_ rows: [[String: Any]], layer: Int, head: Int) -> [String: Any]? {
    rows.first { $0["layer"] as? Int == layer && $0["head"] as? Int == head }
}

private func degrees(_ cosine: Double) -> Double { acos(min(max(cosine, -1), 1)) * 180 / .pi }

@Suite struct CompareTests {
    @Test func reportsThePlantedRotationAnglesAndZeroForUntouchedHeads() throws {
        let result = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10", "--json"])
        #expect(result.code == 0, "\(result.err)")
        let rows = result.rows
        let rotated = try #require(row(rows, layer: 0, head: 1))
        let queryCosines = try #require(rotated["query_cosines"] as? [Double])
        let keyCosines = try #require(rotated["key_cosines"] as? [Double])
        #expect(queryCosines.count == 2 && keyCosines.count == 2)
        for cosine in queryCosines + keyCosines {
            #expect(abs(degrees(cosine) - 30) < 1, "angle \(degrees(cosine))° for a planted 30° rotation")
        }
        #expect(rotated["status"] as? String == "rotated")
        let similarity = try #require(rotated["similarity"] as? Double)
        #expect(abs(similarity - pow(cos(30 * Double.pi / 180), 2)) < 0.02)

        let querySide = try #require(row(rows, layer: 0, head: 3))
        for cosine in try #require(querySide["query_cosines"] as? [Double]) {
            #expect(abs(degrees(cosine) - 10) < 1, "query angle \(degrees(cosine))° for a planted 10° rotation")
        }
        for cosine in try #require(querySide["key_cosines"] as? [Double]) { #expect(degrees(cosine) < 1) }
        #expect(querySide["status"] as? String == "stable")

        for (layer, head) in [(0, 0), (0, 2), (1, 0), (1, 1), (1, 3)] {
            let untouched = try #require(row(rows, layer: layer, head: head))
            for cosine in (untouched["query_cosines"] as? [Double] ?? []) + (untouched["key_cosines"] as? [Double] ?? []) {
                #expect(degrees(cosine) < 0.1, "L\(layer) H\(head): angle \(degrees(cosine))° for an untouched head")
            }
            #expect(untouched["status"] as? String == "stable")
            #expect((untouched["similarity"] as? Double ?? 0) > 0.999)
        }
    }

    @Test func classifiesGrewEmergedAndVanished() throws {
        let rows = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10", "--json"]).rows
        #expect(rows.count == 16)
        let grew = try #require(row(rows, layer: 1, head: 2))
        #expect(grew["status"] as? String == "grew")
        #expect(grew["rank_from"] as? Int == 1 && grew["rank_to"] as? Int == 2)
        // One of two dimensions kept: similarity is at most 1/2 on the query side.
        #expect((grew["query_similarity"] as? Double ?? 1) <= 0.5 + 1e-6)
        for head in 0..<4 {
            let vanished = try #require(row(rows, layer: 2, head: head))
            #expect(vanished["status"] as? String == "vanished")
            #expect(vanished["rank_to"] is NSNull && vanished["rank_from"] as? Int == 2)
            let emerged = try #require(row(rows, layer: 3, head: head))
            #expect(emerged["status"] as? String == "emerged")
            #expect(emerged["rank_from"] is NSNull && emerged["rank_to"] as? Int == 2)
        }
        // Sorted by change: emerged and vanished (change 1) first, untouched heads last.
        let changes = rows.map { 1 - ($0["similarity"] as? Double ?? 0) }
        #expect(changes == changes.sorted(by: >))
    }

    @Test func textTableAndSummaryCountEveryStatus() {
        let result = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10"])
        #expect(result.code == 0)
        #expect(result.out.hasPrefix("planted step2 → step10: 16 decompositions"))
        #expect(result.out.contains("16 decompositions: 6 stable, 1 rotated, 1 grew, 0 shrank, 4 emerged, 4 vanished\n"))
        #expect(result.out.contains("LAYER  HEAD  FEATURE   VALUE  RANK"))
    }

    @Test func thresholdsAreSettable() throws {
        let strict = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10",
                                        "--stable", "0.99", "--layer", "0", "--json"]).rows
        #expect(row(strict, layer: 0, head: 3)?["status"] as? String == "rotated")
        #expect(strict.count == 4)
        let loose = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10",
                                       "--rank-change", "2", "--layer=1", "--head", "2", "--json"]).rows
        #expect(loose.count == 1)
        #expect(loose.first?["status"] as? String == "rotated")   // rank 1 → 2 is below a step of 2
        let bad = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to", "step10", "--stable", "2"])
        #expect(bad.code == 64)
        #expect(bad.err.contains("--stable"))
    }

    @Test func identicalCapturesAreStable() {
        let rows = CompareSeries.run(["compare", "--model", "planted", "--from", "step10", "--to", "main", "--json"]).rows
        #expect(rows.count == 12)
        #expect(rows.allSatisfy { $0["status"] as? String == "stable" && ($0["similarity"] as? Double ?? 0) > 0.9999 })
    }

    @Test func matchRecoversAKnownPermutationAcrossModels() throws {
        let result = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to-model", "shuffled",
                                        "--to", "seed2", "--match", "--json"])
        #expect(result.code == 0, "\(result.err)")
        let pairs = result.rows
        #expect(pairs.count == 12)   // 3 layers × 4 heads
        for pair in pairs {
            let from = try #require(pair["head_from"] as? Int), to = try #require(pair["head_to"] as? Int)
            #expect(PlantedCatalog.permutation[to] == from, "head \(from) matched to \(to)")
            #expect((pair["similarity"] as? Double ?? 0) > 0.999)
            #expect(pair["feature"] as? String == "category" && pair["value"] is NSNull)
        }
        // Without --match, the same index is compared: the shuffled heads look rotated.
        let byIndex = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to-model", "shuffled",
                                         "--to", "seed2", "--layer", "0", "--json"]).rows
        #expect(byIndex.allSatisfy { $0["status"] as? String == "rotated" })
    }

    @Test func matchTextListsMovedHeadsAndGroupTotals() {
        let result = CompareSeries.run(["compare", "--model", "planted", "--from", "step2", "--to-model", "shuffled",
                                        "--to", "seed2", "--match", "--layer", "0"])
        #expect(result.code == 0)
        #expect(result.out.contains("4 pairs in 1 group"))
        #expect(result.out.contains("layer 0 category: total 4.000 over 4 pairs (mean 1.000), 4 moved; unmatched: 0 of --from, 0 of --to"))
    }

    @Test(arguments: [
        (["--model", "nope", "--from", "step2", "--to", "step10"], "model 'nope' not found"),
        (["--model", "planted", "--from", "step3", "--to", "step10"], "checkpoint 'step3' of model 'planted' not found"),
        (["--model", "planted", "--from", "step2", "--to-model", "shuffled", "--to", "step10"],
         "checkpoint 'step10' of model 'shuffled' not found"),
        (["--model", "planted", "--from", "main", "--to", "main"], "cannot compare checkpoint 'main' of model 'planted' with itself"),
        (["--model", "planted", "--from", "main", "--to-model", "wide", "--to", "main"],
         "d_head differs: model 'planted' has 16, model 'wide' has 24"),
    ])
    func errorsExitOne(arguments: [String], message: String) {
        let result = CompareSeries.run(["compare"] + arguments)
        #expect(result.code == 1)
        #expect(result.err.hasPrefix("Error: "))
        #expect(result.err.contains(message), "\(result.err)")
        #expect(result.out.isEmpty)
    }

    @Test func missingCatalogIsAnError() {
        let result = CompareSeries.run(["compare", "--model", "m", "--from", "a", "--to", "b"], db: "/nonexistent/x.sqlite")
        #expect(result.code == 1)
        #expect(result.err.contains("no catalog at /nonexistent/x.sqlite"))
    }
}
