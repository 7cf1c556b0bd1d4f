import Foundation

/// Decomposes every captured head of a capture for every requested feature.
///
/// Work is split by (layer, kv head): a worker decodes one kv head's keys once, forms each
/// contrast's per-prompt key sums, and reuses them for every query head of the group. Layers are
/// processed one after another and their mapped pages released, so memory stays bounded by one
/// layer plus the workers' scratch, whatever the number of prompts.
public struct Decomposer: Sendable {
    public let reader: CaptureReader
    public let options: DecompositionOptions
    public let plan: ContrastPlan
    public let layers: [Int]
    /// Dense token ids of the keys and of the queries, for per-token sums.
    let keyVocabulary: TokenVocabulary
    let queryVocabulary: TokenVocabulary

    /// Validates `options` against the capture and plans the contrasts.
    public init(reader: CaptureReader, options: DecompositionOptions) throws(EngineError) {
        let header = reader.header
        guard options.energy > 0, options.energy <= 1 else {
            throw .invalidOption(name: "energy", message: "\(options.energy) is not in (0, 1]")
        }
        if let maxRank = options.maxRank, maxRank < 1 {
            throw .invalidOption(name: "max-rank", message: "\(maxRank) is below 1")
        }
        guard options.topCount >= 0 else {
            throw .invalidOption(name: "top", message: "\(options.topCount) is negative")
        }
        if let threads = options.threads, threads < 1 {
            throw .invalidOption(name: "threads", message: "\(threads) is below 1")
        }
        let declared = header.features.map(\.name)
        let features = options.features ?? declared
        for name in features where !declared.contains(name) {
            throw .invalidOption(
                name: "features",
                message: "the capture declares no feature '\(name)' (it declares: \(declared.joined(separator: ", ")))")
        }
        let layers = options.layers ?? header.layers
        for layer in layers where !header.layers.contains(layer) {
            throw .invalidOption(
                name: "layers",
                message: "layer \(layer) is not in the capture (it holds: \(header.layers.map(String.init).joined(separator: ", ")))")
        }
        self.reader = reader
        self.options = options
        self.layers = layers
        self.plan = ContrastPlan(prompts: reader.prompts, features: features, perValue: options.perValue)
        self.keyVocabulary = TokenVocabulary(tokens: reader.prompts.keyTokens)
        self.queryVocabulary = TokenVocabulary(tokens: reader.prompts.queryTokens)
    }

    /// Work units per layer, for progress reporting.
    public var unitsPerLayer: Int { reader.header.model.kvHeadCount }

