import Foundation

/// The identity of a capture's content: the same files, byte for byte, give the same hash.
///
/// Each file is read in 8 MiB chunks hashed with XXH64 (in parallel); a file's hash is the XXH64
/// of its chunk hashes, and the capture's is the XXH64 of every file's name, size and hash. A
/// fast non-cryptographic hash is enough here: it tells re-ingests apart, it is no signature.
public enum ContentHash {
    static let chunkSize = 8 << 20

    /// The hex content hash of `capture.json`, `prompts.jsonl` and every listed tensor file.
    public static func of(capture reader: CaptureReader, threads: Int? = nil) throws(EngineError) -> String {
        let names = ["capture.json", "prompts.jsonl"] + reader.header.tensorFiles
        var summary: [UInt8] = []
        for name in names {
            let url = reader.directory.appendingPathComponent(name)
            let (size, hash) = try file(url, name: name, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
            summary += Array(name.utf8) + [0]
            withUnsafeBytes(of: UInt64(size).littleEndian) { summary += $0 }
            withUnsafeBytes(of: hash.littleEndian) { summary += $0 }
        }
        let digest = summary.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer($0)) }
        return String(format: "xxh64:%016llx", digest)
    }

    /// Size and hash of one file.
    static func file(_ url: URL, name: String, threads: Int) throws(EngineError) -> (Int, UInt64) {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else { throw .io(path: name, message: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(path: name, message: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        let chunks = (size + chunkSize - 1) / chunkSize
        let hashes = ResultBox<UInt64>(count: chunks)
        // One buffer per worker, mapped and unmapped here: chunk-sized blocks from malloc would stay
        // in the arenas of whichever pool threads ran the workers, and in the peak RSS of an ingest.
        let buffers = ChunkBuffers(count: min(threads, chunks), byteCount: chunkSize)
        parallelFor(count: chunks, threads: threads) { index in
            let offset = index * chunkSize
            let length = min(chunkSize, size - offset)
            let whole = buffers.take()
            defer { buffers.give(whole) }
            let buffer = UnsafeMutableRawBufferPointer(rebasing: whole[0..<length])
            var done = 0
            while done < length {
                let n = pread(descriptor, buffer.baseAddress! + done, length - done, off_t(offset + done))
                if n <= 0 {
                    hashes.set(index, .failure(EngineError.io(path: name, message: n < 0 ? String(cString: strerror(errno)) : "file shrank while being read")))
                    return
                }
                done += n
            }
            hashes.set(index, .success(XXH64.hash(UnsafeRawBufferPointer(buffer))))
        }
        var chunkHashes: [UInt64] = []
        for result in hashes.values {
            switch result {
            case .success(let h)?: chunkHashes.append(h.littleEndian)
            case .failure(let error as EngineError)?: throw error
            default: throw .io(path: name, message: "could not be read")
            }
        }
        let combined = chunkHashes.withUnsafeBytes { XXH64.hash($0) }
        return (size, combined)
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0).
/// A fixed set of anonymous mappings handed to workers one at a time, unmapped on release.
private final class ChunkBuffers: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [UnsafeMutableRawBufferPointer] = []
    private var all: [UnsafeMutableRawBufferPointer] = []

    init(count: Int, byteCount: Int) {
        for _ in 0..<max(count, 1) {
            let pointer = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            precondition(pointer != MAP_FAILED && pointer != nil, "cannot map \(byteCount) bytes")
            all.append(UnsafeMutableRawBufferPointer(start: pointer, count: byteCount))
        }
        free = all
    }

    deinit { for buffer in all { munmap(buffer.baseAddress, buffer.count) } }

    func take() -> UnsafeMutableRawBufferPointer {
        lock.lock()
        defer { lock.unlock() }
        return free.removeLast()
    }

    func give(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}

enum XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }

    @inline(__always) private static func merge(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        (acc ^ round(0, value)) &* p1 &+ p4
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let count = bytes.count
        guard let base = bytes.baseAddress else { return finish(seed &+ p5, base: nil, remaining: 0, total: 0) }
        var offset = 0
        var h: UInt64
        if count >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while offset + 32 <= count {
                v1 = round(v1, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                v2 = round(v2, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
                v3 = round(v3, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)))
                v4 = round(v4, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)))
                offset += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        return finish(h, base: base + offset, remaining: count - offset, total: count)
    }

    private static func finish(_ start: UInt64, base: UnsafeRawPointer?, remaining: Int, total: Int) -> UInt64 {
        var h = start &+ UInt64(total)
        var offset = 0
        if let base {
            while offset + 8 <= remaining {
                let k = round(0, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                h = rotl(h ^ k, 27) &* p1 &+ p4
                offset += 8
            }
            if offset + 4 <= remaining {
                let k = UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                h = rotl(h ^ (k &* p1), 23) &* p2 &+ p3
                offset += 4
            }
            while offset < remaining {
                let k = UInt64(base.load(fromByteOffset: offset, as: UInt8.self))
                h = rotl(h ^ (k &* p5), 11) &* p1
                offset += 1
            }
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
