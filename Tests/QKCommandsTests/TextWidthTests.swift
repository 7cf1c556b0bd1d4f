import Testing
@testable import QKCommands

@Suite struct TextWidthTests {
    @Test func countsColumns() {
        #expect(TextWidth.of("abc") == 3)
        #expect(TextWidth.of("猫") == 2)
        #expect(TextWidth.of("e\u{301}") == 1)
        #expect(TextWidth.of("\u{1B}[1;33mab\u{1B}[0m") == 2)
        #expect(TextWidth.of("🙂") == 2)
        #expect(TextWidth.of("▇▇▏") == 3)
    }

    @Test func truncatesAndPads() {
        #expect(TextWidth.truncate("abcdef", to: 4) == "abc…")
        #expect(TextWidth.truncate("abcd", to: 4) == "abcd")
        #expect(TextWidth.truncate("猫猫猫", to: 4) == "猫…")
        #expect(TextWidth.pad("猫", to: 4) == "猫  ")
        #expect(TextWidth.pad("7", to: 3, alignment: .right) == "  7")
    }
}
