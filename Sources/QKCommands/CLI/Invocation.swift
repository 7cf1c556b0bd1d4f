/// What a running command receives: its parsed values, its output streams and the terminal.
public struct Invocation: Sendable {
    public let values: ParsedValues
    /// The command's full name: `["qkcat", "search"]`.
    public let commandPath: [String]
    public let stdout: TextOutput
    public let stderr: TextOutput
    public let terminal: Terminal

    public init(values: ParsedValues, commandPath: [String], stdout: TextOutput, stderr: TextOutput, terminal: Terminal) {
        self.values = values
        self.commandPath = commandPath
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
    }

    public var environment: [String: String] { terminal.environment }
    /// Styling for standard output (plain unless it is a colour terminal).
    public var style: Style { terminal.stdoutStyle }
    /// Whether bars and sparklines may use block characters.
    public var unicode: Bool { terminal.allowsUnicode }

    // MARK: Values (see ParsedValues)

    public func has(_ name: String) -> Bool { values.has(name) }
    public func flag(_ name: String) -> Bool { values.flag(name) }
    public func string(_ name: String) throws -> String { try values.string(name) }
    public func optionalString(_ name: String) -> String? { values.optionalString(name) }
    public func strings(_ name: String) -> [String] { values.strings(name) }
    public func int(_ name: String) throws -> Int { try values.int(name) }
    public func optionalInt(_ name: String) throws -> Int? { try values.optionalInt(name) }
    public func double(_ name: String) throws -> Double { try values.double(name) }
    public func optionalDouble(_ name: String) throws -> Double? { try values.optionalDouble(name) }
    public func list(_ name: String) -> [String] { values.list(name) }
    public func intRanges(_ name: String) throws -> [Int] { try values.intRanges(name) }

    // MARK: Output

    /// Writes a line to standard output.
    public func print(_ line: String = "") { stdout.write(line + "\n") }

    /// Writes a JSON value and a newline to standard output (pretty unless `pretty` is false,
    /// e.g. for one object per line).
    public func printJSON(_ value: JSONValue, pretty: Bool = true) { stdout.write(value.rendered(pretty: pretty) + "\n") }

    /// A progress bar on standard error, drawing only when standard error is a terminal.
    public func progressBar(total: Int, unit: String) -> ProgressBar {
        ProgressBar(total: total, unit: unit, output: stderr, enabled: terminal.allowsProgress)
    }
}
