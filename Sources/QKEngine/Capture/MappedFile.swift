#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A whole file mapped read-only into memory; unmapped when the last reference goes.
///
/// Immutable after `init`, so sharing it across threads is safe.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int
    /// Name used in error messages (the path relative to the capture directory).
    let displayName: String

    /// Maps `url`; files shorter than `minimumSize` are refused before mapping.
    init(url: URL, displayName: String, minimumSize: Int) throws(EngineError) {
        self.displayName = displayName
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw .io(path: displayName, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw .io(path: displayName, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw .io(path: displayName, message: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size >= minimumSize else {
            throw .invalidContent(file: displayName, line: nil,
                                  message: "file is \(size) bytes, too short for a safetensors header (8 bytes at least)")
        }
        guard let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), pointer != MAP_FAILED else {
            throw .io(path: displayName, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(pointer)
        self.size = size
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    /// Tells the kernel the pages of `range` are no longer needed, so they leave the resident set.
    func releasePages(_ range: Range<Int>) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / pageSize * pageSize
        let end = min(size, (range.upperBound + pageSize - 1) / pageSize * pageSize)
        guard end > start else { return }
        // MADV_DONTNEED on a private read-only file mapping drops the pages; a later access re-reads the file.
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }
}

/// The whole content of a (small) file; errors name it as `displayName`.
func readWholeFile(_ url: URL, displayName: String) throws(EngineError) -> [UInt8] {
    guard let stream = fopen(url.path, "rb") else {
        throw .io(path: displayName, message: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { fclose(stream) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, stream) }
        bytes += chunk[..<count]
        if count < chunk.count {
            if ferror(stream) != 0 { throw .io(path: displayName, message: "read failed: \(String(cString: strerror(errno)))") }
            return bytes
        }
    }
}
