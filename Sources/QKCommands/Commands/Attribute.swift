import Foundation
import QKEngine
import QKStore

/// `qkcat attribute`: splits attention logits into the parts the catalog's feature subspaces explain.
enum Attribute {
    static let command = Command(
        name: "attribute",
        abstract: "Split attention logits into catalog feature parts.",
        discussion: """
            For one head, each feature's query subspace is the query side (u of the kept components) of its \
            pooled decomposition in the catalog, for the capture's model and checkpoint (or --checkpoint). The \
            query splits as q = Σ_f q_f + q_resid, so every logit q·k splits exactly into Σ_f q_f·k + q_resid·k. \
            The explained fraction of a prompt is 1 − ‖resid logits‖² / ‖total logits‖² over its keys.

            Features are taken in the order given. orthogonalize (default): each feature projects on the part \
            of its subspace orthogonal to the earlier features'; the parts fill the joint span and the residual \
            is orthogonal to every feature. residualize: each feature projects, on its whole subspace, what the \
            earlier features left; each part stays inside its own subspace, but where subspaces overlap the \
            residual keeps some of the overlap (it is orthogonal to the last feature only), so less is \
            explained on average. Both agree when subspaces are orthogonal.

            With --all: every prompt, and per head the mean ± standard deviation over prompts of the explained \
            fraction and of what each feature adds to it (given the features before it).
            """,
        arguments: [Argument("capture-dir", help: "The capture directory to read queries and keys from.")],
        options: [
            Shared.db,
            .option("prompt", valueName: "id", help: "The prompt to attribute (its id in prompts.jsonl)."),
            .flag("all", help: "Every prompt; per head the mean and spread of the explained fractions."),
            .option("layer", help: "The layer (required with --prompt)."),
            .option("head", help: "The head (required with --prompt)."),
            .option("features", valueName: "f1,f2", repeatable: true,
                    help: "Features in the order to use (default: every feature in the catalog, by name)."),
            .option("method", default: "orthogonalize", values: AttributionMethod.allCases.map(\.rawValue),
                    help: "How overlapping subspaces share the query."),
            .flag("scale", help: "Divide logits by √d_head, as attention does."),
            .option("checkpoint", help: "The catalog checkpoint whose subspaces to use (default: the capture's)."),
            Shared.json,
        ],
        run: run)

    static func run(_ invocation: Invocation) throws {
        let all = invocation.flag("all")
        let promptID = invocation.optionalString("prompt")
        guard all != (promptID != nil) else {
            throw CommandError.usage(all ? "--all and --prompt exclude each other" : "give --prompt ID or --all")
        }
        let layer = try invocation.optionalInt("layer")
        let head = try invocation.optionalInt("head")
        let method = AttributionMethod(rawValue: try invocation.string("method"))!
        let requested = invocation.list("features")
        if let repeated = requested.first(where: { name in requested.filter { $0 == name }.count > 1 }) {
            throw CommandError.usage("feature '\(repeated)' is listed twice in --features")
        }
        if !all && (layer == nil || head == nil) { throw CommandError.usage("--prompt needs --layer and --head") }

        let reader = try CaptureReader.open(URL(fileURLWithPath: try invocation.string("capture-dir")))
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let capturedModel = reader.header.model
        let checkpoint = invocation.optionalString("checkpoint") ?? capturedModel.checkpoint
        try checkCompatible(catalog: catalog, model: capturedModel, checkpoint: checkpoint)
        let place = "model '\(capturedModel.name)' at checkpoint '\(checkpoint)'"
        let context = Context(invocation: invocation, reader: reader, model: capturedModel.name, checkpoint: checkpoint,
                              method: method, place: place)

        if let promptID, let layer, let head {
            let records = try catalog.subspaces(model: capturedModel.name, checkpoint: checkpoint,
                                                  filters: SearchFilters(layer: layer, head: head), pooledOnly: true)
            guard !records.isEmpty else {
                throw CommandError.failure("layer \(layer) head \(head) of \(place) has no pooled decomposition in the catalog")
            }
            let available = records.map(\.feature)
            for name in requested where !available.contains(name) {
                throw CommandError.failure(
                    "feature '\(name)' has no pooled decomposition at layer \(layer) head \(head) of \(place) "
                        + "(it has: \(available.joined(separator: ", ")))")
            }
            let names = requested.isEmpty ? available : requested
            let subspaces = names.map { name in
                FeatureSubspace(name: name, vectors: records.first { $0.feature == name }!.u)
            }
            let splitter = try QuerySplitter(features: subspaces, dimension: capturedModel.headDimension, method: method)
            let attributor = CaptureAttributor(reader: reader)
            let index = try attributor.promptIndex(id: promptID)
            let scale = invocation.flag("scale") ? 1 / Double(capturedModel.headDimension).squareRoot() : 1
            let result = try attributor.attribute(prompt: index, layer: layer, head: head, splitter: splitter, scale: scale)
            try printPrompt(result, promptID: promptID, prompt: index, layer: layer, head: head, features: names,
                            scaled: invocation.flag("scale"), context: context)
        } else {
            try runAll(layer: layer, head: head, requested: requested, catalog: catalog, context: context)
        }
    }

