/// A plain text table: a header row and rows, columns as wide as their widest cell, two spaces apart.
///
///     LAYER  HEAD  FEATURE   RANK
///         3     5  category     2
public struct Table: Sendable {
    public enum Alignment: Sendable {
        case left, right
    }

    public struct Column: Sendable {
        public var header: String
        public var alignment: Alignment
        /// Cells wider than this are cut with `…`.
        public var maximumWidth: Int?

        public init(_ header: String, alignment: Alignment = .left, maximumWidth: Int? = nil) {
            self.header = header
            self.alignment = alignment
            self.maximumWidth = maximumWidth
        }
    }

    public var columns: [Column]
    public private(set) var rows: [[String]] = []
    public var separator = "  "

    public init(columns: [Column]) {
        self.columns = columns
    }

    /// Adds a row; missing trailing cells are empty.
    public mutating func addRow(_ cells: [String]) {
        precondition(cells.count <= columns.count, "a row has \(cells.count) cells for \(columns.count) columns")
        rows.append(cells + Array(repeating: "", count: columns.count - cells.count))
    }

    /// The table as lines joined by newlines, with a final newline; the header is bold when `style` allows.
    /// Trailing spaces are trimmed.
    public func render(style: Style = .plain) -> String {
        let cut = rows.map { row in
            zip(row, columns).map { cell, column in
                column.maximumWidth.map { TextWidth.truncate(cell, to: $0) } ?? cell
            }
        }
        var widths = columns.map { TextWidth.of($0.header) }
        for row in cut {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], TextWidth.of(cell)) }
        }
        func line(_ cells: [String], header: Bool) -> String {
            let padded = cells.enumerated().map { index, cell in
                TextWidth.pad(header ? style.bold(cell) : cell, to: widths[index], alignment: columns[index].alignment)
            }
            return trimTrailingSpaces(padded.joined(separator: separator))
        }
        var lines = [line(columns.map(\.header), header: true)]
        lines += cut.map { line($0, header: false) }
        return lines.joined(separator: "\n") + "\n"
    }
}

func trimTrailingSpaces(_ text: String) -> String {
    var result = Substring(text)
    while result.last == " " { result.removeLast() }
    return String(result)
}
