import Testing
@testable import QKStore

@Test func placeholder() { #expect(Bool(true)) }
