import Foundation
import Testing
@testable import QKCommands

/// Inputs the fuzz targets (Fuzz/) once stopped on, replayed through the code that failed.
@Suite("fuzz regressions")
struct FuzzRegressionTests {
    static let regressions = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Regressions")

    /// A committed input of the `arguments` target, split at NUL bytes as the target splits it.
    static func arguments(_ name: String) throws -> [String] {
        let data = try Data(contentsOf: regressions.appendingPathComponent("arguments/\(name)"))
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("--layers 0,0-999999 is refused at once instead of expanding a million layers")
    func longLayerRange() throws {
        let arguments = try Self.arguments("timeout-2d6865924758817f317fc82a868599bfdef944df")
        #expect(arguments.suffix(2) == ["--layers", "0,0-999999"])
        guard case let .success(.run(command, _, values)) = Parser(root: QKCat.root).parse(arguments) else {
            Issue.record("the arguments no longer parse to a command to run")
            return
        }
        #expect(command.name == "ingest")
        let refusal = CommandError.invalidValue("0,0-999999", for: "--layers <ranges>",
                                                reason: "the ranges expand to more than 100000 values")
        #expect(throws: refusal) { _ = try values.intRanges("layers") }
        // The whole command: a usage error before anything is read or written.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("qkcat-fuzz-\(UUID().uuidString)")
        let db = root.appendingPathComponent("x.sqlite").path
        var line = arguments
        line[line.firstIndex(of: "--db")! + 1] = db
        let result = qkcat(line)
        #expect(result.code == 64)
        #expect(result.err.hasPrefix("Error: \(refusal.description)\n"))
        #expect(!FileManager.default.fileExists(atPath: db))
    }

    @Test("many ranges of one option together are capped too")
    func manyRanges() throws {
        var values = ParsedValues(command: QKCat.ingestCommand)
        for _ in 0..<3 { values.append("0-49999", to: "layers") }
        #expect(throws: CommandError.invalidValue("0-49999", for: "--layers <ranges>",
                                                  reason: "the ranges expand to more than 100000 values")) {
            _ = try values.intRanges("layers")
        }
        var fine = ParsedValues(command: QKCat.ingestCommand)
        fine.append("0-3,7", to: "layers")
        fine.append("5-6", to: "layers")
        #expect(try fine.intRanges("layers") == [0, 1, 2, 3, 5, 6, 7])
    }
}
