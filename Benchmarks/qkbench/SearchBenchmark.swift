import Foundation
import QKEngine
import QKStore
import QKTestSupport

// The catalog measurements of `make bench` (issue 3): search latency at 1,000,000 components and the share of
// ingest time that the store adds to the engine's. Each function returns JSON-ready records for main.swift's emit:
//
//   searchBenchmarkCatalog(path:)             builds the synthetic catalog at path (about 1.5 minutes, 2.1 GB),
//                                             or reuses a complete one; one record
//   searchBenchmark(path:repetitions:limit:)  the fixed query mix, each query `repetitions` times (default 200);
//                                             one record per kind: p50_ms, p99_ms, max_ms, runs, hits
//   searchOnce(path:)                         one search in a fresh process (open + query); time the process from
//                                             outside for the end-to-end figure
//   ingestStoreBenchmark(directory:layers:perValue:topCount:)
//                                             engine time vs store-phase time on one synthetic capture; one record
//
// e.g. in main.swift:
//   case "search":
//       emit(try searchBenchmarkCatalog(path: arguments[1]))
//       for record in try searchBenchmark(path: arguments[1]) { emit(record) }
//   case "search-once": emit(try searchOnce(path: arguments[1]))
//   case "ingest-store": emit(try ingestStoreBenchmark(directory: arguments[1]))

