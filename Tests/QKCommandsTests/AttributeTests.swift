import Foundation
import Testing
import QKEngine
import QKStore
import QKTestSupport
@testable import QKCommands

/// One span capture and its catalog (checkpoint `step1` decomposed by the engine, `exact` hand-made),
/// built once for the suite.
final class AttributeFixture: @unchecked Sendable {
    static let shared = try! AttributeFixture()

    let directory: TemporaryDirectory
    let capture: URL
    let database: String
    let span: SpanCapture

    private init() throws {
        directory = try TemporaryDirectory(prefix: "attribute-cli")
        capture = directory.path("capture")
        span = try SpanCapture(writingTo: capture, promptCount: 1500)
        database = directory.path("catalog.sqlite").path
        let catalog = try Catalog.open(path: database)
        try span.ingest(capture, into: catalog)
    }

    struct Result {
        var code: Int32
        var out: String
        var err: String
        var json: JSONValueReader { JSONValueReader(text: out) }
    }

    /// Runs `qkcat attribute <capture> …` in-process against the fixture's catalog.
    func attribute(_ arguments: [String], capture: URL? = nil) -> Result {
        let out = StringOutput(), err = StringOutput()
        let code = QKCat.root.main(arguments: ["attribute", (capture ?? self.capture).path, "--db", database] + arguments,
                                   stdout: out, stderr: err)
        return Result(code: code, out: out.text, err: err.text)
    }
}

/// Reads `--json` output back with Foundation's parser.
struct JSONValueReader {
    let object: Any?
    init(text: String) { object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
    var dictionary: [String: Any] { object as? [String: Any] ?? [:] }
}

private func number(_ value: Any?) -> Double { (value as? NSNumber)?.doubleValue ?? .nan }

@Suite("attribute command", .serialized)
struct AttributeTests {
    let fixture = AttributeFixture.shared

    private func keys(_ result: AttributeFixture.Result) -> [[String: Any]] {
        result.json.dictionary["keys"] as? [[String: Any]] ?? []
    }

    @Test("parts sum to the total logit of every key, and the total is q·k from the capture",
          arguments: AttributionMethod.allCases)
    func partsSumToTotal(method: AttributionMethod) throws {
        let reader = try CaptureReader.open(fixture.capture)
        let tensors = try reader.layerTensors(0)
        let table = reader.prompts
        for (prompt, head) in [(0, 0), (7, 1), (1234, 0)] {
            let result = fixture.attribute(["--prompt", "p\(prompt)", "--layer", "0", "--head", "\(head)",
                                            "--method", method.rawValue, "--json"])
            #expect(result.code == 0, "\(result.err)")
            let object = result.json.dictionary
            #expect(object["prompt_id"] as? String == "p\(prompt)")
            #expect(object["method"] as? String == method.rawValue)
            #expect(object["features"] as? [String] == ["category", "order"])
            var queries = [Float](repeating: 0, count: 2 * 16)
            try queries.withUnsafeMutableBufferPointer { try tensors.queries.decodeRows(prompt..<(prompt + 1), into: $0) }
            let range = table.keyStart[prompt]..<table.keyStart[prompt + 1]
            var keyVectors = [Float](repeating: 0, count: range.count * 16)
            try keyVectors.withUnsafeMutableBufferPointer { try tensors.keys.decodeRows(range, into: $0) }
            let rows = keys(result)
            #expect(rows.count == range.count)
            let tokens = try reader.tokens(ofPrompt: prompt)
            for (j, row) in rows.enumerated() {
                let total = number(row["total"]), residual = number(row["residual"])
                let parts = row["parts"] as? [String: Any] ?? [:]
                #expect(Set(parts.keys) == ["category", "order"])
                let sum = parts.values.map(number).reduce(residual, +)
                #expect(abs(sum - total) <= 1e-9 * max(1, abs(total)), "key \(j): \(sum) vs \(total)")
                let expected = (0..<16).reduce(0.0) { $0 + Double(queries[head * 16 + $1]) * Double(keyVectors[j * 16 + $1]) }
                #expect(abs(total - expected) < 1e-5 * max(1, abs(expected)))
                let position = row["position"] as? Int ?? -1
                #expect(position == Int(table.keyPositions[range.lowerBound + j]))
                #expect(row["token"] as? String == tokens[position])
            }
        }
    }

    @Test("--scale divides every logit by √d_head")
    func scale() {
        let plain = keys(fixture.attribute(["--prompt", "p3", "--layer", "0", "--head", "1", "--json"]))
        let scaled = keys(fixture.attribute(["--prompt", "p3", "--layer", "0", "--head", "1", "--scale", "--json"]))
        #expect(plain.count == 4 && scaled.count == 4)
        for (a, b) in zip(plain, scaled) {
            #expect(abs(number(a["total"]) / 4 - number(b["total"])) < 1e-12)
            #expect(abs(number(a["residual"]) / 4 - number(b["residual"])) < 1e-12)
        }
    }

