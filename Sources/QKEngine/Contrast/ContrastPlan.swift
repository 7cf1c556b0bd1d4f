import Foundation

/// The pairs of one contrast (a feature, pooled or for one query value), which do not depend on
/// the layer or the head: only on the labels.
///
/// `ΔC = (1/N₊) Σ₊ q kᵀ − (1/N₋) Σ₋ q kᵀ = Σ_p q_p w_pᵀ` with `w_p = Σ_{j ∈ p} c_j k_j`, where
/// `c_j = 1/N₊` for a key sharing the query's value and `−1/N₋` for a key with another value.
/// Summing each prompt's keys first makes the cost one `d × P × d` product per head.
public struct ContrastSpec: Sendable, Equatable {
    public var feature: String
    /// nil for the pooled contrast.
    public var value: String?
    public var positivePairs: Int
    public var negativePairs: Int
    /// Prompts that contribute at least one pair, ascending.
    var prompts: [Int32]
    /// For each entry of `prompts`: its keys' range in `keyIndices` / `keyWeights`.
    var keyRangeStart: [Int32]
    /// Flattened key indices of the contributing keys, grouped by prompt.
    var keyIndices: [Int32]
    /// `1/N₊` or `−1/N₋` per contributing key.
    var keyWeights: [Double]

    /// Prompts that contribute at least one pair.
    public var promptCount: Int { prompts.count }
    /// Keys that contribute at least one pair.
    public var keyCount: Int { keyIndices.count }
}

/// The contrasts of a capture: one per feature (pooled) and, on request, one per query value.
public struct ContrastPlan: Sendable {
    public var specs: [ContrastSpec]
    /// Contrasts that cannot be formed, with the reason (they hold for every layer and head).
    public var unformable: [(feature: String, value: String?, reason: Skip.Reason)]

    /// Builds the plan from the capture's labels.
    public init(prompts table: PromptTable, features: [String], perValue: Bool) {
        var specs: [ContrastSpec] = []
        var unformable: [(String, String?, Skip.Reason)] = []
        for name in features {
            guard let labels = table.labels(of: name) else { continue }
            var targets: [Int32?] = [nil]
            if perValue {
                let used = Set(labels.queryCodes.filter { $0 >= 0 })
                targets += used.sorted().map { Optional($0) }
            }
            for target in targets {
                let value = target.map { labels.values[Int($0)] }
                let spec = ContrastPlan.makeSpec(table: table, labels: labels, target: target, value: value)
                if spec.positivePairs == 0 {
                    unformable.append((name, value, .noPositivePairs))
                } else if spec.negativePairs == 0 {
                    unformable.append((name, value, .noNegativePairs))
                } else {
                    specs.append(spec)
                }
            }
        }
        self.specs = specs
        self.unformable = unformable
    }

    private static func makeSpec(table: PromptTable, labels: FeatureLabels, target: Int32?, value: String?) -> ContrastSpec {
        var positive = 0, negative = 0
        var prompts: [Int32] = []
        var rangeStart: [Int32] = []
        var keyIndices: [Int32] = []
        var isPositive: [Bool] = []
        for p in 0..<table.promptCount {
            let queryCode = labels.queryCodes[p]
            guard queryCode >= 0, target == nil || target == queryCode else { continue }
            let before = keyIndices.count
            for key in table.keyStart[p]..<table.keyStart[p + 1] {
                let keyCode = labels.keyCodes[key]
                guard keyCode >= 0 else { continue }
                keyIndices.append(Int32(key))
                let same = keyCode == queryCode
                isPositive.append(same)
                if same { positive += 1 } else { negative += 1 }
            }
            if keyIndices.count > before {
                prompts.append(Int32(p))
                rangeStart.append(Int32(before))
            }
        }
        rangeStart.append(Int32(keyIndices.count))
        let plus = positive > 0 ? 1.0 / Double(positive) : 0
        let minus = negative > 0 ? -1.0 / Double(negative) : 0
        return ContrastSpec(feature: labels.name, value: value, positivePairs: positive, negativePairs: negative,
                            prompts: prompts, keyRangeStart: rangeStart, keyIndices: keyIndices,
                            keyWeights: isPositive.map { $0 ? plus : minus })
    }
}
