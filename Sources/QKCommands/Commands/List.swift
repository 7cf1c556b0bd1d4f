import Foundation
import QKStore

extension QKCat {
    static var listCommand: Command {
        let options = [Shared.db] + Shared.filters + [Shared.json]
        return Command(
            name: "list",
            abstract: "List the catalog's models, checkpoints, heads or features.",
            subcommands: [
                Command(name: "models", abstract: "List models with their shapes.", options: [Shared.db, Shared.json], run: listModels),
                Command(name: "checkpoints", abstract: "List checkpoints in training order.", options: options, run: listCheckpoints),
                Command(name: "heads", abstract: "List heads that have decompositions.", options: options, run: listHeads),
                Command(name: "features", abstract: "List features with their values.", options: options, run: listFeatures),
            ])
    }

    private static func render(_ invocation: Invocation, _ headers: [(String, Table.Alignment)], _ rows: [[String]], empty: String) {
        guard !rows.isEmpty else {
            invocation.print(empty)
            return
        }
        var table = Table(columns: headers.map { Table.Column($0.0, alignment: $0.1) })
        rows.forEach { table.addRow($0) }
        invocation.stdout.write(table.render(style: invocation.style))
    }

    private static func listModels(_ invocation: Invocation) throws {
        let models = try Shared.openCatalog(invocation, readOnly: true).listModels()
        if invocation.flag("json") {
            invocation.printJSON(.array(models.map {
                ["name": .string($0.name), "n_layers": .int($0.layerCount), "n_heads": .int($0.headCount),
                 "n_kv_heads": .int($0.kvHeadCount), "d_head": .int($0.headDimension), "checkpoints": .int($0.checkpointCount)]
            }))
            return
        }
        render(invocation, [("MODEL", .left), ("LAYERS", .right), ("HEADS", .right), ("KV HEADS", .right), ("D_HEAD", .right),
                            ("CHECKPOINTS", .right)],
               models.map { [$0.name, String($0.layerCount), String($0.headCount), String($0.kvHeadCount),
                             String($0.headDimension), String($0.checkpointCount)] },
               empty: "The catalog holds no model yet.")
    }

    private static func listCheckpoints(_ invocation: Invocation) throws {
        let checkpoints = try Shared.openCatalog(invocation, readOnly: true).listCheckpoints(try Shared.filters(invocation))
        if invocation.flag("json") {
            invocation.printJSON(.array(checkpoints.map {
                ["model": .string($0.model), "checkpoint": .string($0.name), "captures": .int($0.captureCount)]
            }))
            return
        }
        render(invocation, [("MODEL", .left), ("CHECKPOINT", .left), ("CAPTURES", .right)],
               checkpoints.map { [$0.model, $0.name, String($0.captureCount)] }, empty: "No checkpoint matches.")
    }

    private static func listHeads(_ invocation: Invocation) throws {
        let heads = try Shared.openCatalog(invocation, readOnly: true).listHeads(try Shared.filters(invocation))
        if invocation.flag("json") {
            invocation.printJSON(.array(heads.map {
                ["model": .string($0.model), "checkpoint": .string($0.checkpoint), "layer": .int($0.layer), "head": .int($0.head),
                 "kv_head": .int($0.kvHead), "d_head": .int($0.headDimension), "decompositions": .int($0.decompositionCount)]
            }))
            return
        }
        render(invocation, [("MODEL", .left), ("CHECKPOINT", .left), ("LAYER", .right), ("HEAD", .right), ("KV HEAD", .right),
                            ("DECOMPOSITIONS", .right)],
               heads.map { [$0.model, $0.checkpoint, String($0.layer), String($0.head), String($0.kvHead), String($0.decompositionCount)] },
               empty: "No head matches.")
    }

    private static func listFeatures(_ invocation: Invocation) throws {
        let features = try Shared.openCatalog(invocation, readOnly: true).listFeatures(try Shared.filters(invocation))
        if invocation.flag("json") {
            invocation.printJSON(.array(features.map {
                ["model": .string($0.model), "checkpoint": .string($0.checkpoint), "feature": .string($0.name),
                 "kind": .string($0.kind), "description": JSONValue($0.description),
                 "decompositions": .int($0.decompositionCount), "values": .strings($0.values)]
            }))
            return
        }
        render(invocation, [("MODEL", .left), ("CHECKPOINT", .left), ("FEATURE", .left), ("KIND", .left),
                            ("DECOMPOSITIONS", .right), ("PER-VALUE", .left)],
               features.map { [$0.model, $0.checkpoint, $0.name, $0.kind, String($0.decompositionCount),
                               $0.values.isEmpty ? "-" : $0.values.joined(separator: ", ")] },
               empty: "No feature matches.")
    }
}
