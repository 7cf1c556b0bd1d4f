import Testing
@testable import QKCommands

/// A small command tree exercising every kind of declaration; the other suites run it.
enum Example {
    static let search = Command(
        name: "search",
        abstract: "Find components whose top tokens match a query.",
        discussion: "Searches the top tokens of every component in the catalog and lists the best matches first, highest score on top.",
        arguments: [Argument("query", help: "Text to look for in top tokens.")],
        options: [
            .option("model", short: "m", help: "Only components of this model."),
            .option("limit", default: "20", help: "Most rows to show."),
            .option("layers", valueName: "ranges", help: "Layers such as 0,5-7."),
            .option("feature", repeatable: true,
                    help: "Feature names to match; repeat the option or separate names with commas, in the order to use."),
            .option("scope", default: "head", values: ["head", "layer", "all"], help: "Where to search."),
            .option("min-score", help: "Lowest score to show."),
            .flag("json", short: "j", help: "Print JSON."),
            .flag("verbose", short: "v", help: "Say more."),
        ],
        run: { invocation in
            // Echoes what it parsed, so tests see exactly what the accessors return.
            let echo: JSONValue = [
                "query": .string(try invocation.string("query")),
                "model": JSONValue(invocation.optionalString("model")),
                "limit": .int(try invocation.int("limit")),
                "layers": .array(try invocation.intRanges("layers").map { .int($0) }),
                "features": .strings(invocation.list("feature")),
                "scope": .string(try invocation.string("scope")),
                "min_score": JSONValue(try invocation.optionalDouble("min-score")),
                "json": .bool(invocation.flag("json")),
                "verbose": .int(invocation.values.flagCount("verbose")),
            ]
            invocation.printJSON(echo, pretty: false)
        })

    static let show = Command(
        name: "show",
        abstract: "Show components by id.",
        arguments: [Argument("ids", optional: true, repeating: true, help: "Component ids; all when none.")],
        options: [.flag("json", help: "Print JSON.")],
        run: { invocation in
            let ids = invocation.strings("ids")
            if ids.contains("missing") { throw CommandError.failure("No component with id 'missing'") }
            if ids.contains("none") { throw CommandError.exit(3) }
            if ids.contains("both") { throw CommandError.usage("'both' needs --json") }
            if ids.contains("swift") { throw ExampleFailure.notFound("swift") }
            invocation.print(ids.isEmpty ? "all" : ids.joined(separator: " "))
        })

    static let migrate = Command(
        name: "migrate",
        abstract: "Bring a catalog up to the current schema.",
        options: [.option("db", valueName: "path", required: true, help: "The catalog file.")],
        run: { invocation in invocation.print("migrated " + (try invocation.string("db"))) })

    static let store = Command(
        name: "store",
        abstract: "Manage the catalog database.",
        subcommands: [migrate])

    static let root = Command(
        name: "qkdemo",
        abstract: "A demo catalog tool.",
        version: "1.2.3",
        subcommands: [search, show, store])

    struct Result {
        var code: Int32
        var out: String
        var err: String
    }

    /// Runs the example tool in-process.
    static func run(
        _ arguments: [String], environment: [String: String] = [:],
        stdoutIsTerminal: Bool = false, stderrIsTerminal: Bool = false
    ) -> Result {
        let out = StringOutput(), err = StringOutput()
        let code = root.main(
            arguments: arguments, environment: environment, stdout: out, stderr: err,
            stdoutIsTerminal: stdoutIsTerminal, stderrIsTerminal: stderrIsTerminal)
        return Result(code: code, out: out.text, err: err.text)
    }
}

enum ExampleFailure: Error, CustomStringConvertible {
    case notFound(String)
    var description: String {
        switch self {
        case .notFound(let name): "No model named '\(name)' in the catalog"
        }
    }
}

@Suite struct CommandTests {
    @Test func findsSubcommandsByName() {
        #expect(Example.root.subcommand(named: "store")?.subcommand(named: "migrate")?.name == "migrate")
        #expect(Example.root.subcommand(named: "migrate") == nil)
    }

    @Test func labelsNameOptionsAndArguments() {
        #expect(Option.option("layers", valueName: "ranges", help: "").label == "--layers <ranges>")
        #expect(Option.option("model", help: "").label == "--model <model>")
        #expect(Option.flag("json", help: "").label == "--json")
        #expect(Argument("query", help: "").label == "<query>")
    }
}
