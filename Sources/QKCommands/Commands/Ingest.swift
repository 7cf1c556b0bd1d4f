import Foundation
import QKEngine
import QKStore

extension QKCat {
    static var ingestCommand: Command {
        Command(
            name: "ingest",
            abstract: "Decompose a capture and store its components in the catalog.",
            discussion: """
                Reads and validates the capture, computes the contrastive-covariance decomposition of every \
                captured head for every feature, and stores it in one transaction: a failure or an \
                interruption leaves the catalog exactly as it was. The same capture content again is \
                reported as already ingested and nothing is written.
                """,
            arguments: [Argument("capture-dir", help: "The capture folder (capture.json, prompts.jsonl, *.safetensors).")],
            options: [
                Shared.db,
                .option("energy", default: "0.99", help: "Fraction of Σσ² the kept components hold."),
                .option("max-rank", help: "Keep at most this many components per decomposition."),
                .flag("per-value", help: "Also decompose per query value, besides the pooled decomposition."),
                .option("features", valueName: "names", help: "Only these features (comma-separated)."),
                .option("layers", valueName: "ranges", help: "Only these layers, e.g. 0,5-7."),
                .option("top", default: "20", help: "Top-activating examples kept at each end of each side."),
                .option("threads", help: "Worker threads (default: one per core)."),
                .flag("quiet", short: "q", help: "Print nothing but errors."),
            ],
            run: runIngest)
    }

    private static func runIngest(_ invocation: Invocation) throws {
        let start = ProgressBar.monotonicSeconds()
        let directory = URL(fileURLWithPath: try invocation.string("capture-dir"))
        let layers = try invocation.intRanges("layers")
        let features = invocation.list("features")
        let options = DecompositionOptions(
            energy: try invocation.double("energy"), maxRank: try invocation.optionalInt("max-rank"),
            perValue: invocation.flag("per-value"), features: features.isEmpty ? nil : features,
            layers: layers.isEmpty ? nil : layers, topCount: try invocation.int("top"),
            threads: try invocation.optionalInt("threads"))
        let quiet = invocation.flag("quiet")

        let reader = try CaptureReader.open(directory)
        let decomposer = try Decomposer(reader: reader, options: options)
        let hash = try ContentHash.of(capture: reader, threads: options.threads)
        let catalog = try Shared.openCatalog(invocation, readOnly: false)
        if let existing = try catalog.capture(withHash: hash) {
            if !quiet {
                invocation.print("Already ingested: this capture's content (\(hash)) is capture #\(existing.id) "
                    + "of \(existing.model) @ \(existing.checkpoint) in \(catalog.path); nothing written.")
            }
            return
        }

        let header = reader.header
        let bar = quiet ? nil : invocation.progressBar(total: decomposer.layers.count * decomposer.unitsPerLayer, unit: "kv heads")
        let summary = try catalog.ingest(
            header: header, contentHash: hash, options: options, qkcatVersion: QKCat.version,
            promptTable: reader.prompts, promptTokens: { try reader.tokens(ofPrompt: $0) },
            results: { sink in
                try decomposer.run(progress: { done, _ in bar?.update(completed: done) }, emit: sink)
                // Results from a capture that changed meanwhile are not stored (the session rolls back).
                try reader.checkUnchanged()
            })
        bar?.finish()
        guard !quiet else { return }
        let seconds = ProgressBar.monotonicSeconds() - start
        let model = header.model
        invocation.print("Ingested \(model.name) @ \(model.checkpoint) into \(catalog.path) as capture #\(summary.captureID) "
            + "in \(Shared.number(seconds, digits: 1)) s")
        invocation.print("  \(decomposer.layers.count) layers × \(model.headCount) heads (\(model.kvHeadCount) kv heads), "
            + "d_head \(model.headDimension), \(reader.prompts.promptCount) prompts, \(reader.prompts.keyCount) keys")
        invocation.print("  \(summary.decompositions) decompositions, \(summary.components) components, "
            + "\(summary.examples) examples, \(summary.prompts) cited prompts")
        if !decomposer.plan.unformable.isEmpty {
            invocation.print("  not formed (no decomposition stored):")
            for skip in decomposer.plan.unformable {
                invocation.print("    \(skip.feature)\(skip.value.map { "=\($0)" } ?? " (pooled)"): \(skip.reason.rawValue)")
            }
        }
    }
}
