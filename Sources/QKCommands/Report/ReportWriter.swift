import Foundation
import QKStore

/// Builds a report in a staging folder beside the destination and moves it into place only when every page is
/// written, so a failure leaves the destination as it was.
enum ReportWriter {
    /// - Parameter progressBar: given the number of pages, the bar to advance (or nil).
    static func write(catalog: Catalog, options: ReportOptions, to destination: URL,
                      progressBar: (Int) -> ProgressBar?) throws -> ReportSummary {
        let fileManager = FileManager.default
        let parent = destination.deletingLastPathComponent()
        guard fileManager.fileExists(atPath: parent.path) else {
            throw CommandError.failure("cannot write the report: the folder \(parent.path) does not exist")
        }
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).qkcat-report-\(ProcessInfo.processInfo.processIdentifier)")
        let builder = ReportBuilder(catalog: catalog, options: options, directory: staging)
        let plans = try builder.plan()
        try? fileManager.removeItem(at: staging)
        do {
            try fileManager.createDirectory(at: staging, withIntermediateDirectories: false)
        } catch {
            throw CommandError.failure("cannot write the report into \(parent.path): \(error.localizedDescription)")
        }
        do {
            let bar = progressBar(ReportBuilder.pageCount(plans))
            try builder.build(plans) { bar?.update(completed: $0) }
            bar?.finish()
            if fileManager.fileExists(atPath: destination.path) {
                // Replace what an earlier report wrote, entry by entry; anything else in the folder stays.
                for name in try fileManager.contentsOfDirectory(atPath: staging.path) {
                    let target = destination.appendingPathComponent(name)
                    try? fileManager.removeItem(at: target)
                    try fileManager.moveItem(at: staging.appendingPathComponent(name), to: target)
                }
                try fileManager.removeItem(at: staging)
            } else {
                try fileManager.moveItem(at: staging, to: destination)
            }
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
        return builder.summary
    }
}
