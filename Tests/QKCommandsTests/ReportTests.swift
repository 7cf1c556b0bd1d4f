import Foundation
import Testing
import QKTestSupport
import QKStore
@testable import QKCommands

/// Two checkpoints of a planted capture whose first key token is hostile or invisible in every prompt.
final class ReportCatalog: @unchecked Sendable {
    static let shared = try! ReportCatalog()
    static let hostile = "<img src=x onerror=alert(1)>"
    let root: TemporaryDirectory
    let db: String

    private init() throws {
        root = try TemporaryDirectory()
        db = root.path("catalog.sqlite").path
        let strange = [Self.hostile, "\"quoted' & <b>", "Ġspace\u{202E}rtl", "Ċ"]
        for (checkpoint, seed) in [("step1", UInt64(21)), ("step2", 22)] {
            let capture = try writeCapture(syntheticSpec(checkpoint: checkpoint, prompts: 80, seed: seed), in: root, name: checkpoint)
            for line in 1...80 {
                try CaptureEditing.editPromptLine(line, in: capture) { prompt in
                    var tokens = prompt["tokens"] as! [String]
                    let keys = prompt["keys"] as! [[String: Any]]
                    tokens[keys[0]["position"] as! Int] = strange[line % strange.count]
                    prompt["tokens"] = tokens
                }
            }
            let result = qkcat(["ingest", capture.path, "--db", db, "--per-value", "--top", "6", "--quiet"])
            precondition(result.code == 0, result.err)
        }
    }

    func report(_ arguments: [String] = []) throws -> (result: RunResult, out: URL) {
        let out = try root.subdirectory("report-\(UUID().uuidString)").appendingPathComponent("site")
        return (qkcat(["report", "--db", db, "--out", out.path] + arguments), out)
    }
}

@Suite("report")
struct ReportTests {
    let fixture = ReportCatalog.shared

    func read(_ url: URL, _ path: String) throws -> String {
        try String(contentsOf: url.appendingPathComponent(path), encoding: .utf8)
    }

