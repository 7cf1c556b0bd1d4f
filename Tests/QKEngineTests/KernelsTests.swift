import Foundation
import Testing
import QKTestSupport
@testable import QKEngine

/// Every kernel variant this CPU can run (the portable one always).
private let variants = KernelVariant.allCases.filter { $0.rawValue <= KernelVariant.detected.rawValue }
private let unitRoundoff = 0x1p-24

private func randomRows(_ rows: Int, _ columns: Int, _ random: inout SeededGenerator, integers: Bool = false) -> FloatRows {
    let block = FloatRows(rows: rows, columns: columns)
    for i in 0..<(rows * columns) {
        // Small integers make every score exact in float, so ties and their order can be checked.
        block.pointer[i] = integers ? Float(Int(random.next() % 7) - 3) : Float(random.nextGaussian())
    }
    return block
}

/// `‖(I − B Bᵀ) G‖_F`: how far the vectors `got` stick out of the span of `reference`'s orthonormal
/// columns, an upper bound on the sine of the largest principal angle between the two subspaces
/// (for unit `got` vectors) that, unlike `1 − cos`, stays well conditioned near zero.
private func subspaceDistance(_ got: [[Float]], _ reference: Matrix) -> Double {
    var total = 0.0
    for vector in got {
        var residual = vector.map(Double.init)
        for c in 0..<reference.columns {
            let column = reference.column(c)
            let projection = zip(column, vector).reduce(0.0) { $0 + $1.0 * Double($1.1) }
            for i in residual.indices { residual[i] -= projection * column[i] }
        }
        total += residual.reduce(0) { $0 + $1 * $1 }
    }
    return total.squareRoot()
}

@Suite("Kernels")
struct KernelsTests {
    @Test("each requested variant runs", arguments: variants)
    func variantRuns(variant: KernelVariant) {
        #expect(KernelVariant.resolved(variant) == variant)
    }