    struct Context {
        var invocation: Invocation
        var reader: CaptureReader
        var model: String
        var checkpoint: String
        var method: AttributionMethod
        var place: String
    }

    /// The catalog must hold the capture's model with the same d_head, and the checkpoint.
    static func checkCompatible(catalog: Catalog, model: ModelInfo, checkpoint: String) throws {
        guard let record = try catalog.listModels().first(where: { $0.name == model.name }) else {
            let names = try catalog.listModels().map(\.name)
            throw CommandError.failure(
                "the capture's model '\(model.name)' is not in the catalog "
                    + (names.isEmpty ? "(it is empty)" : "(it holds: \(names.joined(separator: ", ")))"))
        }
        guard record.headDimension == model.headDimension else {
            throw CommandError.failure(
                "the capture's d_head is \(model.headDimension), but model '\(model.name)' in the catalog has d_head \(record.headDimension)")
        }
        let checkpoints = try catalog.listCheckpoints(SearchFilters(model: model.name)).map(\.name)
        guard checkpoints.contains(checkpoint) else {
            throw CommandError.failure(
                "model '\(model.name)' has no checkpoint '\(checkpoint)' in the catalog (it has: \(checkpoints.joined(separator: ", ")))")
        }
    }

    // MARK: One prompt

    static func printPrompt(_ result: PromptAttribution, promptID: String, prompt: Int, layer: Int, head: Int,
                            features: [String], scaled: Bool, context: Context) throws {
        let invocation = context.invocation
        let table = context.reader.prompts
        let tokens = try context.reader.tokens(ofPrompt: prompt)
        let keyRange = table.keyStart[prompt]..<table.keyStart[prompt + 1]
        let positions = keyRange.map { Int(table.keyPositions[$0]) }
        if invocation.flag("json") {
            let keys: [JSONValue] = zip(positions, result.keys).map { position, key in
                [
                    "position": .int(position),
                    "token": .string(position < tokens.count ? tokens[position] : ""),
                    "total": .number(key.total),
                    "parts": .object(zip(features, key.parts).map { ($0, .number($1)) }),
                    "residual": .number(key.residual),
                ]
            }
            invocation.printJSON([
                "prompt_id": .string(promptID),
                "layer": .int(layer),
                "head": .int(head),
                "method": .string(context.method.rawValue),
                "features": .strings(features),
                "keys": .array(keys),
                "explained_fraction": JSONValue(result.explainedFraction),
                "explained_by_feature": .object(zip(features, result.featureFractions).map { ($0, JSONValue($1)) }),
                "scaled": .bool(scaled),
            ])
            return
        }
        invocation.print("prompt \(promptID) · layer \(layer) head \(head) · \(context.model) @ \(context.checkpoint) · "
                             + "\(context.method.rawValue) · logits \(scaled ? "q·k/√d" : "q·k")")
        var columns = [Table.Column("POS", alignment: .right), Table.Column("TOKEN", maximumWidth: 16),
                       Table.Column("TOTAL", alignment: .right)]
        columns += features.map { Table.Column($0, alignment: .right) }
        columns += [Table.Column("RESIDUAL", alignment: .right), Table.Column("")]
        var output = Table(columns: columns)
        let largest = result.keys.map { abs($0.total) }.max() ?? 0
        for (position, key) in zip(positions, result.keys) {
            let token = position < tokens.count ? tokens[position] : ""
            output.addRow([String(position), visible(token), signed(key.total)] + key.parts.map(signed)
                + [signed(key.residual), TextBar.signedBar(value: key.total, maximumMagnitude: largest, halfWidth: 8,
                                                           unicode: invocation.unicode)])
        }
        invocation.stdout.write(output.render(style: invocation.style))
        let shares = zip(features, result.featureFractions).map { "\($0) \(fraction($1))" }.joined(separator: ", ")
        invocation.print("explained fraction \(fraction(result.explainedFraction)) (\(shares))")
    }

    // MARK: Every prompt

