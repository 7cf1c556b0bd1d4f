import Foundation
import Testing
import QKEngine
import QKTestSupport

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
private func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

/// Gaussian vectors from a seeded generator.
private func randomVectors(_ count: Int, _ d: Int, seed: UInt64) -> [[Float]] {
    var random = SplitMix64(seed: seed)
    return (0..<count).map { _ in (0..<d).map { _ in random.nextFloat() } }
}

@Suite("QuerySplitter")
struct QuerySplitterTests {
    @Test("parts and residual sum to the query and to every logit", arguments: AttributionMethod.allCases)
    func partsSumToTotal(method: AttributionMethod) throws {
        let d = 12
        // Two overlapping random subspaces and a third with one dependent vector.
        let vectors = randomVectors(6, d, seed: 3)
        let third = [vectors[0].indices.map { vectors[0][$0] + vectors[2][$0] }, vectors[5]]
        let splitter = try QuerySplitter(
            features: [FeatureSubspace(name: "a", vectors: Array(vectors[0..<2])),
                       FeatureSubspace(name: "b", vectors: Array(vectors[2..<5])),
                       FeatureSubspace(name: "c", vectors: third)],
            dimension: d, method: method)
        let queries = randomVectors(5, d, seed: 11)
        let keys = randomVectors(7, d, seed: 12).flatMap { $0 }
        for query in queries {
            let (parts, residual) = splitter.split(query.map(Double.init))
            for r in 0..<d {
                let sum = parts.reduce(residual[r]) { $0 + $1[r] }
                #expect(abs(sum - Double(query[r])) < 1e-12)
            }
            let result = splitter.attribute(query: query, keys: keys, scale: 0.25)
            #expect(result.keys.count == 7)
            for key in result.keys {
                let sum = key.parts.reduce(key.residual, +)
                #expect(abs(sum - key.total) <= 1e-12 * max(1, abs(key.total)), "\(sum) vs \(key.total)")
            }
            // Feature fractions add up to the explained fraction.
            let explained = try #require(result.explainedFraction)
            let added = result.featureFractions.reduce(0.0) { $0 + ($1 ?? .nan) }
            #expect(abs(added - explained) < 1e-12)
        }
    }

    @Test("a query inside the subspaces is fully explained; one orthogonal to them not at all")
    func explainedFractionExtremes() throws {
        let d = 10
        let basis = orthonormalizedColumns(Matrix(columns: randomVectors(5, d, seed: 21).map { $0.map(Double.init) }))
        let column = { (j: Int) in basis.column(j).map(Float.init) }
        for method in AttributionMethod.allCases {
            let splitter = try QuerySplitter(
                features: [FeatureSubspace(name: "a", vectors: [column(0), column(1)]),
                           FeatureSubspace(name: "b", vectors: [column(2)])],
                dimension: d, method: method)
            let keys = randomVectors(6, d, seed: 22).flatMap { $0 }
            let inside = (0..<d).map { Float(2 * basis[$0, 0] - basis[$0, 1] + 0.5 * basis[$0, 2]) }
            let full = splitter.attribute(query: inside, keys: keys)
            #expect(abs(full.explainedFraction! - 1) < 1e-6)
            let outside = (0..<d).map { Float(basis[$0, 3] - 3 * basis[$0, 4]) }
            let none = splitter.attribute(query: outside, keys: keys)
            #expect(abs(none.explainedFraction!) < 1e-6)
            #expect(none.keys.allSatisfy { key in key.parts.allSatisfy { abs($0) < 1e-6 } })
        }
    }

    @Test("orthogonal subspaces: both methods give the same split")
    func orthogonalSubspacesAgree() throws {
        let d = 9
        let basis = orthonormalizedColumns(Matrix(columns: randomVectors(5, d, seed: 31).map { $0.map(Double.init) }))
        let column = { (j: Int) in basis.column(j).map(Float.init) }
        let features = [FeatureSubspace(name: "a", vectors: [column(0), column(1)]),
                        FeatureSubspace(name: "b", vectors: [column(2), column(3)]),
                        FeatureSubspace(name: "c", vectors: [column(4)])]
        let orthogonal = try QuerySplitter(features: features, dimension: d, method: .orthogonalize)
        let residual = try QuerySplitter(features: features, dimension: d, method: .residualize)
        let keys = randomVectors(4, d, seed: 32).flatMap { $0 }
        for query in randomVectors(6, d, seed: 33) {
            let a = orthogonal.attribute(query: query, keys: keys), b = residual.attribute(query: query, keys: keys)
            for (x, y) in zip(a.keys, b.keys) {
                #expect(abs(x.residual - y.residual) < 1e-6)
                for (p, q) in zip(x.parts, y.parts) { #expect(abs(p - q) < 1e-6) }
            }
            #expect(abs(a.explainedFraction! - b.explainedFraction!) < 1e-6)
        }
    }

    @Test("overlapping subspaces: the methods differ exactly as documented")
    func overlappingSubspacesDiffer() throws {
        // d = 3, feature a = span{e1}, feature b = span{cos θ e1 + sin θ e2}, q = (x, y, z).
        let theta = 0.6
        let (c, s) = (cos(theta), sin(theta))
        let features = [FeatureSubspace(name: "a", vectors: [[1, 0, 0]]),
                        FeatureSubspace(name: "b", vectors: [[Float(c), Float(s), 0]])]
        let orthogonal = try QuerySplitter(features: features, dimension: 3, method: .orthogonalize)
        let residual = try QuerySplitter(features: features, dimension: 3, method: .residualize)
        let (x, y, z) = (1.5, -2.0, 0.75)
        let q = [x, y, z]
        let tolerance = 1e-6   // the vectors went through Float
        func close(_ a: [Double], _ b: [Double]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) < tolerance } }