    /// Runs the decomposition, handing each layer's results to `emit` as soon as they are ready.
    ///
    /// `progress(done, total)` is called after each (layer, kv head) unit, from a worker thread.
    public func run(progress: (@Sendable (Int, Int) -> Void)? = nil,
                    emit: (LayerResult) throws -> Void) throws {
        let model = reader.header.model
        let threads = max(1, options.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let total = layers.count * model.kvHeadCount
        let counter = ProgressCounter()
        let pool = ScratchPool()
        for layer in layers {
            let tensors = try reader.layerTensors(layer)
            let outcome = ResultBox<[Decomposition]>(count: model.kvHeadCount)
            // Fewer kv heads than threads (e.g. multi-query attention): parallelize inside a group instead.
            let innerThreads = max(1, threads / max(1, model.kvHeadCount))
            parallelFor(count: model.kvHeadCount, threads: threads) { kvHead in
                do {
                    let results = try decomposeGroup(layer: layer, kvHead: kvHead, tensors: tensors, threads: innerThreads,
                                                     pool: pool)
                    outcome.set(kvHead, .success(results))
                } catch {
                    outcome.set(kvHead, .failure(error))
                }
                let done = counter.increment()
                progress?(done, total)
            }
            tensors.queries.releasePages()
            tensors.keys.releasePages()
            var decompositions: [Decomposition] = []
            for result in outcome.values {
                switch result {
                case .success(let d)?: decompositions += d
                case .failure(let error)?: throw error
                case nil: preconditionFailure("a work unit produced no result")
                }
            }
            decompositions.sort { ($0.head, specOrder($0)) < ($1.head, specOrder($1)) }
            let skips = plan.unformable.map { Skip(layer: layer, head: nil, feature: $0.feature, value: $0.value, reason: $0.reason) }
            try emit(LayerResult(layer: layer, decompositions: decompositions, skips: skips))
        }
    }

    /// Runs everything and returns all layers' results (convenient for small captures and tests).
    public func runAll() throws -> [LayerResult] {
        var results: [LayerResult] = []
        try run { results.append($0) }
        return results
    }

    private func specOrder(_ d: Decomposition) -> Int {
        plan.specs.firstIndex { $0.feature == d.feature && $0.value == d.value } ?? Int.max
    }

    /// All contrasts of the query heads that read kv head `kvHead`.
    ///
    /// Each head's contrasts are decomposed (in parallel when there are threads to spare) and the
    /// query-side examples of all its components come from one pass over its queries; then the
    /// key-side examples of every kept component of the group come from one pass over the keys,
    /// which are shared by the group and are the largest thing a worker reads.
    private func decomposeGroup(layer: Int, kvHead: Int, tensors: LayerTensors, threads: Int,
                                pool: ScratchPool) throws -> [Decomposition] {
        let model = reader.header.model
        let table = reader.prompts
        let d = model.headDimension
        let keys = try decodeRows(tensors.keys, head: kvHead, rows: table.keyCount, columns: d, pool: pool)
        defer { pool.recycle(keys) }
        let heads = Array((kvHead * model.groupSize)..<((kvHead + 1) * model.groupSize))
        // Key sums per contrast, shared by every head of the group.
        let sums: [FloatRows] = plan.specs.map { spec in
            let rows = pool.rows(spec.prompts.count, d)
            Kernels.weightedKeySums(keys: keys, spec: spec, into: rows)
            return rows
        }
        defer { sums.forEach(pool.recycle) }
        let outcome = ResultBox<[Decomposition]>(count: heads.count)
        parallelFor(count: heads.count, threads: threads) { index in
            do {
                let head = heads[index]
                let queries = try decodeRows(tensors.queries, head: head, rows: table.promptCount, columns: d, pool: pool)
                defer { pool.recycle(queries) }
                let meanQuery = queries.meanRow()
                var results: [Decomposition] = []
                for (spec, sum) in zip(plan.specs, sums) {
                    let delta = Kernels.contrast(a: queries, rows: spec.prompts, b: sum, variant: options.kernelVariant)
                    results.append(decomposition(
                        of: Matrix(rows: d, columns: d, elements: delta), layer: layer, head: head, kvHead: kvHead,
                        spec: spec, meanQuery: meanQuery))
                }
                addExamples(to: &results, side: .query, rows: queries)
                outcome.set(index, .success(results))
            } catch {
                outcome.set(index, .failure(error))
            }
        }
        var all: [Decomposition] = []
        for result in outcome.values {
            switch result {
            case .success(let d)?: all += d
            case .failure(let error)?: throw error
            case nil: preconditionFailure("a head produced no result")
            }
        }
        addExamples(to: &all, side: .key, rows: keys)
        return all
    }

    /// Scores every row of `rows` (a head's queries, or its group's keys) against every kept
    /// component's `u` (or `v`) at once, and keeps each component's top rows and token aggregates.
    private func addExamples(to decompositions: inout [Decomposition], side: Side, rows: FloatRows) {
        let table = reader.prompts
        var slots: [(decomposition: Int, component: Int)] = []
        for i in decompositions.indices {
            for j in decompositions[i].components.indices { slots.append((i, j)) }
        }
        let vocabulary = side == .key ? keyVocabulary : queryVocabulary
        var start = 0
        while start < slots.count {
            let chunk = slots[start..<min(start + ExampleCollector.maxColumns, slots.count)]
            let vectors = chunk.map { side == .key ? decompositions[$0.0].components[$0.1].v : decompositions[$0.0].components[$0.1].u }
            let collector = ExampleCollector(vectors: vectors, depth: rows.columns, top: options.topCount,
                                             tokenSlots: vocabulary.tokens.count, variant: options.kernelVariant)
            collector.scan(rows, tokenIDs: vocabulary.ids)
            for (column, slot) in chunk.enumerated() {
                switch side {
                case .key:
                    decompositions[slot.0].components[slot.1].keys = collector.side(column, vocabulary: vocabulary) { key, score in
                        Example(prompt: table.prompt(ofKey: key), position: Int(table.keyPositions[key]),
                                token: table.keyTokens[key], score: score)
                    }
                case .query:
                    decompositions[slot.0].components[slot.1].queries = collector.side(column, vocabulary: vocabulary) { p, score in
                        Example(prompt: p, position: Int(table.queryPositions[p]), token: table.queryTokens[p], score: score)
                    }
                }
            }
            start += chunk.count
        }
    }

    /// SVD, rank and sign convention of one `ΔC` (examples come later).
    private func decomposition(of delta: Matrix, layer: Int, head: Int, kvHead: Int, spec: ContrastSpec,
                               meanQuery: [Double]) -> Decomposition {
        let svd = leadingSingularPairs(delta) { Spectrum.rank(of: $0, energy: options.energy, maxRank: options.maxRank) }
        let sigmas = svd.singularValues
        let rank = svd.u.columns
        let totalEnergy = sigmas.reduce(0) { $0 + $1 * $1 }
        var components: [Component] = []
        for i in 0..<rank {
            let u = svd.u.column(i), v = svd.v.column(i)
            let sign = Spectrum.conventionalSign(u: u, meanQuery: meanQuery)
            components.append(Component(
                index: i, sigma: sigmas[i], energyShare: totalEnergy > 0 ? sigmas[i] * sigmas[i] / totalEnergy : 0,
                u: u.map { Float($0 * sign) }, v: v.map { Float($0 * sign) }, queries: SideExamples(), keys: SideExamples()))
        }
        return Decomposition(
            layer: layer, head: head, kvHead: kvHead, feature: spec.feature, value: spec.value,
            positivePairs: spec.positivePairs, negativePairs: spec.negativePairs,
            frobenius: delta.frobeniusNorm, singularValues: sigmas, rank: rank, components: components)
    }

    private func decodeRows(_ tensor: TensorView, head: Int, rows: Int, columns: Int,
                            pool: ScratchPool) throws(EngineError) -> FloatRows {
        let out = pool.rows(rows, columns)
        do {
            try tensor.decodeSlice(head: head, into: out.buffer)
        } catch {
            pool.recycle(out)
            throw error
        }
        return out
    }
}

/// Thread-safe slots for results produced by parallel workers.
final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Result<T, Error>) {
        lock.lock()
        slots[index] = value
        lock.unlock()
    }

    var values: [Result<T, Error>?] {
        lock.lock()
        defer { lock.unlock() }
        return slots
    }
}

final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

/// Runs `body(0..<count)` on up to `threads` threads, each taking the next index when free.
func parallelFor(count: Int, threads: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let workers = min(threads, count)
    if workers == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let next = ProgressCounter()
    withoutActuallyEscaping(body) { body in
        let box = UnsafeSendableBox(body)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.increment() - 1
                if i >= count { break }
                box.value(i)
            }
        }
    }
}

/// Carries a non-Sendable closure into `concurrentPerform`; callers guarantee thread safety.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
