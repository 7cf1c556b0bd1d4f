import Foundation
import QKEngine
import QKStore

extension QKCat {
    static var searchCommand: Command {
        Command(
            name: "search",
            abstract: "Find components by label, feature, value, top token, model or checkpoint.",
            discussion: """
                Every word must match a whole word (case-insensitive) of a label, note, feature name or value, \
                top token, model or checkpoint name. Components whose human label or note holds every word \
                come first, then those whose automatic label does, then the rest; σ decides within each. Your \
                words are always taken literally: quotes, *, OR, NEAR or parentheses are searched for, never \
                interpreted. With no query, the filtered components are listed by σ, largest first.
                """,
            arguments: [Argument("query", optional: true, help: "Words to look for.")],
            options: [Shared.db] + Shared.filters + [
                .option("limit", default: "20", help: "Show at most this many components."),
                Shared.json,
            ],
            run: runSearch)
    }

    private static func runSearch(_ invocation: Invocation) throws {
        let query = invocation.optionalString("query") ?? ""
        let limit = try invocation.int("limit")
        guard limit > 0 else { throw CommandError.invalidValue(String(limit), for: "--limit", reason: "must be at least 1") }
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let hits = try catalog.search(query, filters: try Shared.filters(invocation), limit: limit)
        if invocation.flag("json") {
            invocation.printJSON(.array(hits.map(hitJSON)))
            return
        }
        guard !hits.isEmpty else {
            invocation.print(query.isEmpty ? "No components match these filters." : "No components match '\(query)'.")
            return
        }
        var table = Table(columns: [
            .init("ID", alignment: .right), .init("MODEL @ CHECKPOINT", maximumWidth: 48), .init("L", alignment: .right),
            .init("H", alignment: .right), .init("FEATURE", maximumWidth: 28), .init("#", alignment: .right),
            .init("σ", alignment: .right), .init("LABEL", maximumWidth: 60),
        ])
        let style = invocation.style
        for hit in hits {
            var label = hit.label
            for word in query.split(whereSeparator: { $0.isWhitespace }) {
                label = style.highlight(label, matching: String(word).trimmingCharacters(in: CharacterSet(charactersIn: "*\"")))
            }
            table.addRow([
                String(hit.id), "\(hit.model) @ \(hit.checkpoint)", String(hit.layer), String(hit.head),
                hit.feature + (hit.value.map { "=\($0)" } ?? ""), "c\(hit.index)", Shared.number(hit.sigma), label,
            ])
        }
        invocation.stdout.write(table.render(style: style))
    }

    static func hitJSON(_ hit: ComponentHit) -> JSONValue {
        [
            "id": .int(Int(hit.id)), "model": .string(hit.model), "checkpoint": .string(hit.checkpoint),
            "layer": .int(hit.layer), "head": .int(hit.head), "kv_head": .int(hit.kvHead),
            "feature": .string(hit.feature), "kind": .string(hit.kind), "value": JSONValue(hit.value),
            "index": .int(hit.index), "label": .string(hit.label), "auto_label": .string(hit.autoLabel),
            "human_label": JSONValue(hit.humanLabel), "note": JSONValue(hit.note),
            "sigma": .number(hit.sigma), "energy_share": .number(hit.energyShare), "score": JSONValue(hit.score),
        ]
    }
}
