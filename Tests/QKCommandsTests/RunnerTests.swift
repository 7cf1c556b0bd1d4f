import Testing
@testable import QKCommands

@Suite struct RunnerTests {
    @Test func helpEverywhereGoesToStdoutWithExitZero() {
        let expected = HelpFormatterTests.searchHelp
        for arguments in [["search", "--help"], ["search", "-h"], ["search", "cat", "--limit", "x", "-h"], ["help", "search"]] {
            let result = Example.run(arguments)
            #expect(result.code == 0)
            #expect(result.out == expected, "\(arguments)")
            #expect(result.err == "")
        }
    }

    @Test func rootHelpForNoArgumentsHelpAndDashH() {
        for arguments in [[], ["help"], ["--help"], ["-h"]] {
            let result = Example.run(arguments)
            #expect(result.code == 0)
            #expect(result.out == HelpFormatterTests.rootHelp, "\(arguments)")
        }
    }

    @Test func helpAfterDoubleDashIsAnArgument() {
        let result = Example.run(["show", "--", "-h"])
        #expect(result.code == 0)
        #expect(result.out == "-h\n")
    }

    @Test func nestedHelpTopic() {
        for arguments in [["help", "store", "migrate"], ["store", "help", "migrate"], ["store", "migrate", "-h"]] {
            let result = Example.run(arguments)
            #expect(result.code == 0)
            #expect(result.out.hasPrefix("OVERVIEW: Bring a catalog up to the current schema.\n\nUSAGE: qkdemo store migrate --db <path>\n"))
        }
    }

    @Test func versionOnRoot() {
        let result = Example.run(["--version"])
        #expect(result.code == 0)
        #expect(result.out == "1.2.3\n")
        #expect(Example.run(["search", "cat", "--version"]).code == 64)
    }

    @Test func successRunsTheCommand() {
        let result = Example.run(["store", "migrate", "--db", "/tmp/x.db"])
        #expect(result.code == 0)
        #expect(result.out == "migrated /tmp/x.db\n")
        #expect(result.err == "")
    }

    @Test func usageErrorPrintsErrorUsageAndHint() {
        let result = Example.run(["search", "cat", "--limit", "ten"])
        #expect(result.code == 64)
        #expect(result.out == "")
        let expected = """
            Error: The value 'ten' is invalid for '--limit <limit>': expected an integer
            Usage: qkdemo search <query> [--model <model>] [--limit <limit>]
                                 [--layers <ranges>] [--feature <feature> ...]
                                 [--scope <scope>] [--min-score <min-score>] [--json]
                                 [--verbose]
            See 'qkdemo search --help'.

            """
        #expect(result.err == expected)
    }

    @Test func usageErrorOfAGroupShowsItsUsage() {
        let result = Example.run(["store", "wipe"])
        #expect(result.code == 64)
        #expect(result.err == "Error: Unknown subcommand 'wipe'\nUsage: qkdemo store <subcommand>\nSee 'qkdemo store --help'.\n")
    }

    @Test func usageErrorThrownByTheCommand() {
        let result = Example.run(["show", "both"])
        #expect(result.code == 64)
        #expect(result.err == "Error: 'both' needs --json\nUsage: qkdemo show [<ids> ...] [--json]\nSee 'qkdemo show --help'.\n")
    }

    @Test func failuresExitOneWithTheMessage() {
        let failure = Example.run(["show", "missing"])
        #expect(failure.code == 1)
        #expect(failure.err == "Error: No component with id 'missing'\n")
        let foreign = Example.run(["show", "swift"])
        #expect(foreign.code == 1)
        #expect(foreign.err == "Error: No model named 'swift' in the catalog\n")
    }

    @Test func explicitExitCodeIsSilent() {
        let result = Example.run(["show", "none"])
        #expect(result.code == 3)
        #expect(result.out == "")
        #expect(result.err == "")
    }
}
