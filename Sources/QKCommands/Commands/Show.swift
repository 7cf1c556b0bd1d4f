import Foundation
import QKEngine
import QKStore

extension QKCat {
    static var showCommand: Command {
        Command(
            name: "show",
            abstract: "Show a component, or the decompositions of a head.",
            discussion: """
                'qkcat show ID' shows one component with its decomposition; 'qkcat show --model M --layer L \
                --head H' shows every decomposition of that head (narrow with --checkpoint, --feature, --value): \
                the singular-value spectrum, the rank and pair counts, and for each component its label and \
                top-activating keys and queries in context, the token marked.
                """,
            arguments: [Argument("id", optional: true, help: "A component id (from search).")],
            options: [Shared.db] + Shared.filters + [
                .option("examples", default: "5", help: "Examples shown at each end of each side."),
                .option("spectrum", default: "12", help: "Singular values shown per decomposition."),
                Shared.json,
            ],
            run: runShow)
    }

    private static func runShow(_ invocation: Invocation) throws {
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let examples = try invocation.int("examples")
        let spectrum = try invocation.int("spectrum")
        var records: [DecompositionRecord]
        var prompts: [Int64: PromptContext]
        var onlyComponent: Int64?
        if invocation.has("id") {
            for name in ["model", "checkpoint", "layer", "head", "feature", "value", "kind"] where invocation.has(name) {
                throw CommandError.usage("give either a component id or --\(name) and the other head options, not both")
            }
            let id = Int64(try invocation.int("id"))
            let detail = try catalog.component(id: id)
            var record = detail.decomposition
            if !record.components.contains(where: { $0.id == id }) { record.components = [detail.component] }
            records = [record]
            prompts = detail.prompts
            onlyComponent = id
        } else {
            guard invocation.has("model"), invocation.has("layer"), invocation.has("head") else {
                throw CommandError.usage("give a component id, or --model, --layer and --head")
            }
            let found = try catalog.decompositions(try Shared.filters(invocation))
            records = found.decompositions
            prompts = found.prompts
            if records.isEmpty {
                throw CommandError.failure("no decomposition matches (see 'qkcat list heads --model \(try invocation.string("model"))')")
            }
        }
        if invocation.flag("json") {
            invocation.printJSON(.array(records.map { decompositionJSON($0, prompts: prompts, only: onlyComponent) }))
            return
        }
        for (i, record) in records.enumerated() {
            if i > 0 { invocation.print() }
            printDecomposition(record, prompts: prompts, only: onlyComponent, examples: examples, spectrum: spectrum,
                               invocation: invocation)
        }
    }

    private static func printDecomposition(_ d: DecompositionRecord, prompts: [Int64: PromptContext], only: Int64?,
                                           examples: Int, spectrum: Int, invocation: Invocation) {
        let style = invocation.style
        let unicode = invocation.unicode
        let what = d.feature + (d.value.map { "=\($0)" } ?? " (pooled)")
        invocation.print(style.bold("\(d.model) @ \(d.checkpoint)  layer \(d.layer)  head \(d.head) (kv \(d.kvHead))  \(what)")
            + style.dim("  [\(d.featureKind)]"))
        invocation.print("pairs \(d.positivePairs) positive / \(d.negativePairs) negative   ‖ΔC‖ \(Shared.number(d.frobenius))   "
            + "rank \(d.rank) of \(d.singularValues.count) at energy \(Shared.number(d.energy, digits: 2))")
        let total = d.singularValues.reduce(0) { $0 + $1 * $1 }
        let top = d.singularValues.first ?? 0
        var cumulative = 0.0
        for (i, sigma) in d.singularValues.prefix(spectrum).enumerated() {
            cumulative += sigma * sigma
            let bar = TextBar.bar(value: sigma, maximum: top, width: 30, unicode: unicode)
            let share = total > 0 ? 100 * sigma * sigma / total : 0
            let line = "  σ\(i + 1)".padding(toLength: 6, withPad: " ", startingAt: 0)
                + " \(Shared.number(sigma).leftPadded(9)) \(bar.padding(toLength: 30, withPad: " ", startingAt: 0)) "
                + "\(Shared.number(share, digits: 1).leftPadded(5))%  Σ \(Shared.number(total > 0 ? 100 * cumulative / total : 0, digits: 1))%"
            invocation.print(i < d.rank ? line : style.dim(line))
        }
        if d.singularValues.count > spectrum {
            let rest = d.singularValues.dropFirst(spectrum).reduce(0) { $0 + $1 * $1 }
            invocation.print(style.dim("  … \(d.singularValues.count - spectrum) more hold \(Shared.number(total > 0 ? 100 * rest / total : 0, digits: 2))%"))
        }
        for component in d.components where only == nil || component.id == only {
            invocation.print()
            invocation.print(style.bold("c\(component.index)") + "  id \(component.id)  σ \(Shared.number(component.sigma))  "
                + "\(Shared.number(100 * component.energyShare, digits: 1))% of Σσ²  " + style.cyan(component.label)
                + (component.note.map { style.dim("  (\($0))") } ?? ""))
            for side in [Side.key, .query] {
                for extreme in [Extreme.high, .low] {
                    let shown = component.examples(side, extreme).prefix(examples)
                    guard !shown.isEmpty else { continue }
                    let tokens = component.tokenAggregates(side, extreme).prefix(6)
                        .map { "\($0.token.debugDescription) ×\($0.count) \(Shared.number($0.meanScore, digits: 2))" }
                    let arrow = extreme == .high ? (unicode ? "▲" : "+") : (unicode ? "▼" : "-")
                    invocation.print("  \(side == .key ? "keys" : "queries") \(arrow)  " + style.dim(tokens.joined(separator: ", ")))
                    let idWidth = shown.map(\.promptID.count).max() ?? 0
                    for example in shown {
                        let context = prompts[example.promptRowID].map {
                            contextLine(tokens: $0.tokens, position: example.position, style: style)
                        } ?? example.token
                        invocation.print("    \(Shared.number(example.score).leftPadded(8))  \(example.promptID.padding(toLength: idWidth, withPad: " ", startingAt: 0))  \(context)")
                    }
                }
            }
        }
    }

