/// The values parsed for one command, read by name with typed accessors.
///
/// Names are the declared option names (without dashes) and argument names. Reading a name the command
/// did not declare is a programmer error. Accessors that convert throw `CommandError` usage errors
/// naming the option, so a bad value exits with 64 and the command's usage.
public struct ParsedValues: Sendable {
    let command: Command
    /// Values given on the command line, in order, keyed by option or argument name.
    private(set) var given: [String: [String]] = [:]
    /// How often each flag was given.
    private(set) var flagCounts: [String: Int] = [:]

    init(command: Command) {
        self.command = command
    }

    mutating func append(_ value: String, to name: String) { given[name, default: []].append(value) }
    mutating func raise(flag name: String) { flagCounts[name, default: 0] += 1 }

    // MARK: Accessors

    /// Whether the option, flag or argument was given on the command line (defaults do not count).
    public func has(_ name: String) -> Bool {
        _ = label(of: name)
        return given[name] != nil || flagCounts[name] != nil
    }

    /// Whether the flag was given.
    public func flag(_ name: String) -> Bool { flagCount(name) > 0 }

    /// How many times the flag was given (`-v -v`).
    public func flagCount(_ name: String) -> Int {
        guard let option = command.option(long: name), option.isFlag else {
            preconditionFailure("'\(command.name)' declares no flag '\(name)'")
        }
        return flagCounts[name] ?? 0
    }

    /// Every value given (repeatable options, repeating arguments), or the default when none was given.
    public func strings(_ name: String) -> [String] {
        let label = label(of: name)
        precondition(!label.isFlag, "'\(name)' is a flag: read it with flag(_:)")
        if let values = given[name] { return values }
        return command.option(long: name)?.defaultValue.map { [$0] } ?? []
    }

    /// The value given (the last one if repeated) or the default; nil when neither exists.
    public func optionalString(_ name: String) -> String? { strings(name).last }

    /// The value given or the default; a usage error when neither exists.
    public func string(_ name: String) throws -> String {
        guard let value = optionalString(name) else {
            let label = label(of: name)
            throw label.isArgument ? CommandError.missingArgument(label.text) : CommandError.missingValue(option: label.text)
        }
        return value
    }

    public func int(_ name: String) throws -> Int { try Self.parseInt(try string(name), label: label(of: name).text) }

    public func optionalInt(_ name: String) throws -> Int? {
        try optionalString(name).map { try Self.parseInt($0, label: label(of: name).text) }
    }

    public func double(_ name: String) throws -> Double { try Self.parseDouble(try string(name), label: label(of: name).text) }

    public func optionalDouble(_ name: String) throws -> Double? {
        try optionalString(name).map { try Self.parseDouble($0, label: label(of: name).text) }
    }

    /// Every value, each split at commas, trimmed, empty items dropped: `--features a,b --features c` → `[a, b, c]`.
    public func list(_ name: String) -> [String] {
        strings(name).flatMap { value in
            value.split(separator: ",").map { String($0.trimming(" \t")) }.filter { !$0.isEmpty }
        }
    }

    /// Integers and inclusive ranges, sorted without duplicates: `0,5-7` → `[0, 5, 6, 7]`.
    public func intRanges(_ name: String) throws -> [Int] {
        let label = label(of: name).text
        var result = Set<Int>()
        var expanded = 0
        for value in strings(name) {
            let values = try Self.parseIntRanges(value, label: label)
            expanded += values.count
            guard expanded <= Self.maximumValueCount else { throw Self.tooManyValues(value, label: label) }
            result.formUnion(values)
        }
        return result.sorted()
    }

    // MARK: Conversion

    /// Ranges longer than this are a typing mistake rather than a request.
    static let maximumRangeLength = 1_000_000
    /// All the ranges of one option together expand to at most this many values (layer and head numbers are far
    /// fewer), so that a list of long ranges cannot take seconds and gigabytes to expand.
    static let maximumValueCount = 100_000

    static func tooManyValues(_ text: String, label: String) -> CommandError {
        CommandError.invalidValue(text, for: label, reason: "the ranges expand to more than \(maximumValueCount) values")
    }

    static func parseInt(_ text: String, label: String) throws -> Int {
        guard let value = Int(text.trimming(" ")) else {
            throw CommandError.invalidValue(text, for: label, reason: "expected an integer")
        }
        return value
    }

    static func parseDouble(_ text: String, label: String) throws -> Double {
        guard let value = Double(text.trimming(" ")), value.isFinite else {
            throw CommandError.invalidValue(text, for: label, reason: "expected a finite number")
        }
        return value
    }

    static func parseIntRanges(_ text: String, label: String) throws -> [Int] {
        let invalid = { (reason: String) in CommandError.invalidValue(text, for: label, reason: reason) }
        let expected = "expected integers and ranges such as 0,5-7"
        var values: [Int] = []
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimming(" ") }
        for item in items {
            // A leading minus is a negative number, not a range.
            let body = item.hasPrefix("-") ? item.dropFirst() : Substring(item)
            if let dash = body.firstIndex(of: "-") {
                let lowerText = item[item.startIndex..<dash]
                let upperText = item[item.index(after: dash)...]
                guard let lower = Int(lowerText.trimming(" ")),
                      let upper = Int(upperText.trimming(" ")) else { throw invalid(expected) }
                guard lower <= upper else { throw invalid("the range \(lower)-\(upper) is reversed") }
                guard upper - lower < maximumRangeLength else { throw invalid("the range \(lower)-\(upper) is too long") }
                guard values.count + (upper - lower) < maximumValueCount else { throw tooManyValues(text, label: label) }
                values.append(contentsOf: lower...upper)
            } else {
                guard let value = Int(item) else { throw invalid(expected) }
                values.append(value)
            }
        }
        return values
    }

    // MARK: Names

    struct Label {
        var text: String
        var isArgument: Bool
        var isFlag: Bool
    }

    func label(of name: String) -> Label {
        if let option = command.option(long: name) {
            return Label(text: option.label, isArgument: false, isFlag: option.isFlag)
        }
        if let argument = command.argument(named: name) {
            return Label(text: argument.label, isArgument: true, isFlag: false)
        }
        preconditionFailure("'\(command.name)' declares no option or argument '\(name)'")
    }
}

extension String {
    func trimming(_ characters: String) -> String {
        String(self[...].trimming(characters))
    }
}

extension Substring {
    func trimming(_ characters: String) -> Substring {
        var slice = self
        while let first = slice.first, characters.contains(first) { slice.removeFirst() }
        while let last = slice.last, characters.contains(last) { slice.removeLast() }
        return slice
    }
}
