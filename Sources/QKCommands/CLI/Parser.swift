/// Turns command-line arguments into the command to run and its values.
struct Parser {
    enum Outcome {
        case run(Command, path: [String], ParsedValues)
        case help(Command, path: [String])
        case version(String)
    }

    /// A usage error together with the command whose usage explains it.
    struct Failure: Error {
        var error: CommandError
        var command: Command
        var path: [String]
    }

    let root: Command

    func parse(_ arguments: [String]) -> Result<Outcome, Failure> {
        var command = root
        var path = [root.name]
        var index = 0

        while index < arguments.count {
            if !command.subcommands.isEmpty, arguments[index] == "help" {
                return helpTopic(Array(arguments[(index + 1)...]), from: command, path: path)
            }
            guard let subcommand = command.subcommand(named: arguments[index]) else { break }
            command = subcommand
            path.append(subcommand.name)
            index += 1
        }

        let rest = Array(arguments[index...])
        let beforeDashDash = rest.prefix { $0 != "--" }
        if beforeDashDash.contains(where: { $0 == "-h" || $0 == "--help" }) {
            return .success(.help(command, path: path))
        }
        if path.count == 1, let version = root.version, beforeDashDash.contains("--version") {
            return .success(.version(version))
        }
        if !command.subcommands.isEmpty {
            if let first = rest.first, !first.hasPrefix("-") {
                let suggestion = Self.closest(to: first, among: command.subcommands.map(\.name) + ["help"])
                return .failure(Failure(error: .unknownSubcommand(first, suggestion: suggestion), command: command, path: path))
            }
            if command.run == nil {
                guard rest.isEmpty else {
                    return .failure(Failure(error: unknownOption(rest[0], in: command), command: command, path: path))
                }
                return .success(.help(command, path: path))
            }
        }
        do {
            let values = try parseValues(rest, for: command)
            return .success(.run(command, path: path, values))
        } catch {
            return .failure(Failure(error: error as? CommandError ?? .usage(String(describing: error)), command: command, path: path))
        }
    }

    /// `help`, `help sub`, `help sub subsub`: help for the named command.
    private func helpTopic(_ names: [String], from start: Command, path startPath: [String]) -> Result<Outcome, Failure> {
        var command = start
        var path = startPath
        for name in names where !name.hasPrefix("-") {
            guard let subcommand = command.subcommand(named: name) else {
                let suggestion = Self.closest(to: name, among: command.subcommands.map(\.name))
                return .failure(Failure(error: .unknownSubcommand(name, suggestion: suggestion), command: command, path: path))
            }
            command = subcommand
            path.append(name)
        }
        return .success(.help(command, path: path))
    }

    private func parseValues(_ tokens: [String], for command: Command) throws -> ParsedValues {
        var values = ParsedValues(command: command)
        var positional: [String] = []
        var index = 0
        var optionsEnded = false

        func store(_ value: String, for option: Option) throws {
            if let allowed = option.allowedValues, !allowed.contains(value) {
                throw CommandError.invalidValue(value, for: option.label, reason: "expected one of " + allowed.joined(separator: ", "))
            }
            if !option.isRepeatable, values.given[option.name] != nil {
                throw CommandError.duplicateOption(option.label)
            }
            values.append(value, to: option.name)
        }

        /// The token after an option as its value, unless it looks like another option.
        func nextValue(for option: Option) throws -> String {
            guard index + 1 < tokens.count, Self.canBeValue(tokens[index + 1]) else {
                throw CommandError.missingValue(option: option.label)
            }
            index += 1
            return tokens[index]
        }

        while index < tokens.count {
            let token = tokens[index]
            if optionsEnded || !Self.isOption(token) {
                positional.append(token)
            } else if token == "--" {
                optionsEnded = true
            } else if token.hasPrefix("--") {
                let body = token.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                let inlineValue = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
                guard let option = command.option(long: name) else { throw unknownOption("--" + name, in: command) }
                if option.isFlag {
                    guard inlineValue == nil else { throw CommandError.flagWithValue(option.label) }
                    values.raise(flag: option.name)
                } else {
                    try store(try inlineValue ?? nextValue(for: option), for: option)
                }
            } else {
                // Short options, possibly bundled: -j, -jv, -n 5, -n5, -jn 5.
                var letters = Substring(token.dropFirst())
                while let letter = letters.first {
                    letters = letters.dropFirst()
                    guard let option = command.option(short: letter) else { throw unknownOption("-\(letter)", in: command) }
                    if option.isFlag {
                        values.raise(flag: option.name)
                        continue
                    }
                    let attached = letters.hasPrefix("=") ? letters.dropFirst() : letters
                    try store(attached.isEmpty ? try nextValue(for: option) : String(attached), for: option)
                    break
                }
            }
            index += 1
        }

        var remaining = positional[...]
        for argument in command.arguments {
            if argument.isRepeating {
                for value in remaining { values.append(value, to: argument.name) }
                remaining = []
                if values.given[argument.name] == nil, !argument.isOptional { throw CommandError.missingArgument(argument.label) }
            } else if let value = remaining.popFirst() {
                values.append(value, to: argument.name)
            } else if !argument.isOptional {
                throw CommandError.missingArgument(argument.label)
            }
        }
        if let extra = remaining.first { throw CommandError.unexpectedArgument(extra) }
        for option in command.options where option.isRequired && values.given[option.name] == nil {
            throw CommandError.missingArgument(option.label)
        }
        return values
    }

    private func unknownOption(_ token: String, in command: Command) -> CommandError {
        let name = token.hasPrefix("--") ? String(token.prefix { $0 != "=" }) : token
        var candidates = command.options.map { "--" + $0.name } + ["--help"]
        if command.name == root.name, root.version != nil { candidates.append("--version") }
        let suggestion = name.hasPrefix("--") ? Self.closest(to: name, among: candidates) : nil
        return .unknownOption(name, suggestion: suggestion)
    }

    /// Dashed tokens are options, except a lone `-` (often "standard input") and negative numbers.
    static func isOption(_ token: String) -> Bool {
        token.hasPrefix("-") && token != "-" && Double(token) == nil
    }

    static func canBeValue(_ token: String) -> Bool { !isOption(token) }

    /// The candidate within edit distance 2 (or a third of the word) nearest to `word`, for "Did you mean".
    static func closest(to word: String, among candidates: [String]) -> String? {
        let limit = max(2, word.count / 3)
        let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= limit }
        return scored.min { $0.1 < $1.1 }?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }
}
