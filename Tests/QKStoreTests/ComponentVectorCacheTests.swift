import Foundation
import Testing
@testable import QKStore

@Suite struct ComponentVectorCacheTests {
    @Test func holdsEveryComponentOfItsDimensionWithItsIDs() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        let path = temporary.sibling("cache-d8")
        let cache = try #require(try ComponentVectorCache.build(catalog.database, path: path, dimension: 8))
        #expect(cache.dimension == 8 && cache.count == 2 * 2 * 4 * 3 * 3)
        let rows = try catalog.database.prepare("SELECT id, decomposition_id, u, v FROM components ORDER BY id")
        var index = 0
        while try rows.step() {
            #expect(cache.componentID(index) == rows.int64(at: 0))
            #expect(cache.decompositionID(index) == rows.int64(at: 1))
            let stored = Array(UnsafeBufferPointer(start: cache.vectors(index).assumingMemoryBound(to: Float.self), count: 16))
            #expect(stored == (try rows.float32Blob(at: 2) ?? []) + (try rows.float32Blob(at: 3) ?? []))
            index += 1
        }
        #expect(index == cache.count)
        let fingerprint = try ComponentVectorCache.fingerprint(catalog.database)
        #expect(ComponentVectorCache.open(path: path, dimension: 8, fingerprint: fingerprint) != nil)
        #expect(ComponentVectorCache.open(path: path, dimension: 8, fingerprint: fingerprint + "x") == nil)
        #expect(ComponentVectorCache.open(path: path, dimension: 16, fingerprint: fingerprint) == nil)
        // A truncated file is refused, not read past its end.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count - 8).write(to: URL(fileURLWithPath: path))
        #expect(ComponentVectorCache.open(path: path, dimension: 8, fingerprint: fingerprint) == nil)
        // No components of that dimension: an empty but valid cache.
        let empty = try #require(try ComponentVectorCache.build(catalog.database, path: temporary.sibling("cache-d4"), dimension: 4))
        #expect(empty.count == 0)
    }

    @Test func anUnwritableDirectoryMeansNoCache() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        #expect(try ComponentVectorCache.build(catalog.database, path: "/nonexistent-dir/cache", dimension: 8) == nil)
    }

    @Test func theVectorCacheFollowsTheCatalog() throws {
        let temporary = TemporaryDatabase()
        let catalog = try compareSyntheticCatalog(temporary)
        let cachePath = temporary.path + ".vectors-d8"
        let first = try catalog.similarComponents(to: 5, limit: 1000)
        #expect(first.usedCache && FileManager.default.fileExists(atPath: cachePath))
        #expect(first.scanned == 2 * 2 * 4 * 3 * 3 - 1)
        // Another model ingested: the fingerprint changes and the cache is rebuilt with its components.
        var shape = SyntheticCatalog.Shape()
        (shape.checkpoints, shape.layers, shape.heads, shape.kvHeads, shape.headDimension, shape.rank) = (["step9"], 1, 2, 1, 8, 2)
        (shape.model, shape.features, shape.topCount, shape.prompts, shape.seed) = ("second-model", ["category": []], 1, 10, 9)
        _ = try SyntheticCatalog.populate(catalog, shape: shape)
        let second = try catalog.similarComponents(to: 5, limit: 1000)
        #expect(second.usedCache && second.scanned == first.scanned + 4)
        #expect(second.hits == (try catalog.similarComponents(to: 5, limit: 1000, useCache: false)).hits)
        // A damaged cache file is ignored and replaced.
        try Data("not a cache".utf8).write(to: URL(fileURLWithPath: cachePath))
        let third = try catalog.similarComponents(to: 5, limit: 1000)
        #expect(third.usedCache && third.hits == second.hits)
        #expect((try FileManager.default.attributesOfItem(atPath: cachePath)[.size] as? Int ?? 0) > 4096)
        // A component deleted by hand keeps the fingerprint (same captures, decompositions and highest id):
        // the stale cache is noticed when a hit cannot be described, and the table answers instead.
        let gone = try #require(third.hits.first { $0.component.id != 5 }).component.id
        // The components_deleted trigger takes its examples, search row and search keys with it.
        try catalog.database.execute("DELETE FROM components WHERE id = \(gone)")
        let fourth = try catalog.similarComponents(to: 5, limit: 1000)
        #expect(!fourth.usedCache && fourth.scanned == third.scanned - 1)
        #expect(!fourth.hits.contains { $0.component.id == gone })
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: temporary.directory.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

}
