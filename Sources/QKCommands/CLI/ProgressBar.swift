#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar redrawn in place with `\r` on standard error:
///
///     [#########.....................] 12/32 layers  3.4 layers/s  ETA 6s
///
/// Redraws are throttled to `minimumInterval` seconds; `finish()` draws the final state and a newline.
/// When disabled (standard error is not a terminal) every call is a silent no-op. Safe to use from
/// several threads.
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let unit: String
    private let output: TextOutput
    private let isEnabled: Bool
    private let width: Int
    private let minimumInterval: Double
    private let clock: @Sendable () -> Double

    private let lock = Lock()
    private var completed = 0
    private var startTime: Double?
    private var lastDrawTime: Double?
    private var lastDrawnCompleted: Int?
    private var lastLineWidth = 0
    private var isFinished = false

    /// - Parameters:
    ///   - enabled: draw at all; pass `Terminal.allowsProgress`.
    ///   - clock: seconds from any fixed origin; the monotonic clock by default, replaceable in tests.
    public init(
        total: Int,
        unit: String,
        output: TextOutput,
        enabled: Bool,
        width: Int = 30,
        minimumInterval: Double = 0.1,
        clock: @escaping @Sendable () -> Double = { ProgressBar.monotonicSeconds() }
    ) {
        self.total = max(total, 0)
        self.unit = unit
        self.output = output
        self.isEnabled = enabled
        self.width = width
        self.minimumInterval = minimumInterval
        self.clock = clock
        if enabled { startTime = clock() }
    }

    /// Adds `count` finished units.
    public func advance(by count: Int = 1) {
        guard isEnabled else { return }
        lock.withLock {
            completed += count
            drawIfDue()
        }
    }

    /// Sets the number of finished units.
    public func update(completed value: Int) {
        guard isEnabled else { return }
        lock.withLock {
            completed = value
            drawIfDue()
        }
    }

    /// Draws the final state and ends the line; later calls do nothing.
    public func finish() {
        guard isEnabled else { return }
        lock.withLock {
            guard !isFinished else { return }
            isFinished = true
            if lastDrawnCompleted != completed { draw(now: clock()) }
            output.write("\n")
            output.flush()
        }
    }

    private func drawIfDue() {
        guard !isFinished else { return }
        let now = clock()
        if let lastDrawTime, now - lastDrawTime < minimumInterval, completed < total { return }
        draw(now: now)
    }

    private func draw(now: Double) {
        lastDrawTime = now
        lastDrawnCompleted = completed
        let line = Self.render(
            completed: completed, total: total, unit: unit, width: width, elapsed: now - (startTime ?? now))
        // Spaces wipe what a longer previous line left behind.
        let padding = String(repeating: " ", count: max(0, lastLineWidth - line.count))
        lastLineWidth = line.count
        output.write("\r" + line + padding)
        output.flush()
    }

    /// The bar's text for a state, without the carriage return.
    static func render(completed: Int, total: Int, unit: String, width: Int, elapsed: Double) -> String {
        let shown = min(max(completed, 0), total)
        let fraction = total > 0 ? Double(shown) / Double(total) : 1
        let filled = Int((fraction * Double(width)).rounded(.down))
        var line = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        line += " \(shown)/\(total) \(unit)"
        if elapsed > 0, shown > 0 {
            let rate = Double(shown) / elapsed
            line += "  \(formatRate(rate)) \(unit)/s"
            if shown < total { line += "  ETA \(formatDuration(Double(total - shown) / rate))" }
        }
        return line
    }

    static func formatRate(_ rate: Double) -> String {
        if rate >= 100 { return String(Int(rate.rounded())) }
        let tenths = Int((rate * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// `6s`, `2m05s`, `1h02m`.
    static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m" + twoDigits(whole % 60) + "s" }
        return "\(whole / 3600)h" + twoDigits(whole % 3600 / 60) + "m"
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// Seconds on the monotonic clock.
    public static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
