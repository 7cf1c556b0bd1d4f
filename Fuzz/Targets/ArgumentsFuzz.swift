@testable import QKCommands

/// qkcat's argument parser over its real command tree: arguments are the input split at NUL bytes. Every
/// parse ends in a command to run, a help or version request, or a usage error; the parsed values then read
/// through every typed accessor the commands use, and help and usage texts render.
let root = QKCat.root

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArguments(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let arguments = bytes.split(separator: 0, omittingEmptySubsequences: false).prefix(64)
        .map { String(decoding: $0, as: UTF8.self) }
    switch Parser(root: root).parse(arguments) {
    case let .failure(failure):
        require(!failure.error.description.isEmpty && failure.error.isUsageError, "a parse failure that is no usage error")
        _ = HelpFormatter.usage(for: failure.command, path: failure.path, prefix: "Usage: ")
    case let .success(.help(command, path)):
        require(!HelpFormatter.help(for: command, path: path, root: root).isEmpty, "empty help")
    case .success(.version):
        break
    case let .success(.run(command, _, values)):
        for option in command.options {
            if option.isFlag {
                _ = values.flag(option.name)
                continue
            }
            _ = values.strings(option.name)
            _ = values.list(option.name)
            _ = try? values.optionalInt(option.name)
            _ = try? values.optionalDouble(option.name)
            do {
                _ = try values.intRanges(option.name)
            } catch let error as CommandError {
                require(error.isUsageError, "a range error that is no usage error")
            } catch {
                fatalError("intRanges threw \(error)")
            }
        }
        for argument in command.arguments { _ = values.strings(argument.name) }
    }
    return 0
}
