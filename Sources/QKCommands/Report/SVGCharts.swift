import Foundation

/// Inline SVG charts: heatmaps, spectra and small line charts. Colours come from classes the stylesheet defines
/// (`q0`…`q9` sequential, `n1`…`n5` / `p1`…`p5` diverging), so a chart's markup stays small and its colours live in
/// one place.
enum SVGCharts {
    static let bins = 10

    /// A number in a chart: three decimals below 10, one below 100, none above.
    static func number(_ x: Double) -> String {
        guard x.isFinite else { return "–" }
        let magnitude = abs(x)
        return fixed(x, digits: magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 3)
    }

    /// `x` with `digits` decimals (as `%.Nf`, written by hand: Foundation's formatter dominated a report's time).
    static func fixed(_ x: Double, digits: Int) -> String {
        guard x.isFinite else { return "–" }
        var scale: Int64 = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(x) * Double(scale)).rounded()
        guard scaled < 9e15 else { return String(format: "%.\(digits)f", x) }
        return decimal(Int64(scaled), digits: digits, negative: x < 0 && scaled > 0)
    }

    /// `units` / 10^`digits` written out with `digits` decimals. Digits go from the right into a buffer on the stack
    /// (fraction, point, whole part, sign): most numbers become small strings, so nothing is allocated.
    private static func decimal(_ units: Int64, digits: Int, negative: Bool) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buffer in
            var units = units
            var index = buffer.count
            for _ in 0..<digits {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(units % 10)
                units /= 10
            }
            if digits > 0 {
                index -= 1
                buffer[index] = UInt8(ascii: ".")
            }
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(units % 10)
                units /= 10
            } while units > 0
            if negative {
                index -= 1
                buffer[index] = UInt8(ascii: "-")
            }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[index...]), as: UTF8.self)
        }
    }

    /// A coordinate: at most one decimal.
    static func coordinate(_ x: Double) -> String {
        let tenths = Int64((x * 10).rounded())
        let magnitude = tenths.magnitude
        return magnitude % 10 == 0
            ? decimal(Int64(magnitude / 10), digits: 0, negative: tenths < 0)
            : decimal(Int64(magnitude), digits: 1, negative: tenths < 0)
    }

    // MARK: Scales

    /// Maps values onto `bins` colour classes: linear from zero, or logarithmic when the values span more than
    /// a factor of 30 (σ of different features and heads easily spans three decades).
    struct Scale {
        var lower: Double
        var upper: Double
        var logarithmic: Bool

        init(values: [Double], fromZero: Bool = true, fixed: ClosedRange<Double>? = nil) {
            if let fixed {
                (lower, upper, logarithmic) = (fixed.lowerBound, fixed.upperBound, false)
                return
            }
            let finite = values.filter { $0.isFinite }
            let maxValue = finite.max() ?? 1
            let positive = finite.filter { $0 > 0 }
            let minPositive = positive.min() ?? 0
            if minPositive > 0, maxValue / minPositive > 30 {
                (lower, upper, logarithmic) = (minPositive, maxValue, true)
            } else {
                (lower, upper, logarithmic) = (fromZero ? 0 : (finite.min() ?? 0), maxValue, false)
            }
            if upper <= lower { upper = lower + 1 }
        }

        /// Where `value` falls, in [0, 1].
        func fraction(_ value: Double) -> Double {
            let t = logarithmic ? (log(max(value, lower)) - log(lower)) / (log(upper) - log(lower))
                : (value - lower) / (upper - lower)
            return min(max(t.isFinite ? t : 0, 0), 1)
        }

        func bin(_ value: Double) -> Int { min(Int(fraction(value) * Double(SVGCharts.bins)), SVGCharts.bins - 1) }

        /// The value at fraction `t` of the scale.
        func value(at t: Double) -> Double {
            logarithmic ? exp(log(lower) + t * (log(upper) - log(lower))) : lower + t * (upper - lower)
        }
    }

    // MARK: Heatmap

    /// One cell of a layers × heads map: the colour class per metric, a tooltip and an optional link.
    struct Cell {
        var layer: Int
        var head: Int
        /// One colour bin per metric, in the order of the map's metrics; nil: no value.
        var bins: [Int?]
        var tooltip: String
        var href: String?
    }

    /// A layers (rows) × heads (columns) grid. Each cell carries one class per metric (`m0q3 m1q7 …`) and the
    /// stylesheet colours the metric that the radio buttons before the map select, so switching the colouring needs
    /// no script. Cells link to their head pages; the `<title>` gives a tooltip.
    static func heatmap(layers: [Int], heads: Int, cells: [Cell], metricCount: Int) -> String {
        let size = heads > 24 ? 14.0 : 22.0, gap = 1.0
        let left = 34.0, top = 18.0
        let width = left + Double(heads) * (size + gap), height = top + Double(layers.count) * (size + gap)
        var svg = "<svg class=\"heatmap\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\" "
            + "width=\"\(coordinate(width))\" height=\"\(coordinate(height))\" role=\"img\">"
        // Head numbers along the top (every one when there is room, else every fourth), layers down the left.
        let every = heads > 16 ? 4 : 1
        for head in stride(from: 0, to: heads, by: every) {
            svg += "<text class=\"ax\" x=\"\(coordinate(left + Double(head) * (size + gap) + size / 2))\" y=\"12\">\(head)</text>"
        }
        let rowOf = Dictionary(layers.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var byRow: [Int: [Cell]] = [:]
        for cell in cells { if let row = rowOf[cell.layer] { byRow[row, default: []].append(cell) } }
        for (row, layer) in layers.enumerated() {
            let y = top + Double(row) * (size + gap)
            svg += "<g transform=\"translate(0 \(coordinate(y)))\"><text class=\"ay\" x=\"\(coordinate(left - 4))\" y=\"\(coordinate(size / 2 + 4))\">L\(layer)</text>"
            for cell in (byRow[row] ?? []).sorted(by: { $0.head < $1.head }) {
                let classes = cell.bins.enumerated().map { metric, bin in
                    bin.map { "m\(metric)q\($0)" } ?? "m\(metric)na"
                }.joined(separator: " ")
                let rect = "<rect class=\"cell \(classes)\" x=\"\(coordinate(left + Double(cell.head) * (size + gap)))\" "
                    + "width=\"\(coordinate(size))\" height=\"\(coordinate(size))\"><title>\(HTML.escape(cell.tooltip))</title></rect>"
                svg += cell.href.map { "<a href=\"\(HTML.escape($0))\">\(rect)</a>" } ?? rect
            }
            svg += "</g>"
        }
        return svg + "</svg>"
    }

    /// A colour legend for one metric: the bins as swatches between the scale's ends.
    static func legend(_ scale: Scale, title: String, metric: Int, integer: Bool = false) -> String {
        func label(_ x: Double) -> String { integer ? String(Int(x.rounded())) : number(x) }
        var html = "<div class=\"legend lg\(metric)\"><span class=\"lt\">\(HTML.escape(title))</span> "
        html += "<span class=\"lv\">\(label(scale.lower))</span><span class=\"swatches\">"
        for bin in 0..<bins { html += "<i class=\"m\(metric)q\(bin)\"></i>" }
        html += "</span><span class=\"lv\">\(label(scale.upper))</span>"
        if scale.logarithmic { html += " <span class=\"lnote\">log scale</span>" }
        html += " <span class=\"lnote\"><i class=\"m\(metric)na\"></i> none</span></div>"
        return html
    }

    // MARK: Spectrum

    /// The singular values as bars, the first `rank` (holding `energy` of Σσ²) coloured, a dashed line after them.
    static func spectrum(_ values: [Double], rank: Int, energy: Double) -> String {
        let count = max(values.count, 1)
        let plotWidth = Double(min(max(count * 12, 240), 640)), plotHeight = 120.0
        let left = 40.0, top = 8.0, bottom = 22.0
        let barSlot = plotWidth / Double(count), barWidth = max(barSlot - (barSlot > 4 ? 2 : 0.5), 0.5)
        let maximum = max(values.first ?? 0, values.max() ?? 0, .leastNormalMagnitude)
        let total = values.reduce(0) { $0 + $1 * $1 }
        let width = left + plotWidth + 8, height = top + plotHeight + bottom
        var svg = "<svg class=\"spectrum\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\" width=\"\(coordinate(width))\" "
            + "height=\"\(coordinate(height))\" role=\"img\" aria-label=\"singular values\">"
        svg += "<line class=\"axis\" x1=\"\(coordinate(left))\" y1=\"\(coordinate(top + plotHeight))\" "
            + "x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(top + plotHeight))\"/>"
        svg += "<text class=\"ay\" x=\"\(coordinate(left - 4))\" y=\"\(coordinate(top + 8))\">\(number(maximum))</text>"
        svg += "<text class=\"ay\" x=\"\(coordinate(left - 4))\" y=\"\(coordinate(top + plotHeight))\">0</text>"
        var cumulative = 0.0
        var restPath = ""
        for (i, sigma) in values.enumerated() {
            cumulative += sigma * sigma
            let h = max(plotHeight * sigma / maximum, sigma > 0 ? 0.8 : 0)
            let x = left + Double(i) * barSlot
            let share = total > 0 ? 100 * sigma * sigma / total : 0
            if i < rank {
                svg += "<rect class=\"kept\" x=\"\(coordinate(x))\" y=\"\(coordinate(top + plotHeight - h))\" "
                    + "width=\"\(coordinate(barWidth))\" height=\"\(coordinate(h))\"><title>σ\(i + 1) = \(number(sigma)) · "
                    + "\(fixed(share, digits: 1))% · Σ \(fixed(total > 0 ? 100 * cumulative / total : 0, digits: 1))%</title></rect>"
            } else if h > 0 {
                // The tail beyond the rank: one path, no tooltips (it holds the last 1% of Σσ²).
                restPath += "M\(coordinate(x)) \(coordinate(top + plotHeight))v-\(coordinate(h))h\(coordinate(barWidth))v\(coordinate(h))z"
            }
        }
        if !restPath.isEmpty { svg += "<path class=\"rest\" d=\"\(restPath)\"><title>σ\(rank + 1)…σ\(count): the rest</title></path>" }
        let x = left + Double(min(rank, count)) * barSlot - (barSlot > 4 ? 1 : 0)
        svg += "<line class=\"rankline\" x1=\"\(coordinate(x))\" y1=\"\(coordinate(top))\" x2=\"\(coordinate(x))\" y2=\"\(coordinate(top + plotHeight))\"/>"
        let anchor = x > left + plotWidth * 0.7 ? "end" : "start"
        svg += "<text class=\"rl\" text-anchor=\"\(anchor)\" x=\"\(coordinate(x + (anchor == "end" ? -4 : 4)))\" y=\"\(coordinate(top + 12))\">"
            + "rank \(rank) · \(Int((energy * 100).rounded()))% of Σσ²</text>"
        svg += "<text class=\"ax\" x=\"\(coordinate(left + barSlot / 2))\" y=\"\(coordinate(height - 6))\">σ1</text>"
        if count > 1 {
            svg += "<text class=\"ax\" x=\"\(coordinate(left + plotWidth - barSlot / 2))\" y=\"\(coordinate(height - 6))\">σ\(count)</text>"
        }
        return svg + "</svg>"
    }

    // MARK: Line chart

    /// A small line chart of one quantity over named points (checkpoints); nil values leave gaps.
    static func lineChart(title: String, labels: [String], values: [Double?], range: ClosedRange<Double>? = nil,
                          integer: Bool = false) -> String {
        let plotWidth = max(Double(max(labels.count - 1, 1)) * 56, 130), plotHeight = 60.0
        let left = 46.0, top = 22.0, bottom = 30.0
        let width = left + plotWidth + 30, height = top + plotHeight + bottom
        let finite = values.compactMap { $0 }.filter(\.isFinite)
        let upper = range?.upperBound ?? max(finite.max() ?? 1, .leastNormalMagnitude)
        let lower = range?.lowerBound ?? 0
        func y(_ v: Double) -> Double { top + plotHeight - plotHeight * (v - lower) / max(upper - lower, .leastNormalMagnitude) }
        func x(_ i: Int) -> Double { left + (labels.count > 1 ? Double(i) * plotWidth / Double(labels.count - 1) : plotWidth / 2) }
        func label(_ v: Double) -> String { integer ? String(Int(v.rounded())) : number(v) }
        var svg = "<svg class=\"line\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\" width=\"\(coordinate(width))\" "
            + "height=\"\(coordinate(height))\" role=\"img\"><text class=\"ct\" x=\"4\" y=\"12\">\(HTML.escape(title))</text>"
        svg += "<line class=\"axis\" x1=\"\(coordinate(left))\" y1=\"\(coordinate(y(lower)))\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(y(lower)))\"/>"
        svg += "<text class=\"ay\" x=\"\(coordinate(left - 4))\" y=\"\(coordinate(y(upper) + 4))\">\(label(upper))</text>"
        svg += "<text class=\"ay\" x=\"\(coordinate(left - 4))\" y=\"\(coordinate(y(lower) + 4))\">\(label(lower))</text>"
        // Runs of consecutive present values are drawn as separate polylines.
        var run: [String] = []
        func flush() {
            if run.count > 1 { svg += "<polyline class=\"series\" points=\"\(run.joined(separator: " "))\"/>" }
            run = []
        }
        for (i, value) in values.enumerated() {
            guard let value, value.isFinite else { flush(); continue }
            run.append("\(coordinate(x(i))),\(coordinate(y(value)))")
        }
        flush()
        for (i, value) in values.enumerated() {
            if let value, value.isFinite {
                svg += "<circle class=\"pt\" cx=\"\(coordinate(x(i)))\" cy=\"\(coordinate(y(value)))\" r=\"3\">"
                    + "<title>\(HTML.escape(labels[i])): \(label(value))</title></circle>"
            }
            svg += "<text class=\"ax\" x=\"\(coordinate(x(i)))\" y=\"\(coordinate(height - 10))\">\(HTML.escape(String(labels[i].prefix(10))))</text>"
        }
        return svg + "</svg>"
    }
}
