import Foundation
import QKCommands
import QKEngine
import QKStore
import QKTestSupport

// Benchmarks of issue 4: `qkcat compare --match` over two checkpoints of 32 layers × 32 heads (d_head 128,
// rank ≤ 16) and `qkcat similar` over 1,000,000 components. Catalogs are built directly through the store's
// ingest (no capture, no engine run, no examples), and kept in `directory` for reruns of the same shape.

/// `compare --match` between two "seeds" of one model: seed2's heads are seed1's, permuted within each
/// layer and slightly perturbed. Times the whole command in-process (open, load, similarity, Hungarian,
/// JSON) `repetitions` times, and checks that the permutation is recovered.
func compareMatchBenchmark(directory: URL, layers: Int = 32, heads: Int = 32, headDimension: Int = 128,
                           maxRank: Int = 16, repetitions: Int = 5) throws -> [String: Any] {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent("compare-\(layers)x\(heads)-d\(headDimension)-r\(maxRank).sqlite").path
    var random = BenchRandom(seed: 0xC0FFEE)
    // permutations[layer][h]: seed2's head h carries seed1's head permutations[layer][h].
    let permutations = (0..<layers).map { _ in random.permutation(heads) }
    var buildSeconds = 0.0
    if !FileManager.default.fileExists(atPath: path) {
        let start = benchNow()
        let catalog = try Catalog.open(path: path)
        let ranks = (0..<layers).map { layer in (0..<heads).map { head in 4 + (layer * 7 + head * 5) % (maxRank - 3) } }
        // seed1: random orthonormal bases per head.
        var bases: [[(u: [[Float]], v: [[Float]])]] = []
        for layer in 0..<layers {
            bases.append((0..<heads).map { head in
                (random.orthonormal(ranks[layer][head], headDimension), random.orthonormal(ranks[layer][head], headDimension))
            })
        }
        try ingestBenchCheckpoint(catalog, model: "bench-match", checkpoint: "seed1", layers: layers, heads: heads,
                                  headDimension: headDimension, features: ["category": []]) { layer, head, _ in
            bases[layer][head]
        }
        // seed2: permuted, each vector nudged by ~2° of noise and re-orthonormalized.
        try ingestBenchCheckpoint(catalog, model: "bench-match", checkpoint: "seed2", layers: layers, heads: heads,
                                  headDimension: headDimension, features: ["category": []]) { layer, head, _ in
            let source = bases[layer][permutations[layer][head]]
            return (random.perturbed(source.u, by: 0.035), random.perturbed(source.v, by: 0.035))
        }
        buildSeconds = benchNow() - start
    }
    let arguments = ["compare", "--db", path, "--model", "bench-match", "--from", "seed1", "--to", "seed2", "--match", "--json"]
    var times: [Double] = []
    var output = ""
    for _ in 0..<repetitions {
        let out = StringOutput(), err = StringOutput()
        let start = benchNow()
        let code = QKCat.root.main(arguments: arguments, stdout: out, stderr: err)
        times.append(benchNow() - start)
        guard code == 0 else { throw BenchFailure.command("compare --match exited \(code): \(err.text)") }
        output = out.text
    }
    // The same two checkpoints compared head by head (no matching), for reference.
    var byIndexTimes: [Double] = []
    for _ in 0..<repetitions {
        let out = StringOutput(), err = StringOutput()
        let start = benchNow()
        let code = QKCat.root.main(arguments: Array(arguments.filter { $0 != "--match" }), stdout: out, stderr: err)
        byIndexTimes.append(benchNow() - start)
        guard code == 0 else { throw BenchFailure.command("compare exited \(code): \(err.text)") }
    }
    let pairs = (try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]) ?? []
    let recovered = pairs.filter { pair in
        guard let layer = pair["layer"] as? Int, let from = pair["head_from"] as? Int, let to = pair["head_to"] as? Int else { return false }
        return permutations[layer][to] == from
    }.count
    return [
        "step": "compare-match", "layers": layers, "heads": heads, "d_head": headDimension, "max_rank": maxRank,
        "median_seconds": benchMedian(times), "runs_seconds": times, "compare_by_index_median_seconds": benchMedian(byIndexTimes), "pairs": pairs.count, "permutation_recovered": recovered,
        "catalog_build_seconds": buildSeconds, "catalog_bytes": benchFileSize(path),
    ]
}

