import Testing
@testable import QKCommands

@Suite struct TextBarTests {
    @Test func proportionalBarsInEighths() {
        #expect(TextBar.bar(fraction: 1, width: 4) == "████")
        #expect(TextBar.bar(fraction: 0.5, width: 4) == "██")
        #expect(TextBar.bar(fraction: 0.53125, width: 4) == "██▏")
        #expect(TextBar.bar(fraction: 0.59375, width: 4) == "██▍")
        #expect(TextBar.bar(fraction: 0.65625, width: 4) == "██▋")
        #expect(TextBar.bar(fraction: 0, width: 4) == "")
        #expect(TextBar.bar(fraction: 7, width: 2) == "██")
        #expect(TextBar.bar(fraction: .nan, width: 2) == "")
        #expect(TextBar.bar(value: 3, maximum: 4, width: 8) == "██████")
    }

    @Test func asciiFallback() {
        #expect(TextBar.bar(fraction: 0.5, width: 10, unicode: false) == "#####")
        #expect(TextBar.signedBar(value: -2, maximumMagnitude: 4, halfWidth: 4, unicode: false) == "  --|    ")
    }

    @Test func signedBarsAroundACentre() {
        #expect(TextBar.signedBar(value: 3, maximumMagnitude: 4, halfWidth: 4) == "    │███ ")
        #expect(TextBar.signedBar(value: -4, maximumMagnitude: 4, halfWidth: 4) == "████│    ")
        #expect(TextBar.signedBar(value: 0, maximumMagnitude: 0, halfWidth: 2) == "  │  ")
    }

    @Test func sparklines() {
        #expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█")
        #expect(sparkline([1, 1, 1]) == "▄▄▄")
        #expect(sparkline([0, .nan, 10]) == "▁ █")
        #expect(sparkline([]) == "")
        #expect(sparkline([5], range: 0...10) == "▅")
        #expect(sparkline([0, 7], unicode: false) == "_#")
    }
}
