import Foundation

/// A head and the splitter holding its feature subspaces.
public struct HeadSplitter: Sendable {
    public var layer: Int
    public var head: Int
    public var splitter: QuerySplitter

    public init(layer: Int, head: Int, splitter: QuerySplitter) {
        self.layer = layer
        self.head = head
        self.splitter = splitter
    }
}

/// Mean and spread of one fraction over a capture's prompts.
public struct FractionStatistics: Sendable, Equatable {
    /// Prompts counted (those whose total logits are not all zero).
    public var count: Int
    public var mean: Double
    /// Population standard deviation.
    public var standardDeviation: Double
    public var minimum: Double
    public var maximum: Double
    /// The middle value (mean of the two middle ones for an even count): robust where a few prompts whose
    /// total logits nearly cancel give extreme fractions.
    public var median: Double

    public init(count: Int, mean: Double, standardDeviation: Double, minimum: Double, maximum: Double, median: Double) {
        self.count = count
        self.mean = mean
        self.standardDeviation = standardDeviation
        self.minimum = minimum
        self.maximum = maximum
        self.median = median
    }
}

/// What `--all` reports for one head.
public struct HeadAttributionSummary: Sendable, Equatable {
    public var layer: Int
    public var head: Int
    /// Prompts whose total logits are not all zero (the others have no fraction).
    public var promptCount: Int
    /// The explained fraction of all features together.
    public var explained: FractionStatistics
    /// Per feature (splitter order): what it adds to the explained fraction (`PromptAttribution.featureFractions`);
    /// nil for a feature without a subspace at this head.
    public var features: [FractionStatistics?]
}

/// Attributes a capture's attention logits to feature subspaces.
public struct CaptureAttributor: Sendable {
    public let reader: CaptureReader

    public init(reader: CaptureReader) { self.reader = reader }

    /// The index of the prompt whose id is `id`; throws `.invalidOption(name: "prompt", …)` when absent.
    public func promptIndex(id: String) throws(EngineError) -> Int {
        let ids = reader.prompts.promptIDs
        guard let index = ids.firstIndex(of: id) else {
            let examples = ids.prefix(3).joined(separator: ", ") + (ids.count > 3 ? ", …" : "")
            throw .invalidOption(name: "prompt", message: "the capture has no prompt '\(id)' (its \(ids.count) prompts: \(examples))")
        }
        return index
    }

    /// Splits the logits of prompt `prompt` (an index) at `layer`, `head`, multiplied by `scale`.
    public func attribute(prompt: Int, layer: Int, head: Int, splitter: QuerySplitter, scale: Double = 1)
        throws(EngineError) -> PromptAttribution
    {
        let model = reader.header.model
        let table = reader.prompts
        try check(layer: layer, head: head, splitter: splitter)
        precondition(prompt >= 0 && prompt < table.promptCount, "prompt \(prompt) outside 0..<\(table.promptCount)")
        let tensors = try reader.layerTensors(layer)
        let d = model.headDimension
        var queries = [Float](repeating: 0, count: model.headCount * d)
        try queries.withUnsafeMutableBufferPointer { buffer throws(EngineError) in
            try tensors.queries.decodeRows(prompt..<(prompt + 1), into: buffer)
        }
        let keyRange = table.keyStart[prompt]..<table.keyStart[prompt + 1]
        var keys = [Float](repeating: 0, count: keyRange.count * model.kvHeadCount * d)
        try keys.withUnsafeMutableBufferPointer { buffer throws(EngineError) in
            try tensors.keys.decodeRows(keyRange, into: buffer)
        }
        let kvHead = model.kvHead(forHead: head)
        let query = Array(queries[(head * d)..<((head + 1) * d)])
        var headKeys: [Float] = []
        headKeys.reserveCapacity(keyRange.count * d)
        for j in 0..<keyRange.count {
            let start = (j * model.kvHeadCount + kvHead) * d
            headKeys += keys[start..<(start + d)]
        }
        return splitter.attribute(query: query, keys: headKeys, scale: scale)
    }

    /// Every prompt at every head of `heads`: the mean and spread of the explained fractions per head.
    ///
    /// Works layer by layer (releasing each layer's pages) and, inside a layer, one kv head per worker:
    /// its keys are decoded once for all the query heads that read them. Fractions do not depend on a
    /// logit scale, so none is taken.
    public func summarize(heads: [HeadSplitter], threads: Int? = nil) throws -> [HeadAttributionSummary] {
        let model = reader.header.model
        for entry in heads { try check(layer: entry.layer, head: entry.head, splitter: entry.splitter) }
        let threadCount = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        var summaries: [HeadAttributionSummary] = []
        let layers = heads.map(\.layer).reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
        for layer in layers {
            let tensors = try reader.layerTensors(layer)
            var groups: [Int: [HeadSplitter]] = [:]
            for entry in heads where entry.layer == layer { groups[model.kvHead(forHead: entry.head), default: []].append(entry) }
            let kvHeads = groups.keys.sorted()
            let outcome = ResultBox<[HeadAttributionSummary]>(count: kvHeads.count)
            parallelFor(count: kvHeads.count, threads: threadCount) { index in
                do {
                    let kvHead = kvHeads[index]
                    outcome.set(index, .success(try summarizeGroup(kvHead: kvHead, heads: groups[kvHead]!, tensors: tensors)))
                } catch {
                    outcome.set(index, .failure(error))
                }
            }
            tensors.queries.releasePages()
            tensors.keys.releasePages()
            for result in outcome.values {
                switch result {
                case .success(let s)?: summaries += s
                case .failure(let error)?: throw error
                case nil: preconditionFailure("a kv head produced no result")
                }
            }
        }
        let order = Dictionary(heads.enumerated().map { (LayerHead(layer: $1.layer, head: $1.head), $0) }, uniquingKeysWith: { a, _ in a })
        return summaries.sorted { order[LayerHead(layer: $0.layer, head: $0.head)]! < order[LayerHead(layer: $1.layer, head: $1.head)]! }
    }