/// The bench catalog's shape: 4 checkpoints × 32 layers × 32 heads × 31 decompositions (3 features, pooled and
/// per value) × rank 8 = 1,015,808 components, d_head 64.
///
/// Examples are fewer than an ingest's default (3 per end and side instead of 20), so that building it takes
/// minutes; search reads labels, tokens and names, which three examples per end fill as twenty would.
/// After the ingests, every 20,000th component gets a human label (`hand-checked zeppelin detector`): the rare word.
func searchBenchmarkShape() -> SyntheticCatalog.Shape {
    var shape = SyntheticCatalog.Shape()
    shape.model = "bench-model"
    shape.checkpoints = ["step1000", "step2000", "step4000", "main"]
    shape.layers = 32
    shape.heads = 32
    shape.kvHeads = 8
    shape.headDimension = 64
    shape.rank = 8
    shape.features = [
        "category": ["animal", "fruit", "vehicle", "color", "city", "instrument", "metal", "river", "planet", "tool"],
        "order": ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "sentiment": ["joy", "anger", "fear", "sadness", "surprise", "disgust", "trust", "calm", "pride"],
    ]
    shape.featureKinds = ["order": "binding", "sentiment": "semantic", "category": "semantic"]
    shape.topCount = 3
    shape.prompts = 2000
    shape.seed = 7
    return shape
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

private func fileBytes(_ path: String) -> Int {
    [path, path + "-wal", path + "-shm"].reduce(0) { total, file in
        total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
    }
}

/// Builds the bench catalog at `path` unless a complete one is there already.
///
/// Returns `step`, `components`, `built` (false: reused), `seconds` (build time, 0 when reused) and `bytes` on disk.
func searchBenchmarkCatalog(path: String) throws -> [String: Any] {
    let shape = searchBenchmarkShape()
    let clock = ContinuousClock()
    var built = false
    var elapsed = 0.0
    if FileManager.default.fileExists(atPath: path) {
        let catalog = try Catalog.open(path: path)
        let stored = try catalog.database.scalarInt("SELECT count(*) FROM components") ?? 0
        if stored != shape.componentCount {
            throw StoreError.invalidArgument("\(path) holds \(stored) components, not the bench catalog's "
                + "\(shape.componentCount): remove it to rebuild")
        }
    } else {
        let catalog = try Catalog.open(path: path)
        let duration = try clock.measure {
            _ = try SyntheticCatalog.populate(catalog, shape: shape)
            for id in stride(from: 1, through: shape.componentCount, by: 20_000) {
                try catalog.setHumanLabel(componentID: Int64(id), label: "hand-checked zeppelin detector", note: "bench")
            }
        }
        elapsed = seconds(duration)
        try catalog.database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        built = true
    }
    return ["step": "search-catalog", "components": shape.componentCount, "built": built, "seconds": elapsed,
            "bytes": fileBytes(path)]
}

/// One kind of query in the mix: a few concrete queries run in turn.
struct SearchQueryKind {
    var name: String
    var queries: [(text: String, filters: SearchFilters)]
}

/// The fixed query mix over the bench catalog (words and filters that exist in it).
func searchQueryMix() -> [SearchQueryKind] {
    [
        // Every vocabulary word is in about 19% of the components, a feature value in 3%, "category" in 35%.
        SearchQueryKind(name: "common word", queries: [("mango", SearchFilters()), ("violin", SearchFilters())]),
        SearchQueryKind(name: "value word", queries: [("fruit", SearchFilters()), ("anger", SearchFilters())]),
        SearchQueryKind(name: "two words", queries: [("category fruit", SearchFilters()), ("apple tiger", SearchFilters())]),
        SearchQueryKind(name: "rare word", queries: [("zeppelin", SearchFilters()), ("zeppelin detector", SearchFilters())]),
        SearchQueryKind(name: "rare word + filter", queries: [("zeppelin", SearchFilters(checkpoint: "main")),
                                                              ("zeppelin", SearchFilters(feature: "category"))]),
        SearchQueryKind(name: "word + layer", queries: [("mango", SearchFilters(layer: 5)), ("river", SearchFilters(layer: 17))]),
        SearchQueryKind(name: "word + layer + head", queries: [("apple", SearchFilters(layer: 3, head: 7)),
                                                               ("truck", SearchFilters(layer: 30, head: 1))]),
        SearchQueryKind(name: "word + checkpoint + layer + head + feature + value", queries: [
            ("pear", SearchFilters(model: "bench-model", checkpoint: "main", layer: 9, head: 12, feature: "category",
                                   value: "fruit")),
            ("otter", SearchFilters(checkpoint: "step2000", layer: 20, head: 4, feature: "sentiment", value: "joy")),
        ]),
        SearchQueryKind(name: "word + feature + value", queries: [("apple", SearchFilters(feature: "category", value: "fruit")),
                                                                  ("train", SearchFilters(feature: "order", value: "3"))]),
        SearchQueryKind(name: "word + kind + checkpoint", queries: [("tiger", SearchFilters(checkpoint: "step1000", kind: "binding")),
                                                                    ("gold", SearchFilters(checkpoint: "main", kind: "semantic"))]),
        SearchQueryKind(name: "common word + selective filter", queries: [
            ("category", SearchFilters(checkpoint: "main", layer: 4, head: 9)),
            ("sentiment", SearchFilters(layer: 11, head: 30, value: "calm")),
        ]),
        SearchQueryKind(name: "common word + broad filter", queries: [("category", SearchFilters(checkpoint: "main")),
                                                                      ("order", SearchFilters(kind: "binding"))]),
        SearchQueryKind(name: "empty + filters (by sigma)", queries: [
            ("", SearchFilters(layer: 7)), ("", SearchFilters(checkpoint: "main", layer: 2, head: 5)),
            ("", SearchFilters(feature: "category", value: "metal")),
            ("", SearchFilters(model: "bench-model", checkpoint: "step4000", layer: 31, head: 31, feature: "order", value: "9")),
        ]),
        SearchQueryKind(name: "empty (by sigma)", queries: [("", SearchFilters())]),
        SearchQueryKind(name: "no match", queries: [("dirigible", SearchFilters()), ("mango", SearchFilters(layer: 99))]),
    ]
}

/// Runs every query of the mix `repetitions` times in turn (after one warm-up pass) on a read-only catalog.
///
/// One record per kind: `kind`, `p50_ms`, `p99_ms`, `max_ms` (wall clock), `cpu_p50_ms`, `cpu_p99_ms` (the thread's
/// CPU time: what the query costs when other processes share the cores), `runs`, `hits` (of the first query).
func searchBenchmark(path: String, repetitions: Int = 200, limit: Int = 20) throws -> [[String: Any]] {
    let catalog = try Catalog.open(path: path, readOnly: true)
    let clock = ContinuousClock()
    var records: [[String: Any]] = []
    func threadCPUMilliseconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) * 1e3 + Double(time.tv_nsec) / 1e6
    }
    for kind in searchQueryMix() {
        var hits = 0
        for (text, filters) in kind.queries { hits = max(hits, try catalog.search(text, filters: filters, limit: limit).count) }
        var times: [Double] = []
        var cpuTimes: [Double] = []
        for _ in 0 ..< repetitions {
            for (text, filters) in kind.queries {
                let cpuStart = threadCPUMilliseconds()
                let duration = try clock.measure { _ = try catalog.search(text, filters: filters, limit: limit) }
                cpuTimes.append(threadCPUMilliseconds() - cpuStart)
                times.append(seconds(duration) * 1e3)
            }
        }
        times.sort()
        cpuTimes.sort()
        func quantile(_ values: [Double], _ q: Double) -> Double {
            values[min(values.count - 1, Int((Double(values.count - 1) * q).rounded()))]
        }
        records.append(["step": "search", "kind": kind.name, "p50_ms": quantile(times, 0.5), "p99_ms": quantile(times, 0.99),
                        "max_ms": times.last ?? 0, "cpu_p50_ms": quantile(cpuTimes, 0.5),
                        "cpu_p99_ms": quantile(cpuTimes, 0.99), "runs": times.count, "hits": hits])
    }
    return records
}

