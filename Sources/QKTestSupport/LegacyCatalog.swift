import QKStore

/// Catalogs as an earlier qkcat wrote them, for upgrade tests.
public enum LegacyCatalog {
    /// Migrates `database` to schema version 1 and writes one model `m` (one layer and head, d_head 2), its
    /// checkpoint `main`, capture 1, head 1, feature 1 `f`, decomposition 1 with components 1, 2, 3 (labels a, b,
    /// c), and prompts 7 and 9; the examples and token aggregates are the caller's.
    public static func writeVersion1(_ database: Database, model: String = "m") throws {
        try Migrator.migrate(database, upTo: 1)
        let insertModel = try database.prepare("INSERT INTO models VALUES (1, ?, 1, 1, 1, 2)")
        try insertModel.bind([.text(model)])
        try insertModel.run()
        try database.execute("""
            INSERT INTO checkpoints VALUES (1, 1, 'main', 9223372036854775807);
            INSERT INTO captures VALUES (1, 1, 'h', NULL, 'none', '[0]', 2, 4, 't', 'v', 0.99, '{}');
            INSERT INTO heads VALUES (1, 1, 0, 0, 0, 2);
            INSERT INTO features VALUES (1, 1, 'f', 'semantic', NULL);
            INSERT INTO decompositions VALUES (1, 1, 1, NULL, 3, 4, 1.5, 3, 0.99, x'');
            INSERT INTO components (id, decomposition_id, component_index, sigma, energy_share, u, v, auto_label)
            VALUES (1, 1, 0, 2, 0.5, x'', x'', 'a'), (2, 1, 1, 1, 0.3, x'', x'', 'b'), (3, 1, 2, 0.5, 0.2, x'', x'', 'c');
            INSERT INTO prompts VALUES (7, 1, 0, 'p0', '["x"]'), (9, 1, 1, 'p1', '["y"]');
            """)
    }
}
