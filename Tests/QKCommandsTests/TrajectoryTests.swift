import Foundation
import Testing
@testable import QKCommands

@Suite struct TrajectoryTests {
    @Test func ordersCheckpointsByTrainingStepNotInsertion() throws {
        // The series ingests step10, main, then step2.
        let result = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "0", "--head", "1",
                                        "--feature", "category", "--json"])
        #expect(result.code == 0, "\(result.err)")
        let points = result.rows
        #expect(points.map { $0["checkpoint"] as? String } == ["step2", "step10", "main"])
        #expect(points.allSatisfy { $0["rank"] as? Int == 2 && $0["present"] as? Bool == true })
        // step2 → step10 is the planted 30° rotation on both sides: cos² 30° = 0.75.
        #expect(points[0]["similarity_to_previous"] is NSNull)
        let toPrevious = try #require(points[1]["similarity_to_previous"] as? Double)
        #expect(abs(toPrevious - 0.75) < 0.02)
        #expect(points[1]["status"] as? String == "rotated")
        #expect((points[2]["similarity_to_previous"] as? Double ?? 0) > 0.9999)
        let toLast = try #require(points[0]["similarity_to_last"] as? Double)
        #expect(abs(toLast - 0.75) < 0.02)
        #expect((points[2]["similarity_to_last"] as? Double ?? 0) > 0.9999)
    }

    @Test func absentCheckpointsAndTheRankStep() {
        let points = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "1", "--head", "2",
                                        "--feature", "category", "--json"]).rows
        #expect(points.map { $0["rank"] as? Int } == [1, 2, 2])
        #expect(points[1]["status"] as? String == "grew")
        let vanished = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "2", "--head", "0",
                                          "--feature", "category", "--json"]).rows
        #expect(vanished.map { $0["present"] as? Bool } == [true, false, false])
        #expect(vanished[1]["status"] as? String == "vanished")
        #expect(vanished[2]["status"] is NSNull && vanished[2]["similarity_to_previous"] is NSNull)
    }

    @Test func textTableWithSparklines() {
        let result = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "0", "--head", "1",
                                        "--feature", "category"], environment: ["LANG": "C.UTF-8"])
        #expect(result.code == 0)
        let lines = result.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "planted layer 0 head 1 feature 'category' (pooled): 3 checkpoints")
        #expect(lines[1].hasPrefix("CHECKPOINT  RANK"))
        #expect(lines[2].hasPrefix("step2 ") && lines[3].hasPrefix("step10 ") && lines[4].hasPrefix("main "))
        #expect(lines.contains { $0.hasPrefix("sim. last  ") && $0.count == "sim. last  ".count + 3 })
    }

    @Test func errors() {
        let missing = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "0", "--head", "9",
                                         "--feature", "category"])
        #expect(missing.code == 1)
        #expect(missing.err == "Error: model 'planted' has no decomposition of layer 0 head 9 feature 'category' (pooled) in any checkpoint\n")
        let model = CompareSeries.run(["trajectory", "--model", "nope", "--layer", "0", "--head", "0", "--feature", "category"])
        #expect(model.code == 1)
        #expect(model.err.contains("model 'nope' not found"))
        let usage = CompareSeries.run(["trajectory", "--model", "planted", "--layer", "x", "--head", "0", "--feature", "category"])
        #expect(usage.code == 64)
    }
}
