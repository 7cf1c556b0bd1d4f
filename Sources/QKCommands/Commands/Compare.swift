import Foundation
import QKEngine
import QKStore

/// `qkcat compare`: how each head's feature subspaces changed between two checkpoints or models.
enum CompareCommand {
    static let command = Command(
        name: "compare",
        abstract: "Compare heads' feature subspaces between two checkpoints (or models).",
        discussion: """
            For every (layer, head, feature, value) present in either checkpoint: both ranks, the cosines of \
            the principal angles between the query subspaces (spans of the components' u) and between the key \
            subspaces (spans of v), and one similarity in [0, 1]: the mean squared cosine over the larger \
            rank, averaged over the query and key sides, so a subspace that gained or lost a dimension scores \
            below 1. Rows are sorted by change (1 − similarity), largest first.

            Status: emerged (only in --to), vanished (only in --from), grew / shrank (the rank rose / fell by \
            at least --rank-change), else stable when the similarity is at least --stable, else rotated.

            --to-model compares checkpoint --from of --model with checkpoint --to of another model of the same \
            d_head. --match pairs each head of --from with a head of --to in the same layer, for the same \
            feature and value, by an optimal one-to-one assignment (Hungarian algorithm) maximizing the total \
            similarity, for models whose heads need not keep their index.
            """,
        options: [
            Shared.db,
            .option("model", required: true, help: "The model (of --from, and of --to unless --to-model is given)."),
            .option("from", valueName: "checkpoint", required: true, help: "The earlier checkpoint."),
            .option("to", valueName: "checkpoint", required: true, help: "The later checkpoint."),
            .option("to-model", valueName: "model", help: "The model of --to, when it is another model."),
            .option("feature", help: "Only this feature."),
            .option("value", help: "Only the per-value decompositions of this feature value."),
            .option("layer", help: "Only this layer."),
            .option("head", help: "Only this head (of --from, with --match)."),
            .flag("match", help: "Match heads by subspace similarity instead of by index."),
            .option("stable", valueName: "similarity", default: "0.9",
                    help: "Similarity at or above which an unchanged rank is stable, below which it is rotated."),
            .option("rank-change", valueName: "n", default: "1", help: "Smallest rank difference reported as grew or shrank."),
            Shared.json,
        ],
        run: run)

    static func run(_ invocation: Invocation) throws {
        let model = try invocation.string("model")
        let toModel = invocation.optionalString("to-model") ?? model
        let from = try invocation.string("from"), to = try invocation.string("to")
        let stable = try invocation.double("stable")
        guard (0...1).contains(stable) else {
            throw CommandError.invalidValue(String(stable), for: "--stable <similarity>", reason: "expected a number in [0, 1]")
        }
        let rankChange = try invocation.int("rank-change")
        guard rankChange >= 1 else {
            throw CommandError.invalidValue(String(rankChange), for: "--rank-change <n>", reason: "expected a positive integer")
        }
        let thresholds = CompareThresholds(stableSimilarity: stable, rankChange: rankChange)
        let filters = SearchFilters(layer: try invocation.optionalInt("layer"), head: try invocation.optionalInt("head"),
                                    feature: invocation.optionalString("feature"), value: invocation.optionalString("value"))

        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let (fromModel, toModelRecord) = (try catalog.model(named: model), try catalog.model(named: toModel))
        _ = try catalog.checkpoint(from, ofModel: model)
        _ = try catalog.checkpoint(to, ofModel: toModel)
        if model == toModel && from == to {
            throw CommandError.failure("cannot compare checkpoint '\(from)' of model '\(model)' with itself; give two different checkpoints")
        }
        if fromModel.headDimension != toModelRecord.headDimension {
            throw CommandError.failure("""
                d_head differs: model '\(model)' has \(fromModel.headDimension), model '\(toModel)' has \
                \(toModelRecord.headDimension); subspaces of different dimensions cannot be compared
                """)
        }
        let match = invocation.flag("match")
        // With --match, --head selects heads of --from only: every head of --to stays a candidate.
        var toFilters = filters
        if match { toFilters.head = nil }
        let a = try catalog.subspaces(model: model, checkpoint: from, filters: filters)
        let b = try catalog.subspaces(model: toModel, checkpoint: to, filters: toFilters)
        let title = toModel == model ? "\(model) \(from) → \(to)" : "\(model) \(from) → \(toModel) \(to)"
        if match {
            let groups = CheckpointComparison.match(a, b)
            if invocation.flag("json") {
                invocation.printJSON(.array(groups.flatMap { group in group.pairs.map { matchJSON($0, group: group) } }))
            } else {
                printMatch(groups, title: title, invocation: invocation)
            }
        } else {
            let rows = CheckpointComparison.compare(a, b, thresholds: thresholds)
            if invocation.flag("json") {
                invocation.printJSON(.array(rows.map(rowJSON)))
            } else {
                printRows(rows, title: title, thresholds: thresholds, invocation: invocation)
            }
        }
    }

    // MARK: Text

