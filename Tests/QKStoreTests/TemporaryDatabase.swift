import Foundation

/// A fresh directory for one test's database files, removed on deinit.
final class TemporaryDatabase {
    let directory: URL
    let path: String

    init(name: String = "catalog.sqlite") {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qkstore-tests-\(UUID().uuidString)", isDirectory: true)
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent(name).path
    }

    /// Another file path in the same directory.
    func sibling(_ name: String) -> String { directory.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: directory) }
}
