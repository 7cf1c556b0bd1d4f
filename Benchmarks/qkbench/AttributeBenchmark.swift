import Foundation
import QKCommands
import QKEngine
import QKStore

/// `qkcat attribute CAPTURE --all --json` end to end, in-process: median wall time and GB/s of capture read.
///
///     qkbench attribute DIR [--db PATH] [--repeat 5] [--prompts 2000] [--layers 32] [--heads 32] [--kv-heads 8] [--d 128]
///
/// When `DIR` holds no capture, a planted BF16 capture of that shape (10 keys per prompt, as `qkbench
/// generate`) is written first; when the catalog `--db` (default `DIR/../attribute-bench.sqlite`) does not
/// exist, the engine decomposes the capture and the result is ingested. Neither setup step is timed.
/// Each timed run opens the capture and the catalog, looks up every head's subspaces, attributes every
/// prompt at every head and renders the JSON, exactly as the command does.
func attributeBenchmark(_ arguments: [String]) throws -> [String: Any] {
    guard let path = arguments.first else { throw BenchmarkUsage("usage: qkbench attribute DIR [--db PATH] [--repeat N]") }
    let directory = URL(fileURLWithPath: path)
    let database = stringOption("db", arguments, default: directory.deletingLastPathComponent()
        .appendingPathComponent("attribute-bench.sqlite").path)
    let repetitions = max(1, option("repeat", arguments, default: 5))
    var setup: [String: Any] = [:]

    if !FileManager.default.fileExists(atPath: directory.appendingPathComponent(CaptureReader.headerFileName).path) {
        let model = ModelInfo(name: "bench/planted", checkpoint: "main", layerCount: option("layers", arguments, default: 32),
                              headCount: option("heads", arguments, default: 32),
                              kvHeadCount: option("kv-heads", arguments, default: 8),
                              headDimension: option("d", arguments, default: 128))
        let spec = SyntheticCaptureSpec(
            model: model, layers: Array(0..<model.layerCount), promptCount: option("prompts", arguments, default: 2000),
            keysPerPrompt: 10, unlabelledKeysPerPrompt: 0,
            features: [SyntheticFeature(name: "category", valueCount: 6, rank: 4),
                       SyntheticFeature(name: "order", kind: "binding", valueCount: 10, rank: 3, assignment: .slot)],
            noise: 0.05, dtype: .bf16, seed: 42)
        let start = now()
        try SyntheticCapture.write(spec, to: directory)
        setup["generate_seconds"] = now() - start
    }
    if !FileManager.default.fileExists(atPath: database) {
        let start = now()
        let reader = try CaptureReader.open(directory)
        let options = DecompositionOptions(topCount: 5)
        let decomposer = try Decomposer(reader: reader, options: options)
        let catalog = try Catalog.open(path: database)
        _ = try catalog.ingest(header: reader.header, contentHash: "attribute-bench:\(directory.path)", options: options,
                               qkcatVersion: QKCat.version, promptTable: reader.prompts,
                               promptTokens: { try reader.tokens(ofPrompt: $0) }) { sink in
            try decomposer.run { try sink($0) }
        }
        setup["catalog_seconds"] = now() - start
    }

    let bytes = directorySize(directory)
    var times: [Double] = []
    var outputBytes = 0
    for _ in 0..<repetitions {
        let out = StringOutput(), err = StringOutput()
        let start = now()
        let code = QKCat.root.main(arguments: ["attribute", directory.path, "--all", "--db", database, "--json"],
                                   stdout: out, stderr: err)
        times.append(now() - start)
        guard code == 0 else { throw BenchmarkUsage("qkcat attribute failed (\(code)): \(err.text)") }
        outputBytes = out.text.utf8.count
    }
    times.sort()
    let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    return setup.merging([
        "step": "attribute --all", "bytes": bytes, "runs": times.count, "median_seconds": median,
        "min_seconds": times[0], "max_seconds": times[times.count - 1], "median_gb_per_s": Double(bytes) / median / 1e9,
        "peak_rss": peakRSS(), "json_bytes": outputBytes,
    ]) { $1 }
}

struct BenchmarkUsage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
