import Foundation

/// Every error the decomposition engine reports; messages name the file and the line, tensor or field.
public enum EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file could not be opened, mapped or read.
    case io(path: String, message: String)
    /// A file is not valid JSON (or a JSON Lines line is not).
    case invalidJSON(file: String, line: Int?, message: String)
    /// A file's content is unusable as a whole (wrong top-level type, no prompts, too short).
    case invalidContent(file: String, line: Int?, message: String)
    /// A field is missing, of the wrong type or out of range.
    case invalidField(file: String, line: Int?, field: String, message: String)
    /// The capture's format version is newer than this reader knows.
    case unsupportedVersion(file: String, found: Int, supported: Int)
    /// A tensor is missing, misshapen, of an unsupported dtype or outside its file.
    case invalidTensor(file: String, tensor: String, message: String)
    /// A tensor holds a NaN or an infinity.
    case nonFiniteValue(file: String, tensor: String, index: [Int])
    /// An option passed by the caller is out of range or names something absent.
    case invalidOption(name: String, message: String)

    public var description: String {
        func at(_ file: String, _ line: Int?) -> String { line.map { "\(file):\($0)" } ?? file }
        switch self {
        case let .io(path, message):
            return "\(path): \(message)"
        case let .invalidJSON(file, line, message):
            return "\(at(file, line)): invalid JSON: \(message)"
        case let .invalidContent(file, line, message):
            return "\(at(file, line)): \(message)"
        case let .invalidField(file, line, field, message):
            return "\(at(file, line)): field '\(field)': \(message)"
        case let .unsupportedVersion(file, found, supported):
            return "\(file): capture format version \(found) is newer than this qkcat reads (\(supported)); upgrade qkcat"
        case let .invalidTensor(file, tensor, message):
            return "\(file): tensor '\(tensor)': \(message)"
        case let .nonFiniteValue(file, tensor, index):
            return "\(file): tensor '\(tensor)': non-finite value at [\(index.map(String.init).joined(separator: ", "))]"
        case let .invalidOption(name, message):
            return "option '\(name)': \(message)"
        }
    }
}
