import Foundation
import QKEngine
import Testing
@testable import QKStore
import QKTestSupport

/// The repository root, found from this file's path (Tests/QKStoreTests/…).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite struct MigrationsTests {
    @Test func embeddedMigrationsEqualTheFilesByteForByte() throws {
        let directory = repositoryRoot.appendingPathComponent("Migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!files.isEmpty)
        #expect(EmbeddedMigrations.files.map(\.name) == files, "run Migrations/embed.sh")
        for (name, sql) in EmbeddedMigrations.files {
            let bytes = try Data(contentsOf: directory.appendingPathComponent(name))
            #expect(Data(sql.utf8) == bytes, "\(name) differs from its embedded copy: run Migrations/embed.sh")
        }
    }

    @Test func migrationsAreNumberedFromOne() {
        #expect(Migrator.all.map(\.version) == Array(1 ... Migrator.all.count))
        #expect(Migrator.all.first?.name == "initial")
        #expect(Migrator.currentVersion == Migrator.all.count)
    }

    @Test func migratingAnEmptyDatabaseYieldsExactlyTheSchema() throws {
        let temporary = TemporaryDatabase()
        let migrated = try Database(path: temporary.path)
        #expect(try Migrator.migrate(migrated) == Array(1 ... Migrator.currentVersion))

        let schemaSQL = try String(contentsOf: repositoryRoot.appendingPathComponent("Schema/schema.sql"), encoding: .utf8)
        let reference = try Database(path: temporary.sibling("schema.sqlite"))
        try reference.execute(schemaSQL)

        let migratedObjects = try schemaObjects(migrated)
        let referenceObjects = try schemaObjects(reference)
        #expect(migratedObjects.count > 20)  // tables, indexes, triggers, FTS shadow tables
        // Same objects with the same SQL; the difference lists only what disagrees.
        #expect(Set(migratedObjects).symmetricDifference(referenceObjects).sorted() == [])
        #expect(migratedObjects == referenceObjects)
        #expect(try Migrator.version(of: migrated) == Migrator.currentVersion)
    }

    @Test func aVersion1CatalogWithExamplesKeepsEveryRowThroughTheViews() throws {
        let temporary = TemporaryDatabase()
        let database = try Database(path: temporary.path)
        try LegacyCatalog.writeVersion1(database)
        #expect(try Migrator.version(of: database) == 1)
        // Rows in shuffled order: the lists must come out by rank. SQLite 3.40's printf, which the migration uses,
        // is exact within about 1e-290 ... 1e100; scores (float activations times unit vectors) stay far inside.
        var random = SeededGenerator(seed: 21)
        var scores = assortedDoubles(count: 1000, seed: 22, binaryExponents: -960 ... 300).makeIterator()
        let tokens = CompactJSONTests.nastyTokens
        var examples: [(Int, String, String, Int, Int, Int, String, Double)] = []
        var aggregates: [(Int, String, String, Int, String, Int, Double)] = []
        for (component, length) in [(1, 20), (2, 3)] {
            for side in ["key", "query"] {
                for extreme in ["high", "low"] where !(component == 2 && side == "query") {
                    for rank in 0 ..< length {
                        let token = tokens[Int(random.next() % UInt64(tokens.count))]
                        examples.append((component, side, extreme, rank, random.next() % 2 == 0 ? 7 : 9,
                                         Int(random.next() % 100), token, scores.next()!))
                        aggregates.append((component, side, extreme, rank, token, Int(random.next() % 9) + 1, scores.next()!))
                    }
                }
            }
        }
        aggregates.append((3, "key", "low", 0, "inf", 1, -.infinity))  // a REAL column took infinities
        let insertExample = try database.prepare("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for e in examples.shuffled(using: &random) {
            try insertExample.bind([.integer(e.0), .text(e.1), .text(e.2), .integer(e.3), .integer(e.4), .integer(e.5),
                                    .text(e.6), .real(e.7)])
            try insertExample.run()
        }
        let insertAggregate = try database.prepare("INSERT INTO token_aggregates VALUES (?, ?, ?, ?, ?, ?, ?)")
        for a in aggregates.shuffled(using: &random) {
            try insertAggregate.bind([.integer(a.0), .text(a.1), .text(a.2), .integer(a.3), .text(a.4), .integer(a.5),
                                      .real(a.6)])
            try insertAggregate.run()
        }

        #expect(try Migrator.migrate(database) == Array(2 ... Migrator.currentVersion))
        let readExamples = try database.prepare("SELECT * FROM examples ORDER BY component_id, side, extreme, rank")
        var gotExamples: [String] = []
        while try readExamples.step() {
            gotExamples.append((Int32(0) ..< 8).map { "\(readExamples.value(at: $0))" }.joined(separator: "|")
                + "|\(readExamples.double(at: 7)?.bitPattern ?? 0)")
        }
        #expect(gotExamples == examples.map { e in
            [SQLValue.integer(e.0), .text(e.1), .text(e.2), .integer(e.3), .integer(e.4), .integer(e.5), .text(e.6),
             .real(e.7)].map { "\($0)" }.joined(separator: "|") + "|\(e.7.bitPattern)"
        })
        let readAggregates = try database.prepare("SELECT * FROM token_aggregates ORDER BY component_id, side, extreme, rank")
        var gotAggregates: [String] = []
        while try readAggregates.step() {
            gotAggregates.append((Int32(0) ..< 7).map { "\(readAggregates.value(at: $0))" }.joined(separator: "|")
                + "|\(readAggregates.double(at: 6)?.bitPattern ?? 0)")
        }
        #expect(gotAggregates == aggregates.map { a in
            [SQLValue.integer(a.0), .text(a.1), .text(a.2), .integer(a.3), .text(a.4), .integer(a.5), .real(a.6)]
                .map { "\($0)" }.joined(separator: "|") + "|\(a.6.bitPattern)"
        })
        #expect(try database.scalarInt("SELECT count(*) FROM component_examples") == 3)
        #expect(try database.scalarText("PRAGMA integrity_check") == "ok")
        #expect(try database.scalarInt("SELECT count(*) FROM pragma_foreign_key_check") == 0)

        // The catalog reads them back, and deleting a component takes its examples along.
        let catalog = try Catalog.open(path: temporary.path)
        let detail = try catalog.component(id: 2)
        #expect(detail.component.examples.map(\.promptID).count == 6)
        #expect(detail.component.tokenAggregates(.key, .low).map(\.count) == aggregates.filter {
            $0.0 == 2 && $0.1 == "key" && $0.2 == "low" }.map(\.5))
        try catalog.database.execute("DELETE FROM components WHERE id = 1")
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM examples WHERE component_id = 1") == 0)
        #expect(try catalog.database.scalarInt("SELECT count(*) FROM component_examples") == 2)
    }

    /// A schema-3 catalog holding the fixture's data (its full-text rows as schema 3 kept them) upgrades and
    /// searches as a catalog ingested by this build does.
    @Test func aVersion3CatalogWithDataUpgradesAndSearchesAlike() throws {
        let temporary = TemporaryDatabase()
        let current = try Catalog.open(path: temporary.sibling("current.sqlite"))
        try CatalogFixture().ingest(into: current)
        try current.setHumanLabel(componentID: 3, label: "tropical detector", note: "seen by hand")
        let oldPath = temporary.sibling("version3.sqlite")
        do {
            let old = try Database(path: oldPath)
            try old.enableWriteAheadLog()
            try Migrator.migrate(old, upTo: 3)
            try old.execute("ATTACH DATABASE '\(temporary.sibling("current.sqlite"))' AS source")
            for table in ["models", "checkpoints", "captures", "heads", "features", "decompositions", "components",
                          "prompts", "component_examples", "skips"] {
                try old.execute("INSERT INTO main.\(table) SELECT * FROM source.\(table)")
            }
            try old.execute("""
                INSERT INTO main.component_search (rowid, auto_label, human_label, note, feature, tokens, names, facets)
                SELECT c.id, c.auto_label, coalesce(c.human_label, ''), coalesce(c.note, ''),
                       f.name || coalesce(' ' || d.value, ''),
                       (SELECT words FROM source.component_text WHERE rowid = k.rank_key | (2 << 61)),
                       m.name || ' ' || ck.name, ''
                  FROM source.components c JOIN source.component_keys k ON k.component_id = c.id
                  JOIN source.decompositions d ON d.id = c.decomposition_id JOIN source.features f ON f.id = d.feature_id
                  JOIN source.heads h ON h.id = d.head_id JOIN source.checkpoints ck ON ck.id = h.checkpoint_id
                  JOIN source.models m ON m.id = ck.model_id;
                DETACH DATABASE source;
                """)
        }
        #expect(throws: StoreError.outdatedCatalog(path: oldPath, found: 3, current: Migrator.currentVersion)) {
            _ = try Catalog.open(path: oldPath, readOnly: true)
        }
        let upgraded = try Catalog.open(path: oldPath)
        #expect(upgraded.upgradedFrom == 3)
        #expect(try upgraded.database.scalarInt(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('component_search', 'search_postings', 'search_terms')") == 0)
        let cases: [(String, SearchFilters)] = [
            ("apple", SearchFilters()), ("tropical", SearchFilters()), ("hand", SearchFilters()), ("fruit", SearchFilters()),
            ("category fruit", SearchFilters()), ("", SearchFilters()), ("", SearchFilters(layer: 1)),
            ("apple", SearchFilters(head: 1, value: "fruit")), ("toy-model", SearchFilters()), ("cafe", SearchFilters()),
        ]
        for (query, filters) in cases {
            let want = try current.search(query, filters: filters, limit: 100)
            let got = try upgraded.search(query, filters: filters, limit: 100)
            #expect(got == want, "\(query) \(filters)")
            #expect(query.isEmpty || !got.isEmpty, "\(query)")
        }
        #expect(try upgraded.search("tropical").map(\.id) == [3])
        // Labels keep the index in step after the upgrade.
        try upgraded.setHumanLabel(componentID: 4, label: "zeppelin")
        #expect(try upgraded.search("zeppelin").map(\.id) == [4])
    }

    @Test func migrationsAreRecordedAndNotRepeated() throws {
        let temporary = TemporaryDatabase()
        _ = try Catalog.open(path: temporary.path)
        let catalog = try Catalog.open(path: temporary.path)
        let statement = try catalog.database.prepare("SELECT version, name FROM qkcat_migrations ORDER BY version")
        var rows: [String] = []
        while try statement.step() { rows.append("\(statement.int(at: 0) ?? -1) \(statement.text(at: 1) ?? "")") }
        #expect(rows == Migrator.all.map { "\($0.version) \($0.name)" })
        #expect(try catalog.database.scalarInt("PRAGMA user_version") == Migrator.currentVersion)
        #expect(try catalog.database.scalarText("PRAGMA journal_mode") == "wal")
        #expect(try catalog.database.scalarInt("PRAGMA foreign_keys") == 1)
    }

    @Test func newerCatalogIsRefusedAndLeftUnchanged() throws {
        let temporary = TemporaryDatabase()
        do {
            let database = try Database(path: temporary.path)
            try database.execute("CREATE TABLE future (x); INSERT INTO future VALUES (1); PRAGMA user_version = 99")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: temporary.path))
        let expected = StoreError.newerCatalog(path: temporary.path, found: 99, supported: Migrator.currentVersion)
        #expect(throws: expected) { _ = try Catalog.open(path: temporary.path) }
        #expect(throws: expected) { _ = try Catalog.open(path: temporary.path, readOnly: true) }
        let after = try Data(contentsOf: URL(fileURLWithPath: temporary.path))
        #expect(before == after)
        #expect(!FileManager.default.fileExists(atPath: temporary.path + "-wal"))
        #expect(expected.description.contains("newer than this qkcat supports"))
    }

    @Test func foreignDatabaseIsRefused() throws {
        let temporary = TemporaryDatabase()
        do {
            let database = try Database(path: temporary.path)
            try database.execute("CREATE TABLE someone_elses (x)")
        }
        #expect(throws: StoreError.notACatalog(path: temporary.path)) { _ = try Catalog.open(path: temporary.path) }
    }

    @Test func readOnlyOpenNeedsAnUpToDateCatalog() throws {
        let temporary = TemporaryDatabase()
        #expect(throws: StoreError.notFound(what: "catalog \(temporary.path)")) {
            _ = try Catalog.open(path: temporary.path, readOnly: true)
        }
        do { _ = try Database(path: temporary.path) }  // an empty file: version 0
        #expect(throws: StoreError.outdatedCatalog(path: temporary.path, found: 0, current: Migrator.currentVersion)) {
            _ = try Catalog.open(path: temporary.path, readOnly: true)
        }
        _ = try Catalog.open(path: temporary.path)
        let reader = try Catalog.open(path: temporary.path, readOnly: true)
        #expect(try reader.listModels().isEmpty)
        #expect(throws: StoreError.self) { try reader.database.execute("INSERT INTO models (name, n_layers, n_heads, n_kv_heads, d_head) VALUES ('m', 1, 1, 1, 1)") }
    }

    /// `sqlite_master` rows as (type, name, table, SQL without comments and with normalized spacing), sorted.
    private func schemaObjects(_ database: Database) throws -> [String] {
        let statement = try database.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        var objects: [String] = []
        while try statement.step() {
            let sql = normalize(statement.text(at: 3) ?? "")
            objects.append("\(statement.text(at: 0) ?? "") \(statement.text(at: 1) ?? "") \(statement.text(at: 2) ?? ""): \(sql)")
        }
        return objects
    }

    private func normalize(_ sql: String) -> String {
        let withoutComments = sql.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.range(of: "--").map { String(line[..<$0.lowerBound]) } ?? String(line)
        }.joined(separator: " ")
        var collapsed = withoutComments.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for (from, to) in [(" ,", ","), ("( ", "("), (" )", ")")] {
            collapsed = collapsed.replacingOccurrences(of: from, with: to)
        }
        return collapsed
    }
}