        // orthogonalize: b gets only e2, the direction new to it; the residual is orthogonal to both.
        let o = orthogonal.split(q)
        #expect(close(o.parts[0], [x, 0, 0]))
        #expect(close(o.parts[1], [0, y, 0]))
        #expect(close(o.residual, [0, 0, z]))
        // residualize: b projects, on its own line, what a left: (0, y, z) → y sin θ (cos θ, sin θ, 0).
        let r = residual.split(q)
        #expect(close(r.parts[0], [x, 0, 0]))
        #expect(close(r.parts[1], [y * s * c, y * s * s, 0]))
        #expect(close(r.residual, [-y * s * c, y * c * c, z]))
        // The residualize residual keeps y·sin θ·cos θ along a's subspace; it is orthogonal to b only.
        #expect(abs(dot(r.residual, [1, 0, 0]) + y * s * c) < tolerance)
        #expect(abs(dot(r.residual, [c, s, 0])) < tolerance)
        #expect(norm(r.residual) > norm(o.residual) + 0.1)
        // Parts stay in their own subspace with residualize (b's part is along b's vector), not with orthogonalize.
        #expect(abs(abs(dot(r.parts[1], [c, s, 0])) - norm(r.parts[1])) < tolerance)
        #expect(abs(dot(o.parts[1], [c, s, 0])) < norm(o.parts[1]) - 0.1)

        // The same on logits: the first part agrees, the explained fraction is lower with residualize.
        let keys: [Float] = [1, 0.5, -1, 0.2, 2, 1, -1, 1, 0.3]
        let a = orthogonal.attribute(query: q.map(Float.init), keys: keys)
        let b = residual.attribute(query: q.map(Float.init), keys: keys)
        for (ka, kb) in zip(a.keys, b.keys) { #expect(abs(ka.parts[0] - kb.parts[0]) < tolerance) }
        #expect(a.explainedFraction! > b.explainedFraction! + 0.01)
    }

    @Test("a subspace already spanned by earlier features adds nothing under orthogonalize")
    func dependentDirectionsAreDropped() throws {
        let vectors = randomVectors(3, 8, seed: 41)
        let combination = (0..<8).map { vectors[0][$0] - 2 * vectors[1][$0] }
        let splitter = try QuerySplitter(
            features: [FeatureSubspace(name: "a", vectors: Array(vectors[0..<2])),
                       FeatureSubspace(name: "b", vectors: [combination, vectors[2]]),
                       FeatureSubspace(name: "again", vectors: [vectors[1]])],
            dimension: 8, method: .orthogonalize)
        #expect(splitter.bases.map(\.columns) == [2, 1, 0])
        let residualized = try QuerySplitter(features: [FeatureSubspace(name: "b", vectors: [combination, vectors[2]])],
                                             dimension: 8, method: .residualize)
        #expect(residualized.bases.map(\.columns) == [2])
        // Bases are orthonormal and mutually orthogonal.
        let all = splitter.bases.flatMap { basis in (0..<basis.columns).map { basis.column($0) } }
        for i in all.indices {
            for j in all.indices {
                #expect(abs(dot(all[i], all[j]) - (i == j ? 1 : 0)) < 1e-9)
            }
        }
    }

    @Test("bad subspaces are refused with the feature named")
    func badSubspaces() {
        #expect(throws: EngineError.invalidOption(name: "features", message: "feature 'a': vector 1 has 3 values, d_head is 4")) {
            try QuerySplitter(features: [FeatureSubspace(name: "a", vectors: [[1, 0, 0, 0], [0, 1, 0]])], dimension: 4,
                              method: .orthogonalize)
        }
        #expect(throws: EngineError.invalidOption(name: "features", message: "feature 'a' is listed twice")) {
            try QuerySplitter(features: [FeatureSubspace(name: "a", vectors: [[1, 0]]), FeatureSubspace(name: "a", vectors: [[0, 1]])],
                              dimension: 2, method: .residualize)
        }
        #expect(throws: EngineError.invalidOption(name: "features", message: "feature 'n': vector 0 holds a non-finite value")) {
            try QuerySplitter(features: [FeatureSubspace(name: "n", vectors: [[.nan, 0]])], dimension: 2, method: .residualize)
        }
    }

    @Test("no logits, no fraction")
    func zeroLogits() throws {
        let splitter = try QuerySplitter(features: [FeatureSubspace(name: "a", vectors: [[1, 0]])], dimension: 2,
                                         method: .orthogonalize)
        let result = splitter.attribute(query: [0, 0], keys: [1, 1])
        #expect(result.explainedFraction == nil)
        #expect(result.featureFractions == [nil])
        #expect(splitter.attribute(query: [1, 1], keys: []).explainedFraction == nil)
    }
}
