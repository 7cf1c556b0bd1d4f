import Testing
@testable import QKCommands

@Suite struct ParsedValuesTests {
    @Test func intRangesParsing() throws {
        #expect(try ParsedValues.parseIntRanges("0,5-7", label: "l") == [0, 5, 6, 7])
        #expect(try ParsedValues.parseIntRanges(" 3 - 4 ", label: "l") == [3, 4])
        #expect(try ParsedValues.parseIntRanges("-3--1,-5", label: "l") == [-3, -2, -1, -5])
        #expect(throws: CommandError.invalidValue("1,,2", for: "--layers <layers>", reason: "expected integers and ranges such as 0,5-7")) {
            try ParsedValues.parseIntRanges("1,,2", label: "--layers <layers>")
        }
        #expect(throws: CommandError.invalidValue("0-99999999", for: "l", reason: "the range 0-99999999 is too long")) {
            try ParsedValues.parseIntRanges("0-99999999", label: "l")
        }
    }

    @Test func missingValuesName() throws {
        var values = ParsedValues(command: Example.search)
        #expect(throws: CommandError.missingArgument("<query>")) { try values.string("query") }
        #expect(throws: CommandError.missingValue(option: "--model <model>")) { try values.string("model") }
        #expect(values.optionalString("limit") == "20")
        #expect(!values.has("limit"))
        values.append("7", to: "limit")
        #expect(values.has("limit"))
        #expect(try values.int("limit") == 7)
        #expect(try values.optionalInt("model") == nil)
    }

    @Test func errorsSayWhatIsWrong() {
        #expect(CommandError.unknownOption("--x", suggestion: nil).isUsageError)
        #expect(!CommandError.failure("boom").isUsageError)
        #expect(!CommandError.exit(2).isUsageError)
        #expect(CommandError.missingArgument("<query>").description == "Missing expected argument '<query>'")
    }
}
