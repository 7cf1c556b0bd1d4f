import Foundation

/// A feature planted in a synthetic capture.
public struct SyntheticFeature: Sendable, Equatable {
    /// How keys get their values.
    public enum Assignment: Sendable, Equatable {
        /// Uniformly at random, plus one key guaranteed to share the query's value.
        case random
        /// Key slot `i` of every prompt has value `i` (a binding feature such as list order);
        /// requires `valueCount == keysPerPrompt`.
        case slot
    }

    public var name: String
    public var kind: String
    public var valueCount: Int
    /// Planted rank of the pooled contrast; at most `valueCount − 1`.
    public var rank: Int
    /// Per planted dimension `sᵢ`; the pooled contrast then has `σᵢ = m/(m−1) · sᵢ²`.
    public var strengths: [Double]
    public var assignment: Assignment

    public init(name: String, kind: String = "semantic", valueCount: Int, rank: Int, strengths: [Double]? = nil,
                assignment: Assignment = .random) {
        precondition(rank >= 1 && rank <= valueCount - 1, "planted rank must be in 1...valueCount-1")
        self.name = name
        self.kind = kind
        self.valueCount = valueCount
        self.rank = rank
        // Squares spaced linearly from 1 down to 0.5: every planted dimension holds well over 1% of the energy.
        self.strengths = strengths ?? (0..<rank).map { i in
            (1.0 - 0.5 * Double(i) / Double(max(rank - 1, 1))).squareRoot()
        }
        self.assignment = assignment
    }

    /// The label string of value `code`.
    public func valueName(_ code: Int) -> String { assignment == .slot ? String(code) : "\(name)\(code)" }
}

/// Identifies one head in one layer.
public struct LayerHead: Hashable, Sendable {
    public var layer: Int
    public var head: Int
    public init(layer: Int, head: Int) {
        self.layer = layer
        self.head = head
    }
}

/// Everything that defines a synthetic capture; the same spec and seed give the same bytes.
public struct SyntheticCaptureSpec: Sendable {
    public var model: ModelInfo
    public var layers: [Int]
    public var promptCount: Int
    /// Labelled keys per prompt.
    public var keysPerPrompt: Int
    /// Extra keys per prompt that carry no label (they only count for top-token lists).
    public var unlabelledKeysPerPrompt: Int
    public var features: [SyntheticFeature]
    /// Standard deviation of the isotropic noise added to every query and key coordinate.
    public var noise: Double
    public var dtype: TensorDType
    public var seed: UInt64
    public var positional: String = "post-rope"
    /// Rotation (radians) of a query head's planted subspaces, out of their span.
    public var queryRotations: [LayerHead: Double] = [:]
    /// Rotation (radians) of a kv head's planted subspaces (`head` is the kv head).
    public var keyRotations: [LayerHead: Double] = [:]
    /// Per query head: a lower planted rank for some features.
    public var rankOverrides: [LayerHead: [String: Int]] = [:]
    /// Head `h` takes the planted bases that head `headPermutation[h]` would have (same for kv heads
    /// when every head has its own kv head), so another seed of "the same model" can be imitated.
    public var headPermutation: [Int]? = nil

    public init(model: ModelInfo, layers: [Int], promptCount: Int, keysPerPrompt: Int, unlabelledKeysPerPrompt: Int = 1,
                features: [SyntheticFeature], noise: Double = 0.05, dtype: TensorDType = .f32, seed: UInt64 = 1) {
        self.model = model
        self.layers = layers
        self.promptCount = promptCount
        self.keysPerPrompt = keysPerPrompt
        self.unlabelledKeysPerPrompt = unlabelledKeysPerPrompt
        self.features = features
        self.noise = noise
        self.dtype = dtype
        self.seed = seed
    }
}

/// The ground truth a synthetic capture was planted with.
public struct PlantedTruth: Sendable {
    public let spec: SyntheticCaptureSpec
    /// Value embeddings per feature: `rank × valueCount`, rows orthogonal, columns summing to zero.
    public let embeddings: [String: Matrix]
    private let queryBases: [LayerHead: [String: Matrix]]
    private let keyBases: [LayerHead: [String: Matrix]]
    private let queryBiases: [LayerHead: [Double]]

