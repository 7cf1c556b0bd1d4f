#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a command writes text: standard output, standard error, or a string in tests.
public protocol TextOutput: AnyObject, Sendable {
    func write(_ text: String)
    /// Pushes buffered text out; called before the process exits.
    func flush()
}

extension TextOutput {
    /// Writes `text` followed by a newline.
    public func line(_ text: String = "") { write(text + "\n") }
}

/// Collects everything written, for tests.
public final class StringOutput: TextOutput, @unchecked Sendable {
    private let lock = Lock()
    private var buffer = ""

    public init() {}

    public var text: String { lock.withLock { buffer } }

    public func write(_ text: String) { lock.withLock { buffer += text } }
    public func flush() {}
}

/// Writes to a file descriptor, optionally buffering (standard output to a pipe or file).
public final class FileDescriptorOutput: TextOutput, @unchecked Sendable {
    private let descriptor: Int32
    private let isBuffered: Bool
    private let lock = Lock()
    private var pending: [UInt8] = []
    private static let bufferLimit = 1 << 16

    public init(descriptor: Int32, buffered: Bool) {
        self.descriptor = descriptor
        self.isBuffered = buffered
    }

    public func write(_ text: String) {
        lock.withLock {
            pending.append(contentsOf: text.utf8)
            if !isBuffered || pending.count >= Self.bufferLimit { drain() }
        }
    }

    public func flush() { lock.withLock { drain() } }

    deinit { drain() }

    /// Writes all pending bytes; gives up quietly when the reader went away (a closed pipe).
    private func drain() {
        var offset = 0
        pending.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    break
                }
                offset += written
            }
        }
        pending.removeAll(keepingCapacity: true)
    }
}

private func systemWrite(_ descriptor: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, pointer, count)
    #else
    return Darwin.write(descriptor, pointer, count)
    #endif
}

/// A small lock around pthread_mutex, so outputs and progress bars can be shared between threads.
final class Lock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}
