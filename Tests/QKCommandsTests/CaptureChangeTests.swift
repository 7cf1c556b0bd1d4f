import Foundation
import Testing
import QKStore
import QKTestSupport

/// Captures whose files lead elsewhere or change during an ingest: a clear error, exit 1, nothing stored.
@Suite("captures that change or lead elsewhere")
struct CaptureChangeTests {
    @Test("a tensor file linked from outside the capture is refused and nothing is stored")
    func symlinkOutside() throws {
        let root = try TemporaryDirectory()
        let first = try writeCapture(syntheticSpec(prompts: 40), in: root, name: "first")
        let linked = try writeCapture(syntheticSpec(checkpoint: "step2", prompts: 40, seed: 9), in: root, name: "linked")
        let db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", first.path, "--db", db, "-q"]).code == 0)
        let before = try CatalogSnapshot.take(db)

        let tensors = linked.appendingPathComponent("activations.safetensors")
        let outside = root.path("outside.safetensors")
        try FileManager.default.moveItem(at: tensors, to: outside)
        try FileManager.default.createSymbolicLink(at: tensors, withDestinationURL: outside)
        let result = qkcat(["ingest", linked.path, "--db", db])
        #expect(result.code == 1)
        #expect(result.err == "Error: capture.json: field 'tensor_files[0]': 'activations.safetensors' is a symbolic link to "
            + "\(outside.resolvingSymlinksInPath().path), outside the capture directory\n")
        let after = try CatalogSnapshot.take(db)
        #expect(after.integrity == "ok")
        #expect(after.content == before.content)
    }

    @Test("a tensor file truncated while an ingest reads it: an error naming it, not a crash, and nothing stored")
    func truncatedDuringIngest() throws {
        let catalog = try BusyCatalog()
        let ingest = try catalog.startSlowIngest()
        truncate(catalog.slow.appendingPathComponent("activations.safetensors").path, 4096)
        let result = ingest.wait()
        #expect(result.code == 1, "\(result.err)")
        #expect(result.err.hasPrefix("Error: activations.safetensors: changed while it was being read: it was "), "\(result.err)")
        #expect(result.err.hasSuffix(" bytes when opened and is now 4096 bytes; a capture must not change during an ingest\n"))
        let after = try CatalogSnapshot.take(catalog.db)
        #expect(after.integrity == "ok")
        #expect(after.content == catalog.before.content)
    }
}
