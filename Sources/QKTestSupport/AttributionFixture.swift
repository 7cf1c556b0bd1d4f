import Foundation
import QKEngine
import QKStore

/// A capture whose queries live exactly in planted feature subspaces, and catalogs built from it.
///
/// Model `span-model`, checkpoint `step1`: one captured layer (0) of 2 query heads over 1 kv head,
/// d_head 16. Features `category` (4 values, random per key with one match) and `order` (key slot i has
/// value i, 4 keys), each planted with rank 2. Per head, each feature has an orthonormal query basis
/// `A_f` (d × 2); the four columns of both features and two `null` directions are mutually orthogonal.
/// A query is `Σ_f A_f e_f(value)`, with no noise (f32), so it lies entirely in the planted span; keys
/// are `Σ_f B_f e_f(value)` plus Gaussian noise.
public struct SpanCapture: Sendable {
    public static let model = ModelInfo(name: "span-model", checkpoint: "step1", layerCount: 2, headCount: 2,
                                        kvHeadCount: 1, headDimension: 16)
    public static let features = ["category", "order"]
    public static let keysPerPrompt = 4

    /// Per head: per feature the planted query basis (columns), plus "null": two directions orthogonal to all.
    public var queryBases: [[String: [[Double]]]]
    public var promptCount: Int

    /// Writes the capture into `directory`.
    public init(writingTo directory: URL, promptCount: Int = 1500, seed: UInt64 = 5) throws {
        let model = Self.model
        let d = model.headDimension
        var random = SplitMix64(seed: seed)
        func gaussian() -> Double {
            // Box–Muller from two uniforms in (0, 1].
            let u1 = (Double(random.next() >> 11) + 1) / 9_007_199_254_740_992.0
            let u2 = Double(random.next() >> 11) / 9_007_199_254_740_992.0
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        func orthonormal(_ count: Int) -> [[Double]] {
            let q = orthonormalizedColumns(Matrix(columns: (0..<count).map { _ in (0..<d).map { _ in gaussian() } }))
            return (0..<count).map { q.column($0) }
        }
        /// rank × values, rows centred over values.
        func embedding(values: Int) -> [[Double]] {
            (0..<2).map { _ in
                let row = (0..<values).map { _ in 1.5 * gaussian() }
                let mean = row.reduce(0, +) / Double(values)
                return row.map { $0 - mean }
            }
        }
        var bases: [[String: [[Double]]]] = []
        for _ in 0..<model.headCount {
            let columns = orthonormal(6)
            bases.append(["category": Array(columns[0..<2]), "order": Array(columns[2..<4]), "null": Array(columns[4..<6])])
        }
        let keyColumns = orthonormal(4)
        let keyBases = ["category": Array(keyColumns[0..<2]), "order": Array(keyColumns[2..<4])]
        let embeddings = ["category": embedding(values: 4), "order": embedding(values: Self.keysPerPrompt)]
        queryBases = bases
        self.promptCount = promptCount

        func planted(_ basis: [[Double]], _ embedding: [[Double]], _ value: Int, into vector: inout [Double]) {
            for (i, column) in basis.enumerated() {
                for r in 0..<d { vector[r] += embedding[i][value] * column[r] }
            }
        }
        let writer = try CaptureWriter(
            directory: directory, model: model, positional: "post-rope", layers: [0],
            features: Self.features.map { FeatureInfo(name: $0, kind: $0 == "order" ? "binding" : "semantic") },
            dataset: ["name": "span", "seed": String(seed)], dtype: .f32)
        for p in 0..<promptCount {
            let queryCategory = Int(random.next() % 4), queryOrder = Int(random.next() % UInt64(Self.keysPerPrompt))
            var keyCategories = (0..<Self.keysPerPrompt).map { _ in Int(random.next() % 4) }
            keyCategories[Int(random.next() % UInt64(Self.keysPerPrompt))] = queryCategory
            var queries = [Float]()
            for head in 0..<model.headCount {
                var q = [Double](repeating: 0, count: d)
                planted(bases[head]["category"]!, embeddings["category"]!, queryCategory, into: &q)
                planted(bases[head]["order"]!, embeddings["order"]!, queryOrder, into: &q)
                queries += q.map(Float.init)
            }
            var keys = [Float]()
            var keyList: [(position: Int, labels: [String: String])] = []
            var tokens = ["<s>"]
            for slot in 0..<Self.keysPerPrompt {
                var k = (0..<d).map { _ in 0.05 * gaussian() }
                planted(keyBases["category"]!, embeddings["category"]!, keyCategories[slot], into: &k)
                planted(keyBases["order"]!, embeddings["order"]!, slot, into: &k)
                keys += k.map(Float.init)
                keyList.append((tokens.count, ["category": "c\(keyCategories[slot])", "order": String(slot)]))
                tokens.append("w\(keyCategories[slot])")
            }
            tokens += ["?", "Q\(queryCategory)"]
            try writer.addPrompt(id: "p\(p)", tokens: tokens, queryPosition: tokens.count - 1,
                                 queryLabels: ["category": "c\(queryCategory)", "order": String(queryOrder)],
                                 keys: keyList, queries: [0: queries], keys: [0: keys])
        }
        try writer.finish()
    }

    /// Decomposes the capture with the engine and ingests it (checkpoint `step1`), then ingests, as
    /// checkpoint `exact`, hand-made pooled decompositions whose `u` are exactly the planted bases:
    /// features `category`, `order`, `null` (orthogonal to every query) and `overlap` (one vector,
    /// `cos θ · category₀ + sin θ · order₀`).
    public func ingest(_ directory: URL, into catalog: Catalog, overlapAngle: Double = .pi / 4) throws {
        let reader = try CaptureReader.open(directory)
        let options = DecompositionOptions(topCount: 3)
        let decomposer = try Decomposer(reader: reader, options: options)
        _ = try catalog.ingest(header: reader.header, contentHash: "span:decomposed", options: options, qkcatVersion: "test",
                           promptTable: reader.prompts, promptTokens: { try reader.tokens(ofPrompt: $0) }) { sink in
            try decomposer.run { try sink($0) }
        }

        var header = reader.header
        header.model.checkpoint = "exact"
        header.features += [FeatureInfo(name: "null", kind: "test"), FeatureInfo(name: "overlap", kind: "test")]
        var decompositions: [Decomposition] = []
        let d = Self.model.headDimension
        for head in 0..<Self.model.headCount {
            let bases = queryBases[head]
            let overlap = (0..<d).map { cos(overlapAngle) * bases["category"]![0][$0] + sin(overlapAngle) * bases["order"]![0][$0] }
            for (name, vectors) in [("category", bases["category"]!), ("order", bases["order"]!), ("null", bases["null"]!),
                                    ("overlap", [overlap])] {
                let components = vectors.enumerated().map { index, u in
                    Component(index: index, sigma: 1, energyShare: 1 / Double(vectors.count), u: u.map(Float.init),
                              v: [Float](repeating: 0, count: d), queries: SideExamples(), keys: SideExamples())
                }
                decompositions.append(Decomposition(
                    layer: 0, head: head, kvHead: 0, feature: name, value: nil, positivePairs: 1, negativePairs: 1,
                    frobenius: 1, singularValues: vectors.map { _ in 1 }, rank: vectors.count, components: components))
            }
        }
        _ = try catalog.ingest(header: header, contentHash: "span:exact", options: options, qkcatVersion: "test",
                           promptTable: reader.prompts, promptTokens: { try reader.tokens(ofPrompt: $0) }) { sink in
            try sink(LayerResult(layer: 0, decompositions: decompositions, skips: []))
        }
    }
}
