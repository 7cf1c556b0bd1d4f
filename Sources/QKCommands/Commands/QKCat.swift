import Foundation
import QKEngine
import QKStore

/// The `qkcat` command tree.
public enum QKCat {
    public static let version = "0.1.0"

    /// The root command; the executable runs `QKCat.root.main()`.
    public static var root: Command {
        Command(
            name: "qkcat",
            abstract: "A catalog of attention query–key features.",
            discussion: """
                qkcat decomposes the contrastive covariance ΔC = E[q kᵀ | +] − E[q kᵀ | −] of every captured \
                attention head and labelled feature (Lee, Belinkov, Viégas, Wattenberg, 2026) and keeps the \
                components in a SQLite catalog you can search, inspect, compare and export.

                Every command takes --db PATH (default: $QKCAT_DB, else ./qkcat.sqlite).
                """,
            version: version,
            subcommands: subcommands)
    }

    /// Every subcommand, in the order help lists them.
    static var subcommands: [Command] {
        [
            // catalog (issue 3)
            ingestCommand, searchCommand, showCommand, listCommand, labelCommand, exportCommand, upgradeCommand,
            // compare (issue 4)
            CompareCommand.command,
            TrajectoryCommand.command,
            SimilarCommand.command,
            // attribute (issue 5)
            Attribute.command,
            ReportCommand.command,
        ]
    }
}

/// Options and helpers shared by several commands.
enum Shared {
    static let db = Option.option("db", valueName: "path", help: "The catalog file (default: $QKCAT_DB, else ./qkcat.sqlite).")
    static let json = Option.flag("json", help: "Print JSON instead of text.")

    /// The filter options of read commands: model, checkpoint, layer, head, feature, value, kind.
    static let filters: [Option] = [
        .option("model", help: "Only this model."),
        .option("checkpoint", help: "Only this checkpoint."),
        .option("layer", help: "Only this layer."),
        .option("head", help: "Only this head."),
        .option("feature", help: "Only this feature."),
        .option("value", help: "Only the per-value decompositions of this feature value."),
        .option("kind", help: "Only features of this kind (e.g. semantic, binding)."),
    ]

    static func catalogPath(_ invocation: Invocation) -> String {
        invocation.optionalString("db") ?? invocation.environment["QKCAT_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "qkcat.sqlite"
    }

    /// How long a command waits for another writer's lock: `$QKCAT_BUSY_TIMEOUT` seconds, else 10 minutes (an
    /// ingest holds the lock while it computes; two ingests at once run one after the other).
    static func busyTimeoutMilliseconds(_ invocation: Invocation) throws -> Int32 {
        guard let text = invocation.environment["QKCAT_BUSY_TIMEOUT"], !text.isEmpty else { return 600_000 }
        guard let seconds = Double(text), seconds >= 0, seconds <= 86_400 else {
            throw CommandError.failure("QKCAT_BUSY_TIMEOUT must be a number of seconds from 0 to 86400, got '\(text)'")
        }
        return Int32(seconds * 1000)
    }

    /// Opens the catalog, waiting `busyTimeoutMilliseconds` for other writers. A read command never writes: it
    /// refuses a missing catalog and an outdated one (the error names `qkcat upgrade`); a write command creates or
    /// upgrades it, saying so on stderr.
    static func openCatalog(_ invocation: Invocation, readOnly: Bool) throws -> Catalog {
        let timeout = try busyTimeoutMilliseconds(invocation)
        let path = catalogPath(invocation)
        if readOnly, !FileManager.default.fileExists(atPath: path) {
            throw CommandError.failure("no catalog at \(path) (create one with 'qkcat ingest CAPTURE_DIR --db \(path)')")
        }
        let catalog = try Catalog.open(path: path, readOnly: readOnly, busyTimeoutMilliseconds: timeout)
        if let found = catalog.upgradedFrom {
            invocation.stderr.write("qkcat: upgraded \(path) from catalog schema version \(found) to \(Migrator.currentVersion)\n")
        }
        return catalog
    }

    static func filters(_ invocation: Invocation) throws -> SearchFilters {
        SearchFilters(
            model: invocation.optionalString("model"), checkpoint: invocation.optionalString("checkpoint"),
            layer: try invocation.optionalInt("layer"), head: try invocation.optionalInt("head"),
            feature: invocation.optionalString("feature"), value: invocation.optionalString("value"),
            kind: invocation.optionalString("kind"))
    }

    /// `1.234` style numbers for tables.
    static func number(_ x: Double, digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }
}