    static func runAll(layer: Int?, head: Int?, requested: [String], catalog: Catalog, context: Context) throws {
        let invocation = context.invocation
        let header = context.reader.header
        if let layer, !header.layers.contains(layer) {
            throw CommandError.failure(
                "layer \(layer) is not in the capture (it holds: \(header.layers.map(String.init).joined(separator: ", ")))")
        }
        let records = try catalog.subspaces(model: context.model, checkpoint: context.checkpoint,
                                        filters: SearchFilters(layer: layer, head: head), pooledOnly: true)
        let where_ = [layer.map { "layer \($0)" }, head.map { "head \($0)" }].compactMap { $0 }.joined(separator: " ")
        let scope = where_.isEmpty ? context.place : "\(where_) of \(context.place)"
        guard !records.isEmpty else { throw CommandError.failure("\(scope) has no pooled decomposition in the catalog") }
        let available = Set(records.map(\.feature))
        for name in requested where !available.contains(name) {
            throw CommandError.failure(
                "feature '\(name)' has no pooled decomposition in \(scope) (there are: \(available.sorted().joined(separator: ", ")))")
        }
        let names = requested.isEmpty ? available.sorted() : requested
        var byHead: [LayerHead: [String: [[Float]]]] = [:]
        var order: [LayerHead] = []
        var outside = 0
        for record in records where names.contains(record.feature) {
            let key = LayerHead(layer: record.layer, head: record.head)
            guard header.layers.contains(record.layer), record.head < header.model.headCount else {
                if byHead[key] == nil { outside += 1; byHead[key] = [:] }
                continue
            }
            if byHead[key] == nil { order.append(key) }
            byHead[key, default: [:]][record.feature] = record.u
        }
        if outside > 0 {
            invocation.stderr.line("note: \(outside) catalog head(s) are in layers the capture does not hold; skipped")
        }
        guard !order.isEmpty else { throw CommandError.failure("the capture holds none of the heads \(scope) has in the catalog") }
        var heads: [HeadSplitter] = []
        for key in order {
            let subspaces = names.map { FeatureSubspace(name: $0, vectors: byHead[key]![$0] ?? []) }
            let splitter = try QuerySplitter(features: subspaces, dimension: header.model.headDimension, method: context.method)
            heads.append(HeadSplitter(layer: key.layer, head: key.head, splitter: splitter))
        }
        let summaries = try CaptureAttributor(reader: context.reader).summarize(heads: heads)
        if invocation.flag("json") {
            func statistics(_ s: FractionStatistics?) -> JSONValue {
                guard let s, s.count > 0 else { return .null }
                return ["mean": .number(s.mean), "std": .number(s.standardDeviation), "median": .number(s.median),
                        "min": .number(s.minimum), "max": .number(s.maximum)]
            }
            let rows: [JSONValue] = summaries.map { summary in
                [
                    "layer": .int(summary.layer),
                    "head": .int(summary.head),
                    "prompts": .int(summary.promptCount),
                    "explained": statistics(summary.explained),
                    "features": .object(zip(names, summary.features).map { ($0, statistics($1)) }),
                ]
            }
            invocation.printJSON([
                "model": .string(context.model),
                "checkpoint": .string(context.checkpoint),
                "method": .string(context.method.rawValue),
                "features": .strings(names),
                "prompts": .int(context.reader.prompts.promptCount),
                "heads": .array(rows),
            ])
            return
        }
        invocation.print("\(context.model) @ \(context.checkpoint) · \(context.reader.prompts.promptCount) prompts · "
                             + "\(context.method.rawValue) · explained fraction per prompt, mean ± sd")
        var columns = [Table.Column("LAYER", alignment: .right), Table.Column("HEAD", alignment: .right),
                       Table.Column("PROMPTS", alignment: .right), Table.Column("EXPLAINED", alignment: .right),
                       Table.Column("")]
        columns += names.map { Table.Column($0, alignment: .right) }
        var output = Table(columns: columns)
        func cell(_ s: FractionStatistics?) -> String {
            guard let s, s.count > 0 else { return "—" }
            return "\(Shared.number(s.mean)) ± \(Shared.number(s.standardDeviation))"
        }
        for summary in summaries {
            let bar = TextBar.bar(fraction: summary.explained.count > 0 ? summary.explained.mean : 0, width: 10,
                                  unicode: invocation.unicode)
            output.addRow([String(summary.layer), String(summary.head), String(summary.promptCount), cell(summary.explained),
                           bar] + summary.features.map(cell))
        }
        invocation.stdout.write(output.render(style: invocation.style))
    }

    // MARK: Formatting

    static func signed(_ x: Double) -> String { String(format: "%+.3f", x) }

    static func fraction(_ x: Double?) -> String { x.map { Shared.number($0) } ?? "—" }

    /// Makes spaces and newlines of a token visible in a table cell.
    static func visible(_ token: String) -> String {
        token.replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: " ", with: "␣")
    }
}