    /// A few tokens either side of `position`, the token itself marked (bold on a terminal, [brackets] otherwise).
    static func contextLine(tokens: [String], position: Int, style: Style, radius: Int = 6) -> String {
        guard tokens.indices.contains(position) else { return "" }
        let lower = max(0, position - radius), upper = min(tokens.count, position + radius + 1)
        func clean(_ t: String) -> String { t.replacingOccurrences(of: "\n", with: "⏎") }
        var text = lower > 0 ? "…" : ""
        for i in lower..<upper {
            let token = clean(tokens[i])
            text += i == position ? (style.enabled ? style.bold(style.yellow(token)) : "[\(token)]") : token
            if i < upper - 1, !tokens[i + 1].hasPrefix(" "), !token.hasSuffix(" ") { text += " " }
        }
        return text + (upper < tokens.count ? "…" : "")
    }

    static func decompositionJSON(_ d: DecompositionRecord, prompts: [Int64: PromptContext], only: Int64?) -> JSONValue {
        func examples(_ c: ComponentRecord, _ side: Side, _ extreme: Extreme) -> JSONValue {
            .array(c.examples(side, extreme).map { e in
                ["token": .string(e.token), "prompt_id": .string(e.promptID), "position": .int(e.position),
                 "score": .number(e.score), "context": prompts[e.promptRowID].map { .strings($0.tokens) } ?? .null]
            })
        }
        func aggregates(_ c: ComponentRecord, _ side: Side, _ extreme: Extreme) -> JSONValue {
            .array(c.tokenAggregates(side, extreme).map {
                ["token": .string($0.token), "count": .int($0.count), "mean_score": .number($0.meanScore)]
            })
        }
        return [
            "id": .int(Int(d.id)), "model": .string(d.model), "checkpoint": .string(d.checkpoint), "layer": .int(d.layer),
            "head": .int(d.head), "kv_head": .int(d.kvHead), "feature": .string(d.feature), "kind": .string(d.featureKind),
            "value": JSONValue(d.value), "energy": .number(d.energy), "rank": .int(d.rank),
            "n_pos_pairs": .int(d.positivePairs), "n_neg_pairs": .int(d.negativePairs), "frobenius": .number(d.frobenius),
            "singular_values": .numbers(d.singularValues),
            "components": .array(d.components.filter { only == nil || $0.id == only }.map { c in
                [
                    "id": .int(Int(c.id)), "index": .int(c.index), "sigma": .number(c.sigma), "energy_share": .number(c.energyShare),
                    "label": .string(c.label), "auto_label": .string(c.autoLabel), "human_label": JSONValue(c.humanLabel),
                    "note": JSONValue(c.note),
                    "top_keys": examples(c, .key, .high), "bottom_keys": examples(c, .key, .low),
                    "top_queries": examples(c, .query, .high), "bottom_queries": examples(c, .query, .low),
                    "top_key_tokens": aggregates(c, .key, .high), "bottom_key_tokens": aggregates(c, .key, .low),
                    "top_query_tokens": aggregates(c, .query, .high), "bottom_query_tokens": aggregates(c, .query, .low),
                ]
            }),
        ]
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
