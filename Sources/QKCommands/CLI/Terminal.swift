#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the process's standard streams are attached to, and what the environment allows on them.
///
/// Colour needs a terminal, `NO_COLOR` unset or empty (https://no-color.org) and `TERM` other than `dumb`.
/// Progress bars need standard error to be a terminal that is not `dumb`.
public struct Terminal: Sendable, Equatable {
    public var stdinIsTerminal: Bool
    public var stdoutIsTerminal: Bool
    public var stderrIsTerminal: Bool
    public var environment: [String: String]

    public init(
        stdinIsTerminal: Bool = false,
        stdoutIsTerminal: Bool = false,
        stderrIsTerminal: Bool = false,
        environment: [String: String] = [:]
    ) {
        self.stdinIsTerminal = stdinIsTerminal
        self.stdoutIsTerminal = stdoutIsTerminal
        self.stderrIsTerminal = stderrIsTerminal
        self.environment = environment
    }

    /// The current process's streams (isatty) and the given environment.
    public static func current(environment: [String: String]) -> Terminal {
        Terminal(
            stdinIsTerminal: isatty(0) == 1,
            stdoutIsTerminal: isatty(1) == 1,
            stderrIsTerminal: isatty(2) == 1,
            environment: environment)
    }

    private var isDumb: Bool { environment["TERM"] == "dumb" }

    /// `NO_COLOR` set to any non-empty value, or `TERM=dumb`.
    public var colorDisabledByEnvironment: Bool {
        isDumb || !(environment["NO_COLOR"] ?? "").isEmpty
    }

    public var stdoutAllowsColor: Bool { stdoutIsTerminal && !colorDisabledByEnvironment }
    public var stderrAllowsColor: Bool { stderrIsTerminal && !colorDisabledByEnvironment }

    /// Progress drawn with carriage returns makes sense only on an interactive standard error.
    public var allowsProgress: Bool { stderrIsTerminal && !isDumb }

    /// Whether block characters (bars, sparklines) may be used: not on a `dumb` terminal, and not when the
    /// locale names another encoding. With no locale set at all, UTF-8 is assumed.
    public var allowsUnicode: Bool {
        if isDumb { return false }
        for variable in ["LC_ALL", "LC_CTYPE", "LANG"] {
            if let value = environment[variable], !value.isEmpty {
                let lowered = value.lowercased()
                return lowered.contains("utf-8") || lowered.contains("utf8") || value == "C.UTF-8"
            }
        }
        return true
    }

    /// Styling for text written to standard output.
    public var stdoutStyle: Style { Style(enabled: stdoutAllowsColor) }
    /// Styling for text written to standard error.
    public var stderrStyle: Style { Style(enabled: stderrAllowsColor) }
}

/// Text attributes as ANSI escape sequences, or plain text when disabled.
public struct Style: Sendable, Equatable {
    public enum Color: Int, Sendable {
        case black = 30, red, green, yellow, blue, magenta, cyan, white
    }

    public var enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    /// Never styles.
    public static let plain = Style(enabled: false)

    public func bold(_ text: String) -> String { wrap(text, "1") }
    public func dim(_ text: String) -> String { wrap(text, "2") }
    public func underline(_ text: String) -> String { wrap(text, "4") }
    public func color(_ text: String, _ color: Color) -> String { wrap(text, String(color.rawValue)) }
    public func red(_ text: String) -> String { color(text, .red) }
    public func green(_ text: String) -> String { color(text, .green) }
    public func yellow(_ text: String) -> String { color(text, .yellow) }
    public func cyan(_ text: String) -> String { color(text, .cyan) }

    /// Marks every case-insensitive occurrence of `term` in `text` (bold yellow), as search results do.
    public func highlight(_ text: String, matching term: String) -> String {
        guard enabled, !term.isEmpty else { return text }
        let loweredText = Array(text.lowercased())
        let loweredTerm = Array(term.lowercased())
        let characters = Array(text)
        // Lowercasing can change the character count (rare ligatures); then highlighting is skipped.
        guard loweredText.count == characters.count else { return text }
        var result = ""
        var index = 0
        while index < characters.count {
            if index + loweredTerm.count <= characters.count,
               loweredText[index..<index + loweredTerm.count].elementsEqual(loweredTerm) {
                result += wrap(String(characters[index..<index + loweredTerm.count]), "1;33")
                index += loweredTerm.count
            } else {
                result.append(characters[index])
                index += 1
            }
        }
        return result
    }

    private func wrap(_ text: String, _ code: String) -> String {
        guard enabled, !text.isEmpty else { return text }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
}
