extension Catalog {
    /// Sets a component's human label (nil or empty clears it) and note (nil keeps it, empty clears it). Searchable
    /// at once: a trigger rewrites the component's label rows of the full-text index, a constant cost.
    public func setHumanLabel(componentID: Int64, label: String?, note: String? = nil) throws(StoreError) {
        try database.transaction { () throws(StoreError) in
            let statement = try database.prepare("""
                UPDATE components
                   SET human_label = nullif(?1, ''),
                       note = CASE WHEN ?2 IS NULL THEN note ELSE nullif(?2, '') END
                 WHERE id = ?3
                """)
            try statement.bind(label, at: 1)
            try statement.bind(note, at: 2)
            try statement.bind(componentID, at: 3)
            try statement.run()
            guard database.changes == 1 else { throw .notFound(what: "component \(componentID)") }
        }
    }
}
