import Testing
@testable import QKCommands

@Test func placeholder() { #expect(Bool(true)) }
