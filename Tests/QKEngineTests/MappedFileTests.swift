import Foundation
import Testing
@testable import QKEngine
import QKTestSupport

/// A tensor file that shrinks while mapped: the engine reports the change instead of dying of SIGBUS.
@Suite("mapped files")
struct MappedFileTests {
    /// A capture whose tensor file spans many pages (600 prompts: 77 KB of queries per layer).
    func pagedCapture(_ root: TemporaryDirectory) throws -> URL {
        let directory = try root.subdirectory("capture")
        try writeSmallCapture(to: directory, promptCount: 600)
        return directory
    }

    @Test("a tensor file truncated after opening gives an error naming it, every later read too")
    func truncatedWhileMapped() throws {
        let root = try TemporaryDirectory()
        let directory = try pagedCapture(root)
        let reader = try CaptureReader.open(directory)
        let tensorFile = directory.appendingPathComponent("activations.safetensors")
        let size = try FileManager.default.attributesOfItem(atPath: tensorFile.path)[.size] as! Int
        truncate(tensorFile.path, 4096)

        let queries = try reader.layerTensors(3).queries
        let expected = EngineError.io(path: "activations.safetensors", message: "changed while it was being read: it was "
            + "\(size) bytes when opened and is now 4096 bytes; a capture must not change during an ingest")
        var buffer = [Float](repeating: 0, count: queries.shape[0] * queries.shape[2])
        #expect(throws: expected) {
            try buffer.withUnsafeMutableBufferPointer { pointer throws(EngineError) in try queries.decodeSlice(head: 1, into: pointer) }
        }
        var all = [Float](repeating: 0, count: queries.elementCount)
        #expect(throws: expected) {
            try all.withUnsafeMutableBufferPointer { pointer throws(EngineError) in try queries.decodeAll(into: pointer) }
        }
        #expect(throws: expected) { _ = try Decomposer(reader: reader, options: DecompositionOptions(threads: 2)).runAll() }
    }

    @Test("an intact mapping decodes as before, and a truncation elsewhere does not taint it")
    func intactMappingsAreUntouched() throws {
        let root = try TemporaryDirectory()
        let directory = try pagedCapture(root)
        let other = try root.subdirectory("other")
        try writeSmallCapture(to: other, promptCount: 600)
        let reader = try CaptureReader.open(directory)
        let damaged = try CaptureReader.open(other)
        truncate(other.appendingPathComponent("activations.safetensors").path, 4096)
        #expect(throws: EngineError.self) { _ = try Decomposer(reader: damaged, options: DecompositionOptions(threads: 1)).runAll() }

        let fresh = try CaptureReader.open(try { () throws -> URL in
            let copy = try root.subdirectory("copy")
            try writeSmallCapture(to: copy, promptCount: 600)
            return copy
        }())
        let results = try Decomposer(reader: reader, options: DecompositionOptions(threads: 2)).runAll()
        let again = try Decomposer(reader: fresh, options: DecompositionOptions(threads: 2)).runAll()
        #expect(results.flatMap(\.decompositions).map(\.singularValues) == again.flatMap(\.decompositions).map(\.singularValues))
    }

    @Test("every mapping gets a guard slot and gives it back")
    func slotsAreReturned() throws {
        let root = try TemporaryDirectory()
        let directory = try pagedCapture(root)
        let url = directory.appendingPathComponent("activations.safetensors")
        // More mappings over time than there are slots: each is given back when its file is unmapped.
        for _ in 0..<(TruncationGuard.capacity + 10) {
            let file = try MappedFile(url: url, displayName: "activations.safetensors", minimumSize: 8)
            try file.checkIntact()
        }
        truncate(url.path, 4096)
        let file = try MappedFile(url: url, displayName: "activations.safetensors", minimumSize: 8)
        #expect(file.size == 4096)
        #expect(UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self)) > 0)
        try file.checkIntact()   // a file mapped at its new size is intact
    }
}