    @Test("queries inside the planted subspaces: explained ≈ 1 with the engine's subspaces, ≈ 0 with orthogonal ones")
    func explainedFractions() throws {
        // Subspaces the engine recovered from this capture (a few degrees off the planted ones).
        let recovered = fixture.attribute(["--all", "--features", "category,order", "--json"])
        #expect(recovered.code == 0, "\(recovered.err)")
        let heads = recovered.json.dictionary["heads"] as? [[String: Any]] ?? []
        #expect(heads.count == 2)
        for head in heads {
            let explained = head["explained"] as? [String: Any] ?? [:]
            #expect(number(explained["mean"]) > 0.98, "\(head)")
            #expect(number(explained["min"]) > 0.9, "\(head)")
            #expect(head["prompts"] as? Int == 1500)
        }
        // Exactly planted subspaces: 1 to float precision; the orthogonal "null" subspace: 0.
        let exact = fixture.attribute(["--all", "--checkpoint", "exact", "--features", "category,order", "--json"])
        for head in exact.json.dictionary["heads"] as? [[String: Any]] ?? [] {
            let explained = head["explained"] as? [String: Any] ?? [:]
            #expect(abs(number(explained["min"]) - 1) < 1e-4 && abs(number(explained["max"]) - 1) < 1e-4)
        }
        let null = fixture.attribute(["--all", "--checkpoint", "exact", "--features", "null", "--json"])
        #expect(null.code == 0, "\(null.err)")
        let nullHeads = null.json.dictionary["heads"] as? [[String: Any]] ?? []
        #expect(nullHeads.count == 2)
        for head in nullHeads {
            let explained = head["explained"] as? [String: Any] ?? [:]
            #expect(abs(number(explained["min"])) < 1e-4 && abs(number(explained["max"])) < 1e-4)
        }
        let one = fixture.attribute(["--prompt", "p5", "--layer", "0", "--head", "0", "--checkpoint", "exact",
                                     "--features", "null", "--json"])
        #expect(abs(number(one.json.dictionary["explained_fraction"])) < 1e-6)
    }

    @Test("orthogonal subspaces: orthogonalize and residualize print the same split")
    func methodsAgreeOnOrthogonalSubspaces() {
        for prompt in ["p2", "p99"] {
            let base = ["--prompt", prompt, "--layer", "0", "--head", "1", "--checkpoint", "exact",
                        "--features", "order,category,null", "--json"]
            let a = keys(fixture.attribute(base + ["--method", "orthogonalize"]))
            let b = keys(fixture.attribute(base + ["--method", "residualize"]))
            #expect(a.count == 4 && b.count == 4)
            for (x, y) in zip(a, b) {
                #expect(abs(number(x["residual"]) - number(y["residual"])) < 1e-5)
                let px = x["parts"] as? [String: Any] ?? [:], py = y["parts"] as? [String: Any] ?? [:]
                for name in ["order", "category", "null"] { #expect(abs(number(px[name]) - number(py[name])) < 1e-5) }
            }
        }
    }

    @Test("overlapping subspaces: same first part, residualize leaves more unexplained")
    func methodsDifferOnOverlap() {
        // overlap = cos 45° · category₀ + sin 45° · order₀, after category.
        let base = ["--all", "--checkpoint", "exact", "--features", "category,overlap", "--json"]
        let orthogonal = fixture.attribute(base + ["--method", "orthogonalize"]).json.dictionary["heads"] as? [[String: Any]] ?? []
        let residual = fixture.attribute(base + ["--method", "residualize"]).json.dictionary["heads"] as? [[String: Any]] ?? []
        #expect(orthogonal.count == 2 && residual.count == 2)
        for (o, r) in zip(orthogonal, residual) {
            let eo = o["explained"] as? [String: Any] ?? [:], er = r["explained"] as? [String: Any] ?? [:]
            #expect(number(eo["mean"]) > number(er["mean"]) + 0.01, "\(eo) vs \(er)")
        }
        for prompt in ["p0", "p1", "p2", "p3"] {
            let one = ["--prompt", prompt, "--layer", "0", "--head", "0", "--checkpoint", "exact",
                       "--features", "category,overlap", "--json"]
            let o = fixture.attribute(one + ["--method", "orthogonalize"]).json.dictionary
            let r = fixture.attribute(one + ["--method", "residualize"]).json.dictionary
            // Logits weigh directions by the keys: a prompt may go either way, only the mean is ordered.
            #expect(abs(number(o["explained_fraction"]) - number(r["explained_fraction"])) > 1e-4)
            for (x, y) in zip(o["keys"] as? [[String: Any]] ?? [], r["keys"] as? [[String: Any]] ?? []) {
                let px = x["parts"] as? [String: Any] ?? [:], py = y["parts"] as? [String: Any] ?? [:]
                #expect(abs(number(px["category"]) - number(py["category"])) < 1e-9)
            }
        }
    }

    @Test("text output: a row per key with a bar, the explained fraction; --all a row per head")
    func textOutput() {
        let one = fixture.attribute(["--prompt", "p1", "--layer", "0", "--head", "0"])
        #expect(one.code == 0)
        let lines = one.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "prompt p1 · layer 0 head 0 · span-model @ step1 · orthogonalize · logits q·k")
        #expect(lines.count == 1 + 1 + 4 + 1)
        #expect(lines[1].hasPrefix("POS  TOKEN") && lines[1].contains("category") && lines[1].contains("RESIDUAL"))
        #expect(lines[2...5].allSatisfy { $0.contains("│") })
        #expect(lines.last?.hasPrefix("explained fraction 1.000 (category ") == true, "\(lines.last ?? "")")
        let all = fixture.attribute(["--all", "--head", "1"])
        #expect(all.code == 0)
        let rows = all.out.split(separator: "\n").map(String.init)
        #expect(rows.count == 3)
        #expect(rows[1].hasPrefix("LAYER  HEAD  PROMPTS"))
        #expect(rows[2].hasPrefix("    0     1     1500  1.000 ± 0.000  ██████████  "), "\(rows[2])")
    }

