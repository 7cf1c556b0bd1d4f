import Foundation
import Testing
import QKEngine
import QKStore
import QKTestSupport
@testable import QKCommands

@Suite("ingest")
struct IngestTests {
    @Test("ingest then export gives the engine's own results")
    func roundTrip() throws {
        let root = try TemporaryDirectory()
        let capture = try writeCapture(syntheticSpec(), in: root, name: "capture")
        let db = root.path("catalog.sqlite").path
        let ingest = qkcat(["ingest", capture.path, "--db", db, "--per-value", "--top", "6"])
        #expect(ingest.code == 0, "\(ingest.err)")
        #expect(ingest.out.contains("Ingested planted/tiny @ step1"))
        let exported = qkcat(["export", "--db", db])
        #expect(exported.code == 0, "\(exported.err)")
        let lines = try jsonLines(exported.out)

        let reader = try CaptureReader.open(capture)
        let engine = try Decomposer(reader: reader, options: DecompositionOptions(perValue: true, topCount: 6)).runAll()
            .flatMap(\.decompositions)
        #expect(lines.count == engine.count)
        for expected in engine {
            let line = try #require(lines.first {
                $0["layer"] as? Int == expected.layer && $0["head"] as? Int == expected.head
                    && $0["feature"] as? String == expected.feature && ($0["value"] as? String) == expected.value
            }, "L\(expected.layer) H\(expected.head) \(expected.feature)=\(expected.value ?? "pooled") missing")
            #expect(line["kv_head"] as? Int == expected.kvHead)
            #expect(line["rank"] as? Int == expected.rank)
            #expect(line["n_pos_pairs"] as? Int == expected.positivePairs)
            #expect(line["n_neg_pairs"] as? Int == expected.negativePairs)
            #expect(abs((line["frobenius"] as! Double) - expected.frobenius) <= 1e-12 * expected.frobenius)
            let sigmas = line["singular_values"] as! [Double]
            #expect(sigmas.count == expected.singularValues.count)
            for (got, want) in zip(sigmas, expected.singularValues) {
                #expect(abs(got - want) <= 1e-6 * max(want, expected.singularValues[0] * 1e-3))
            }
            let components = line["components"] as! [[String: Any]]
            #expect(components.count == expected.components.count)
            for (got, want) in zip(components, expected.components) {
                #expect(got["index"] as? Int == want.index)
                #expect(abs((got["sigma"] as! Double) - want.sigma) <= 1e-12 * want.sigma)
                #expect(zip(got["u"] as! [Double], want.u).allSatisfy { abs($0 - Double($1)) < 1e-7 })
                #expect(zip(got["v"] as! [Double], want.v).allSatisfy { abs($0 - Double($1)) < 1e-7 })
                let keys = got["top_keys"] as! [[String: Any]]
                #expect(keys.count == want.keys.highest.count)
                for (k, example) in zip(keys, want.keys.highest) {
                    #expect(k["prompt_id"] as? String == reader.prompts.promptIDs[example.prompt])
                    #expect(k["position"] as? Int == example.position)
                    #expect(k["token"] as? String == reader.prompts.tokenStrings[Int(example.token)])
                    #expect(abs((k["score"] as! Double) - example.score) < 1e-9 * max(1, abs(example.score)))
                }
            }
        }
    }

    @Test("the same capture again is reported and changes nothing")
    func idempotent() throws {
        let root = try TemporaryDirectory()
        let capture = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "capture")
        let db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", capture.path, "--db", db]).code == 0)
        let before = try CatalogSnapshot.take(db)
        // A copy elsewhere has the same content.
        let copy = root.path("copy")
        try FileManager.default.copyItem(at: capture, to: copy)
        let again = qkcat(["ingest", copy.path, "--db", db])
        #expect(again.code == 0)
        #expect(again.out.hasPrefix("Already ingested: this capture's content (xxh64:"))
        #expect(try CatalogSnapshot.take(db).content == before.content)
    }

    @Test("a capture failing validation leaves the catalog unchanged", arguments: ["prompt", "nan"])
    func invalidCapture(breakage: String) throws {
        let root = try TemporaryDirectory()
        let good = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "good")
        let db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", good.path, "--db", db]).code == 0)
        let before = try CatalogSnapshot.take(db)

        let bad = try writeCapture(syntheticSpec(checkpoint: "step2", prompts: 60, seed: 6), in: root, name: "bad")
        let expected: String
        switch breakage {
        case "prompt":
            try CaptureEditing.editPromptLine(3, in: bad) { prompt in
                var keys = prompt["keys"] as! [[String: Any]]
                keys[1]["position"] = 99
                prompt["keys"] = keys
            }
            expected = "Error: prompts.jsonl:3: field 'keys[1].position'"
        default:
            // A NaN in the last layer's keys: found after layer 0 is already in the open transaction.
            let file = bad.appendingPathComponent("activations.safetensors")
            let (header, _) = try CaptureEditing.readSafetensors(file)
            let headerLength = try Data(contentsOf: file).prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let k = header["layers.1.k"] as! [String: Any]
            let begin = (k["data_offsets"] as! [Int])[0]
            try CaptureEditing.patchBytes(file, at: 8 + headerLength + begin + 4 * 20, with: [0x00, 0x00, 0xC0, 0x7F])
            expected = "Error: activations.safetensors: tensor 'layers.1.k': non-finite value at [0, 1, 4]"
        }
        let result = qkcat(["ingest", bad.path, "--db", db])
        #expect(result.code == 1)
        #expect(result.err.hasPrefix(expected), "\(result.err)")
        let after = try CatalogSnapshot.take(db)
        #expect(after.integrity == "ok")
        #expect(after.content == before.content)
    }

    @Test("options the capture cannot satisfy are refused before anything is written")
    func badOptions() throws {
        let root = try TemporaryDirectory()
        let capture = try writeCapture(syntheticSpec(prompts: 20), in: root, name: "capture")
        let db = root.path("catalog.sqlite").path
        let energy = qkcat(["ingest", capture.path, "--db", db, "--energy", "1.5"])
        #expect(energy.code == 1)
        #expect(energy.err.hasPrefix("Error: option 'energy': 1.5 is not in (0, 1]"))
        let layers = qkcat(["ingest", capture.path, "--db", db, "--layers", "0,3-4"])
        #expect(layers.err.hasPrefix("Error: option 'layers': layer 3 is not in the capture (it holds: 0, 1)"))
        let features = qkcat(["ingest", capture.path, "--db=\(db)", "--features=category,colour"])
        #expect(features.err.hasPrefix("Error: option 'features': the capture declares no feature 'colour'"))
        let missing = qkcat(["ingest", root.path("nowhere").path, "--db", db])
        #expect(missing.code == 1)
        #expect(missing.err.hasPrefix("Error: capture.json:"), "\(missing.err)")
        let usage = qkcat(["ingest", "--db", db])
        #expect(usage.code == 64)
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    @Test("an ingest killed midway leaves the catalog as it was, and readers keep working meanwhile")
    func killedMidway() throws {
        let executable = try #require(qkcatExecutable(), "build the qkcat executable first (make test does)")
        let root = try TemporaryDirectory()
        let first = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "first")
        var bigSpec = syntheticSpec(checkpoint: "step2", layers: [0, 1], prompts: 2000, seed: 8)
        bigSpec.model.name = "planted/wide"
        bigSpec.model.headCount = 8
        bigSpec.model.kvHeadCount = 8
        bigSpec.model.headDimension = 64
        let big = try writeCapture(bigSpec, in: root, name: "big")
        let db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", first.path, "--db", db]).code == 0)
        let before = try CatalogSnapshot.take(db)
        let searchBefore = qkcat(["search", "category", "--db", db, "--json"])

        let process = Process()
        process.executableURL = executable
        process.arguments = ["ingest", big.path, "--db", db, "--per-value", "--top", "50", "--threads", "1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the child holds the write lock, i.e. is inside its ingest transaction.
        #expect(try waitForWriteLock(db, heldBy: process), "the child never started writing")
        // A reader meanwhile sees the catalog as it was.
        let searchDuring = qkcat(["search", "category", "--db", db, "--json"])
        #expect(searchDuring.code == 0)
        #expect(searchDuring.out == searchBefore.out)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)

        let after = try CatalogSnapshot.take(db)
        #expect(after.integrity == "ok")
        #expect(after.content == before.content)
        // And the catalog still takes the same capture afterwards.
        #expect(qkcat(["ingest", big.path, "--db", db, "--layers", "0", "--quiet"]).code == 0)
    }
}