    private func check(layer: Int, head: Int, splitter: QuerySplitter) throws(EngineError) {
        let model = reader.header.model
        guard reader.header.layers.contains(layer) else {
            throw .invalidOption(name: "layer", message: "layer \(layer) is not in the capture (it holds: \(reader.header.layers.map(String.init).joined(separator: ", ")))")
        }
        guard head >= 0 && head < model.headCount else {
            throw .invalidOption(name: "head", message: "head \(head) is outside 0..<\(model.headCount) (the capture's n_heads)")
        }
        guard splitter.dimension == model.headDimension else {
            throw .invalidOption(name: "features", message: "the subspaces have \(splitter.dimension) dimensions, the capture's d_head is \(model.headDimension)")
        }
    }

    /// All prompts of the query heads `heads`, which read kv head `kvHead`.
    private func summarizeGroup(kvHead: Int, heads: [HeadSplitter], tensors: LayerTensors) throws -> [HeadAttributionSummary] {
        let table = reader.prompts
        let d = reader.header.model.headDimension
        let keys = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(table.keyCount * d, 1))
        defer { keys.deallocate() }
        try tensors.keys.decodeSlice(head: kvHead, into: keys)
        let queries = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(table.promptCount * d, 1))
        defer { queries.deallocate() }
        var results: [HeadAttributionSummary] = []
        for entry in heads {
            try tensors.queries.decodeSlice(head: entry.head, into: queries)
            results.append(AttributionKernel.summarize(
                layer: entry.layer, head: entry.head, splitter: entry.splitter, queries: UnsafePointer(queries.baseAddress!),
                keys: UnsafePointer(keys.baseAddress!), keyStart: table.keyStart, dimension: d))
        }
        return results
    }
}

/// The `--all` inner loop on raw Float rows: stage residuals, their logits, and running statistics.
enum AttributionKernel {
    static func summarize(layer: Int, head: Int, splitter: QuerySplitter, queries: UnsafePointer<Float>,
                          keys: UnsafePointer<Float>, keyStart: [Int], dimension d: Int) -> HeadAttributionSummary {
        let featureCount = splitter.bases.count
        let stageCount = featureCount + 1
        // stages[s] = r_s (r_0 = q); energies[s] = Σ_k (r_s·k)².
        let stages = UnsafeMutablePointer<Float>.allocate(capacity: stageCount * d)
        defer { stages.deallocate() }
        var energies = [Double](repeating: 0, count: stageCount)
        var accumulators = [RunningStatistics](repeating: RunningStatistics(), count: stageCount)
        let bases = splitter.basisRows
        let promptCount = keyStart.count - 1
        for p in 0..<promptCount {
            stages.update(from: queries + p * d, count: d)
            for i in 0..<featureCount {
                let current = stages + i * d, next = stages + (i + 1) * d
                next.update(from: current, count: d)
                let rank = bases[i].count / d
                bases[i].withUnsafeBufferPointer { basis in
                    for j in 0..<rank {
                        let b = basis.baseAddress! + j * d
                        let coefficient = dot(b, current, d)
                        axpy(-coefficient, b, next, d)
                    }
                }
            }
            for s in 0..<stageCount { energies[s] = 0 }
            for key in keyStart[p]..<keyStart[p + 1] {
                let k = keys + key * d
                for s in 0..<stageCount {
                    let logit = Double(dot(k, stages + s * d, d))
                    energies[s] += logit * logit
                }
            }
            let total = energies[0]
            guard total > 0 else { continue }
            // Slot 0 collects the explained fraction; slot i the fraction feature i adds.
            accumulators[0].add(1 - energies[featureCount] / total)
            for i in 0..<featureCount { accumulators[i + 1].add((energies[i] - energies[i + 1]) / total) }
        }
        let explained = accumulators[0].statistics
        return HeadAttributionSummary(
            layer: layer, head: head, promptCount: explained.count, explained: explained,
            features: (0..<featureCount).map { splitter.isPresent[$0] ? accumulators[$0 + 1].statistics : nil })
    }

    /// `Σ x[i]·y[i]` in Float, two 8-wide accumulators.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeRawPointer(y)
        while i + 16 <= n {
            a0.addProduct(rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self),
                          ry.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self))
            a1.addProduct(rx.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self),
                          ry.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self))
            i &+= 16
        }
        var sum = (a0 + a1).sum()
        while i < n {
            sum += x[i] * y[i]
            i &+= 1
        }
        return sum
    }

    /// `y += a·x` in Float.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * x[i] }
    }
}

/// Count, mean, variance (Welford), minimum, maximum and median of a stream of values.
struct RunningStatistics {
    private var values: [Double] = []
    private var count = 0
    private var mean = 0.0
    private var squares = 0.0
    private var minimum = Double.infinity
    private var maximum = -Double.infinity

    mutating func add(_ x: Double) {
        values.append(x)
        count += 1
        let delta = x - mean
        mean += delta / Double(count)
        squares += delta * (x - mean)
        minimum = Swift.min(minimum, x)
        maximum = Swift.max(maximum, x)
    }

    var statistics: FractionStatistics {
        guard count > 0 else {
            return FractionStatistics(count: 0, mean: .nan, standardDeviation: .nan, minimum: .nan, maximum: .nan, median: .nan)
        }
        let sorted = values.sorted()
        let median = count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2
        return FractionStatistics(count: count, mean: mean, standardDeviation: (squares / Double(count)).squareRoot(),
                                  minimum: minimum, maximum: maximum, median: median)
    }
}
