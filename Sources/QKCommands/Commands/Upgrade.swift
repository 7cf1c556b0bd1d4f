import Foundation
import QKStore

extension QKCat {
    static var upgradeCommand: Command {
        Command(
            name: "upgrade",
            abstract: "Upgrade a catalog written by an earlier qkcat to this version's schema.",
            discussion: """
                Read commands never write, so they refuse a catalog that needs upgrading and name this command. \
                Each migration is one transaction; an interrupted upgrade leaves the catalog at the last \
                finished one. ingest and label upgrade the catalog they write to as well.
                """,
            options: [Shared.db],
            run: { invocation in
                let path = Shared.catalogPath(invocation)
                guard FileManager.default.fileExists(atPath: path) else { throw CommandError.failure("no catalog at \(path)") }
                let catalog = try Catalog.open(
                    path: path, busyTimeoutMilliseconds: try Shared.busyTimeoutMilliseconds(invocation))
                if let found = catalog.upgradedFrom {
                    invocation.print("Upgraded \(path) from catalog schema version \(found) to \(Migrator.currentVersion).")
                } else {
                    invocation.print("\(path) is up to date (catalog schema version \(Migrator.currentVersion)).")
                }
            })
    }
}