    func htmlFiles(_ url: URL) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: url.path)
        return (enumerator?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".html") }.sorted()
    }

    @Test("index, checkpoint, head and compare pages, linked and within budget")
    func structure() throws {
        let (result, out) = try fixture.report()
        #expect(result.code == 0, "\(result.err)")
        #expect(result.out == out.appendingPathComponent("index.html").path + "\n")
        let pages = htmlFiles(out)
        // 2 layers × 4 heads per checkpoint, a page per checkpoint, one comparison, the index.
        #expect(pages.filter { $0.range(of: #"/L\d+H\d+\.html$"#, options: .regularExpression) != nil }.count == 16)
        #expect(pages.contains("planted-tiny/compare-step1-step2.html"))
        #expect(pages.contains("planted-tiny/step1/index.html") && pages.contains("planted-tiny/step2/index.html"))
        #expect(pages.count == 16 + 2 + 1 + 1)
        let index = try read(out, "index.html")
        // One map per feature of the last checkpoint, a cell per head, each a link to its page.
        #expect(index.components(separatedBy: "<svg class=\"heatmap\"").count - 1 == 2)
        #expect(index.components(separatedBy: "<rect class=\"cell ").count - 1 == 2 * 8)
        #expect(!index.contains("href=\"../../"))
        #expect(index.contains("<a href=\"planted-tiny/step2/L1H3.html\"><rect class=\"cell m0q"))
        #expect(index.contains("id=\"search\"") && index.contains("assets/search-index.js"))
        let head = try read(out, "planted-tiny/step2/L0H1.html")
        #expect(head.contains("<svg class=\"spectrum\"") && head.contains("class=\"rankline\""))
        #expect(head.contains("<mark class="))
        #expect(head.contains("<h2>Trajectory</h2>") && head.contains("<svg class=\"line\""))
        #expect(head.contains("href=\"../../planted-tiny/step1/L0H1.html\""))
        let compare = try read(out, "planted-tiny/compare-step1-step2.html")
        #expect(compare.contains("<table class=\"sortable\">") && compare.contains("similarity"))
        #expect(compare.components(separatedBy: "<rect class=\"cell ").count - 1 == 2 * 8)
        for page in pages {
            let size = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(page).path)[.size] as! Int
            #expect(size < 1_000_000, "\(page): \(size) bytes")
            // Every link and asset is relative: nothing leaves the folder.
            let text = try read(out, page)
            #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"), "\(page)")
        }
    }

    @Test("tokens are text everywhere, never markup")
    func escaping() throws {
        let (result, out) = try fixture.report()
        #expect(result.code == 0, "\(result.err)")
        var seenEscaped = false
        for page in htmlFiles(out) + ["assets/search-index.js"] {
            let text = try read(out, page)
            #expect(!text.contains("<img"), "\(page)")
            #expect(!text.contains("<b>"), "\(page)")
            #expect(!text.contains("\u{202E}"), "\(page)")
            if text.contains("&lt;img src=x onerror=alert(1)&gt;") { seenEscaped = true }
        }
        #expect(seenEscaped)
        let heads = htmlFiles(out).filter { $0.contains("/L") }
        let all = try heads.map { try read(out, $0) }.joined()
        #expect(all.contains("&quot;quoted&#39; &amp; &lt;b&gt;"))
        #expect(all.contains(" space⟨U+202E⟩rtl") && all.contains("↵"))
    }

    @Test("one checkpoint and one feature narrow the report")
    func narrowed() throws {
        let (result, out) = try fixture.report(["--checkpoint", "step1", "--feature", "order", "--top", "2"])
        #expect(result.code == 0, "\(result.err)")
        let pages = htmlFiles(out)
        #expect(!pages.contains { $0.contains("step2") || $0.contains("compare") })
        let index = try read(out, "index.html")
        #expect(index.components(separatedBy: "<svg class=\"heatmap\"").count - 1 == 1)
        let head = try read(out, "planted-tiny/step1/L0H0.html")
        #expect(head.contains("order") && !head.contains(">category<"))
    }

    @Test("a page over budget is written again with fewer examples")
    func budget() throws {
        let directory = try fixture.root.subdirectory("budget-\(UUID().uuidString)")
        let catalog = try Catalog.open(path: fixture.db, readOnly: true)
        let builder = ReportBuilder(catalog: catalog, options: ReportOptions(checkpoint: "step1", top: 6, pageBudget: 40_000),
                                    directory: directory)
        let plans = try builder.plan()
        var progress: [Int] = []
        try builder.build(plans) { progress.append($0) }
        // Head pages are counted a layer at a time; the count only grows and ends at the total.
        #expect(progress == progress.sorted() && progress.last == ReportBuilder.pageCount(plans))
        let head = try read(directory, "planted-tiny/step1/L0H0.html")
        #expect(head.contains("Examples cut to "))
        #expect(head.utf8.count <= 40_000 || head.contains("Examples cut to 1 per list"))
    }

    @Test("the same catalog gives the same site, whatever order the workers finish in")
    func reproducible() throws {
        let (first, a) = try fixture.report()
        let (second, b) = try fixture.report()
        #expect(first.code == 0 && second.code == 0)
        for page in htmlFiles(a) + ["assets/search-index.js"] {
            #expect(try Data(contentsOf: a.appendingPathComponent(page)) == Data(contentsOf: b.appendingPathComponent(page)), "\(page)")
        }
    }

    @Test("bad input: clear errors, exit 1 or 64, nothing written")
    func errors() throws {
        let root = try fixture.root.subdirectory("errors-\(UUID().uuidString)")
        let out = root.appendingPathComponent("site").path
        let missing = qkcat(["report", "--db", root.appendingPathComponent("none.sqlite").path, "--out", out])
        #expect(missing.code == 1 && missing.err.contains("no catalog at"))
        let model = qkcat(["report", "--db", fixture.db, "--out", out, "--model", "nope"])
        #expect(model.code == 1 && model.err.contains("model 'nope' not found (models: planted/tiny)"), "\(model.err)")
        let checkpoint = qkcat(["report", "--db", fixture.db, "--out", out, "--checkpoint", "step9"])
        #expect(checkpoint.code == 1 && checkpoint.err.contains("checkpoint 'step9' not found (checkpoints: step1, step2)"), "\(checkpoint.err)")
        let feature = qkcat(["report", "--db", fixture.db, "--out", out, "--feature", "colour"])
        #expect(feature.code == 1 && feature.err.contains("feature 'colour' not found (features: category, order)"), "\(feature.err)")
        let file = root.appendingPathComponent("file.txt")
        try Data("x".utf8).write(to: file)
        let isFile = qkcat(["report", "--db", fixture.db, "--out", file.path])
        #expect(isFile.code == 1 && isFile.err.contains("is a file"))
        #expect(qkcat(["report", "--db", fixture.db, "--out", out, "--top", "0"]).code == 64)
        #expect(qkcat(["report", "--db", fixture.db]).code == 64)
        let noParent = qkcat(["report", "--db", fixture.db, "--out", root.appendingPathComponent("a/b").path])
        #expect(noParent.code == 1 && noParent.err.contains("does not exist"))
        // Nothing written: no site, no staging folder left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["file.txt"])
    }
}

