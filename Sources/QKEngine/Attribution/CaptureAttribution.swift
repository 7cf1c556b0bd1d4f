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
    /// Works layer by layer (releasing each layer's pages). Inside a layer, workers take blocks of
    /// consecutive prompts: a block's queries (every head) and keys (every kv head) are contiguous in the
    /// file and decoded in one pass, and each prompt's few keys stay in cache while every requested head
    /// reads them. Fractions do not depend on a logit scale, so none is taken.
    public func summarize(heads: [HeadSplitter], threads: Int? = nil, promptsPerBlock: Int = 16) throws -> [HeadAttributionSummary] {
        let model = reader.header.model
        let table = reader.prompts
        for entry in heads { try check(layer: entry.layer, head: entry.head, splitter: entry.splitter) }
        let threadCount = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let blockSize = max(1, promptsPerBlock)
        let blockCount = (table.promptCount + blockSize - 1) / blockSize
        var summaries: [HeadAttributionSummary] = []
        let layers = heads.map(\.layer).reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
        for layer in layers {
            let tensors = try reader.layerTensors(layer)
            let layerHeads = heads.filter { $0.layer == layer }
            // fractions[(h * stages + s) * P + p]: stage 0 the explained fraction, stage i + 1 what feature i adds.
            let stageCounts = layerHeads.map { $0.splitter.bases.count + 1 }
            let offsets = stageCounts.reduce(into: [0]) { $0.append($0.last! + $1 * table.promptCount) }
            let fractions = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(offsets.last!, 1))
            defer { fractions.deallocate() }
            let sink = UnsafeSendableBox(fractions)
            let plan = LayerPlan(heads: layerHeads, offsets: offsets, model: model)
            let failures = ResultBox<Void>(count: blockCount)
            parallelFor(count: blockCount, threads: threadCount) { block in
                let prompts = (block * blockSize)..<min((block + 1) * blockSize, table.promptCount)
                do {
                    try AttributionKernel.attributeBlock(
                        prompts: prompts, plan: plan, tensors: tensors, model: model, keyStart: table.keyStart,
                        promptCount: table.promptCount, into: sink.value)
                } catch {
                    failures.set(block, .failure(error))
                }
            }
            tensors.queries.releasePages()
            tensors.keys.releasePages()
            for case .failure(let error)? in failures.values { throw error }
            let layerSummaries = ResultBox<HeadAttributionSummary>(count: layerHeads.count)
            parallelFor(count: layerHeads.count, threads: threadCount) { index in
                let entry = layerHeads[index], stages = stageCounts[index]
                var statistics: [FractionStatistics] = []
                for s in 0..<stages {
                    var running = RunningStatistics()
                    let base = offsets[index] + s * table.promptCount
                    for p in 0..<table.promptCount where !sink.value[base + p].isNaN { running.add(sink.value[base + p]) }
                    statistics.append(running.statistics)
                }
                layerSummaries.set(index, .success(HeadAttributionSummary(
                    layer: layer, head: entry.head, promptCount: statistics[0].count, explained: statistics[0],
                    features: (0..<(stages - 1)).map { entry.splitter.isPresent[$0] ? statistics[$0 + 1] : nil })))
            }
            for case .success(let summary)? in layerSummaries.values { summaries.append(summary) }
        }
        return summaries
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
}