/// One query (no filters) `repetitions` times after a warm-up, on a read-only catalog: p50_ms, p99_ms, hits.
func searchQueryBenchmark(path: String, query: String, repetitions: Int = 200) throws -> [String: Any] {
    let catalog = try Catalog.open(path: path, readOnly: true)
    let hits = try catalog.search(query).count
    let clock = ContinuousClock()
    var times: [Double] = []
    for _ in 0 ..< repetitions {
        times.append(seconds(try clock.measure { _ = try catalog.search(query) }) * 1e3)
    }
    times.sort()
    return ["step": "search-query", "query": query, "p50_ms": times[times.count / 2],
            "p99_ms": times[min(times.count - 1, times.count * 99 / 100)], "hits": hits]
}

/// The store phase of an ingest against the engine: decomposes a synthetic capture (timed: engine), then stores
/// the same layer results into a fresh catalog in one transaction (timed: store, commit included).
///
/// The capture is shaped like a real model (32 layers × 32 heads, 8 kv heads, d_head 128, 2000 prompts × 10 keys,
/// BF16; a 6-valued semantic feature of rank 4 and a positional binding feature of rank 3), written to `directory`
/// unless present. `perValue` adds one decomposition per query value, as `qkcat ingest --per-value` does.
func ingestStoreBenchmark(directory: String, layers: Int = 32, perValue: Bool = false, topCount: Int = 20) throws -> [String: Any] {
    let dir = URL(fileURLWithPath: directory)
    let model = ModelInfo(name: "bench/planted", checkpoint: "main", layerCount: layers, headCount: 32, kvHeadCount: 8,
                          headDimension: 128)
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent(CaptureReader.headerFileName).path) {
        let spec = SyntheticCaptureSpec(
            model: model, layers: Array(0 ..< layers), promptCount: 2000, keysPerPrompt: 10, unlabelledKeysPerPrompt: 0,
            features: [SyntheticFeature(name: "category", valueCount: 6, rank: 4),
                       SyntheticFeature(name: "order", kind: "binding", valueCount: 10, rank: 3, assignment: .slot)],
            noise: 0.05, dtype: .bf16, seed: 42)
        try SyntheticCapture.write(spec, to: dir)
    }
    let clock = ContinuousClock()
    // A capture written earlier with more layers serves as well: only the first `layers` are decomposed.
    let options = DecompositionOptions(perValue: perValue, layers: Array(0 ..< layers), topCount: topCount)
    var results: [LayerResult] = []
    let engine = try clock.measure {
        let reader = try CaptureReader.open(dir)
        results = try Decomposer(reader: reader, options: options).runAll()
    }
    let reader = try CaptureReader.open(dir)
    let catalogPath = dir.appendingPathComponent("store-bench.sqlite").path
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: catalogPath + suffix) }
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: catalogPath + suffix) } }
    let catalog = try Catalog.open(path: catalogPath)
    var summary: IngestSummary?
    let store = try clock.measure {
        summary = try catalog.ingest(header: reader.header, contentHash: "store-bench", options: options,
                                     qkcatVersion: "bench", promptTable: reader.prompts,
                                     promptTokens: { try reader.tokens(ofPrompt: $0) }) { sink in
            for result in results { try sink(result) }
        }
    }
    return ["step": "ingest-store", "engine_seconds": seconds(engine), "store_seconds": seconds(store),
            "store_over_engine": seconds(store) / seconds(engine), "per_value": perValue, "layers": layers,
            "decompositions": summary?.decompositions ?? 0, "components": summary?.components ?? 0,
            "examples": summary?.examples ?? 0, "bytes": fileBytes(catalogPath)]
}

