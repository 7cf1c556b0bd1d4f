import Foundation
import QKStore

extension QKCat {
    static var labelCommand: Command {
        Command(
            name: "label",
            abstract: "Give a component a human label (searchable at once).",
            discussion: "An empty label removes the human label, and the automatic one shows again.",
            arguments: [
                Argument("id", help: "The component id (from search or show)."),
                Argument("text", help: "The label."),
            ],
            options: [Shared.db, .option("note", help: "A free-text note kept with the label (empty removes it).")],
            run: { invocation in
                let id = try invocation.int("id")
                let text = try invocation.string("text")
                let catalog = try Shared.openCatalog(invocation, readOnly: false)
                try catalog.setHumanLabel(componentID: Int64(id), label: text, note: invocation.optionalString("note"))
                let detail = try catalog.component(id: Int64(id))
                invocation.print("Component \(id): \(detail.component.label)"
                    + (detail.component.note.map { "  (note: \($0))" } ?? ""))
            })
    }
}
