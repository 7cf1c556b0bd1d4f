import Foundation
import Testing
@testable import QKEngine

/// A fresh directory under the system temporary folder, removed by `cleanup()`.
private func scratchDirectory(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("qkcat-\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private let category = SyntheticFeature(name: "category", valueCount: 5, rank: 3)
private let order = SyntheticFeature(name: "order", kind: "binding", valueCount: 6, rank: 2, assignment: .slot)

private func plantedSpec(dtype: TensorDType, heads: Int = 4, kvHeads: Int = 2, d: Int = 24, prompts: Int = 6000,
                         seed: UInt64 = 3) -> SyntheticCaptureSpec {
    SyntheticCaptureSpec(
        model: ModelInfo(name: "planted", checkpoint: "step1", layerCount: 3, headCount: heads, kvHeadCount: kvHeads,
                         headDimension: d),
        layers: [0, 2], promptCount: prompts, keysPerPrompt: 6, unlabelledKeysPerPrompt: 1,
        features: [category, order], noise: 0.03, dtype: dtype, seed: seed)
}

/// Leading `count` columns of a component list as a d × count matrix.
private func basis(_ vectors: [[Float]]) -> Matrix {
    Matrix(columns: vectors.map { $0.map(Double.init) })
}

private func degrees(_ cosine: Double) -> Double { acos(min(1, max(-1, cosine))) * 180 / .pi }

@Suite("Decomposer")
struct DecomposerTests {
    @Test("planted ranks and subspaces are recovered", arguments: [TensorDType.f32, .f16, .bf16])
    func plantedRecovery(dtype: TensorDType) throws {
        let dir = scratchDirectory("planted")
        defer { try? FileManager.default.removeItem(at: dir) }
        let truth = try SyntheticCapture.write(plantedSpec(dtype: dtype), to: dir)
        let reader = try CaptureReader.open(dir)
        let results = try Decomposer(reader: reader, options: DecompositionOptions(topCount: 5)).runAll()
        #expect(results.map(\.layer) == [0, 2])
        for layer in results {
            #expect(layer.skips.isEmpty)
            #expect(layer.decompositions.count == 4 * 2)
            for d in layer.decompositions {
                let planted = truth.plantedRank(layer: d.layer, head: d.head, feature: d.feature)
                #expect(d.rank == planted, "L\(d.layer) H\(d.head) \(d.feature): rank \(d.rank), planted \(planted)")
                guard d.rank == planted else { continue }
                #expect(d.kvHead == d.head / 2)
                let queryCosines = principalAngleCosines(
                    basis(d.components.map(\.u)), truth.queryBasis(layer: d.layer, head: d.head, feature: d.feature))
                let keyCosines = principalAngleCosines(
                    basis(d.components.map(\.v)), truth.keyBasis(layer: d.layer, kvHead: d.kvHead, feature: d.feature))
                // Other features' labels are independent of this one's, so their cross terms cancel
                // only on average: at 6000 prompts they leave about 2–3° (measured; it shrinks as 1/√P).
                #expect(degrees(queryCosines.min()!) < 4, "query angles \(queryCosines.map(degrees))")
                #expect(degrees(keyCosines.min()!) < 4, "key angles \(keyCosines.map(degrees))")
                let expected = truth.expectedSingularValues(feature: d.feature)
                for (got, want) in zip(d.singularValues, expected) {
                    #expect(abs(got - want) / want < 0.1, "σ \(got) vs planted \(want)")
                }
                let energy = d.components.reduce(0) { $0 + $1.energyShare }
                #expect(energy >= 0.99 && energy <= 1 + 1e-9)
            }
        }
    }

    @Test("per-value contrasts have rank one along the value's embedding")
    func perValue() throws {
        let dir = scratchDirectory("pervalue")
        defer { try? FileManager.default.removeItem(at: dir) }
        let truth = try SyntheticCapture.write(plantedSpec(dtype: .f32), to: dir)
        let reader = try CaptureReader.open(dir)
        let options = DecompositionOptions(perValue: true, features: ["category"], layers: [2], topCount: 3)
        let layer = try #require(try Decomposer(reader: reader, options: options).runAll().first)
        let values = layer.decompositions.filter { $0.head == 1 }.map { $0.value ?? "*" }
        #expect(values == ["*", "category0", "category1", "category2", "category3", "category4"])
        let embedding = truth.embeddings["category"]!
        for d in layer.decompositions where d.value != nil {
            #expect(d.rank == 1, "\(d.value!) rank \(d.rank)")
            let code = Int(d.value!.dropFirst("category".count))!
            // Planted direction: the mean query of value v, A·e_v plus the common offset (the
            // offset counts here because the per-value key difference does not average to zero).
            let a = truth.queryBasis(layer: 2, head: d.head, feature: "category")
            var direction = truth.queryBias(layer: 2, head: d.head)
            for i in 0..<a.columns {
                for r in 0..<a.rows { direction[r] += a[r, i] * embedding[i, code] }
            }
            let norm = direction.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let u = d.components[0].u
            let cosine = abs(zip(u, direction).reduce(0.0) { $0 + Double($1.0) * $1.1 }) / norm
            #expect(cosine > 0.99, "\(d.value!) cosine \(cosine)")
        }
    }

    @Test("ΔC matches the pair-by-pair definition")
    func matchesDefinition() throws {
        let dir = scratchDirectory("definition")
        defer { try? FileManager.default.removeItem(at: dir) }
        var spec = plantedSpec(dtype: .f32, heads: 2, kvHeads: 1, d: 16, prompts: 60)
        spec.noise = 0.5
        try SyntheticCapture.write(spec, to: dir)
        let reader = try CaptureReader.open(dir)
        let options = DecompositionOptions(energy: 1, perValue: true, layers: [0], topCount: 0)
        let layer = try #require(try Decomposer(reader: reader, options: options).runAll().first)
        let table = reader.prompts
        let d = 16
        let tensors = try reader.layerTensors(0)
        var keys = [Float](repeating: 0, count: table.keyCount * d)
        try keys.withUnsafeMutableBufferPointer { try tensors.keys.decodeSlice(head: 0, into: $0) }
        for result in layer.decompositions {
            var queries = [Float](repeating: 0, count: table.promptCount * d)
            try queries.withUnsafeMutableBufferPointer { try tensors.queries.decodeSlice(head: result.head, into: $0) }
            let labels = try #require(table.labels(of: result.feature))
            var plus = [Double](repeating: 0, count: d * d), minus = plus, plusMagnitude = plus, minusMagnitude = plus
            var nPlus = 0, nMinus = 0
            for p in 0..<table.promptCount {
                let qv = labels.queryCodes[p]
                guard qv >= 0, result.value == nil || labels.values[Int(qv)] == result.value else { continue }
                for j in table.keyStart[p]..<table.keyStart[p + 1] where labels.keyCodes[j] >= 0 {
                    let positive = labels.keyCodes[j] == qv
                    if positive { nPlus += 1 } else { nMinus += 1 }
                    for r in 0..<d {
                        for c in 0..<d {
                            let x = Double(queries[p * d + r]) * Double(keys[j * d + c])
                            if positive { plus[r * d + c] += x } else { minus[r * d + c] += x }
                            if positive { plusMagnitude[r * d + c] += abs(x) } else { minusMagnitude[r * d + c] += abs(x) }
                        }
                    }
                }
            }
            let delta = Matrix(rows: d, columns: d, elements: (0..<(d * d)).map {
                plus[$0] / Double(nPlus) - minus[$0] / Double(nMinus)
            })
            // The engine's float kernels: each entry within (64 prompts per float block + 7 keys per prompt + 2)
            // unit roundoffs of the sum of its terms' magnitudes (see `Kernels.contrast`).
            let magnitude = Matrix(rows: d, columns: d, elements: (0..<(d * d)).map {
                plusMagnitude[$0] / Double(nPlus) + minusMagnitude[$0] / Double(nMinus)
            })
            let allowed = Double(Kernels.floatBlockDepth + 7 + 2) * 0x1p-24 * magnitude.frobeniusNorm
            #expect(result.positivePairs == nPlus && result.negativePairs == nMinus)
            #expect(abs(result.frobenius - delta.frobeniusNorm) <= allowed)
            // With energy 1 every component is kept: Σ σᵢ uᵢ vᵢᵀ must rebuild the definition's ΔC.
            var rebuilt = [Double](repeating: 0, count: d * d)
            for component in result.components {
                for r in 0..<d {
                    for c in 0..<d { rebuilt[r * d + c] += component.sigma * Double(component.u[r]) * Double(component.v[c]) }
                }
            }
            let error = zip(rebuilt, delta.elements).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            // u and v are stored as Float: allow their rounding.
            #expect(error <= 1e-5 * delta.frobeniusNorm + allowed, "‖rebuilt − ΔC‖ = \(error)")
        }
    }

    @Test("top examples are the extreme scores, with their tokens and contexts")
    func topExamples() throws {
        let dir = scratchDirectory("examples")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticCapture.write(plantedSpec(dtype: .f32, prompts: 120), to: dir)
        let reader = try CaptureReader.open(dir)
        let options = DecompositionOptions(features: ["category"], layers: [0], topCount: 7)
        let layer = try #require(try Decomposer(reader: reader, options: options).runAll().first)
        let table = reader.prompts
        let d = 24
        let tensors = try reader.layerTensors(0)
        var keys = [Float](repeating: 0, count: table.keyCount * d)
        let result = layer.decompositions[0]
        try keys.withUnsafeMutableBufferPointer { try tensors.keys.decodeSlice(head: result.kvHead, into: $0) }
        let component = result.components[0]
        var all: [Double] = []
        for j in 0..<table.keyCount {
            all.append((0..<d).reduce(0.0) { $0 + Double(keys[j * d + $1]) * Double(component.v[$1]) })
        }
        let sorted = all.sorted(by: >)
        #expect(component.keys.highest.count == 7 && component.keys.lowest.count == 7)
        for (example, expected) in zip(component.keys.highest, sorted.prefix(7)) {
            #expect(abs(example.score - expected) < 1e-5)
            let tokens = try reader.tokens(ofPrompt: example.prompt)
            #expect(tokens[example.position] == table.tokenStrings[Int(example.token)])
        }
        for (example, expected) in zip(component.keys.lowest, sorted.reversed().prefix(7)) {
            #expect(abs(example.score - expected) < 1e-5)
        }
        #expect(component.queries.highest.count == 7)
        #expect(zip(component.queries.highest, component.queries.highest.dropFirst()).allSatisfy { $0.score >= $1.score })
        let aggregates = component.keys.highestTokens
        #expect(!aggregates.isEmpty)
        #expect(zip(aggregates, aggregates.dropFirst()).allSatisfy { $0.meanScore >= $1.meanScore })
        // The best token string's mean, recomputed from every occurrence.
        let best = aggregates[0]
        let scores = (0..<table.keyCount).filter { table.keyTokens[$0] == best.token }.map { all[$0] }
        #expect(scores.count == best.count)
        #expect(abs(scores.reduce(0, +) / Double(scores.count) - best.meanScore) < 1e-5)
    }

    @Test("runs are deterministic and independent of the thread count")
    func deterministic() throws {
        let dir = scratchDirectory("determinism")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticCapture.write(plantedSpec(dtype: .bf16, prompts: 80), to: dir)
        let reader = try CaptureReader.open(dir)
        let one = try Decomposer(reader: reader, options: DecompositionOptions(topCount: 4, threads: 1)).runAll()
        let two = try Decomposer(reader: reader, options: DecompositionOptions(topCount: 4, threads: 2)).runAll()
        #expect(one == two)
    }

    @Test("a contrast without negative pairs is reported, not stored")
    func skips() throws {
        let dir = scratchDirectory("skips")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Two values only, with per-value contrasts: still formable. A one-value feature is not.
        let writer = try CaptureWriter(
            directory: dir, model: ModelInfo(name: "m", checkpoint: "c", layerCount: 1, headCount: 1, kvHeadCount: 1, headDimension: 2),
            positional: "none", layers: [0], features: [FeatureInfo(name: "same", kind: "semantic")], dataset: nil, dtype: .f32)
        for p in 0..<3 {
            try writer.addPrompt(id: "p\(p)", tokens: ["a", "b", "c"], queryPosition: 2, queryLabels: ["same": "x"],
                                 keys: [(0, ["same": "x"]), (1, [:])],
                                 queries: [0: [1, Float(p)]], keys: [0: [1, 0, 0, 1]])
        }
        try writer.finish()
        let reader = try CaptureReader.open(dir)
        let layer = try #require(try Decomposer(reader: reader, options: DecompositionOptions(perValue: true)).runAll().first)
        #expect(layer.decompositions.isEmpty)
        #expect(layer.skips == [
            Skip(layer: 0, head: nil, feature: "same", value: nil, reason: .noNegativePairs),
            Skip(layer: 0, head: nil, feature: "same", value: "x", reason: .noNegativePairs),
        ])
    }

    @Test("options naming what the capture lacks are refused")
    func badOptions() throws {
        let dir = scratchDirectory("options")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticCapture.write(plantedSpec(dtype: .f32, prompts: 10), to: dir)
        let reader = try CaptureReader.open(dir)
        #expect(throws: EngineError.invalidOption(
            name: "features", message: "the capture declares no feature 'colour' (it declares: category, order)")) {
            try Decomposer(reader: reader, options: DecompositionOptions(features: ["colour"]))
        }
        #expect(throws: EngineError.invalidOption(name: "layers", message: "layer 1 is not in the capture (it holds: 0, 2)")) {
            try Decomposer(reader: reader, options: DecompositionOptions(layers: [1]))
        }
        #expect(throws: EngineError.invalidOption(name: "energy", message: "0.0 is not in (0, 1]")) {
            try Decomposer(reader: reader, options: DecompositionOptions(energy: 0))
        }
    }
}
