import Testing
@testable import QKCommands

@Suite struct ParserTests {
    /// The example search command's echo of its parsed values.
    private func echo(_ arguments: [String]) -> String {
        let result = Example.run(["search"] + arguments)
        #expect(result.code == 0, "stderr: \(result.err)")
        return result.out
    }

    private let defaults = #"{"query":"cat","model":null,"limit":20,"layers":[],"features":[],"scope":"head","min_score":null,"json":false,"verbose":0}"# + "\n"

    @Test func defaultsApplyWhenOptionsAreAbsent() {
        #expect(echo(["cat"]) == defaults)
    }

    @Test func bothLongOptionFormsAndShortOptions() {
        let separate = echo(["cat", "--model", "pythia", "--limit", "5"])
        let joined = echo(["--model=pythia", "cat", "--limit=5"])
        let short = echo(["-m", "pythia", "cat", "--limit", "5"])
        let attached = echo(["-mpythia", "cat", "--limit", "5"])
        #expect(separate.contains(#""model":"pythia","limit":5"#))
        #expect(joined == separate)
        #expect(short == separate)
        #expect(attached == separate)
    }

    @Test func bundledShortFlagsAndCounts() {
        let out = echo(["-jvv", "cat"])
        #expect(out.contains(#""json":true,"verbose":2"#))
    }

    @Test func optionValueMayContainEqualsAndBeNegative() {
        let out = echo(["--model=a=b", "cat", "--min-score", "-0.5"])
        #expect(out.contains(#""model":"a=b""#))
        #expect(out.contains(#""min_score":-0.5"#))
    }

    @Test func doubleDashEndsOptions() {
        let out = echo(["--", "--json"])
        #expect(out.contains(#""query":"--json""#))
        #expect(out.contains(#""json":false"#))
    }

    @Test func negativeNumberIsPositional() {
        #expect(echo(["-3"]).contains(#""query":"-3""#))
    }

    @Test func repeatedOptionsAndCommaLists() {
        let out = echo(["cat", "--feature", "category,position", "--feature", " color , ", "--feature=size"])
        #expect(out.contains(#""features":["category","position","color","size"]"#))
    }

    @Test func intRangesExpandAndMerge() {
        #expect(echo(["cat", "--layers", "0,5-7"]).contains(#""layers":[0,5,6,7]"#))
        #expect(echo(["cat", "--layers", "7, 2-3,3"]).contains(#""layers":[2,3,7]"#))
    }

    @Test func allowedValuesAreChecked() {
        #expect(echo(["cat", "--scope", "all"]).contains(#""scope":"all""#))
        let result = Example.run(["search", "cat", "--scope", "world"])
        #expect(result.code == 64)
        #expect(result.err.hasPrefix("Error: The value 'world' is invalid for '--scope <scope>': expected one of head, layer, all\n"))
    }

    @Test func repeatingOptionalArgumentTakesAllValues() {
        #expect(Example.run(["show", "a", "b", "c"]).out == "a b c\n")
        #expect(Example.run(["show"]).out == "all\n")
    }

    /// Each usage error's exact first line on stderr, and exit code 64.
    @Test(arguments: [
        (["search", "cat", "--modle", "x"], "Unknown option '--modle'. Did you mean '--model'?"),
        (["search", "cat", "--wat"], "Unknown option '--wat'"),
        (["search", "cat", "-x"], "Unknown option '-x'"),
        (["search", "cat", "--model"], "Missing value for '--model <model>'"),
        (["search", "cat", "--model", "--json"], "Missing value for '--model <model>'"),
        (["search"], "Missing expected argument '<query>'"),
        (["search", "cat", "dog"], "Unexpected argument 'dog'"),
        (["search", "cat", "--limit", "ten"], "The value 'ten' is invalid for '--limit <limit>': expected an integer"),
        (["search", "cat", "--min-score", "nan"], "The value 'nan' is invalid for '--min-score <min-score>': expected a finite number"),
        (["search", "cat", "--layers", "3-1"], "The value '3-1' is invalid for '--layers <ranges>': the range 3-1 is reversed"),
        (["search", "cat", "--layers", "1,x"], "The value '1,x' is invalid for '--layers <ranges>': expected integers and ranges such as 0,5-7"),
        (["search", "cat", "--model", "a", "--model", "b"], "Option '--model <model>' may be given only once"),
        (["search", "cat", "--json=yes"], "The flag '--json' does not take a value"),
        (["serch"], "Unknown subcommand 'serch'. Did you mean 'search'?"),
        (["store", "migrate"], "Missing expected argument '--db <path>'"),
        (["help", "nothing"], "Unknown subcommand 'nothing'"),
    ])
    func usageErrors(arguments: [String], message: String) {
        let result = Example.run(arguments)
        #expect(result.code == 64)
        #expect(result.out == "")
        #expect(result.err.split(separator: "\n").first.map(String.init) == "Error: " + message)
    }

    @Test func editDistance() {
        #expect(Parser.editDistance("kitten", "sitting") == 3)
        #expect(Parser.editDistance("", "abc") == 3)
        #expect(Parser.editDistance("same", "same") == 0)
    }
}
