import Foundation
import Testing
@testable import QKEngine
import QKTestSupport

/// The capture's files as files: where links lead, and changes made while a capture is open.
@Suite("capture files")
struct CaptureFilesTests {
    @Test("a tensor file that is a symbolic link out of the capture is refused")
    func symlinkOutside() throws {
        let root = try TemporaryDirectory()
        let directory = try root.subdirectory("capture")
        try writeSmallCapture(to: directory)
        let outside = root.path("elsewhere.safetensors")
        let tensors = directory.appendingPathComponent("activations.safetensors")
        try FileManager.default.moveItem(at: tensors, to: outside)
        try FileManager.default.createSymbolicLink(at: tensors, withDestinationURL: outside)
        let real = URL(fileURLWithPath: outside.path).resolvingSymlinksInPath().path
        #expect(throws: EngineError.invalidField(file: "capture.json", line: nil, field: "tensor_files[0]",
                                                 message: "'activations.safetensors' is a symbolic link to \(real), outside the capture directory")) {
            _ = try CaptureReader.open(directory)
        }
    }

    @Test("a symbolic link to a file inside the capture, or a capture reached through a link, is fine")
    func symlinkInside() throws {
        let root = try TemporaryDirectory()
        let directory = try root.subdirectory("capture")
        let written = try writeSmallCapture(to: directory)
        let tensors = directory.appendingPathComponent("activations.safetensors")
        let inside = try root.subdirectory("capture/data").appendingPathComponent("q-and-k.safetensors")
        try FileManager.default.moveItem(at: tensors, to: inside)
        try FileManager.default.createSymbolicLink(atPath: tensors.path, withDestinationPath: "data/q-and-k.safetensors")
        #expect(try CaptureReader.open(directory).prompts.promptCount == written.prompts.count)
        let link = root.path("link-to-capture")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: directory)
        #expect(try CaptureReader.open(link).prompts.promptCount == written.prompts.count)
    }

    @Test("a file rewritten, resized or removed after opening is reported by checkUnchanged")
    func changedAfterOpening() throws {
        let root = try TemporaryDirectory()
        let directory = try root.subdirectory("capture")
        try writeSmallCapture(to: directory)
        let reader = try CaptureReader.open(directory)
        try reader.checkUnchanged()

        let prompts = directory.appendingPathComponent("prompts.jsonl")
        let text = try Data(contentsOf: prompts)
        try (text + Data("\n".utf8)).write(to: prompts)
        #expect(throws: EngineError.io(path: "prompts.jsonl", message: "changed while the capture was being read (it went "
            + "from \(text.count) to \(text.count + 1) bytes); a capture must not change during an ingest")) {
            try reader.checkUnchanged()
        }

        let second = try CaptureReader.open(directory)
        let header = directory.appendingPathComponent("capture.json")
        let headerText = try Data(contentsOf: header)
        usleep(10_000)   // a later modification time even on coarse clocks
        try headerText.write(to: header)   // same bytes, rewritten (another inode: Data.write replaces the file)
        #expect(throws: EngineError.io(path: "capture.json", message: "changed while the capture was being read (it was "
            + "rewritten); a capture must not change during an ingest")) {
            try second.checkUnchanged()
        }

        let third = try CaptureReader.open(directory)
        try FileManager.default.removeItem(at: directory.appendingPathComponent("activations.safetensors"))
        #expect(throws: EngineError.io(path: "activations.safetensors", message: "changed while the capture was being read "
            + "(it is gone); a capture must not change during an ingest")) {
            try third.checkUnchanged()
        }
    }
}