    fileprivate init(spec: SyntheticCaptureSpec, embeddings: [String: Matrix], queryBases: [LayerHead: [String: Matrix]],
                     keyBases: [LayerHead: [String: Matrix]], queryBiases: [LayerHead: [Double]]) {
        self.spec = spec
        self.embeddings = embeddings
        self.queryBases = queryBases
        self.keyBases = keyBases
        self.queryBiases = queryBiases
    }

    /// The offset every query of `head` carries (real queries have a large common mean).
    public func queryBias(layer: Int, head: Int) -> [Double] { queryBiases[LayerHead(layer: layer, head: head)]! }

    /// The planted query subspace (d × rank, orthonormal columns) of `head` for `feature`.
    public func queryBasis(layer: Int, head: Int, feature: String) -> Matrix {
        let full = queryBases[LayerHead(layer: layer, head: head)]![feature]!
        return PlantedTruth.leadingColumns(full, plantedRank(layer: layer, head: head, feature: feature))
    }

    /// The planted key subspace (d × rank) of kv head `kvHead` for `feature`.
    public func keyBasis(layer: Int, kvHead: Int, feature: String) -> Matrix {
        keyBases[LayerHead(layer: layer, head: kvHead)]![feature]!
    }

    /// The rank the pooled contrast of `feature` has at this head.
    public func plantedRank(layer: Int, head: Int, feature: String) -> Int {
        spec.rankOverrides[LayerHead(layer: layer, head: head)]?[feature]
            ?? spec.features.first { $0.name == feature }!.rank
    }

    /// Expected singular values of the pooled contrast of `feature` (before noise), descending.
    public func expectedSingularValues(feature: String) -> [Double] {
        let f = spec.features.first { $0.name == feature }!
        let m = Double(f.valueCount)
        return f.strengths.map { m / (m - 1) * $0 * $0 }.sorted(by: >)
    }

    static func leadingColumns(_ m: Matrix, _ count: Int) -> Matrix {
        var elements: [Double] = []
        elements.reserveCapacity(m.rows * count)
        for r in 0..<m.rows {
            for c in 0..<count { elements.append(m.elements[r * m.columns + c]) }
        }
        return Matrix(rows: m.rows, columns: count, elements: elements)
    }
}

