@testable import QKEngine

/// The capture reader's JSON parser: any bytes give a value or a syntax error naming a column; an accepted
/// value written back as compact JSON parses again to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let value: JSONValue
    do {
        value = try JSONParser.parse(bytes)
    } catch {
        require(error.message.contains(" at column "), "a syntax error without its column: \(error.message)")
        return 0
    }
    let written = value.compactSortedJSON
    do {
        let again = try JSONParser.parse(Array(written.utf8))
        require(again == value, "\(written) reads back as a different value")
    } catch {
        fatalError("the parser's own output \(written) does not parse: \(error.message)")
    }
    return 0
}
