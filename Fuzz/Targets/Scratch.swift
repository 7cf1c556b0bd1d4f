import Foundation

/// A per-process scratch folder for the files a fuzz target must hand to file-reading code.
///
/// Under `/dev/shm` when it exists, so writing an input per execution costs no disk I/O.
enum Scratch {
    static let directory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("qkcat-fuzz-\(getpid())")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Scratch.directory) }
        return url
    }()

    /// Writes `bytes` to `name` inside the scratch folder, replacing what was there.
    static func write(_ bytes: UnsafeRawBufferPointer, to name: String) -> URL {
        let url = directory.appendingPathComponent(name)
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(descriptor >= 0, "cannot create \(url.path)")
        defer { close(descriptor) }
        var done = 0
        while done < bytes.count {
            let count = Foundation.write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            precondition(count > 0, "cannot write \(url.path)")
            done += count
        }
        return url
    }

    static func write(_ bytes: [UInt8], to name: String) -> URL {
        bytes.withUnsafeBytes { write($0, to: name) }
    }
}

/// Stops the fuzzer with a message when an invariant of the code under test does not hold.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}
