import Testing
@testable import QKCommands

@Suite struct TerminalTests {
    @Test func colourOnlyOnATerminalWithoutNoColorOrDumbTerm() {
        #expect(Terminal(stdoutIsTerminal: true, environment: ["TERM": "xterm-256color"]).stdoutAllowsColor)
        #expect(!Terminal(stdoutIsTerminal: false, environment: [:]).stdoutAllowsColor)
        #expect(!Terminal(stdoutIsTerminal: true, environment: ["NO_COLOR": "1"]).stdoutAllowsColor)
        #expect(!Terminal(stdoutIsTerminal: true, environment: ["TERM": "dumb"]).stdoutAllowsColor)
        // An empty NO_COLOR does not count (no-color.org).
        #expect(Terminal(stdoutIsTerminal: true, environment: ["NO_COLOR": ""]).stdoutAllowsColor)
        #expect(Terminal(stderrIsTerminal: true).stderrAllowsColor)
        #expect(!Terminal(stdoutIsTerminal: true).stderrAllowsColor)
    }

    @Test func progressNeedsAnInteractiveStderr() {
        #expect(Terminal(stderrIsTerminal: true).allowsProgress)
        #expect(Terminal(stderrIsTerminal: true, environment: ["NO_COLOR": "1"]).allowsProgress)
        #expect(!Terminal(stderrIsTerminal: true, environment: ["TERM": "dumb"]).allowsProgress)
        #expect(!Terminal(stdoutIsTerminal: true).allowsProgress)
    }

    @Test func unicodeFollowsTheLocale() {
        #expect(Terminal(environment: [:]).allowsUnicode)
        #expect(Terminal(environment: ["LANG": "en_US.UTF-8"]).allowsUnicode)
        #expect(!Terminal(environment: ["LANG": "C"]).allowsUnicode)
        #expect(Terminal(environment: ["LC_ALL": "de_DE.utf8", "LANG": "C"]).allowsUnicode)
        #expect(!Terminal(environment: ["TERM": "dumb"]).allowsUnicode)
    }

    @Test func styleEmitsEscapesOnlyWhenEnabled() {
        let on = Style(enabled: true)
        #expect(on.bold("x") == "\u{1B}[1mx\u{1B}[0m")
        #expect(on.red("x") == "\u{1B}[31mx\u{1B}[0m")
        #expect(on.bold("") == "")
        let off = Terminal(stdoutIsTerminal: true, environment: ["NO_COLOR": "yes"]).stdoutStyle
        for text in [off.bold("x"), off.dim("x"), off.underline("x"), off.color("x", .cyan), off.highlight("x", matching: "x")] {
            #expect(text == "x")
        }
    }

    @Test func highlightMarksEveryCaseInsensitiveMatch() {
        let on = Style(enabled: true)
        #expect(on.highlight("Cat and cat", matching: "cat") == "\u{1B}[1;33mCat\u{1B}[0m and \u{1B}[1;33mcat\u{1B}[0m")
        #expect(on.highlight("dog", matching: "cat") == "dog")
    }

    /// A command writing styled text through the runner: no escape codes unless stdout is a colour terminal.
    @Test func commandsSeeTheirTerminal() {
        let colorful = Command(name: "c", abstract: "c", run: { $0.print($0.style.bold("hi")) })
        func run(tty: Bool, environment: [String: String]) -> String {
            let out = StringOutput(), err = StringOutput()
            _ = colorful.main(arguments: [], environment: environment, stdout: out, stderr: err, stdoutIsTerminal: tty)
            return out.text
        }
        #expect(run(tty: true, environment: [:]) == "\u{1B}[1mhi\u{1B}[0m\n")
        #expect(run(tty: false, environment: [:]) == "hi\n")
        #expect(run(tty: true, environment: ["NO_COLOR": "1"]) == "hi\n")
        #expect(run(tty: true, environment: ["TERM": "dumb"]) == "hi\n")
    }
}