    @Test("the contrast product stays within its documented error bound",
          arguments: variants, [(1, 1, 1), (3, 5, 7), (12, 16, 64), (13, 17, 65), (24, 24, 600), (40, 40, 2000), (7, 9, 0)])
    func contrast(variant: KernelVariant, shape: (m: Int, n: Int, count: Int)) {
        let (m, n, count) = shape
        var random = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + count))
        let a = randomRows(count + 5, m, &random)
        let b = randomRows(count, n, &random)
        // Rows of `a` picked out of order, as a per-value contrast does.
        let picked = (0..<count).map { Int32(($0 * 7 + 3) % (count + 5)) }
        let result = Kernels.contrast(a: a, rows: picked, b: b, variant: variant)
        #expect(result.count == m * n)
        let factor = Double(Kernels.floatBlockDepth + 1) * unitRoundoff
        var worstRatio = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0, magnitude = 0.0
                for r in 0..<count {
                    let x = Double(a.row(Int(picked[r]))[i]) * Double(b.row(r)[j])
                    exact += x
                    magnitude += abs(x)
                }
                let error = abs(result[i * n + j] - exact)
                #expect(error <= factor * magnitude + 1e-12, "(\(i), \(j)): error \(error), bound \(factor * magnitude)")
                if magnitude > 0 { worstRatio = max(worstRatio, error / magnitude) }
            }
        }
        // Double accumulation across blocks: the error does not grow with the number of prompts.
        #expect(worstRatio <= factor)
    }

    @Test("blocked scores pick the same extremes and token means as a direct scan", arguments: variants, [0, 1, 5])
    func collector(variant: KernelVariant, top: Int) {
        var random = SeededGenerator(seed: 11 + UInt64(top))
        let rowCount = 1000, depth = 19, columns = 37
        let rows = randomRows(rowCount, depth, &random, integers: true)
        let vectors = (0..<columns).map { _ in (0..<depth).map { _ in Float(Int(random.next() % 5) - 2) } }
        let rowTokens = (0..<rowCount).map { _ in Int32(random.next() % 50) * 3 }
        let vocabulary = TokenVocabulary(tokens: rowTokens)
        let collector = ExampleCollector(vectors: vectors, depth: depth, top: top, tokenSlots: vocabulary.tokens.count,
                                         variant: variant)
        collector.scan(rows, tokenIDs: vocabulary.ids)
        for j in 0..<columns {
            let scores = (0..<rowCount).map { r in (0..<depth).reduce(0.0) { $0 + Double(rows.row(r)[$1]) * Double(vectors[j][$1]) } }
            let side = collector.side(j, vocabulary: vocabulary) { row, score in
                Example(prompt: row, position: 0, token: rowTokens[row], score: score)
            }
            // Highest first, ties by the earlier row; lowest first, ties by the earlier row.
            let high = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(top)
            let low = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(top)
            #expect(side.highest.map(\.prompt) == Array(high))
            #expect(side.lowest.map(\.prompt) == Array(low))
            #expect(side.highest.map(\.score) == high.map { scores[$0] })
            var selector = TopSelector(capacity: top), lowSelector = TopSelector(capacity: top)
            var seen: [Int32] = []
            var sums: [Int32: Double] = [:], counts: [Int32: Int] = [:]
            for (r, token) in rowTokens.enumerated() {
                if sums[token] == nil { seen.append(token) }
                sums[token, default: 0] += scores[r]
                counts[token, default: 0] += 1
            }
            for (order, token) in seen.enumerated() {
                let mean = sums[token]! / Double(counts[token]!)
                selector.offer(mean, order)
                lowSelector.offer(-mean, order)
            }
            #expect(side.highestTokens.map(\.token) == selector.entries.map { seen[$0.item] })
            #expect(side.lowestTokens.map(\.token) == lowSelector.entries.map { seen[$0.item] })
            for aggregate in side.highestTokens + side.lowestTokens {
                #expect(aggregate.count == counts[aggregate.token])
                #expect(abs(aggregate.meanScore - sums[aggregate.token]! / Double(counts[aggregate.token]!)) < 1e-12)
            }
        }
    }

    @Test("the portable kernels give the results of the CPU's best ones")
    func portableMatchesBest() throws {
        let best = KernelVariant.detected
        let dir = try TemporaryDirectory(prefix: "qkcat-variants")
        try SyntheticCapture.write(SyntheticCaptureSpec(
            model: ModelInfo(name: "variants", checkpoint: "main", layerCount: 1, headCount: 4, kvHeadCount: 2, headDimension: 40),
            layers: [0], promptCount: 900, keysPerPrompt: 6, unlabelledKeysPerPrompt: 1,
            features: [SyntheticFeature(name: "category", valueCount: 4, rank: 3)], noise: 0.1, dtype: .bf16, seed: 5),
            to: dir.url)
        let reader = try CaptureReader.open(dir.url)
        func run(_ variant: KernelVariant) throws -> [Decomposition] {
            var options = DecompositionOptions(perValue: true, topCount: 6)
            options.kernelVariant = variant
            return try Decomposer(reader: reader, options: options).runAll().flatMap(\.decompositions)
        }
        let portable = try run(.portable), fast = try run(best)
        #expect(portable.count == fast.count && !portable.isEmpty)
        for (p, f) in zip(portable, fast) {
            #expect(p.rank == f.rank)
            #expect(abs(p.frobenius - f.frobenius) <= 1e-6 * f.frobenius)
            for (x, y) in zip(p.singularValues, f.singularValues) { #expect(abs(x - y) <= 1e-6 * f.singularValues[0]) }
            guard p.rank == f.rank, p.rank > 0 else { continue }
            let reference = leadingSingularPairs(Matrix(columns: f.components.map { $0.u.map(Double.init) })) { $0.count }
            #expect(subspaceDistance(p.components.map(\.u), reference.u) <= 1e-5)
            for (a, b) in zip(p.components, f.components) {
                for (x, y) in zip(a.keys.highest + a.queries.lowest, b.keys.highest + b.queries.lowest) {
                    #expect(abs(x.score - y.score) <= 1e-4 * max(1, abs(y.score)))
                }
                #expect(a.keys.highestTokens.map(\.token) == b.keys.highestTokens.map(\.token))
            }
        }
    }

    /// The float kernels against a float64 evaluation of every contrast (key sums, `ΔC`, SVD, rank):
    /// ranks equal, singular values and subspaces within 1e-4.
    @Test("decompositions equal a float64 reference", arguments: ["planted", "minilm"])
    func float64Reference(capture: String) throws {
        let dir = try TemporaryDirectory(prefix: "qkcat-reference")
        let url: URL
        if capture == "minilm" {
            url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Examples/minilm/capture")
        } else {
            url = dir.url
            try SyntheticCapture.write(SyntheticCaptureSpec(
                model: ModelInfo(name: "planted", checkpoint: "main", layerCount: 2, headCount: 4, kvHeadCount: 2, headDimension: 32),
                layers: [0, 1], promptCount: 1500, keysPerPrompt: 8, unlabelledKeysPerPrompt: 1,
                features: [SyntheticFeature(name: "category", valueCount: 6, rank: 4),
                           SyntheticFeature(name: "order", kind: "binding", valueCount: 8, rank: 3, assignment: .slot)],
                noise: 0.05, dtype: .bf16, seed: 9), to: url)
        }
        let reader = try CaptureReader.open(url)
        let options = DecompositionOptions(perValue: true, topCount: 2)
        let decomposer = try Decomposer(reader: reader, options: options)
        let table = reader.prompts
        let d = reader.header.model.headDimension
        var checked = 0
        for layer in try decomposer.runAll() {
            let tensors = try reader.layerTensors(layer.layer)
            for result in layer.decompositions {
                let spec = try #require(decomposer.plan.specs.first { $0.feature == result.feature && $0.value == result.value })
                var keys = [Float](repeating: 0, count: table.keyCount * d)
                var queries = [Float](repeating: 0, count: table.promptCount * d)
                try keys.withUnsafeMutableBufferPointer { try tensors.keys.decodeSlice(head: result.kvHead, into: $0) }
                try queries.withUnsafeMutableBufferPointer { try tensors.queries.decodeSlice(head: result.head, into: $0) }
                var delta = Matrix(rows: d, columns: d)
                for (r, prompt) in spec.prompts.enumerated() {
                    var w = [Double](repeating: 0, count: d)
                    for e in Int(spec.keyRangeStart[r])..<Int(spec.keyRangeStart[r + 1]) {
                        let key = Int(spec.keyIndices[e])
                        for c in 0..<d { w[c] += spec.keyWeights[e] * Double(keys[key * d + c]) }
                    }
                    for i in 0..<d {
                        let q = Double(queries[Int(prompt) * d + i])
                        for c in 0..<d { delta.elements[i * d + c] += q * w[c] }
                    }
                }
                let svd = leadingSingularPairs(delta) { Spectrum.rank(of: $0, energy: options.energy) }
                #expect(result.rank == svd.u.columns, "L\(result.layer) H\(result.head) \(result.feature)=\(result.value ?? "*")")
                for (x, y) in zip(result.singularValues, svd.singularValues) { #expect(abs(x - y) <= 1e-4 * svd.singularValues[0]) }
                guard result.rank == svd.u.columns, result.rank > 0 else { continue }
                for (got, want) in [(result.components.map(\.u), svd.u), (result.components.map(\.v), svd.v)] {
                    let sine = subspaceDistance(got, want)
                    #expect(sine <= 1e-4, "L\(result.layer) H\(result.head) \(result.feature)=\(result.value ?? "*"): sin θ ≤ \(sine)")
                }
                checked += 1
            }
        }
        #expect(checked > 100)
    }
}