/// Writes captures with planted query/key structure, for tests and benchmarks.
public enum SyntheticCapture {
    /// Writes the capture described by `spec` into `directory` and returns what was planted.
    @discardableResult
    public static func write(_ spec: SyntheticCaptureSpec, to directory: URL) throws(EngineError) -> PlantedTruth {
        let model = spec.model
        let d = model.headDimension
        let totalRank = spec.features.reduce(0) { $0 + $1.rank }
        precondition(2 * totalRank + 1 <= d, "d_head must hold every planted subspace, its rotation partner and a bias direction")
        for f in spec.features where f.assignment == .slot {
            precondition(f.valueCount == spec.keysPerPrompt, "a slot feature needs valueCount == keysPerPrompt")
        }

        let embeddings = Dictionary(uniqueKeysWithValues: spec.features.map { ($0.name, embedding(of: $0, seed: spec.seed)) })
        var queryBases: [LayerHead: [String: Matrix]] = [:]
        var keyBases: [LayerHead: [String: Matrix]] = [:]
        var queryBias: [LayerHead: [Double]] = [:]
        for layer in spec.layers {
            for head in 0..<model.headCount {
                let source = spec.headPermutation?[head] ?? head
                let (bases, bias) = plantedBases(spec: spec, layer: layer, side: 0, index: source,
                                                 angle: spec.queryRotations[LayerHead(layer: layer, head: head)] ?? 0)
                queryBases[LayerHead(layer: layer, head: head)] = bases
                queryBias[LayerHead(layer: layer, head: head)] = bias
            }
            for kvHead in 0..<model.kvHeadCount {
                let source = model.groupSize == 1 ? (spec.headPermutation?[kvHead] ?? kvHead) : kvHead
                let (bases, _) = plantedBases(spec: spec, layer: layer, side: 1, index: source,
                                              angle: spec.keyRotations[LayerHead(layer: layer, head: kvHead)] ?? 0)
                keyBases[LayerHead(layer: layer, head: kvHead)] = bases
            }
        }
        let truth = PlantedTruth(spec: spec, embeddings: embeddings, queryBases: queryBases, keyBases: keyBases, queryBiases: queryBias)

        let writer = try CaptureWriter(
            directory: directory, model: model, positional: spec.positional, layers: spec.layers,
            features: spec.features.map { FeatureInfo(name: $0.name, kind: $0.kind, description: "planted, rank \($0.rank)") },
            dataset: ["name": "synthetic", "seed": String(spec.seed)], dtype: spec.dtype)
        var random = SeededGenerator(seed: spec.seed, 7)
        let keyCount = spec.keysPerPrompt + spec.unlabelledKeysPerPrompt
        for p in 0..<spec.promptCount {
            // Labels: the first feature's query value cycles so that values stay balanced.
            var queryValues: [Int] = []
            var keyValues: [[Int]] = []   // [feature][labelled key slot]
            for (fi, f) in spec.features.enumerated() {
                let qv = fi == 0 ? p % f.valueCount : Int(random.next() % UInt64(f.valueCount))
                queryValues.append(qv)
                switch f.assignment {
                case .slot:
                    keyValues.append(Array(0..<spec.keysPerPrompt))
                case .random:
                    var values = (0..<spec.keysPerPrompt).map { _ in Int(random.next() % UInt64(f.valueCount)) }
                    values[Int(random.next() % UInt64(spec.keysPerPrompt))] = qv
                    keyValues.append(values)
                }
            }
            // Tokens: "<s>", then the keys in a shuffled order, then "?" and the query token.
            var order = Array(0..<keyCount)
            order.shuffle(using: &random)
            var tokens = ["<s>"]
            var keyPositions = [Int](repeating: 0, count: keyCount)
            for slot in order {
                keyPositions[slot] = tokens.count
                if slot < spec.keysPerPrompt, let first = keyValues.first {
                    tokens.append("w\(first[slot])_\(random.next() % 3)")
                } else {
                    tokens.append("x\(random.next() % 5)")
                }
            }
            tokens.append("?")
            let queryPosition = tokens.count
            tokens.append("Q\(queryValues.first ?? 0)")

            var keys: [(position: Int, labels: [String: String])] = []
            for slot in 0..<keyCount {
                var labels: [String: String] = [:]
                if slot < spec.keysPerPrompt {
                    for (fi, f) in spec.features.enumerated() { labels[f.name] = f.valueName(keyValues[fi][slot]) }
                }
                keys.append((keyPositions[slot], labels))
            }
            var queryLabels: [String: String] = [:]
            for (fi, f) in spec.features.enumerated() { queryLabels[f.name] = f.valueName(queryValues[fi]) }

            var queries: [Int: [Float]] = [:]
            var keyVectors: [Int: [Float]] = [:]
            for layer in spec.layers {
                var q = [Float](repeating: 0, count: model.headCount * d)
                for head in 0..<model.headCount {
                    let at = LayerHead(layer: layer, head: head)
                    var vector = queryBias[at]!
                    for (fi, f) in spec.features.enumerated() {
                        let rank = truth.plantedRank(layer: layer, head: head, feature: f.name)
                        addPlanted(&vector, basis: queryBases[at]![f.name]!, embedding: embeddings[f.name]!,
                                   value: queryValues[fi], rank: rank)
                    }
                    for i in 0..<d { q[head * d + i] = Float(vector[i] + spec.noise * random.nextGaussian()) }
                }
                queries[layer] = q
                var k = [Float](repeating: 0, count: keyCount * model.kvHeadCount * d)
                for slot in 0..<keyCount {
                    for kvHead in 0..<model.kvHeadCount {
                        var vector = [Double](repeating: 0, count: d)
                        if slot < spec.keysPerPrompt {
                            for (fi, f) in spec.features.enumerated() {
                                addPlanted(&vector, basis: keyBases[LayerHead(layer: layer, head: kvHead)]![f.name]!,
                                           embedding: embeddings[f.name]!, value: keyValues[fi][slot], rank: f.rank)
                            }
                        }
                        let base = (slot * model.kvHeadCount + kvHead) * d
                        for i in 0..<d { k[base + i] = Float(vector[i] + spec.noise * random.nextGaussian()) }
                    }
                }
                keyVectors[layer] = k
            }
            try writer.addPrompt(id: "p\(p)", tokens: tokens, queryPosition: queryPosition, queryLabels: queryLabels,
                                 keys: keys, queries: queries, keys: keyVectors)
        }
        try writer.finish()
        return truth
    }

