import Testing
@testable import QKEngine

@Test func placeholder() { #expect(Bool(true)) }
