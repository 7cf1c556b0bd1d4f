import Foundation
import QKEngine
import QKStore

extension QKCat {
    static var exportCommand: Command {
        Command(
            name: "export",
            abstract: "Export decompositions as JSON Lines, or components as CSV.",
            discussion: """
                jsonl: one decomposition per line with every singular value and, per kept component, σ, the \
                query-side vector u, the key-side vector v, the label and the top keys and queries (highest \
                first). csv: one component per row, without vectors.
                """,
            options: [Shared.db] + Shared.filters + [
                .option("format", default: "jsonl", values: ["jsonl", "csv"], help: "Output format."),
            ],
            run: runExport)
    }

    private static func runExport(_ invocation: Invocation) throws {
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let cursor = try catalog.exportDecompositions(try Shared.filters(invocation))
        let csv = try invocation.string("format") == "csv"
        if csv {
            invocation.print(csvHeader.joined(separator: ","))
        }
        while let d = try cursor.next() {
            if csv {
                for c in d.components { invocation.print(csvRow(d, c).map(csvField).joined(separator: ",")) }
            } else {
                invocation.stdout.write(exportJSON(d).rendered(pretty: false) + "\n")
            }
        }
    }

    static func exportJSON(_ d: DecompositionRecord) -> JSONValue {
        func examples(_ list: [StoredExample]) -> JSONValue {
            .array(list.map {
                ["token": .string($0.token), "prompt_id": .string($0.promptID), "position": .int($0.position), "score": .number($0.score)]
            })
        }
        return [
            "model": .string(d.model), "checkpoint": .string(d.checkpoint), "layer": .int(d.layer), "head": .int(d.head),
            "kv_head": .int(d.kvHead), "feature": .string(d.feature), "value": JSONValue(d.value), "energy": .number(d.energy),
            "rank": .int(d.rank), "n_pos_pairs": .int(d.positivePairs), "n_neg_pairs": .int(d.negativePairs),
            "frobenius": .number(d.frobenius), "singular_values": floats(d.singularValues.map { Float($0) }),
            "components": .array(d.components.map { c in
                [
                    "id": .int(Int(c.id)), "index": .int(c.index), "sigma": .number(c.sigma),
                    "u": floats(c.u), "v": floats(c.v), "label": .string(c.label),
                    "top_keys": examples(c.examples(.key, .high)), "top_queries": examples(c.examples(.query, .high)),
                ]
            }),
        ]
    }

    /// Float32 values (vectors and the stored spectrum) written with their own shortest digits,
    /// not a Double's long expansion.
    private static func floats(_ values: [Float]) -> JSONValue {
        .array(values.map { .number(Double("\($0)") ?? Double($0)) })
    }

    static let csvHeader = [
        "id", "model", "checkpoint", "layer", "head", "kv_head", "feature", "kind", "value", "index", "sigma",
        "energy_share", "rank", "label", "human_label", "note", "top_key_tokens", "top_query_tokens",
    ]

    private static func csvRow(_ d: DecompositionRecord, _ c: ComponentRecord) -> [String] {
        [
            String(c.id), d.model, d.checkpoint, String(d.layer), String(d.head), String(d.kvHead), d.feature, d.featureKind,
            d.value ?? "", String(c.index), String(c.sigma), String(c.energyShare), String(d.rank), c.label,
            c.humanLabel ?? "", c.note ?? "",
            c.tokenAggregates(.key, .high).map(\.token).joined(separator: " | "),
            c.tokenAggregates(.query, .high).map(\.token).joined(separator: " | "),
        ]
    }

    /// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
    static func csvField(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
