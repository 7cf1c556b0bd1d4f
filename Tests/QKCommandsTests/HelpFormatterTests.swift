import Testing
@testable import QKCommands

@Suite struct HelpFormatterTests {
    static let searchHelp = """
        OVERVIEW: Find components whose top tokens match a query.

        Searches the top tokens of every component in the catalog and lists the best
        matches first, highest score on top.

        USAGE: qkdemo search <query> [--model <model>] [--limit <limit>]
                             [--layers <ranges>] [--feature <feature> ...]
                             [--scope <scope>] [--min-score <min-score>] [--json]
                             [--verbose]

        ARGUMENTS:
          <query>                 Text to look for in top tokens.

        OPTIONS:
          -m, --model <model>     Only components of this model.
          --limit <limit>         Most rows to show. (default: 20)
          --layers <ranges>       Layers such as 0,5-7.
          --feature <feature>     Feature names to match; repeat the option or separate
                                  names with commas, in the order to use.
          --scope <scope>         Where to search. (values: head, layer, all; default:
                                  head)
          --min-score <min-score>
                                  Lowest score to show.
          -j, --json              Print JSON.
          -v, --verbose           Say more.
          -h, --help              Show help information.

        """

    static let rootHelp = """
        OVERVIEW: A demo catalog tool.

        USAGE: qkdemo <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          search                  Find components whose top tokens match a query.
          show                    Show components by id.
          store                   Manage the catalog database.
          help                    Show subcommand help information.

          See 'qkdemo help <subcommand>' for detailed help.

        """

    @Test func subcommandHelpLayout() {
        let help = Example.root.helpText(for: ["qkdemo", "search"])!
        #expect(help == Self.searchHelp)
        for line in help.split(separator: "\n") {
            #expect(line.count <= 80)
            #expect(!line.hasSuffix(" "))
        }
    }

    @Test func rootHelpLayout() {
        #expect(Example.root.helpText(for: ["qkdemo"]) == Self.rootHelp)
    }

    @Test func nestedGroupHelpPointsToNestedHelp() {
        let help = Example.root.helpText(for: ["qkdemo", "store"])!
        #expect(help.contains("USAGE: qkdemo store <subcommand>\n"))
        #expect(help.contains("  migrate                 Bring a catalog up to the current schema.\n"))
        #expect(help.contains("  See 'qkdemo help store <subcommand>' for detailed help.\n"))
        #expect(!help.contains("--version"))
    }

    @Test func requiredOptionsAndRepeatingArgumentsInUsage() {
        #expect(Example.root.usageText(for: ["qkdemo", "store", "migrate"]) == "Usage: qkdemo store migrate --db <path>")
        #expect(Example.root.usageText(for: ["qkdemo", "show"]) == "Usage: qkdemo show [<ids> ...] [--json]")
    }

    @Test func wrapKeepsLongWordsWhole() {
        #expect(HelpFormatter.wrap("aaa bbb ccccccccccc d", width: 8) == "aaa bbb\nccccccccccc\nd")
        #expect(HelpFormatter.wrap("one\n\ntwo", width: 8) == "one\n\ntwo")
    }
}
