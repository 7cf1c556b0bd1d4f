#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import QKEngine

/// A flat, memory-mapped copy of every component vector of one d_head, kept next to the catalog
/// (`<catalog>.vectors-d<d_head>`) so that `similar` scans contiguous float32 instead of a million rows.
///
/// The catalog stays the truth: the file records a fingerprint of the catalog (captures, decompositions,
/// highest component id), is rebuilt when that changes, and is never required (no cache when the
/// directory is not writable). Layout, little-endian: a 4096-byte header (magic `QKCATVC1`, d_head, count,
/// offset of the id table, fingerprint length, fingerprint), then per component `u` then `v` as float32,
/// then the component ids and their decomposition ids as Int64.
final class ComponentVectorCache: @unchecked Sendable {
    /// open(2), named apart from this type's `open`.
    private static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        #if canImport(Glibc)
        Glibc.open(path, flags, mode)
        #else
        Darwin.open(path, flags, mode)
        #endif
    }

    static let magic: UInt64 = 0x3143_5654_4143_4B51   // "QKCATVC1" read little-endian
    static let headerSize = 4096

    let dimension: Int
    let count: Int
    private let base: UnsafeRawPointer
    private let size: Int
    private let idsOffset: Int

    /// The cache file of `catalogPath` for `dimension`.
    static func path(catalog catalogPath: String, dimension: Int) -> String { "\(catalogPath).vectors-d\(dimension)" }

    /// What identifies the catalog's vector content: components are only added (with a capture) or removed
    /// (with their decomposition), never changed.
    static func fingerprint(_ database: Database) throws(StoreError) -> String {
        let captures = try database.prepare("SELECT count(*), coalesce(max(id), 0), coalesce(sum(id), 0) FROM captures")
        guard try captures.step() else { return "" }
        let captureText = "\(captures.int(at: 0) ?? 0)/\(captures.int(at: 1) ?? 0)/\(captures.int(at: 2) ?? 0)"
        let decompositions = try database.scalarInt("SELECT count(*) FROM decompositions") ?? 0
        let maxComponent = try database.scalarInt("SELECT coalesce(max(id), 0) FROM components") ?? 0
        return "captures \(captureText); decompositions \(decompositions); components ≤ \(maxComponent)"
    }

    /// Maps the cache at `path` when it exists, is well formed and matches `fingerprint`; nil otherwise.
    static func open(path: String, dimension: Int, fingerprint: String) -> ComponentVectorCache? {
        let descriptor = openFile(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, Int(status.st_size) >= headerSize else { return nil }
        let size = Int(status.st_size)
        guard let pointer = mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0), pointer != MAP_FAILED else { return nil }
        let cache = ComponentVectorCache(base: UnsafeRawPointer(pointer), size: size)
        guard let cache, cache.dimension == dimension, cache.storedFingerprint == fingerprint else { return nil }
        return cache
    }

    /// Validates the header of a mapping; nil (and unmapped) when anything is off.
    private init?(base: UnsafeRawPointer, size: Int) {
        self.base = base
        self.size = size
        func int(_ offset: Int) -> Int { Int(Int64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: Int64.self))) }
        dimension = int(8)
        count = int(16)
        idsOffset = int(24)
        let fingerprintLength = int(32)
        let valid = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self)) == Self.magic
            && dimension > 0 && dimension <= 1 << 16 && count >= 0 && count <= (size / 8)
            && idsOffset == Self.headerSize + count * 8 * dimension
            && idsOffset + count * 16 == size
            && fingerprintLength >= 0 && 40 + fingerprintLength <= Self.headerSize
        guard valid else {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
            return nil
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    private var storedFingerprint: String {
        let length = Int(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: Int64.self)))
        return String(decoding: UnsafeRawBufferPointer(start: base + 40, count: length), as: UTF8.self)
    }

    func componentID(_ index: Int) -> Int64 {
        Int64(littleEndian: base.loadUnaligned(fromByteOffset: idsOffset + index * 8, as: Int64.self))
    }

    func decompositionID(_ index: Int) -> Int64 {
        Int64(littleEndian: base.loadUnaligned(fromByteOffset: idsOffset + (count + index) * 8, as: Int64.self))
    }

    /// `u` of component `index`; `v` follows it.
    func vectors(_ index: Int) -> UnsafeRawPointer { base + Self.headerSize + index * 8 * dimension }

    /// Writes the cache of every component of `dimension` in `database` to `path` (atomically, via a
    /// temporary file and a rename), inside one read transaction so that the fingerprint matches the content.
    static func build(_ database: Database, path: String, dimension: Int) throws(StoreError) -> ComponentVectorCache? {
        let ownTransaction = !database.inTransaction
        if ownTransaction { try database.execute("BEGIN") }
        defer { if ownTransaction { try? database.execute("COMMIT") } }
        let fingerprint = try fingerprint(database)
        let ofDimension = try database.prepare(
            "SELECT d.id FROM decompositions d JOIN heads h ON h.id = d.head_id WHERE h.d_head = ?")
        try ofDimension.bind(dimension, at: 1)
        var wanted: [Bool] = []
        while try ofDimension.step() {
            let id = Int(ofDimension.int64(at: 0) ?? 0)
            if id >= wanted.count { wanted += [Bool](repeating: false, count: id + 1 - wanted.count) }
            wanted[id] = true
        }
        let temporary = "\(path).tmp-\(getpid())-\(UUID().uuidString.prefix(8))"
        let descriptor = openFile(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return nil }   // the directory refuses: no cache, the direct scan still works
        var finished = false
        defer {
            close(descriptor)
            if !finished { unlink(temporary) }
        }
        /// Writes all of `bytes` at `offset`; false when the disk refuses.
        func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
            var done = 0
            while done < bytes.count {
                let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return false }
                done += written
            }
            return true
        }
        let byteCount = dimension * 4
        // Vectors go out in 4 MiB blocks copied straight from SQLite's buffers.
        let blockSize = 1 << 22
        let block = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 64)
        defer { block.deallocate() }
        var filled = 0
        var offset = headerSize
        var componentIDs: [Int64] = [], decompositionIDs: [Int64] = []
        // Pages read memory-mapped rather than copied in by read(2).
        try database.execute("PRAGMA mmap_size = 2147418112")
        let components = try database.prepare("SELECT id, decomposition_id, u, v FROM components")
        while try components.step() {
            let decomposition = Int(components.int64(at: 1) ?? 0)
            guard decomposition < wanted.count, wanted[decomposition] else { continue }
            guard let u = components.rawBlob(at: 2), let v = components.rawBlob(at: 3),
                  u.count == byteCount, v.count == byteCount, let uBase = u.baseAddress, let vBase = v.baseAddress else {
                throw .corrupt("component \(components.int64(at: 0) ?? 0): vectors are not \(dimension) float32 values")
            }
            if filled + 2 * byteCount > blockSize {
                guard write(UnsafeRawBufferPointer(start: block, count: filled), at: offset) else { return nil }
                offset += filled
                filled = 0
            }
            (block + filled).copyMemory(from: uBase, byteCount: byteCount)
            (block + filled + byteCount).copyMemory(from: vBase, byteCount: byteCount)
            filled += 2 * byteCount
            componentIDs.append((components.int64(at: 0) ?? 0).littleEndian)
            decompositionIDs.append(Int64(decomposition).littleEndian)
        }
        guard write(UnsafeRawBufferPointer(start: block, count: filled), at: offset) else { return nil }
        offset += filled
        let idsWritten = componentIDs.withUnsafeBytes { write($0, at: offset) }
            && decompositionIDs.withUnsafeBytes { write($0, at: offset + $0.count) }
        guard idsWritten else { return nil }
        var header = [UInt8](repeating: 0, count: headerSize)
        let fingerprintBytes = Array(fingerprint.utf8.prefix(headerSize - 40))
        let fields = [Int64(bitPattern: magic), Int64(dimension), Int64(componentIDs.count),
                      Int64(headerSize + componentIDs.count * 8 * dimension), Int64(fingerprintBytes.count)]
        header.withUnsafeMutableBytes { bytes in
            for (index, field) in fields.enumerated() { bytes.storeBytes(of: field.littleEndian, toByteOffset: 8 * index, as: Int64.self) }
            bytes.baseAddress!.advanced(by: 40).copyMemory(from: fingerprintBytes, byteCount: fingerprintBytes.count)
        }
        guard header.withUnsafeBytes({ write($0, at: 0) }) else { return nil }
        guard rename(temporary, path) == 0 else { return nil }
        finished = true
        return open(path: path, dimension: dimension, fingerprint: fingerprint)
    }
}
