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
                try replaceEntries(of: destination, with: staging)
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

    /// Replaces what an earlier report wrote in `destination` by the entries of `staging`; anything else in the
    /// folder stays. The old entries are renamed aside (inside `destination`, so on its file system) and deleted
    /// only once every new one is in place: if a move fails, the moves made are undone and the folder is as it was.
    /// - Parameter move: renames an item (a parameter so that a test can make one fail).
    static func replaceEntries(of destination: URL, with staging: URL,
                               move: (URL, URL) throws -> Void = FileManager.default.moveItem) throws {
        let fileManager = FileManager.default
        let aside = destination.appendingPathComponent(".qkcat-report-old-\(ProcessInfo.processInfo.processIdentifier)")
        try? fileManager.removeItem(at: aside)
        try fileManager.createDirectory(at: aside, withIntermediateDirectories: false)
        var setAside: [String] = [], movedIn: [String] = []
        do {
            for name in try fileManager.contentsOfDirectory(atPath: staging.path) {
                let target = destination.appendingPathComponent(name)
                if (try? fileManager.attributesOfItem(atPath: target.path)) != nil {
                    try move(target, aside.appendingPathComponent(name))
                    setAside.append(name)
                }
                try move(staging.appendingPathComponent(name), target)
                movedIn.append(name)
            }
        } catch {
            for name in movedIn.reversed() {
                try? fileManager.moveItem(at: destination.appendingPathComponent(name), to: staging.appendingPathComponent(name))
            }
            for name in setAside.reversed() {
                try? fileManager.moveItem(at: aside.appendingPathComponent(name), to: destination.appendingPathComponent(name))
            }
            try? fileManager.removeItem(at: aside)
            throw error
        }
        try fileManager.removeItem(at: aside)
    }
}