/// The `--all` inner loop on raw Float rows: stage residuals, their logits, and running statistics.
enum AttributionKernel {
    /// Decodes prompts `prompts` (queries of every head, keys of every kv head) and writes, for every head
    /// of `plan`, each prompt's stage fractions into `fractions` (NaN when its total logits are all zero).
    static func attributeBlock(prompts: Range<Int>, plan: LayerPlan, tensors: LayerTensors, model: ModelInfo,
                               keyStart: [Int], promptCount: Int,
                               into fractions: UnsafeMutableBufferPointer<Double>) throws(EngineError) {
        let d = model.headDimension
        let queryWidth = model.headCount * d, keyWidth = model.kvHeadCount * d
        let keyRange = keyStart[prompts.lowerBound]..<keyStart[prompts.upperBound]
        let queries = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(prompts.count * queryWidth, 1))
        defer { queries.deallocate() }
        let keys = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(keyRange.count * keyWidth, 1))
        defer { keys.deallocate() }
        try tensors.queries.decodeRows(prompts, into: queries)
        try tensors.keys.decodeRows(keyRange, into: keys)
        let stages = UnsafeMutablePointer<Float>.allocate(capacity: plan.maximumStages * d)
        defer { stages.deallocate() }
        let energies = UnsafeMutablePointer<Double>.allocate(capacity: plan.maximumStages)
        defer { energies.deallocate() }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: plan.maximumStages)
        defer { logits.deallocate() }
        for p in prompts {
            let queryRow = queries.baseAddress! + (p - prompts.lowerBound) * queryWidth
            let firstKey = keyStart[p] - keyRange.lowerBound, keyCount = keyStart[p + 1] - keyStart[p]
            for index in 0..<plan.headCount {
                let head = plan.heads[index], stageCount = plan.stageCounts[index], featureCount = stageCount - 1
                plan.stageResiduals(index, query: queryRow + head * d, into: stages)
                let kvOffset = (head / plan.groupSize) * d
                energies.update(repeating: 0, count: stageCount)
                for j in 0..<keyCount {
                    multiDot(keys.baseAddress! + (firstKey + j) * keyWidth + kvOffset, stages, stageCount, d, into: logits)
                    for s in 0..<stageCount { energies[s] += Double(logits[s]) * Double(logits[s]) }
                }
                let base = plan.offsets[index] + p
                let total = energies[0]
                for s in 0..<stageCount {
                    let slot = base + s * promptCount
                    guard total > 0 else { fractions[slot] = .nan; continue }
                    // Slot 0: the explained fraction; slot i: what feature i adds, (‖L_{i−1}‖² − ‖L_i‖²) / ‖L_0‖².
                    fractions[slot] = s == 0 ? 1 - energies[featureCount] / total : (energies[s - 1] - energies[s]) / total
                }
            }
        }
    }

    /// `out[s] = k · stages[s]` for `count` stage vectors of length `d`: each chunk of `k` is loaded once.
    @inline(__always)
    static func multiDot(_ k: UnsafePointer<Float>, _ stages: UnsafePointer<Float>, _ count: Int, _ d: Int,
                         into out: UnsafeMutablePointer<Float>) {
        guard count == 3, d % 8 == 0 else {
            for s in 0..<count { out[s] = FloatKernels.dot(k, stages + s * d, d) }
            return
        }
        let rk = UnsafeRawPointer(k), r0 = UnsafeRawPointer(stages), r1 = UnsafeRawPointer(stages + d),
            r2 = UnsafeRawPointer(stages + 2 * d)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
        var offset = 0
        let end = d &* 4
        while offset < end {
            let x = rk.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            a0.addProduct(x, r0.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            a1.addProduct(x, r1.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            a2.addProduct(x, r2.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
            offset &+= 32
        }
        out[0] = a0.sum()
        out[1] = a1.sum()
        out[2] = a2.sum()
    }

    /// `y += a·x` in Float.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * x[i] }
    }
}

/// One layer's heads flattened into raw buffers, so the hot loop touches no Swift arrays or references.
final class LayerPlan: @unchecked Sendable {
    let headCount: Int
    let dimension: Int
    let groupSize: Int
    let maximumStages: Int
    let heads: UnsafeMutablePointer<Int>
    let stageCounts: UnsafeMutablePointer<Int>
    /// Per head: where its fractions start in the layer's fraction buffer.
    let offsets: UnsafeMutablePointer<Int>
    /// Per head and feature: the rank and where its basis rows start in `basis`.
    let ranks: UnsafeMutablePointer<Int>
    let basisStarts: UnsafeMutablePointer<Int>
    let featureStarts: UnsafeMutablePointer<Int>
    let basis: UnsafeMutablePointer<Float>

    init(heads entries: [HeadSplitter], offsets fractionOffsets: [Int], model: ModelInfo) {
        headCount = entries.count
        dimension = model.headDimension
        groupSize = model.groupSize
        maximumStages = (entries.map { $0.splitter.bases.count }.max() ?? 0) + 1
        heads = .allocate(capacity: max(headCount, 1))
        stageCounts = .allocate(capacity: max(headCount, 1))
        offsets = .allocate(capacity: max(headCount, 1))
        featureStarts = .allocate(capacity: headCount + 1)
        let featureTotal = entries.reduce(0) { $0 + $1.splitter.bases.count }
        ranks = .allocate(capacity: max(featureTotal, 1))
        basisStarts = .allocate(capacity: max(featureTotal, 1))
        basis = .allocate(capacity: max(entries.reduce(0) { $0 + $1.splitter.basisRows.reduce(0) { $0 + $1.count } }, 1))
        var feature = 0, floats = 0
        for (index, entry) in entries.enumerated() {
            heads[index] = entry.head
            stageCounts[index] = entry.splitter.bases.count + 1
            offsets[index] = fractionOffsets[index]
            featureStarts[index] = feature
            for rows in entry.splitter.basisRows {
                ranks[feature] = rows.count / dimension
                basisStarts[feature] = floats
                rows.withUnsafeBufferPointer { (basis + floats).initialize(from: $0.baseAddress!, count: $0.count) }
                floats += rows.count
                feature += 1
            }
        }
        featureStarts[headCount] = feature
    }

    deinit {
        for pointer in [heads, stageCounts, offsets, ranks, basisStarts, featureStarts] { pointer.deallocate() }
        basis.deallocate()
    }

    /// `stages[s] = r_s` for head `index`: `r_0 = q`, `r_i = r_{i−1} − B_i B_iᵀ r_{i−1}`.
    @inline(__always)
    func stageResiduals(_ index: Int, query: UnsafePointer<Float>, into stages: UnsafeMutablePointer<Float>) {
        let d = dimension
        stages.update(from: query, count: d)
        var stage = 0
        for feature in featureStarts[index]..<featureStarts[index + 1] {
            let current = stages + stage * d, next = stages + (stage + 1) * d
            next.update(from: current, count: d)
            let rows = basis + basisStarts[feature]
            for j in 0..<ranks[feature] {
                let b = rows + j * d
                AttributionKernel.axpy(-FloatKernels.dot(b, current, d), b, next, d)
            }
            stage += 1
        }
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
        var scratch = values
        let upper = Self.select(&scratch, count / 2)
        // For an even count the lower middle is the largest of the values below the upper middle.
        let median = count % 2 == 1 ? upper : (scratch[0..<(count / 2)].max()! + upper) / 2
        return FractionStatistics(count: count, mean: mean, standardDeviation: (squares / Double(count)).squareRoot(),
                                  minimum: minimum, maximum: maximum, median: median)
    }

    /// The `k`-th smallest value (0-based); afterwards `values[..<k]` hold values not above it (Hoare's selection).
    static func select(_ values: inout [Double], _ k: Int) -> Double {
        var low = 0, high = values.count - 1
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j {
                    values.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j { high = j } else if k >= i { low = i } else { break }
        }
        return values[k]
    }
}
