/// Filters shared by search, listing, show and export; nil matches anything.
public struct SearchFilters: Sendable, Equatable {
    public var model: String?
    public var checkpoint: String?
    public var layer: Int?
    public var head: Int?
    public var feature: String?
    /// A feature value; pooled decompositions (no value) never match a value filter.
    public var value: String?
    /// A feature kind, as the capture declares it.
    public var kind: String?

    public init(model: String? = nil, checkpoint: String? = nil, layer: Int? = nil, head: Int? = nil,
                feature: String? = nil, value: String? = nil, kind: String? = nil) {
        self.model = model
        self.checkpoint = checkpoint
        self.layer = layer
        self.head = head
        self.feature = feature
        self.value = value
        self.kind = kind
    }

    public var isEmpty: Bool { self == SearchFilters() }
}

/// Where a query holds the columns that filters compare; a filter whose column is nil is not applied.
struct FilterColumns {
    var checkpointID: String?
    var layer: String?
    var head: String?
    var feature: String?
    var value: String?
    var kind: String?

    /// The catalog's tables joined as `heads h`, `decompositions d`, `features f`.
    static let catalog = FilterColumns(checkpointID: "h.checkpoint_id", layer: "h.layer", head: "h.head",
                                       feature: "f.name", value: "d.value", kind: "f.kind")
    /// The search keys, `component_keys k`.
    static let keys = FilterColumns(checkpointID: "k.checkpoint_id", layer: "k.layer", head: "k.head",
                                    feature: "k.feature", value: "k.value", kind: "k.kind")
}

/// SQL conditions joined by AND, with their bound values in order.
struct SQLCondition {
    var terms: [String] = []
    var values: [SQLValue] = []

    var isEmpty: Bool { terms.isEmpty }
    /// `WHERE …`, or nothing.
    var whereClause: String { terms.isEmpty ? "" : "WHERE " + terms.joined(separator: " AND ") }
    /// `AND …`, or nothing (after another condition).
    var andClause: String { terms.isEmpty ? "" : "AND " + terms.joined(separator: " AND ") }

    mutating func add(_ term: String, _ value: SQLValue) {
        terms.append(term)
        values.append(value)
    }
}

extension SearchFilters {
    /// The one translation of filters into SQL: equality on each given filter's column. Model and checkpoint names
    /// select checkpoint ids, so a query needs no join to models or checkpoints for them.
    func condition(_ columns: FilterColumns) -> SQLCondition {
        var sql = SQLCondition()
        if let column = columns.checkpointID, model != nil || checkpoint != nil {
            var names = SQLCondition()
            if let model { names.add("filter_m.name = ?", .text(model)) }
            if let checkpoint { names.add("filter_ck.name = ?", .text(checkpoint)) }
            sql.terms.append("""
                \(column) IN (SELECT filter_ck.id FROM checkpoints filter_ck
                              JOIN models filter_m ON filter_m.id = filter_ck.model_id \(names.whereClause))
                """)
            sql.values += names.values
        }
        if let column = columns.layer, let layer { sql.add("\(column) = ?", .integer(layer)) }
        if let column = columns.head, let head { sql.add("\(column) = ?", .integer(head)) }
        if let column = columns.feature, let feature { sql.add("\(column) = ?", .text(feature)) }
        if let column = columns.value, let value { sql.add("\(column) = ?", .text(value)) }
        if let column = columns.kind, let kind { sql.add("\(column) = ?", .text(kind)) }
        return sql
    }
}
