/// A declarative description of one command: its name, help texts, arguments, options and subcommands.
///
///     let search = Command(
///         name: "search", abstract: "Find components by top token.",
///         arguments: [Argument("query", help: "Text to look for.")],
///         options: [
///             .option("db", valueName: "path", default: "qkcat.db", help: "The catalog."),
///             .option("layers", help: "Layers such as 0,5-7."),
///             .flag("json", help: "Print JSON."),
///         ],
///         run: { invocation in
///             let layers = try invocation.intRanges("layers")
///             ...
///         })
///     let root = Command(name: "qkcat", abstract: "…", version: "0.1.0", subcommands: [search])
///     root.main()   // in the executable; tests call root.main(arguments:…, stdout:, stderr:)
///
/// A command either runs (it has `run`) or groups subcommands (it has `subcommands`), or both. The root
/// command's `version` enables `--version`.
public struct Command: Sendable {
    public var name: String
    /// One line shown after `OVERVIEW:` and in the parent's `SUBCOMMANDS:` list.
    public var abstract: String
    /// Free text shown after the overview, wrapped to the help width; blank lines separate paragraphs.
    public var discussion: String?
    public var arguments: [Argument]
    /// Value options and flags, in the order help and usage list them.
    public var options: [Option]
    public var subcommands: [Command]
    /// Shown by `--version` on the root command.
    public var version: String?
    public var run: (@Sendable (Invocation) throws -> Void)?

    public init(
        name: String,
        abstract: String,
        discussion: String? = nil,
        version: String? = nil,
        arguments: [Argument] = [],
        options: [Option] = [],
        subcommands: [Command] = [],
        run: (@Sendable (Invocation) throws -> Void)? = nil
    ) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.version = version
        self.arguments = arguments
        self.options = options
        self.subcommands = subcommands
        self.run = run
        Command.checkDeclaration(self)
    }

    /// The direct subcommand called `name`, if any.
    public func subcommand(named name: String) -> Command? {
        subcommands.first { $0.name == name }
    }

    func option(long name: String) -> Option? { options.first { $0.name == name } }
    func option(short letter: Character) -> Option? { options.first { $0.short == letter } }
    func argument(named name: String) -> Argument? { arguments.first { $0.name == name } }

    /// Declaration mistakes are programmer errors, caught the first time the command is built.
    private static func checkDeclaration(_ command: Command) {
        var names = Set<String>()
        for argument in command.arguments {
            precondition(names.insert(argument.name).inserted, "\(command.name): duplicate name '\(argument.name)'")
        }
        var shorts = Set<Character>()
        for option in command.options {
            precondition(!option.name.isEmpty && !option.name.hasPrefix("-"), "\(command.name): bad option name '\(option.name)'")
            precondition(names.insert(option.name).inserted, "\(command.name): duplicate name '\(option.name)'")
            precondition(!["help", "version"].contains(option.name), "\(command.name): '--\(option.name)' is built in")
            if let short = option.short {
                precondition(short != "h", "\(command.name): '-h' is built in")
                precondition(shorts.insert(short).inserted, "\(command.name): duplicate short option '-\(short)'")
            }
        }
        for (index, argument) in command.arguments.enumerated() {
            let isLast = index == command.arguments.count - 1
            precondition(!argument.isRepeating || isLast, "\(command.name): only the last argument may repeat")
            if index > 0 {
                let previous = command.arguments[index - 1]
                precondition(!previous.isOptional || argument.isOptional, "\(command.name): a required argument follows an optional one")
            }
        }
        var subcommandNames = Set<String>()
        for subcommand in command.subcommands {
            precondition(subcommand.name != "help", "\(command.name): 'help' is built in")
            precondition(subcommandNames.insert(subcommand.name).inserted, "\(command.name): duplicate subcommand '\(subcommand.name)'")
        }
        precondition(command.arguments.isEmpty || command.subcommands.isEmpty, "\(command.name): positional arguments and subcommands together are ambiguous")
    }
}

/// A positional argument.
public struct Argument: Sendable {
    public var name: String
    public var help: String
    public var isOptional: Bool
    /// Takes every remaining positional value (only the last argument may repeat).
    public var isRepeating: Bool

    public init(_ name: String, optional: Bool = false, repeating: Bool = false, help: String) {
        self.name = name
        self.help = help
        self.isOptional = optional
        self.isRepeating = repeating
    }

    /// How usage lines and error messages name it: `<query>`.
    public var label: String { "<\(name)>" }
}

/// A named option: either one taking a value (`--model <model>`) or a flag (`--json`).
public struct Option: Sendable {
    public enum Kind: Sendable, Equatable {
        case value(valueName: String, defaultValue: String?, isRequired: Bool, isRepeatable: Bool, allowedValues: [String]?)
        case flag
    }

    /// The long name without dashes: `model` for `--model`.
    public var name: String
    public var short: Character?
    public var help: String
    public var kind: Kind

    /// An option taking a value: `--name value`, `--name=value` or `-n value`.
    ///
    /// - Parameters:
    ///   - valueName: shown as `<valueName>`; the option's name by default.
    ///   - default: used when the option is absent, and shown in help.
    ///   - required: absence is a usage error.
    ///   - repeatable: may be given several times (read with `strings`, `list` or `intRanges`); otherwise twice is an error.
    ///   - values: the only accepted values, checked while parsing and listed in help.
    public static func option(
        _ name: String,
        short: Character? = nil,
        valueName: String? = nil,
        default defaultValue: String? = nil,
        required: Bool = false,
        repeatable: Bool = false,
        values: [String]? = nil,
        help: String
    ) -> Option {
        precondition(!(required && defaultValue != nil), "--\(name): a required option cannot have a default")
        return Option(
            name: name, short: short, help: help,
            kind: .value(valueName: valueName ?? name, defaultValue: defaultValue, isRequired: required,
                         isRepeatable: repeatable, allowedValues: values))
    }

    /// A flag: `--json`, true when present.
    public static func flag(_ name: String, short: Character? = nil, help: String) -> Option {
        Option(name: name, short: short, help: help, kind: .flag)
    }

    public var isFlag: Bool { kind == .flag }

    var valueName: String? {
        if case .value(let valueName, _, _, _, _) = kind { return valueName }
        return nil
    }

    var defaultValue: String? {
        if case .value(_, let defaultValue, _, _, _) = kind { return defaultValue }
        return nil
    }

    var isRequired: Bool {
        if case .value(_, _, let isRequired, _, _) = kind { return isRequired }
        return false
    }

    var isRepeatable: Bool {
        if case .value(_, _, _, let isRepeatable, _) = kind { return isRepeatable }
        return false
    }

    var allowedValues: [String]? {
        if case .value(_, _, _, _, let allowedValues) = kind { return allowedValues }
        return nil
    }

    /// How usage lines and error messages name it: `--model <model>` or `--json`.
    public var label: String {
        if let valueName { return "--\(name) <\(valueName)>" }
        return "--\(name)"
    }
}
