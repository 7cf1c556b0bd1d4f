import Foundation
import QKCommands
import QKEngine
import QKTestSupport

/// What one in-process `qkcat` run printed.
struct RunResult {
    var code: Int32
    var out: String
    var err: String
}

/// Runs `qkcat` in-process with captured output (neither stream a terminal).
func qkcat(_ arguments: [String], environment: [String: String] = [:]) -> RunResult {
    let out = StringOutput(), err = StringOutput()
    let code = QKCat.root.main(arguments: arguments, environment: environment, stdout: out, stderr: err)
    return RunResult(code: code, out: out.text, err: err.text)
}

/// A planted synthetic capture small enough for command tests.
func syntheticSpec(checkpoint: String = "step1", layers: [Int] = [0, 1], prompts: Int = 240, seed: UInt64 = 5,
                   dtype: TensorDType = .f32) -> SyntheticCaptureSpec {
    SyntheticCaptureSpec(
        model: ModelInfo(name: "planted/tiny", checkpoint: checkpoint, layerCount: 2, headCount: 4, kvHeadCount: 2,
                         headDimension: 16),
        layers: layers, promptCount: prompts, keysPerPrompt: 4, unlabelledKeysPerPrompt: 1,
        features: [SyntheticFeature(name: "category", valueCount: 4, rank: 2),
                   SyntheticFeature(name: "order", kind: "binding", valueCount: 4, rank: 2, assignment: .slot)],
        noise: 0.05, dtype: dtype, seed: seed)
}

/// Writes a synthetic capture into a fresh folder under `root`.
@discardableResult
func writeCapture(_ spec: SyntheticCaptureSpec, in root: TemporaryDirectory, name: String) throws -> URL {
    let url = try root.subdirectory(name)
    try SyntheticCapture.write(spec, to: url)
    return url
}

/// The `qkcat` executable built next to the test bundle (`make test` builds it first).
func qkcatExecutable() -> URL? {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qkcat"),
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/qkcat"),
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

/// Parses JSON Lines output into objects.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}
