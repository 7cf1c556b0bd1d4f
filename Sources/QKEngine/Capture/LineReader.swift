#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Reads a file line by line through a fixed buffer, so memory does not grow with the file.
///
/// Lines end at `\n`; a trailing `\r` is kept (JSON treats it as whitespace). The last line may lack `\n`.
final class LineReader {
    struct Line {
        /// The line's bytes without the `\n`.
        var bytes: [UInt8]
        /// 1-based physical line number.
        var number: Int
        /// Byte offset of the line's first byte in the file.
        var offset: Int
    }

    private let stream: UnsafeMutablePointer<FILE>
    private let displayName: String
    private var buffer: [UInt8]
    /// Valid bytes are `buffer[start..<end]`.
    private var start = 0
    private var end = 0
    private var atEOF = false
    private var nextNumber = 1
    private var nextOffset: Int

    /// Opens `url`, positioned at byte `offset`; `firstLineNumber` numbers the line found there.
    init(url: URL, displayName: String, offset: Int = 0, firstLineNumber: Int = 1, chunkSize: Int = 1 << 20)
        throws(EngineError)
    {
        guard let stream = fopen(url.path, "rb") else {
            throw .io(path: displayName, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        if offset > 0 && fseeko(stream, off_t(offset), SEEK_SET) != 0 {
            fclose(stream)
            throw .io(path: displayName, message: "cannot seek to byte \(offset): \(String(cString: strerror(errno)))")
        }
        self.stream = stream
        self.displayName = displayName
        self.buffer = [UInt8](repeating: 0, count: max(chunkSize, 16))
        self.nextNumber = firstLineNumber
        self.nextOffset = offset
    }

    deinit { fclose(stream) }

    /// The next line, or nil at the end of the file.
    func next() throws(EngineError) -> Line? {
        var scanFrom = start
        while true {
            if let newline = buffer[scanFrom..<end].firstIndex(of: UInt8(ascii: "\n")) {
                return take(upTo: newline, consumed: newline + 1)
            }
            if atEOF {
                guard end > start else { return nil }
                return take(upTo: end, consumed: end)
            }
            scanFrom = end
            // Make room: slide the partial line to the front, or grow when it fills the buffer.
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
                }
                scanFrom -= start
                end -= start
                start = 0
            } else if end == buffer.count {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
            let capacity = buffer.count - end
            let readCount = buffer.withUnsafeMutableBytes { raw in fread(raw.baseAddress! + end, 1, capacity, stream) }
            end += readCount
            if readCount < capacity {
                if ferror(stream) != 0 {
                    throw .io(path: displayName, message: "read failed: \(String(cString: strerror(errno)))")
                }
                atEOF = true
            }
        }
    }

    private func take(upTo lineEnd: Int, consumed: Int) -> Line {
        let line = Line(bytes: Array(buffer[start..<lineEnd]), number: nextNumber, offset: nextOffset)
        nextNumber += 1
        nextOffset += consumed - start
        start = consumed
        return line
    }
}
