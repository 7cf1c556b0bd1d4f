/// The errors of the command layer: usage errors (exit 64) and command failures (exit 1).
///
/// Commands may throw any error; those that are not `CommandError` count as failures and print their
/// description. Add cases here for failures that belong to the commands themselves.
public enum CommandError: Error, Equatable, CustomStringConvertible, Sendable {
    // Usage errors, found while parsing or while reading values.
    case unknownOption(String, suggestion: String?)
    case unknownSubcommand(String, suggestion: String?)
    case missingValue(option: String)
    case missingArgument(String)
    case unexpectedArgument(String)
    case duplicateOption(String)
    case flagWithValue(String)
    case invalidValue(String, for: String, reason: String)
    /// A usage rule a command checks itself, such as two options that exclude each other.
    case usage(String)

    /// A runtime failure with a message (exit 1).
    case failure(String)
    /// Ends the command with this exit code and no message (for example 1 when a search finds nothing).
    case exit(Int32)

    public var isUsageError: Bool {
        switch self {
        case .failure, .exit: false
        default: true
        }
    }

    public var description: String {
        switch self {
        case .unknownOption(let option, let suggestion):
            "Unknown option '\(option)'" + Self.didYouMean(suggestion)
        case .unknownSubcommand(let name, let suggestion):
            "Unknown subcommand '\(name)'" + Self.didYouMean(suggestion)
        case .missingValue(let option):
            "Missing value for '\(option)'"
        case .missingArgument(let label):
            "Missing expected argument '\(label)'"
        case .unexpectedArgument(let value):
            "Unexpected argument '\(value)'"
        case .duplicateOption(let label):
            "Option '\(label)' may be given only once"
        case .flagWithValue(let flag):
            "The flag '\(flag)' does not take a value"
        case .invalidValue(let value, let label, let reason):
            "The value '\(value)' is invalid for '\(label)': \(reason)"
        case .usage(let message), .failure(let message):
            message
        case .exit(let code):
            "Exit code \(code)"
        }
    }

    private static func didYouMean(_ suggestion: String?) -> String {
        suggestion.map { ". Did you mean '\($0)'?" } ?? ""
    }
}
