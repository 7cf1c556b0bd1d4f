#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import QKCommands

@Suite struct TextOutputTests {
    @Test func stringOutputCollects() {
        let out = StringOutput()
        out.write("a")
        out.line("b")
        out.line()
        #expect(out.text == "ab\n\n")
    }

    @Test func bufferedDescriptorOutputWritesOnFlush() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let output = FileDescriptorOutput(descriptor: fds[1], buffered: true)
        output.write("héllo ")
        output.line("world")
        var pollRecord = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        #expect(poll(&pollRecord, 1, 0) == 0, "nothing written before flush")
        output.flush()
        close(fds[1])
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(fds[0], &bytes, 64)
        #expect(String(decoding: bytes[0..<max(count, 0)], as: UTF8.self) == "héllo world\n")
    }
}