    @Test("errors: head or feature not in the catalog, another model or d_head, unknown prompt, bad usage")
    func errors() throws {
        func failure(_ arguments: [String], capture: URL? = nil) -> String {
            let result = fixture.attribute(arguments, capture: capture)
            #expect(result.code == 1, "\(arguments): \(result.code) \(result.err)")
            #expect(result.out.isEmpty)
            return result.err
        }
        #expect(failure(["--prompt", "p0", "--layer", "0", "--head", "5"])
            == "Error: layer 0 head 5 of model 'span-model' at checkpoint 'step1' has no pooled decomposition in the catalog\n")
        #expect(failure(["--prompt", "p0", "--layer", "0", "--head", "0", "--features", "category,colour"])
            == "Error: feature 'colour' has no pooled decomposition at layer 0 head 0 of model 'span-model' at checkpoint 'step1' (it has: category, order)\n")
        #expect(failure(["--all", "--features", "null"])
            == "Error: feature 'null' has no pooled decomposition in model 'span-model' at checkpoint 'step1' (there are: category, order)\n")
        #expect(failure(["--all", "--layer", "1"]) == "Error: layer 1 is not in the capture (it holds: 0)\n")
        #expect(failure(["--prompt", "nope", "--layer", "0", "--head", "0"])
            == "Error: option 'prompt': the capture has no prompt 'nope' (its 1500 prompts: p0, p1, p2, …)\n")
        #expect(failure(["--all", "--checkpoint", "step9"])
            == "Error: model 'span-model' has no checkpoint 'step9' in the catalog (it has: step1, exact)\n")

        let other = try TemporaryDirectory(prefix: "attribute-other")
        try writeSmallCapture(to: other.url, layers: [0])
        #expect(failure(["--all"], capture: other.url)
            == "Error: the capture's model 'test/small-model' is not in the catalog (it holds: span-model)\n")
        let narrow = try TemporaryDirectory(prefix: "attribute-narrow")
        try writeSmallCapture(to: narrow.url, model: ModelInfo(name: "span-model", checkpoint: "step1", layerCount: 2,
                                                               headCount: 2, kvHeadCount: 1, headDimension: 8), layers: [0])
        #expect(failure(["--prompt", "p0", "--layer", "0", "--head", "0"], capture: narrow.url)
            == "Error: the capture's d_head is 8, but model 'span-model' in the catalog has d_head 16\n")
        #expect(failure(["--all"], capture: fixture.directory.path("missing")).hasPrefix("Error: capture.json: "))

        for (arguments, message) in [
            ([String](), "give --prompt ID or --all"),
            (["--all", "--prompt", "p0"], "--all and --prompt exclude each other"),
            (["--prompt", "p0", "--layer", "0"], "--prompt needs --layer and --head"),
            (["--all", "--features", "order,order"], "feature 'order' is listed twice in --features"),
        ] {
            let result = fixture.attribute(arguments)
            #expect(result.code == 64)
            #expect(result.err.hasPrefix("Error: \(message)\nUsage: qkcat attribute <capture-dir>"), "\(result.err)")
        }
        let method = fixture.attribute(["--all", "--method", "shapley"])
        #expect(method.code == 64)
    }
}