@Suite("report writer")
struct ReportWriterTests {
    struct Refused: Error {}

    /// A destination holding an earlier report's entries and a file of the user's, and a staged new report.
    func folders() throws -> (root: TemporaryDirectory, destination: URL, staging: URL) {
        let root = try TemporaryDirectory()
        let destination = try root.subdirectory("site"), staging = try root.subdirectory("staging")
        for (folder, tag) in [(destination, "old"), (staging, "new")] {
            try Data(tag.utf8).write(to: folder.appendingPathComponent("index.html"))
            let assets = folder.appendingPathComponent("assets")
            try FileManager.default.createDirectory(at: assets, withIntermediateDirectories: false)
            try Data(tag.utf8).write(to: assets.appendingPathComponent("report.css"))
        }
        try Data("new".utf8).write(to: staging.appendingPathComponent("compare.html"))
        try Data("mine".utf8).write(to: destination.appendingPathComponent("notes.txt"))
        return (root, destination, staging)
    }

    func contents(_ folder: URL) throws -> [String: String] {
        let names = FileManager.default.enumerator(atPath: folder.path)?.allObjects as? [String] ?? []
        var result: [String: String] = [:]
        for name in names where !name.hasSuffix("assets") {
            result[name] = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
        }
        return result
    }

    @Test("a new report replaces an earlier one's entries and keeps the rest")
    func replaces() throws {
        let (root, destination, staging) = try folders()
        try ReportWriter.replaceEntries(of: destination, with: staging)
        #expect(try contents(destination) == ["index.html": "new", "assets/report.css": "new", "compare.html": "new",
                                              "notes.txt": "mine"])
        _ = root
    }

    @Test("a move failing halfway leaves the destination as it was")
    func failureRestores() throws {
        for failAt in 1...5 {
            let (root, destination, staging) = try folders()
            let before = try contents(destination), staged = try contents(staging)
            var moves = 0
            #expect(throws: Refused.self) {
                try ReportWriter.replaceEntries(of: destination, with: staging) { from, to in
                    moves += 1
                    if moves == failAt { throw Refused() }
                    try FileManager.default.moveItem(at: from, to: to)
                }
            }
            #expect(try contents(destination) == before, "failing move \(failAt)")
            #expect(try contents(staging) == staged, "failing move \(failAt)")
            _ = root
        }
    }
}