    /// `rank × m` embedding `√m · diag(s) · Z` with `Z` orthonormal rows orthogonal to the all-ones vector.
    static func embedding(of feature: SyntheticFeature, seed: UInt64) -> Matrix {
        let m = feature.valueCount
        var random = SeededGenerator(seed: seed, 11, feature.valueCount, feature.rank)
        var columns: [[Double]] = [[Double](repeating: 1, count: m)]
        for _ in 0..<feature.rank { columns.append((0..<m).map { _ in random.nextGaussian() }) }
        let q = orthonormalizedColumns(Matrix(columns: columns))
        var elements: [Double] = []
        for i in 0..<feature.rank {
            let scale = Double(m).squareRoot() * feature.strengths[i]
            for v in 0..<m { elements.append(scale * q.elements[v * q.columns + i + 1]) }
        }
        return Matrix(rows: feature.rank, columns: m, elements: elements)
    }

    /// Per feature a d × rank orthonormal basis (rotated by `angle` towards partner directions
    /// outside every planted span), and a bias direction orthogonal to all of them.
    static func plantedBases(spec: SyntheticCaptureSpec, layer: Int, side: Int, index: Int,
                             angle: Double) -> ([String: Matrix], [Double]) {
        let d = spec.model.headDimension
        let total = spec.features.reduce(0) { $0 + $1.rank }
        var random = SeededGenerator(seed: spec.seed, layer, side, index)
        let columns = (0..<(2 * total + 1)).map { _ in (0..<d).map { _ in random.nextGaussian() } }
        let q = orthonormalizedColumns(Matrix(columns: columns))
        func column(_ j: Int) -> [Double] { (0..<d).map { q.elements[$0 * q.columns + j] } }
        var bases: [String: Matrix] = [:]
        var offset = 0
        for f in spec.features {
            var rotated: [[Double]] = []
            for i in 0..<f.rank {
                let a = column(offset + i), partner = column(total + offset + i)
                rotated.append(zip(a, partner).map { cos(angle) * $0 + sin(angle) * $1 })
            }
            bases[f.name] = Matrix(columns: rotated)
            offset += f.rank
        }
        // A common offset, as real queries have: partly along one more direction, partly inside the
        // planted spans, so that the sign convention (mean u·q ≥ 0) has a clear mean to follow.
        var bias = column(2 * total).map { $0 * 0.5 }
        for f in spec.features {   // spec order, not dictionary order: the same seed gives the same bytes
            let basis = bases[f.name]!
            for i in 0..<basis.columns {
                for row in 0..<d { bias[row] += 0.2 * basis.elements[row * basis.columns + i] }
            }
        }
        return (bases, side == 0 ? bias : [Double](repeating: 0, count: d))
    }

    private static func addPlanted(_ vector: inout [Double], basis: Matrix, embedding: Matrix, value: Int, rank: Int) {
        let d = basis.rows
        for i in 0..<rank {
            let coefficient = embedding.elements[i * embedding.columns + value]
            for row in 0..<d { vector[row] += coefficient * basis.elements[row * basis.columns + i] }
        }
    }
}
