/// Proportional bars and sparklines drawn with text, for spectra, attributions and trajectories.
public enum TextBar {
    /// Left-to-right eighth blocks: index i is i/8 of a cell.
    static let eighths: [Character] = [" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"]
    static let sparkLevels: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let asciiSparkLevels: [Character] = ["_", ".", ",", "-", "~", "=", "*", "#"]

    /// A bar `fraction` (clamped to 0…1) of `width` cells long, in eighths of a cell with `unicode`,
    /// else in whole `#` cells. Not padded: its length varies.
    public static func bar(fraction: Double, width: Int, unicode: Bool = true) -> String {
        let clamped = fraction.isFinite ? min(max(fraction, 0), 1) : 0
        guard unicode else {
            return String(repeating: "#", count: Int((clamped * Double(width)).rounded()))
        }
        let eighthsTotal = Int((clamped * Double(width) * 8).rounded())
        var result = String(repeating: "█", count: eighthsTotal / 8)
        if eighthsTotal % 8 > 0 { result.append(eighths[eighthsTotal % 8]) }
        return result
    }

    /// A bar for `value` on a scale where `maximum` fills `width` cells.
    public static func bar(value: Double, maximum: Double, width: Int, unicode: Bool = true) -> String {
        bar(fraction: maximum > 0 ? value / maximum : 0, width: width, unicode: unicode)
    }

    /// A bar for a signed value around a centre mark, `halfWidth` whole cells each side, always
    /// `2 × halfWidth + 1` columns: negative values grow left, positive right (`   ██│████ `).
    public static func signedBar(value: Double, maximumMagnitude: Double, halfWidth: Int, unicode: Bool = true) -> String {
        let fraction = maximumMagnitude > 0 && value.isFinite ? min(abs(value) / maximumMagnitude, 1) : 0
        let cells = Int((fraction * Double(halfWidth)).rounded())
        let block = unicode ? "█" : (value < 0 ? "-" : "+")
        let centre = unicode ? "│" : "|"
        let filled = String(repeating: block, count: cells)
        let empty = String(repeating: " ", count: halfWidth - cells)
        let side = String(repeating: " ", count: halfWidth)
        return value < 0 ? empty + filled + centre + side : side + centre + filled + empty
    }
}

/// One character per value, ▁ (lowest) to █ (highest), scaled between the values' minimum and maximum
/// (or `range`); non-finite values are blanks; all-equal values sit in the middle.
public func sparkline(_ values: [Double], range: ClosedRange<Double>? = nil, unicode: Bool = true) -> String {
    let levels = unicode ? TextBar.sparkLevels : TextBar.asciiSparkLevels
    let finite = values.filter(\.isFinite)
    guard let low = range?.lowerBound ?? finite.min(), let high = range?.upperBound ?? finite.max() else {
        return String(repeating: " ", count: values.count)
    }
    return String(values.map { value -> Character in
        guard value.isFinite else { return " " }
        guard high > low else { return levels[levels.count / 2 - 1] }
        let position = (min(max(value, low), high) - low) / (high - low)
        return levels[Int((position * Double(levels.count - 1)).rounded())]
    })
}