    static func printRows(_ rows: [CheckpointComparison.Row], title: String, thresholds: CompareThresholds,
                          invocation: Invocation) {
        invocation.print("\(title): \(rows.count) decomposition\(rows.count == 1 ? "" : "s") "
            + "(stable ≥ \(Shared.number(thresholds.stableSimilarity, digits: 2)), rank change ≥ \(thresholds.rankChange))")
        guard !rows.isEmpty else { return }
        var table = Table(columns: [
            .init("LAYER", alignment: .right), .init("HEAD", alignment: .right), .init("FEATURE"), .init("VALUE"),
            .init("RANK"), .init("Q ANGLE", alignment: .right), .init("K ANGLE", alignment: .right),
            .init("SIMILARITY", alignment: .right), .init("Δσ₁", alignment: .right), .init("Δ‖ΔC‖", alignment: .right),
            .init("STATUS"),
        ])
        for row in rows {
            let change = row.change
            table.addRow([
                String(row.key.layer), String(row.key.head), row.key.feature, row.key.value ?? "*",
                "\(change.rankFrom.map(String.init) ?? "–")→\(change.rankTo.map(String.init) ?? "–")",
                degrees(change.queryAngleDegrees), degrees(change.keyAngleDegrees),
                Shared.number(change.similarity), signed(change.sigma1Change), signed(change.frobeniusChange),
                change.status.rawValue,
            ])
        }
        invocation.stdout.write(table.render(style: invocation.style))
        invocation.print(summary(rows.map(\.change.status)))
    }

    /// `12 decompositions: 5 stable, 2 rotated, 1 grew, 0 shrank, 3 emerged, 1 vanished`.
    static func summary(_ statuses: [ChangeStatus]) -> String {
        let counts = ChangeStatus.allCases.map { status in "\(statuses.filter { $0 == status }.count) \(status.rawValue)" }
        return "\(statuses.count) decomposition\(statuses.count == 1 ? "" : "s"): " + counts.joined(separator: ", ")
    }

    static func printMatch(_ groups: [CheckpointComparison.MatchGroup<StoredSubspaces>], title: String, invocation: Invocation) {
        let pairs = groups.reduce(0) { $0 + $1.pairs.count }
        invocation.print("\(title), heads matched by subspace similarity: \(pairs) pair\(pairs == 1 ? "" : "s") in \(groups.count) group\(groups.count == 1 ? "" : "s")")
        guard !groups.isEmpty else { return }
        var table = Table(columns: [
            .init("LAYER", alignment: .right), .init("FEATURE"), .init("VALUE"), .init("FROM", alignment: .right),
            .init("TO", alignment: .right), .init("SIMILARITY", alignment: .right), .init("QUERY", alignment: .right),
            .init("KEY", alignment: .right), .init("RANK"), .init(""),
        ])
        for group in groups {
            for pair in group.pairs {
                table.addRow([
                    String(group.layer), group.feature, group.value ?? "*", String(pair.from.head), String(pair.to.head),
                    Shared.number(pair.similarity.combined), Shared.number(pair.similarity.query),
                    Shared.number(pair.similarity.key), "\(pair.from.rank)→\(pair.to.rank)",
                    pair.from.head == pair.to.head ? "" : "moved",
                ])
            }
        }
        invocation.stdout.write(table.render(style: invocation.style))
        for group in groups {
            let moved = group.pairs.filter { $0.from.head != $0.to.head }.count
            invocation.print("layer \(group.layer) \(group.feature)\(group.value.map { "=\($0)" } ?? ""): total "
                + "\(Shared.number(group.total)) over \(group.pairs.count) pairs (mean \(Shared.number(group.total / Double(max(group.pairs.count, 1))))), "
                + "\(moved) moved; unmatched: \(group.unmatchedFrom.count) of --from, \(group.unmatchedTo.count) of --to")
        }
    }

    static func degrees(_ value: Double?) -> String { value.map { String(format: "%.1f°", $0) } ?? "–" }

    static func signed(_ value: Double?) -> String { value.map { String(format: "%+.3f", $0) } ?? "–" }

    // MARK: JSON

    static func rowJSON(_ row: CheckpointComparison.Row) -> JSONValue {
        let change = row.change
        return [
            "layer": .int(row.key.layer), "head": .int(row.key.head), "feature": .string(row.key.feature),
            "value": JSONValue(row.key.value), "rank_from": JSONValue(change.rankFrom), "rank_to": JSONValue(change.rankTo),
            "query_cosines": .numbers(change.queryCosines), "key_cosines": .numbers(change.keyCosines),
            "query_angle_degrees": JSONValue(change.queryAngleDegrees), "key_angle_degrees": JSONValue(change.keyAngleDegrees),
            "query_similarity": .number(change.querySimilarity), "key_similarity": .number(change.keySimilarity),
            "similarity": .number(change.similarity), "sigma1_from": JSONValue(change.sigma1From),
            "sigma1_to": JSONValue(change.sigma1To), "sigma1_change": JSONValue(change.sigma1Change),
            "frobenius_from": JSONValue(change.frobeniusFrom), "frobenius_to": JSONValue(change.frobeniusTo),
            "frobenius_change": JSONValue(change.frobeniusChange), "status": .string(change.status.rawValue),
        ]
    }

    static func matchJSON(_ pair: CheckpointComparison.MatchedPair<StoredSubspaces>, group: CheckpointComparison.MatchGroup<StoredSubspaces>) -> JSONValue {
        [
            "layer": .int(group.layer), "feature": .string(group.feature), "value": JSONValue(group.value),
            "head_from": .int(pair.from.head), "head_to": .int(pair.to.head), "similarity": .number(pair.similarity.combined),
            "query_similarity": .number(pair.similarity.query), "key_similarity": .number(pair.similarity.key),
            "rank_from": .int(pair.from.rank), "rank_to": .int(pair.to.rank), "group_total": .number(group.total),
        ]
    }
}