/// `similar ID --scope all` over a catalog of at least `components` components (d_head 128, rank 16,
/// a pooled and three per-value decompositions per head, 32 × 32 heads per checkpoint). Times, `repetitions`
/// times each: the store call scanning the components table; the first call with the vector cache (which
/// writes it); the store call reading the cache; the whole command in-process; and, when the release
/// `qkcat` binary sits next to this executable, the command as a process (start-up included), with and
/// without the cache.
func similarBenchmark(directory: URL, components: Int = 1_000_000, headDimension: Int = 128,
                      repetitions: Int = 7) throws -> [String: Any] {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let (layers, heads, rank) = (32, 32, 16)
    let features = ["category": ["animal", "fruit", "vehicle"]]
    let perCheckpoint = layers * heads * rank * 4
    let checkpoints = (components + perCheckpoint - 1) / perCheckpoint
    let path = directory.appendingPathComponent("similar-\(checkpoints * perCheckpoint)-d\(headDimension).sqlite").path
    var buildSeconds = 0.0
    if !FileManager.default.fileExists(atPath: path) {
        let start = benchNow()
        let catalog = try Catalog.open(path: path)
        var random = BenchRandom(seed: 0x51A1)
        for index in 0..<checkpoints {
            try ingestBenchCheckpoint(catalog, model: "bench-similar", checkpoint: "step\((index + 1) * 1000)", layers: layers,
                                      heads: heads, headDimension: headDimension, features: features) { _, _, _ in
                (random.unitVectors(rank, headDimension), random.unitVectors(rank, headDimension))
            }
        }
        buildSeconds = benchNow() - start
    }
    let catalog = try Catalog.open(path: path, readOnly: true)
    let total = try catalog.database.scalarInt("SELECT count(*) FROM components") ?? 0
    let reference = Int64(total / 2 + 7)
    func timed(_ body: () throws -> Void) rethrows -> Double {
        let start = benchNow()
        try body()
        return benchNow() - start
    }
    // The components table, scanned directly.
    var scanned = 0
    var tableTimes: [Double] = []
    for _ in 0..<repetitions {
        tableTimes.append(try timed { scanned = try catalog.similarComponents(to: reference, limit: 10).scanned })
    }
    let arguments = ["similar", String(reference), "--db", path, "--scope", "all", "--limit", "10"]
    var commandTimes: [Double] = []
    for _ in 0..<repetitions {
        let out = StringOutput(), err = StringOutput()
        var code: Int32 = 0
        commandTimes.append(timed { code = QKCat.root.main(arguments: arguments, stdout: out, stderr: err) })
        guard code == 0 else { throw BenchFailure.command("similar exited \(code): \(err.text)") }
    }
    var result: [String: Any] = [
        "step": "similar", "components": total, "scanned": scanned, "d_head": headDimension,
        "table_scan_median_seconds": benchMedian(tableTimes),
        "command_in_process_median_seconds": benchMedian(commandTimes),
        "catalog_build_seconds": buildSeconds, "catalog_bytes": benchFileSize(path),
    ]
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qkcat")
    if FileManager.default.isExecutableFile(atPath: binary.path) {
        for (key, extra) in [("process_median_seconds", [String]())] {
            var processTimes: [Double] = []
            for _ in 0..<repetitions {
                let process = Process()
                process.executableURL = binary
                process.arguments = arguments + extra
                process.standardOutput = FileHandle.nullDevice
                processTimes.append(try timed {
                    try process.run()
                    process.waitUntilExit()
                })
                guard process.terminationStatus == 0 else { throw BenchFailure.command("qkcat similar exited \(process.terminationStatus)") }
            }
            result[key] = benchMedian(processTimes)
        }
    }
    return result
}

enum BenchFailure: Error, CustomStringConvertible {
    case command(String)
    var description: String {
        switch self {
        case .command(let message): message
        }
    }
}

