/// Help and usage text in swift-argument-parser's layout, wrapped to 80 columns.
enum HelpFormatter {
    static let width = 80
    /// Descriptions start in this column; longer labels put their description on the next line.
    static let descriptionColumn = 26

    static func help(for command: Command, path: [String], root: Command) -> String {
        var sections: [String] = []
        var overview = wrap("OVERVIEW: " + command.abstract, width: width)
        if let discussion = command.discussion, !discussion.isEmpty {
            overview += "\n\n" + wrap(discussion, width: width)
        }
        sections.append(overview)
        sections.append(usage(for: command, path: path, prefix: "USAGE: "))

        if !command.arguments.isEmpty {
            let rows = command.arguments.map { ($0.label, $0.help) }
            sections.append("ARGUMENTS:\n" + table(rows))
        }

        var optionRows = command.options.map { option -> (String, String) in
            let label = (option.short.map { "-\($0), " } ?? "") + option.label
            return (label, option.help + notes(for: option))
        }
        if path.count == 1, root.version != nil { optionRows.append(("--version", "Show the version.")) }
        optionRows.append(("-h, --help", "Show help information."))
        sections.append("OPTIONS:\n" + table(optionRows))

        if !command.subcommands.isEmpty {
            var rows = command.subcommands.map { ($0.name, $0.abstract) }
            if path.count == 1 { rows.append(("help", "Show subcommand help information.")) }
            let helpPath = ([path[0], "help"] + path.dropFirst()).joined(separator: " ")
            sections.append("SUBCOMMANDS:\n" + table(rows) + "\n\n  See '\(helpPath) <subcommand>' for detailed help.")
        }
        return sections.joined(separator: "\n\n") + "\n"
    }

    /// `(default: 20)`, `(values: a, b; default: a)` after an option's help.
    private static func notes(for option: Option) -> String {
        var parts: [String] = []
        if let allowed = option.allowedValues { parts.append("values: " + allowed.joined(separator: ", ")) }
        if let defaultValue = option.defaultValue { parts.append("default: " + defaultValue) }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")"
    }

    /// The usage line(s): `USAGE: qkcat search <query> [--model <model>] [--json]`, wrapped with
    /// continuation lines aligned after the command's name.
    static func usage(for command: Command, path: [String], prefix: String) -> String {
        let head = prefix + path.joined(separator: " ")
        var parts: [String] = []
        if !command.subcommands.isEmpty {
            parts.append("<subcommand>")
        } else {
            for argument in command.arguments {
                let text = argument.label + (argument.isRepeating ? " ..." : "")
                parts.append(argument.isOptional ? "[\(text)]" : text)
            }
            for option in command.options {
                let text = option.label + (option.isRepeatable ? " ..." : "")
                parts.append(option.isRequired ? text : "[\(text)]")
            }
        }
        let indent = String(repeating: " ", count: TextWidth.of(head) + 1)
        var lines: [String] = []
        var line = head
        for part in parts {
            if TextWidth.of(line) + 1 + TextWidth.of(part) > width, line != head, line != indent {
                lines.append(line)
                line = indent + part
            } else {
                line += (line == indent ? "" : " ") + part
            }
        }
        lines.append(line)
        return lines.joined(separator: "\n")
    }

    /// Two-column rows: labels indented by two, descriptions from `descriptionColumn`, wrapped.
    static func table(_ rows: [(String, String)]) -> String {
        let indent = String(repeating: " ", count: descriptionColumn)
        return rows.map { label, description in
            let start = "  " + label
            let wrapped = wrap(description, width: width - descriptionColumn).split(separator: "\n", omittingEmptySubsequences: false)
            var lines: [String] = []
            if TextWidth.of(start) + 2 <= descriptionColumn {
                lines.append(trimTrailingSpaces(TextWidth.pad(start, to: descriptionColumn) + (wrapped.first.map(String.init) ?? "")))
            } else {
                lines.append(start)
                if let first = wrapped.first, !first.isEmpty { lines.append(indent + first) }
            }
            for continuation in wrapped.dropFirst() {
                lines.append(continuation.isEmpty ? "" : indent + continuation)
            }
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Word-wraps each line of `text` to `width` columns; words longer than a line stay whole.
    static func wrap(_ text: String, width: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { paragraph -> String in
            var lines: [String] = []
            var line = ""
            for word in paragraph.split(separator: " ") {
                if line.isEmpty {
                    line = String(word)
                } else if TextWidth.of(line) + 1 + TextWidth.of(String(word)) <= width {
                    line += " " + word
                } else {
                    lines.append(line)
                    line = String(word)
                }
            }
            lines.append(line)
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}
