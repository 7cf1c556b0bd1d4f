import Foundation
import QKStore

/// `qkcat report`: the catalog as a static, offline HTML site.
enum ReportCommand {
    static let command = Command(
        name: "report",
        abstract: "Write the catalog as a static HTML report (offline, no scripts needed to read it).",
        discussion: """
            Writes index.html and one page per checkpoint, per head and per pair of consecutive checkpoints into \
            --out: layers × heads heatmaps (σ₁, ‖ΔC‖, rank), spectra, top keys and queries in context, trajectories \
            across checkpoints and comparisons. Plain HTML, CSS and inline SVG: no network, opens from file://; \
            a little JavaScript adds table sorting and a search box. Serve the folder with \
            'python3 -m http.server -d DIR' or open DIR/index.html.
            """,
        options: [
            Shared.db,
            .option("out", valueName: "dir", required: true, help: "The folder to write (created if missing)."),
            .option("model", help: "Only this model."),
            .option("checkpoint", help: "Only this checkpoint."),
            .option("feature", help: "Only this feature."),
            .option("top", valueName: "n", default: "20",
                    help: "Examples shown per side and end of a component, and strongest components listed."),
        ],
        run: run)

    static func run(_ invocation: Invocation) throws {
        let top = try invocation.int("top")
        guard top >= 1 else { throw CommandError.invalidValue(String(top), for: "--top <n>", reason: "expected a positive integer") }
        let out = URL(fileURLWithPath: try invocation.string("out")).standardizedFileURL
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw CommandError.failure("--out \(out.path) is a file; give a folder (it is created if missing)")
        }
        let options = ReportOptions(model: invocation.optionalString("model"), checkpoint: invocation.optionalString("checkpoint"),
                                    feature: invocation.optionalString("feature"), top: top)
        let catalog = try Shared.openCatalog(invocation, readOnly: true)
        let start = ProgressBar.monotonicSeconds()
        let summary = try ReportWriter.write(catalog: catalog, options: options, to: out) { total in
            invocation.progressBar(total: total, unit: "pages")
        }
        let seconds = ProgressBar.monotonicSeconds() - start
        invocation.print(out.appendingPathComponent("index.html").path)
        invocation.stderr.write("Wrote \(summary.pages) pages (\(summary.headPages) heads, \(summary.comparePages) comparisons), "
            + "\(Shared.number(Double(summary.bytes) / 1e6, digits: 1)) MB in \(Shared.number(seconds, digits: 1)) s; "
            + "largest page \(summary.largestPage / 1000) kB\n")
    }
}
