import Foundation
import QKEngine
import QKStore

/// `qkcat trajectory`: one head's feature subspace across all of a model's checkpoints.
enum TrajectoryCommand {
    static let command = Command(
        name: "trajectory",
        abstract: "Follow one head's feature subspace across a model's checkpoints.",
        discussion: """
            For each checkpoint in training order (step2 < step10 < main): the rank, σ₁ and ‖ΔC‖, the similarity \
            to the previous checkpoint and to the last one (as in 'qkcat compare': the mean squared \
            principal-angle cosine over the larger rank, averaged over query and key sides), and the status \
            against the previous checkpoint. Sparklines summarize σ₁ and the similarity to the last checkpoint.
            """,
        options: [
            Shared.db,
            .option("model", required: true, help: "The model."),
            .option("layer", required: true, help: "The layer."),
            .option("head", required: true, help: "The head."),
            .option("feature", required: true, help: "The feature."),
            .option("value", help: "A feature value (default: the pooled decomposition)."),
            .option("stable", valueName: "similarity", default: "0.9",
                    help: "Similarity at or above which an unchanged rank is stable."),
            Shared.json,
        ],
        run: run)

    struct Point {
        var checkpoint: String
        var subspaces: StoredSubspaces?
        var toPrevious: SubspaceChange?
        var toLast: SubspaceChange?
    }

    /// The trajectory's points: similarities to the previous and the last checkpoint where both exist.
    static func points(_ rows: [(checkpoint: CheckpointRecord, subspaces: StoredSubspaces?)],
                       thresholds: CompareThresholds) -> [Point] {
        let last = rows.last?.subspaces?.subspaces
        var points: [Point] = []
        var previous: HeadSubspaces? = nil
        for (index, row) in rows.enumerated() {
            let current = row.subspaces?.subspaces
            var point = Point(checkpoint: row.checkpoint.name, subspaces: row.subspaces)
            if index > 0, previous != nil || current != nil {
                point.toPrevious = SubspaceChange(from: previous, to: current, thresholds: thresholds)
            }
            if let current, let last { point.toLast = SubspaceChange(from: current, to: last, thresholds: thresholds) }
            points.append(point)
            previous = current
        }
        return points
    }

    static func run(_ invocation: Invocation) throws {
        let model = try invocation.string("model")
        let layer = try invocation.int("layer"), head = try invocation.int("head")
        let feature = try invocation.string("feature")
        let value = invocation.optionalString("value")
        let stable = try invocation.double("stable")
        guard (0...1).contains(stable) else {
            throw CommandError.invalidValue(String(stable), for: "--stable <similarity>", reason: "expected a number in [0, 1]")
        }
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let rows = try catalog.trajectory(model: model, layer: layer, head: head, feature: feature, value: value)
        let what = "layer \(layer) head \(head) feature '\(feature)'" + (value.map { " value '\($0)'" } ?? " (pooled)")
        guard rows.contains(where: { $0.subspaces != nil }) else {
            throw CommandError.failure("model '\(model)' has no decomposition of \(what) in any checkpoint")
        }
        let points = points(rows, thresholds: CompareThresholds(stableSimilarity: stable))
        if invocation.flag("json") {
            invocation.printJSON(.array(points.map { point in
                [
                    "checkpoint": .string(point.checkpoint), "model": .string(model), "layer": .int(layer),
                    "head": .int(head), "feature": .string(feature), "value": JSONValue(value),
                    "present": .bool(point.subspaces != nil), "rank": JSONValue(point.subspaces?.rank),
                    "sigma1": JSONValue(point.subspaces?.sigma1), "frobenius": JSONValue(point.subspaces?.frobenius),
                    "similarity_to_previous": JSONValue(point.toPrevious?.similarity),
                    "similarity_to_last": JSONValue(point.toLast?.similarity),
                    "status": JSONValue(point.toPrevious?.status.rawValue),
                ]
            }))
            return
        }
        invocation.print("\(model) \(what): \(points.count) checkpoint\(points.count == 1 ? "" : "s")")
        var table = Table(columns: [
            .init("CHECKPOINT"), .init("RANK", alignment: .right), .init("σ₁", alignment: .right),
            .init("‖ΔC‖", alignment: .right), .init("SIM PREV", alignment: .right), .init("SIM LAST", alignment: .right),
            .init("STATUS"),
        ])
        for point in points {
            table.addRow([
                point.checkpoint, point.subspaces.map { String($0.rank) } ?? "–",
                point.subspaces.map { Shared.number($0.sigma1) } ?? "–",
                point.subspaces.map { Shared.number($0.frobenius) } ?? "–",
                point.toPrevious.map { Shared.number($0.similarity) } ?? "–",
                point.toLast.map { Shared.number($0.similarity) } ?? "–",
                point.toPrevious?.status.rawValue ?? "",
            ])
        }
        invocation.stdout.write(table.render(style: invocation.style))
        let sigmas = points.map { $0.subspaces?.sigma1 ?? .nan }
        let toLast = points.map { $0.toLast?.similarity ?? .nan }
        let ranks = points.map { $0.subspaces.map { Double($0.rank) } ?? .nan }
        // From zero, so that a flat σ₁ or rank reads as flat rather than as its rounding noise.
        let sigmaRange = 0...max(sigmas.filter(\.isFinite).max() ?? 1, .leastNormalMagnitude)
        let rankRange = 0...max(ranks.filter(\.isFinite).max() ?? 1, 1)
        invocation.print("σ₁         " + sparkline(sigmas, range: sigmaRange, unicode: invocation.unicode))
        invocation.print("rank       " + sparkline(ranks, range: rankRange, unicode: invocation.unicode))
        invocation.print("sim. last  " + sparkline(toLast, range: 0...1, unicode: invocation.unicode))
    }
}
