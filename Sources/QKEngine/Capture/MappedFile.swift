#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A whole file mapped read-only into memory; unmapped when the last reference goes.
///
/// Immutable after `init`, so sharing it across threads is safe. A file truncated while mapped does not kill
/// the process (see `TruncationGuard`): the missing pages read as zeros and `checkIntact()` reports the change.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int
    /// Name used in error messages (the path relative to the capture directory).
    let displayName: String
    private let path: String
    /// This mapping's slot in `TruncationGuard` (nil: the guard was full, a truncation is fatal as before).
    private let guardSlot: Int?

    /// Maps `url`; files shorter than `minimumSize` are refused before mapping.
    init(url: URL, displayName: String, minimumSize: Int) throws(EngineError) {
        self.displayName = displayName
        self.path = url.path
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
        self.guardSlot = TruncationGuard.register(base: base, size: size)
    }

    deinit {
        if let guardSlot { TruncationGuard.unregister(guardSlot) }
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    /// Throws when the file was truncated while mapped, so that what was read from it is not to be trusted.
    func checkIntact() throws(EngineError) {
        guard let guardSlot, TruncationGuard.wasTruncated(guardSlot) else { return }
        var status = stat()
        let now = stat(path, &status) == 0 ? "\(status.st_size) bytes" : "gone"
        throw .io(path: displayName, message: "changed while it was being read: it was \(size) bytes when opened and is now "
            + "\(now); a capture must not change during an ingest")
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

/// Keeps a file that shrinks while it is mapped from killing the process.
///
/// Reading a mapped page past a file's (new) end raises SIGBUS. A SIGBUS inside a registered mapping maps a page
/// of zeros over the faulting page, so the read completes, and marks the mapping truncated; the reader checks the
/// mark after decoding (`MappedFile.checkIntact()`). A SIGBUS anywhere else restores the previous disposition and
/// happens again under it. The handler touches only atomics in memory allocated before it was installed.
enum TruncationGuard {
    static let capacity = 1024
    /// Per slot: the mapping's first and one-past-last address (0, 0 when free) and its truncated mark.
    // Pointers set once, before the handler is installed; what they point to is only touched atomically (or, for
    // the previous action, by sigaction).
    nonisolated(unsafe) private static let starts = allocateSlots()
    nonisolated(unsafe) private static let ends = allocateSlots()
    nonisolated(unsafe) private static let truncated = allocateSlots()
    nonisolated(unsafe) private static let previousAction = UnsafeMutablePointer<sigaction>.allocate(capacity: 1)
    private static let pageMask = ~UInt(sysconf(Int32(_SC_PAGESIZE)) - 1)
    private static let registration = Mutex<[Bool]>(Array(repeating: false, count: capacity))
    private static let installed: Bool = {
        _ = (starts, ends, truncated, pageMask)
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, info, _ in TruncationGuard.handle(info) }
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        return sigaction(SIGBUS, &action, previousAction) == 0
    }()

    private static func allocateSlots() -> UnsafeMutablePointer<Atomic<UInt>> {
        let slots = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: capacity)
        for index in 0..<capacity { (slots + index).initialize(to: Atomic<UInt>(0)) }
        return slots
    }

    /// Watches `size` bytes from `base`; nil when every slot is taken or the handler could not be installed.
    static func register(base: UnsafeRawPointer, size: Int) -> Int? {
        guard installed, size > 0 else { return nil }
        return registration.withLock { used -> Int? in
            guard let slot = used.firstIndex(of: false) else { return nil }
            used[slot] = true
            truncated[slot].store(0, ordering: .relaxed)
            starts[slot].store(UInt(bitPattern: base), ordering: .relaxed)
            ends[slot].store(UInt(bitPattern: base) + UInt(size), ordering: .releasing)
            return slot
        }
    }

    static func unregister(_ slot: Int) {
        registration.withLock { used in
            ends[slot].store(0, ordering: .releasing)
            starts[slot].store(0, ordering: .relaxed)
            used[slot] = false
        }
    }

    static func wasTruncated(_ slot: Int) -> Bool { truncated[slot].load(ordering: .acquiring) != 0 }

    /// The signal handler: async-signal-safe calls only (mmap, sigaction) and atomics.
    private static func handle(_ info: UnsafeMutablePointer<siginfo_t>?) {
        if let info, info.pointee.si_code == BUS_ADRERR {
            let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
            for slot in 0..<capacity {
                let end = ends[slot].load(ordering: .acquiring)
                guard address < end, address >= starts[slot].load(ordering: .relaxed) else { continue }
                let page = address & pageMask
                let zeros = mmap(UnsafeMutableRawPointer(bitPattern: page), Int(~pageMask + 1), PROT_READ,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                if zeros != MAP_FAILED {
                    truncated[slot].store(1, ordering: .releasing)
                    return
                }
            }
        }
        sigaction(SIGBUS, previousAction, nil)
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