/// One search in a fresh process, as `qkcat search` runs it: opens the catalog read-only, runs `text` with
/// `filters`, and reports the open and search times (ms) and the hit count. Time the whole process from outside
/// (`hyperfine 'qkbench search-once CATALOG'`) for the end-to-end figure, process start included.
func searchOnce(path: String, text: String = "mango", filters: SearchFilters = SearchFilters(layer: 5, head: 3),
                limit: Int = 20) throws -> [String: Any] {
    let clock = ContinuousClock()
    var catalog: Catalog?
    let open = try clock.measure { catalog = try Catalog.open(path: path, readOnly: true) }
    var hits: [ComponentHit] = []
    let search = try clock.measure { hits = try catalog!.search(text, filters: filters, limit: limit) }
    return ["step": "search-once", "open_ms": seconds(open) * 1e3, "search_ms": seconds(search) * 1e3, "hits": hits.count]
}

/// Labels `count` components one after another (spread over the catalog, each its own transaction, as `qkcat label`
/// commits), timing each: `first_ms` and `last_ms` are the medians of the first and last ten, `ratio` their quotient.
/// The labels are removed again afterwards, so the catalog's search results stay as they were.
func labelSequenceBenchmark(path: String, count: Int) throws -> [String: Any] {
    let catalog = try Catalog.open(path: path)
    let total = try catalog.database.scalarInt("SELECT count(*) FROM components") ?? 0
    let clock = ContinuousClock()
    // Spread over the catalog, never one of the bench catalog's own human labels (every 20,000th component).
    let ids = (0 ..< count).map { offset -> Int64 in
        let id = 2 + (offset * 7919 + 13) % (total - 1)
        return Int64((id - 1) % 20_000 == 0 ? id - 1 : id)
    }
    var times: [Double] = []
    for (offset, id) in ids.enumerated() {
        times.append(seconds(try clock.measure {
            try catalog.setHumanLabel(componentID: id, label: "relabelled component \(offset)", note: "bench")
        }) * 1e3)
    }
    for id in ids { try catalog.setHumanLabel(componentID: id, label: nil, note: "") }
    func median(_ slice: ArraySlice<Double>) -> Double { slice.sorted()[slice.count / 2] }
    let first = median(times.prefix(10)), last = median(times.suffix(10))
    return ["step": "label-sequence", "count": count, "components": total, "first_ms": first, "last_ms": last,
            "ratio": last / first, "median_ms": median(times[...])]
}
