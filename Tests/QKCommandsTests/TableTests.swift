import Testing
@testable import QKCommands

@Suite struct TableTests {
    @Test func alignsColumnsByContent() {
        var table = Table(columns: [
            .init("LAYER", alignment: .right), .init("HEAD", alignment: .right), .init("FEATURE"), .init("σ1", alignment: .right),
        ])
        table.addRow(["3", "12", "category", "4.25"])
        table.addRow(["10", "5", "position", "12.5"])
        table.addRow(["7", "0", "x"])
        #expect(table.render() == """
            LAYER  HEAD  FEATURE     σ1
                3    12  category  4.25
               10     5  position  12.5
                7     0  x

            """)
    }

    @Test func wideCharactersAndTruncation() {
        var table = Table(columns: [.init("TOKEN", maximumWidth: 6), .init("N", alignment: .right)])
        table.addRow(["猫猫", "1"])
        table.addRow(["café", "22"])
        table.addRow(["extraordinary", "3"])
        #expect(table.render() == """
            TOKEN    N
            猫猫     1
            café    22
            extra…   3

            """)
    }

    @Test func boldHeaderKeepsAlignment() {
        var table = Table(columns: [.init("A"), .init("B", alignment: .right)])
        table.addRow(["xyz", "1"])
        let rendered = table.render(style: Style(enabled: true))
        #expect(rendered == "\u{1B}[1mA\u{1B}[0m    \u{1B}[1mB\u{1B}[0m\nxyz  1\n")
    }
}
