import Testing
@testable import QKCommands

@Suite struct JSONValueTests {
    @Test func keepsInsertionOrder() {
        let value: JSONValue = ["zeta": 1, "alpha": [true, nil], "mid": ["b": "x", "a": 2.5]]
        #expect(value.rendered() == #"{"zeta":1,"alpha":[true,null],"mid":{"b":"x","a":2.5}}"#)
        #expect(value["mid"]?["a"] == .number(2.5))
    }

    @Test func prettyPrinting() {
        let value: JSONValue = ["layer": 3, "cosines": [0.5, 1], "empty": [], "nested": [:]]
        #expect(value.rendered(pretty: true) == """
            {
              "layer": 3,
              "cosines": [
                0.5,
                1
              ],
              "empty": [],
              "nested": {}
            }
            """)
    }

    @Test func escapesStrings() {
        let text = "q\"b\\s/\n\r\t\u{08}\u{0C}\u{01}\u{1F}é猫\u{2028}"
        #expect(JSONValue.string(text).rendered() == #""q\"b\\s/\n\r\t\b\f\u0001\u001fé猫\u2028""#)
        // DEL and the other separator escaped too; other characters whose UTF-8 starts like the separators' kept.
        #expect(JSONValue.string("\u{7F}€\u{2027}\u{2029}x\u{2029}").rendered() == #""\u007f€\#u{2027}\u2029x\u2029""#)
    }

    @Test func numbers() {
        #expect(JSONValue.number(3).rendered() == "3")
        #expect(JSONValue.number(-0.0).rendered() == "0")
        #expect(JSONValue.number(0.1).rendered() == "0.1")
        #expect(JSONValue.number(-2.5e-7).rendered() == "-2.5e-07")
        #expect(JSONValue.number(1e300).rendered() == "1e+300")
        #expect(JSONValue.number(123456789012.0).rendered() == "123456789012")
        #expect(JSONValue.number(.nan).rendered() == "null")
        #expect(JSONValue.number(-.infinity).rendered() == "null")
        #expect(JSONValue.int(-42).rendered() == "-42")
        #expect(JSONValue(Double?.none) == .null)
        #expect(JSONValue(Int?.some(4)) == .int(4))
        // Shortest round-trip form.
        #expect(Double(JSONValue.number(0.1 + 0.2).rendered()) == 0.1 + 0.2)
    }
}
