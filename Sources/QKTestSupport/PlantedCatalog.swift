import Foundation
import QKEngine
import QKStore

/// Catalogs of planted checkpoints: synthetic captures written, decomposed by the engine and ingested,
/// as `qkcat ingest` would, for tests of comparisons.
public enum PlantedCatalog {
    /// Writes `spec`'s capture to a scratch directory, decomposes it and ingests it into `catalog`;
    /// returns what was planted. The scratch directory is removed afterwards.
    @discardableResult
    public static func ingest(_ spec: SyntheticCaptureSpec, into catalog: Catalog,
                              options: DecompositionOptions = DecompositionOptions(topCount: 3)) throws -> PlantedTruth {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qkcat-planted-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let truth = try SyntheticCapture.write(spec, to: directory)
        let reader = try CaptureReader.open(directory)
        let decomposer = try Decomposer(reader: reader, options: options)
        _ = try catalog.ingest(
            header: reader.header, contentHash: "planted:\(spec.model.name):\(spec.model.checkpoint):\(UUID().uuidString)",
            options: options, qkcatVersion: "test", promptTable: reader.prompts,
            promptTokens: { try reader.tokens(ofPrompt: $0) }
        ) { sink in
            try decomposer.run(emit: sink)
        }
        return truth
    }

    /// A small planted spec: `layers` layers × `heads` heads (one kv head each), d_head 16, one feature
    /// `category` of rank 2 (values 4), `prompts` prompts, for checkpoint `checkpoint` of `model`.
    public static func spec(model: String = "planted", checkpoint: String, layers: Int = 2, heads: Int = 4,
                            headDimension: Int = 16, prompts: Int = 800, seed: UInt64 = 5) -> SyntheticCaptureSpec {
        SyntheticCaptureSpec(
            model: ModelInfo(name: model, checkpoint: checkpoint, layerCount: layers, headCount: heads, kvHeadCount: heads,
                             headDimension: headDimension),
            layers: Array(0..<layers), promptCount: prompts, keysPerPrompt: 5, unlabelledKeysPerPrompt: 1,
            features: [SyntheticFeature(name: "category", valueCount: 4, rank: 2)], noise: 0.03, dtype: .f32, seed: seed)
    }
}

extension PlantedCatalog {
    /// Degrees to radians.
    public static func radians(_ degrees: Double) -> Double { degrees * .pi / 180 }

    /// The head permutation of the `shuffled` model: its head h carries the planted bases of head `permutation[h]`.
    public static let permutation = [2, 0, 3, 1]

    /// A catalog of planted checkpoints with known changes, 4 heads (one kv head each), d_head 16, feature
    /// `category` (rank 2):
    ///
    /// - model `planted`, checkpoints ingested in the order step10, main, step2 (so catalog order is not
    ///   insertion order):
    ///   - `step2`: layers 0, 1, 2; layer 1 head 2 has rank 1;
    ///   - `step10`: layers 0, 1, 3; layer 0 head 1 rotated by 30° on both sides, layer 0 head 3 by 10° on
    ///     the query side only; layer 1 head 2 back to rank 2 (grew); layer 2 gone (vanished), layer 3 new (emerged);
    ///   - `main`: the same capture as `step10`.
    /// - model `shuffled`, checkpoint `seed2`: `step2` with heads permuted by `permutation`.
    /// - model `wide`, checkpoint `main`: d_head 24.
    public static func compareSeries(into catalog: Catalog) throws {
        var step2 = spec(checkpoint: "step2", layers: 4)
        step2.layers = [0, 1, 2]
        step2.rankOverrides = [LayerHead(layer: 1, head: 2): ["category": 1]]
        var step10 = spec(checkpoint: "step10", layers: 4)
        step10.layers = [0, 1, 3]
        step10.queryRotations = [LayerHead(layer: 0, head: 1): radians(30), LayerHead(layer: 0, head: 3): radians(10)]
        step10.keyRotations = [LayerHead(layer: 0, head: 1): radians(30)]
        var main = step10
        main.model.checkpoint = "main"
        var shuffled = step2
        shuffled.model.name = "shuffled"
        shuffled.model.checkpoint = "seed2"
        shuffled.headPermutation = permutation
        // The lower rank moves with its head: the head now carrying head 2's bases.
        shuffled.rankOverrides = [LayerHead(layer: 1, head: permutation.firstIndex(of: 2)!): ["category": 1]]
        var wide = spec(model: "wide", checkpoint: "main", layers: 1, heads: 2, headDimension: 24, prompts: 200)
        wide.layers = [0]
        for spec in [step10, main, step2, shuffled, wide] { try ingest(spec, into: catalog) }
    }
}
