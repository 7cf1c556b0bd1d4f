import Foundation
import QKEngine
import QKStore

/// `qkcat similar`: the components closest to one component, anywhere in the catalog.
enum SimilarCommand {
    static let command = Command(
        name: "similar",
        abstract: "Find the components most similar to one component.",
        discussion: """
            Scores every component of the same d_head in scope by |cos(uᵢ, uⱼ)| · |cos(vᵢ, vⱼ)| (query side \
            times key side; signs ignored) and lists the best. Scopes: head (the same layer and head of the \
            same model, every checkpoint and feature), layer (every head of that layer of the model), model \
            (the whole model), all (every model of the same d_head). Reads the catalog only; writes nothing.
            """,
        arguments: [Argument("id", help: "A component id (from search, show or export).")],
        options: [
            Shared.db,
            .option("limit", default: "10", help: "How many components to list."),
            .option("scope", default: "all", values: SimilarScope.allCases.map(\.rawValue), help: "Where to look."),
            Shared.json,
        ],
        run: run)

    static func run(_ invocation: Invocation) throws {
        let text = try invocation.string("id")
        guard let id = Int64(text.trimmingCharacters(in: .whitespaces)), id > 0 else {
            throw CommandError.invalidValue(text, for: "<id>", reason: "expected a component id (a positive integer)")
        }
        let limit = try invocation.int("limit")
        guard limit > 0 else { throw CommandError.invalidValue(String(limit), for: "--limit <limit>", reason: "expected a positive integer") }
        let scope = SimilarScope(rawValue: try invocation.string("scope")) ?? .all
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let result = try catalog.similarComponents(to: id, scope: scope, limit: limit)
        if invocation.flag("json") {
            invocation.printJSON(.array(result.hits.map { hit in
                let c = hit.component
                return [
                    "id": .int(Int(c.id)), "score": .number(hit.score), "query_cosine": .number(hit.queryCosine),
                    "key_cosine": .number(hit.keyCosine), "model": .string(c.model), "checkpoint": .string(c.checkpoint),
                    "layer": .int(c.layer), "head": .int(c.head), "feature": .string(c.feature), "value": JSONValue(c.value),
                    "index": .int(c.index), "sigma": .number(c.sigma), "label": .string(c.label),
                ]
            }))
            return
        }
        let r = result.reference
        invocation.print("Component \(r.id): \(r.model) \(r.checkpoint) layer \(r.layer) head \(r.head) \(r.feature)"
            + "\(r.value.map { "=\($0)" } ?? "") c\(r.index) σ \(Shared.number(r.sigma)): \(r.label)")
        invocation.print("Closest of \(result.scanned) component\(result.scanned == 1 ? "" : "s") (scope \(scope.rawValue), d_head \(result.headDimension)):")
        var table = Table(columns: [
            .init("SCORE", alignment: .right), .init("|COS U|", alignment: .right), .init("|COS V|", alignment: .right),
            .init("ID", alignment: .right), .init("MODEL", maximumWidth: 24), .init("CHECKPOINT"),
            .init("LAYER", alignment: .right), .init("HEAD", alignment: .right), .init("FEATURE"), .init("VALUE"),
            .init("C", alignment: .right), .init("SIGMA", alignment: .right), .init("LABEL", maximumWidth: 48),
        ])
        for hit in result.hits {
            let c = hit.component
            table.addRow([
                Shared.number(hit.score), Shared.number(hit.queryCosine), Shared.number(hit.keyCosine), String(c.id),
                c.model, c.checkpoint, String(c.layer), String(c.head), c.feature, c.value ?? "*", String(c.index),
                Shared.number(c.sigma), c.label,
            ])
        }
        invocation.stdout.write(table.render(style: invocation.style))
    }
}
