import Testing
@testable import QKCommands

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    var now = 100.0
}

@Suite struct ProgressBarTests {
    @Test func silentWhenNotATerminal() {
        let out = StringOutput()
        let bar = ProgressBar(total: 10, unit: "layers", output: out, enabled: false)
        for _ in 0..<10 { bar.advance() }
        bar.finish()
        #expect(out.text == "")
    }

    @Test func invocationBarFollowsStderr() {
        let command = Command(name: "p", abstract: "p", run: { invocation in
            let bar = invocation.progressBar(total: 3, unit: "heads")
            for _ in 0..<3 { bar.advance() }
            bar.finish()
        })
        let out = StringOutput(), err = StringOutput()
        #expect(command.main(arguments: [], stdout: out, stderr: err, stdoutIsTerminal: true) == 0)
        #expect(err.text == "")
        let ttyErr = StringOutput()
        #expect(command.main(arguments: [], stdout: out, stderr: ttyErr, stderrIsTerminal: true) == 0)
        #expect(ttyErr.text.hasPrefix("\r[##########...................."))
        #expect(ttyErr.text.contains("\r[##############################] 3/3 heads"))
        #expect(ttyErr.text.hasSuffix("\n"))
        #expect(out.text == "")
    }

    @Test func drawsThrottlesAndFinishes() {
        let clock = ManualClock()
        let out = StringOutput()
        let bar = ProgressBar(total: 32, unit: "layers", output: out, enabled: true, width: 10, minimumInterval: 0.1,
                              clock: { clock.now })
        clock.now += 2
        bar.update(completed: 8)
        #expect(out.text == "\r[##........] 8/32 layers  4.0 layers/s  ETA 6s")
        // Within the interval: no redraw.
        clock.now += 0.05
        bar.advance()
        #expect(out.text == "\r[##........] 8/32 layers  4.0 layers/s  ETA 6s")
        clock.now += 0.95
        bar.advance(by: 3)
        #expect(out.text.hasSuffix("\r[###.......] 12/32 layers  4.0 layers/s  ETA 5s"))
        clock.now += 5
        bar.update(completed: 32)
        bar.finish()
        bar.finish()
        // The final line is shorter than the previous one, so spaces wipe the remainder.
        #expect(out.text.hasSuffix("\r[##########] 32/32 layers  4.0 layers/s" + String(repeating: " ", count: 8) + "\n"))
        #expect(out.text.filter { $0 == "\n" }.count == 1)
    }

    @Test func formats() {
        #expect(ProgressBar.render(completed: 0, total: 4, unit: "heads", width: 4, elapsed: 0) == "[....] 0/4 heads")
        #expect(ProgressBar.render(completed: 9, total: 4, unit: "heads", width: 4, elapsed: 1) == "[####] 4/4 heads  4.0 heads/s")
        #expect(ProgressBar.formatRate(3.44) == "3.4")
        #expect(ProgressBar.formatRate(1234.4) == "1234")
        #expect(ProgressBar.formatDuration(5.2) == "6s")
        #expect(ProgressBar.formatDuration(125) == "2m05s")
        #expect(ProgressBar.formatDuration(3720) == "1h02m")
    }
}
