@testable import QKEngine

/// A safetensors file: the header is validated in full before any data is touched, every accepted entry lies
/// inside the file and holds exactly its shape's bytes, and decoding every float tensor (whole and per head)
/// stays inside the mapping (AddressSanitizer watches).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let url = Scratch.write(UnsafeRawBufferPointer(start: data, count: size), to: "fuzz.safetensors")
    let file: SafetensorsFile
    do {
        file = try SafetensorsFile(url: url, displayName: "fuzz.safetensors")
    } catch {
        require(error.description.hasPrefix("fuzz.safetensors"), "an error that does not name the file: \(error)")
        return 0
    }
    for (name, entry) in file.entries {
        let range = entry.fileRange
        require(range.lowerBound >= 8 && range.upperBound <= file.mapping.size, "'\(name)' at \(range) outside the file")
        let elements = entry.shape.reduce(1, *)
        require(range.count == elements * SafetensorsFile.elementSizes[entry.dtypeName]!, "'\(name)' size mismatch")
        guard case let .success(view)? = file.floatTensor(named: name) else { continue }
        var values = [Float](repeating: 0, count: view.elementCount)
        do {
            try values.withUnsafeMutableBufferPointer { buffer throws(EngineError) in try view.decodeAll(into: buffer) }
        } catch {
            guard case .nonFiniteValue = error else { fatalError("decoding '\(name)' failed: \(error)") }
        }
        if view.shape.count == 3 {
            var slice = [Float](repeating: 0, count: view.shape[0] * view.shape[2])
            for head in 0..<view.shape[1] {
                do {
                    try slice.withUnsafeMutableBufferPointer { buffer throws(EngineError) in
                        try view.decodeSlice(head: head, into: buffer)
                    }
                } catch {
                    guard case .nonFiniteValue = error else { fatalError("decoding '\(name)' head \(head) failed: \(error)") }
                }
            }
        }
    }
    return 0
}
