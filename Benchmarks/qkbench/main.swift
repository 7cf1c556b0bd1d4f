// qkbench: the measurements behind `make bench` (see Benchmarks/README.md).
//
//   qkbench generate DIR [--layers N] [--heads N] [--kv-heads N] [--d N] [--prompts N] [--keys N] [--values N] [--dtype bf16]
//   qkbench engine DIR [--threads N] [--per-value]   one JSON line: wall time, GB/s, peak RSS
//   qkbench svd                            SVD medians per size, one JSON line
//   qkbench attribute DIR [--db PATH] [--repeat N]   `qkcat attribute DIR --all` throughput
//   qkbench search CATALOG                 search p50/p99 per query kind over 1M components
//   qkbench label-sequence CATALOG         1000 labels in a row: the first and the last ones' costs
//   qkbench ingest-store DIR [--per-value] the store phase of ingest against the engine
//   qkbench compare-match DIR              `qkcat compare --match` over 2 x 32 x 32 heads
//   qkbench similar DIR [--components N]   `qkcat similar` over a catalog of N components
//   qkbench report DIR [--repeat N] [--no-settle]   `qkcat report` of a 3 × 32 × 32 catalog
//
// Each measurement runs in its own process so that peak RSS is that step's alone.
import Foundation
import QKEngine

func option(_ name: String, _ arguments: [String], default value: Int) -> Int {
    guard let i = arguments.firstIndex(of: "--\(name)"), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return value }
    return v
}

func stringOption(_ name: String, _ arguments: [String], default value: String) -> String {
    guard let i = arguments.firstIndex(of: "--\(name)"), i + 1 < arguments.count else { return value }
    return arguments[i + 1]
}

/// Peak resident set size of this process in bytes (VmHWM).
func peakRSS() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func emit(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func directorySize(_ url: URL) -> Int {
    let files = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.fileSizeKey])) ?? []
    return files.reduce(0) { $0 + ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    FileHandle.standardError.write(Data("usage: qkbench generate|engine|svd ...\n".utf8))
    exit(64)
}

do {
    switch command {
    case "generate":
        let dir = URL(fileURLWithPath: arguments[1])
        let heads = option("heads", arguments, default: 32)
        let keys = option("keys", arguments, default: 10)
        let model = ModelInfo(name: "bench/planted", checkpoint: "main", layerCount: option("layers", arguments, default: 32),
                              headCount: heads, kvHeadCount: option("kv-heads", arguments, default: 8),
                              headDimension: option("d", arguments, default: 128))
        let dtype = TensorDType(rawValue: stringOption("dtype", arguments, default: "BF16").uppercased()) ?? .bf16
        let spec = SyntheticCaptureSpec(
            model: model, layers: Array(0..<model.layerCount), promptCount: option("prompts", arguments, default: 2000),
            keysPerPrompt: keys, unlabelledKeysPerPrompt: 0,
            features: [SyntheticFeature(name: "category", valueCount: option("values", arguments, default: 6), rank: 4),
                       SyntheticFeature(name: "order", kind: "binding", valueCount: keys, rank: 3, assignment: .slot)],
            noise: 0.05, dtype: dtype, seed: 42)
        let start = now()
        try? FileManager.default.removeItem(at: dir)
        try SyntheticCapture.write(spec, to: dir)
        emit(["step": "generate", "seconds": now() - start, "bytes": directorySize(dir), "peak_rss": peakRSS()])
    case "engine":
        let dir = URL(fileURLWithPath: arguments[1])
        let threads = option("threads", arguments, default: ProcessInfo.processInfo.activeProcessorCount)
        let start = now()
        let reader = try CaptureReader.open(dir)
        let perValue = arguments.contains("--per-value")
        let decomposer = try Decomposer(reader: reader, options: DecompositionOptions(perValue: perValue, threads: threads))
        var decompositions = 0, components = 0
        // The engine's arithmetic (multiply-adds × 2), SVDs aside: key sums and ΔC per contrast, and
        // every key and query scored against every kept component of its group or head.
        let model = reader.header.model, d = Double(model.headDimension)
        let table = reader.prompts
        var flops = 0.0
        for spec in decomposer.plan.specs {
            flops += Double(decomposer.layers.count) * (Double(model.kvHeadCount) * 2 * Double(spec.keyCount) * d
                + Double(model.headCount) * 2 * d * d * Double(spec.promptCount))
        }
        try decomposer.run { layer in
            decompositions += layer.decompositions.count
            let kept = layer.decompositions.reduce(0) { $0 + $1.components.count }
            components += kept
            flops += 2 * d * Double(kept) * Double(table.keyCount + table.promptCount)
        }
        let seconds = now() - start
        let bytes = directorySize(dir)
        emit(["step": "engine", "seconds": seconds, "bytes": bytes, "gb_per_s": Double(bytes) / seconds / 1e9,
              "peak_rss": peakRSS(), "decompositions": decompositions, "components": components, "threads": threads,
              "per_value": perValue, "gflop": flops / 1e9, "gflop_per_s": flops / 1e9 / seconds])
    case "attribute":
        emit(try attributeBenchmark(Array(arguments.dropFirst())))
    case "compare-match":
        emit(try compareMatchBenchmark(directory: URL(fileURLWithPath: arguments[1])))
    case "similar":
        emit(try similarBenchmark(directory: URL(fileURLWithPath: arguments[1]),
                                  components: option("components", arguments, default: 1_000_000)))
    case "compare-demo":   // writes the planted catalog used for the examples in docs/compare.md
        emit(try writeCompareDemoCatalog(path: arguments[1]))
    case "search":          // CATALOG path; built if missing, else reused
        emit(try searchBenchmarkCatalog(path: arguments[1]))
        for record in try searchBenchmark(path: arguments[1]) { emit(record) }
    case "search-query":    // CATALOG QUERY [--layer L …]: one query, 200 times in a warm process; p50/p99
        emit(try searchQueryBenchmark(path: arguments[1], query: arguments[2]))
    case "search-once":
        emit(try searchOnce(path: arguments[1]))
    case "label-sequence":  // CATALOG [--count N]: N labels one after another; first and last costs
        emit(try labelSequenceBenchmark(path: arguments[1], count: option("count", arguments, default: 1000)))
    case "ingest-store":    // DIR holding (or receiving) the 2000-prompt synthetic capture
        emit(try ingestStoreBenchmark(directory: arguments[1], perValue: arguments.contains("--per-value")))
    case "report":          // DIR holding (or receiving) the 3 × 32 × 32 synthetic catalog and the site
        emit(try reportBenchmark(directory: URL(fileURLWithPath: arguments[1]), repetitions: option("repeat", arguments, default: 3),
                                 settle: !arguments.contains("--no-settle")))
    case "svd":
        let results = svdBenchmark()
        emit(["step": "svd", "median_ms": Dictionary(uniqueKeysWithValues: results.map { (String($0.size), $0.medianMilliseconds) })])
    default:
        FileHandle.standardError.write(Data("qkbench: unknown command \(command)\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("qkbench: \(error)\n".utf8))
    exit(1)
}