/// Ingests one checkpoint whose every (layer, head, feature/value) gets the vectors `vectors(layer, head, value)`.
private func ingestBenchCheckpoint(_ catalog: Catalog, model: String, checkpoint: String, layers: Int, heads: Int,
                                   headDimension: Int, features: [String: [String]],
                                   vectors: (Int, Int, String?) -> (u: [[Float]], v: [[Float]])) throws {
    let info = ModelInfo(name: model, checkpoint: checkpoint, layerCount: layers, headCount: heads, kvHeadCount: heads,
                         headDimension: headDimension)
    let names = features.keys.sorted()
    let header = CaptureHeader(version: 1, model: info, positional: "post-rope", layers: Array(0..<layers), tensorFiles: [],
                               features: names.map { FeatureInfo(name: $0, kind: "semantic") },
                               datasetJSON: #"{"benchmark":true}"#)
    let promptTable = PromptTable(
        promptIDs: ["p0"], keyStart: [0, 1], queryPositions: [1], keyPositions: [0], tokenStrings: [" a", " b"],
        queryTokens: [1], keyTokens: [0], tokenCounts: [2], lineOffsets: [0], features: [])
    _ = try catalog.ingest(
        header: header, contentHash: "bench:\(model):\(checkpoint)", options: DecompositionOptions(perValue: true, topCount: 0),
        qkcatVersion: "bench", promptTable: promptTable, promptTokens: { _ in [" a", " b"] }
    ) { sink in
        for layer in 0..<layers {
            var decompositions: [Decomposition] = []
            for head in 0..<heads {
                for feature in names {
                    for value in [nil] + (features[feature] ?? []).map(Optional.some) {
                        let (u, v) = vectors(layer, head, value)
                        let sigmas = (0..<headDimension).map { 8 * pow(0.7, Double($0)) }
                        let energy = sigmas.reduce(0) { $0 + $1 * $1 }
                        let components = zip(u, v).enumerated().map { index, pair in
                            Component(index: index, sigma: sigmas[index], energyShare: sigmas[index] * sigmas[index] / energy,
                                      u: pair.0, v: pair.1, queries: SideExamples(), keys: SideExamples())
                        }
                        decompositions.append(Decomposition(
                            layer: layer, head: head, kvHead: head, feature: feature, value: value, positivePairs: 100,
                            negativePairs: 400, frobenius: energy.squareRoot(), singularValues: sigmas, rank: u.count,
                            components: components))
                    }
                }
            }
            try sink(LayerResult(layer: layer, decompositions: decompositions, skips: []))
        }
    }
}

private func benchNow() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

private func benchMedian(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

private func benchFileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

/// The engine's SplitMix64 generator with the vector helpers the catalogs need.
private struct BenchRandom {
    private var generator: SeededGenerator
    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [−1, 1).
    mutating func symmetric() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }

    mutating func permutation(_ count: Int) -> [Int] {
        var values = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { values.swapAt(i, Int(next() % UInt64(i + 1))) }
        return values
    }

    /// `count` random unit vectors of length `d` (not orthogonal).
    mutating func unitVectors(_ count: Int, _ d: Int) -> [[Float]] {
        (0..<count).map { _ in
            let x = (0..<d).map { _ in symmetric() }
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return x.map { Float($0 / norm) }
        }
    }

    /// `count` orthonormal vectors of length `d`.
    mutating func orthonormal(_ count: Int, _ d: Int) -> [[Float]] {
        let q = orthonormalizedColumns(Matrix(columns: (0..<count).map { _ in (0..<d).map { _ in symmetric() } }))
        return (0..<count).map { j in q.column(j).map(Float.init) }
    }

    /// `vectors` plus noise of about `scale` radians per vector, re-orthonormalized.
    mutating func perturbed(_ vectors: [[Float]], by scale: Double) -> [[Float]] {
        let d = vectors.first?.count ?? 0
        let noisy = vectors.map { vector in vector.map { Double($0) + scale / Double(d).squareRoot() * symmetric() * 1.7 } }
        let q = orthonormalizedColumns(Matrix(columns: noisy))
        return (0..<vectors.count).map { j in q.column(j).map(Float.init) }
    }
}

/// Writes the planted checkpoint series of the tests (`PlantedCatalog.compareSeries`) to a fresh catalog at
/// `path`, for the documentation's examples of compare, trajectory and similar.
func writeCompareDemoCatalog(path: String) throws -> [String: Any] {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let start = benchNow()
    let catalog = try Catalog.open(path: path)
    try PlantedCatalog.compareSeries(into: catalog)
    return ["step": "compare-demo", "path": path, "seconds": benchNow() - start]
}
