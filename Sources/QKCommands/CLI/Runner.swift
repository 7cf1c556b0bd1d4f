import Foundation

/// Exit codes: 0 success, 1 failure, 64 usage error (sysexits' EX_USAGE).
public enum ExitCode {
    public static let success: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 64
}

extension Command {
    /// Parses `arguments` (without the program name), runs the chosen command and returns the exit code.
    /// Everything goes through `stdout` and `stderr`, so a whole command line can run inside a test.
    public func main(
        arguments: [String],
        environment: [String: String] = [:],
        stdout: TextOutput,
        stderr: TextOutput,
        stdinIsTerminal: Bool = false,
        stdoutIsTerminal: Bool = false,
        stderrIsTerminal: Bool = false
    ) -> Int32 {
        let terminal = Terminal(
            stdinIsTerminal: stdinIsTerminal, stdoutIsTerminal: stdoutIsTerminal,
            stderrIsTerminal: stderrIsTerminal, environment: environment)
        return main(arguments: arguments, stdout: stdout, stderr: stderr, terminal: terminal)
    }

    /// As above, with the terminal described once.
    public func main(arguments: [String], stdout: TextOutput, stderr: TextOutput, terminal: Terminal) -> Int32 {
        defer {
            stdout.flush()
            stderr.flush()
        }
        switch Parser(root: self).parse(arguments) {
        case .failure(let failure):
            reportUsageError(failure.error, command: failure.command, path: failure.path, stderr: stderr)
            return ExitCode.usage
        case .success(.version(let version)):
            stdout.write(version + "\n")
            return ExitCode.success
        case .success(.help(let command, let path)):
            stdout.write(HelpFormatter.help(for: command, path: path, root: self))
            return ExitCode.success
        case .success(.run(let command, let path, let values)):
            guard let run = command.run else {
                stdout.write(HelpFormatter.help(for: command, path: path, root: self))
                return ExitCode.success
            }
            let invocation = Invocation(values: values, commandPath: path, stdout: stdout, stderr: stderr, terminal: terminal)
            do {
                try run(invocation)
                return ExitCode.success
            } catch let error as CommandError where error.isUsageError {
                reportUsageError(error, command: command, path: path, stderr: stderr)
                return ExitCode.usage
            } catch CommandError.exit(let code) {
                return code
            } catch {
                stderr.write("Error: \(Self.message(for: error))\n")
                return ExitCode.failure
            }
        }
    }

    /// Runs with the process's arguments, environment and standard streams, then exits.
    public func main() -> Never {
        let terminal = Terminal.current(environment: ProcessInfo.processInfo.environment)
        let stdout = FileDescriptorOutput(descriptor: 1, buffered: !terminal.stdoutIsTerminal)
        let stderr = FileDescriptorOutput(descriptor: 2, buffered: false)
        let code = main(arguments: Array(CommandLine.arguments.dropFirst()), stdout: stdout, stderr: stderr, terminal: terminal)
        exit(code)
    }

    /// The usage of the command at `path`, as printed after a usage error.
    public func usageText(for path: [String]) -> String? {
        var command = self
        for name in path.dropFirst() {
            guard let subcommand = command.subcommand(named: name) else { return nil }
            command = subcommand
        }
        return HelpFormatter.usage(for: command, path: path, prefix: "Usage: ")
    }

    /// The help text of the command at `path` (`["qkcat", "search"]`).
    public func helpText(for path: [String]) -> String? {
        var command = self
        for name in path.dropFirst() {
            guard let subcommand = command.subcommand(named: name) else { return nil }
            command = subcommand
        }
        return HelpFormatter.help(for: command, path: path, root: self)
    }

    private func reportUsageError(_ error: CommandError, command: Command, path: [String], stderr: TextOutput) {
        let usage = HelpFormatter.usage(for: command, path: path, prefix: "Usage: ")
        stderr.write("Error: \(error.description)\n\(usage)\nSee '\(path.joined(separator: " ")) --help'.\n")
    }

    /// A readable message for any error: LocalizedError's description, an NSError's localized description,
    /// else the error's own description.
    static func message(for error: Error) -> String {
        if let localized = error as? LocalizedError, let description = localized.errorDescription {
            return description
        }
        if type(of: error) is NSError.Type { return error.localizedDescription }
        return String(describing: error)
    }
}
