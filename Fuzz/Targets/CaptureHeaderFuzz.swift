@testable import QKEngine

/// `capture.json`: any bytes give a validated header or an error naming capture.json; an accepted header
/// keeps the promises the rest of the engine relies on.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCaptureHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let header: CaptureHeader
    do {
        header = try CaptureHeaderParser.parse(contents: Array(UnsafeBufferPointer(start: data, count: size)))
    } catch {
        require(error.description.hasPrefix("capture.json"), "an error that does not name capture.json: \(error)")
        return 0
    }
    let model = header.model
    require(model.layerCount > 0 && model.headCount > 0 && model.kvHeadCount > 0 && model.headDimension > 0,
            "a non-positive model dimension")
    require(model.headCount % model.kvHeadCount == 0, "n_heads not a multiple of n_kv_heads")
    require(!header.layers.isEmpty && Set(header.layers).count == header.layers.count, "layers empty or repeated")
    require(header.layers.allSatisfy { $0 >= 0 && $0 < model.layerCount }, "a layer out of range")
    require(!header.tensorFiles.isEmpty && Set(header.tensorFiles).count == header.tensorFiles.count, "tensor files")
    for name in header.tensorFiles {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        require(!name.hasPrefix("/") && !parts.contains("..") && !parts.contains(""), "'\(name)' escapes the capture")
    }
    require(header.features.map(\.name) == header.features.map(\.name).sorted(), "features not sorted")
    for head in 0..<min(model.headCount, 4096) { require(model.kvHead(forHead: head) < model.kvHeadCount, "kv head") }
    return 0
}
