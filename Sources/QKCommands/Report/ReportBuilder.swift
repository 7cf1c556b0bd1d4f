import Foundation
import QKEngine
import QKStore

/// What a report covers and how much it shows.
struct ReportOptions: Sendable, Equatable {
    var model: String?
    var checkpoint: String?
    var feature: String?
    /// Top-activating examples shown per side and end of a component; strongest components listed per model.
    var top = 20
    /// A page above this many bytes is rendered again with fewer examples.
    var pageBudget = 950_000
    /// The embedded search index keeps the strongest components up to about this many bytes.
    var searchIndexBudget = 700_000
    var thresholds = CompareThresholds()
}

/// What a build wrote.
struct ReportSummary: Sendable, Equatable {
    var pages = 0
    var headPages = 0
    var comparePages = 0
    var largestPage = 0
    var largestPagePath = ""
    var bytes = 0
}

/// Reads the catalog through its public read operations and writes the static site into a folder.
///
/// The catalog is read model by model: every checkpoint's stored subspaces once (heatmaps, trajectories and
/// comparisons come from them), then each checkpoint's decompositions streamed through an export cursor, one head
/// page at a time, so memory holds one head's records and the prompts they cite.
final class ReportBuilder {
    let catalog: Catalog
    let options: ReportOptions
    let directory: URL
    private(set) var summary = ReportSummary()
    private var searchEntries: [SearchEntry] = []
    private var searchEntriesIndexed = 0

    init(catalog: Catalog, options: ReportOptions, directory: URL) {
        self.catalog = catalog
        self.options = options
        self.directory = directory
    }

    /// One model's part of the report.
    struct ModelPlan: Sendable {
        var model: ModelRecord
        var slug: String
        /// Every checkpoint of the model, in training order.
        var allCheckpoints: [CheckpointRecord]
        /// The checkpoints the report covers.
        var checkpoints: [CheckpointRecord]
        var checkpointSlugs: [String: String]
        /// Heads with a decomposition in the report's scope, per checkpoint name.
        var heads: [String: [HeadRecord]] {
            didSet { headSets = heads.mapValues { Set($0.map { HeadKey(layer: $0.layer, head: $0.head) }) } }
        }
        var features: [String]
        private var headSets: [String: Set<HeadKey>] = [:]

        struct HeadKey: Hashable, Sendable {
            var layer: Int
            var head: Int
        }

        init(model: ModelRecord, slug: String, allCheckpoints: [CheckpointRecord], checkpoints: [CheckpointRecord],
             checkpointSlugs: [String: String], heads: [String: [HeadRecord]], features: [String]) {
            (self.model, self.slug, self.allCheckpoints, self.checkpoints) = (model, slug, allCheckpoints, checkpoints)
            (self.checkpointSlugs, self.heads, self.features) = (checkpointSlugs, heads, features)
            headSets = heads.mapValues { Set($0.map { HeadKey(layer: $0.layer, head: $0.head) }) }
        }

        func headPage(checkpoint: String, layer: Int, head: Int) -> String? {
            guard let slug = checkpointSlugs[checkpoint], headSets[checkpoint]?.contains(HeadKey(layer: layer, head: head)) == true
            else { return nil }
            return "\(self.slug)/\(slug)/L\(layer)H\(head).html"
        }

        func checkpointPage(_ checkpoint: String) -> String? {
            checkpointSlugs[checkpoint].map { "\(slug)/\($0)/index.html" }
        }

        func comparePage(from: String, to: String) -> String {
            "\(slug)/compare-\(checkpointSlugs[from] ?? HTML.slug(from))-\(checkpointSlugs[to] ?? HTML.slug(to)).html"
        }
    }

    /// Checks the options against the catalog and lists what the report will hold; throws before anything is written.
    func plan() throws -> [ModelPlan] {
        let models: [ModelRecord]
        if let name = options.model { models = [try catalog.model(named: name)] } else { models = try catalog.listModels() }
        if models.isEmpty { throw CommandError.failure("the catalog \(catalog.path) is empty (add a capture with 'qkcat ingest')") }
        if let checkpoint = options.checkpoint {
            let holders = try catalog.listCheckpoints(SearchFilters(model: options.model, checkpoint: checkpoint))
            if holders.isEmpty {
                if let model = options.model { _ = try catalog.checkpoint(checkpoint, ofModel: model) }
                let known = Set(try catalog.listCheckpoints().map(\.name)).sorted()
                throw CommandError.failure("checkpoint '\(checkpoint)' not found (checkpoints: \(known.joined(separator: ", ")))")
            }
        }
        if let feature = options.feature {
            let found = try catalog.listFeatures(SearchFilters(model: options.model, checkpoint: options.checkpoint, feature: feature))
            if found.isEmpty {
                let known = Set(try catalog.listFeatures(SearchFilters(model: options.model, checkpoint: options.checkpoint)).map(\.name)).sorted()
                throw CommandError.failure("feature '\(feature)' not found (features: \(known.joined(separator: ", ")))")
            }
        }
        var plans: [ModelPlan] = []
        var usedSlugs = Set<String>()
        for model in models {
            let all = try catalog.listCheckpoints(SearchFilters(model: model.name))
            let chosen = all.filter { options.checkpoint == nil || $0.name == options.checkpoint }
            guard !chosen.isEmpty else { continue }
            var slug = HTML.slug(model.name), n = 2
            while !usedSlugs.insert(slug.lowercased()).inserted || slug == "assets" { slug = HTML.slug(model.name) + "-\(n)"; n += 1 }
            var checkpointSlugs: [String: String] = [:], usedCheckpointSlugs = Set<String>()
            for checkpoint in all {
                var s = HTML.slug(checkpoint.name), k = 2
                while !usedCheckpointSlugs.insert(s.lowercased()).inserted { s = HTML.slug(checkpoint.name) + "-\(k)"; k += 1 }
                checkpointSlugs[checkpoint.name] = s
            }
            var heads: [String: [HeadRecord]] = [:]
            for checkpoint in chosen {
                heads[checkpoint.name] = try catalog.listHeads(
                    SearchFilters(model: model.name, checkpoint: checkpoint.name, feature: options.feature))
                    .filter { $0.decompositionCount > 0 }
            }
            let features = Set(try catalog.listFeatures(SearchFilters(model: model.name, checkpoint: options.checkpoint,
                                                                      feature: options.feature)).map(\.name)).sorted()
            plans.append(ModelPlan(model: model, slug: slug, allCheckpoints: all, checkpoints: chosen,
                                   checkpointSlugs: checkpointSlugs, heads: heads, features: features))
        }
        return plans
    }

    /// Pages `build` will write: one per head, per compared pair, per checkpoint, and the index.
    static func pageCount(_ plans: [ModelPlan]) -> Int {
        plans.reduce(1) { total, plan in
            total + plan.heads.values.reduce(0) { $0 + $1.count } + plan.checkpoints.count + max(plan.checkpoints.count - 1, 0)
        }
    }

    /// Writes every page and asset; `progress` is called after each page.
    func build(_ plans: [ModelPlan], progress: (Int) -> Void) throws {
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("assets"), withIntermediateDirectories: true)
        try write(ReportAssets.css, to: "assets/report.css", isPage: false)
        try write(ReportAssets.javascript, to: "assets/report.js", isPage: false)
        var done = 0
        var sections: [ReportPages.ModelSection] = []
        for plan in plans {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent(plan.slug), withIntermediateDirectories: true)
            let stored = try storedSubspaces(plan)
            let trajectories = plan.allCheckpoints.count > 1 ? Self.trajectories(plan, stored: stored, thresholds: options.thresholds) : [:]
            var maps: [String: [ReportPages.FeatureMap]] = [:]
            for checkpoint in plan.checkpoints {
                maps[checkpoint.name] = ReportPages.featureMaps(plan, checkpoint: checkpoint.name, stored: stored[checkpoint.name] ?? [],
                                                                root: "../../")
            }
            // The index shows the last checkpoint's maps, its links relative to the top folder.
            let indexMaps = plan.checkpoints.last.map {
                ReportPages.featureMaps(plan, checkpoint: $0.name, stored: stored[$0.name] ?? [], root: "")
            } ?? []
            var strongest: [String: [ComponentHit]] = [:]
            for checkpoint in plan.checkpoints {
                strongest[checkpoint.name] = try catalog.search(
                    "", filters: SearchFilters(model: plan.model.name, checkpoint: checkpoint.name, feature: options.feature),
                    limit: max(options.top, 1))
            }
            // Compare pages, consecutive checkpoints: computed and rendered on a thread of their own while the head
            // pages are, since neither needs the other.
            let pairs = zip(plan.checkpoints, plan.checkpoints.dropFirst()).map { (from: $0.name, to: $1.name) }
            let comparePages = UncheckedBox(ComparePages())
            let comparing = DispatchGroup()
            let (thresholds, budget) = (options.thresholds, options.pageBudget)
            DispatchQueue.global().async(group: comparing) {
                for pair in pairs {
                    let rows = CheckpointComparison.compare(stored[pair.from] ?? [], stored[pair.to] ?? [], thresholds: thresholds)
                    comparePages.value.pages.append((ReportPages.comparePage(plan, from: pair.from, to: pair.to, rows: rows, budget: budget),
                                                     Dictionary(grouping: rows, by: \.change.status).mapValues(\.count)))
                }
            }
            // Head pages: every (checkpoint, layer) read and rendered by one of several workers.
            for checkpoint in plan.checkpoints {
                let checkpointDirectory = directory.appendingPathComponent(plan.slug).appendingPathComponent(plan.checkpointSlugs[checkpoint.name]!)
                try FileManager.default.createDirectory(at: checkpointDirectory, withIntermediateDirectories: true)
            }
            let units = plan.checkpoints.flatMap { checkpoint in
                Set((plan.heads[checkpoint.name] ?? []).map(\.layer)).sorted().map { HeadPageUnit(checkpoint: checkpoint.name, layer: $0) }
            }
            let headPages = Result { try writeHeadPages(plan, units: units, trajectories: trajectories) { count in
                done += count
                progress(done)
            } }
            comparing.wait()
            try headPages.get()
            var comparisons: [(from: String, to: String, counts: [ChangeStatus: Int])] = []
            for (pair, (html, counts)) in zip(pairs, comparePages.value.pages) {
                try write(html, to: plan.comparePage(from: pair.from, to: pair.to))
                comparisons.append((pair.from, pair.to, counts))
                summary.comparePages += 1
                done += 1
                progress(done)
            }
            for checkpoint in plan.checkpoints {
                let html = ReportPages.checkpointPage(plan, checkpoint: checkpoint.name, maps: maps[checkpoint.name] ?? [],
                                                      strongest: strongest[checkpoint.name] ?? [])
                try write(html, to: plan.checkpointPage(checkpoint.name)!)
                done += 1
                progress(done)
            }
            sections.append(ReportPages.ModelSection(plan: plan, maps: indexMaps, strongest: strongest, comparisons: comparisons))
        }
        try writeSearchIndex()
        try write(ReportPages.indexPage(sections, catalogPath: catalog.path, options: options,
                                        searchIndexed: searchEntriesIndexed, searchTotal: searchEntries.count), to: "index.html")
        done += 1
        progress(done)
    }

    /// The head pages of one layer of one checkpoint: what one worker reads and writes at a time.
    struct HeadPageUnit: Sendable {
        var checkpoint: String
        var layer: Int
    }

    /// What one worker wrote.
    private struct WorkerOutput {
        var pages: [(path: String, bytes: Int)] = []
        var searchEntries: [SearchEntry] = []
        var error: Error?
    }

    /// Reads and renders the units on every core, each worker with its own read-only connection to the catalog and
    /// its own cache of displayed prompts; `progress` is called (under a lock) with the pages each unit wrote.
    private func writeHeadPages(_ plan: ModelPlan, units: [HeadPageUnit], trajectories: [SubspaceKey: [TrajectoryPoint?]],
                                progress: (Int) -> Void) throws {
        guard !units.isEmpty else { return }
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, units.count))
        let (path, options, directory) = (catalog.path, self.options, self.directory)
        let queue = UnitQueue(units)
        var outputs = [WorkerOutput](repeating: WorkerOutput(), count: workers)
        withoutActuallyEscaping(progress) { progress in
            let progressBox = UncheckedBox(progress)
            outputs.withUnsafeMutableBufferPointer { buffer in
                let slots = UncheckedBuffer(buffer)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var output = WorkerOutput()
                    do {
                        let catalog = try Catalog.open(path: path, readOnly: true)
                        var prompts: [Int64: ReportPages.PromptText] = [:]
                        while true {
                            guard let unit = queue.next() else { break }
                            let records = try catalog.reportDecompositions(model: plan.model.name, checkpoint: unit.checkpoint,
                                                                           layer: unit.layer, feature: options.feature)
                            var group: [DecompositionRecord] = []
                            var written = 0
                            func flush() throws {
                                guard let first = group.first else { return }
                                let cited = Set(group.flatMap { $0.components.flatMap { $0.examples.map(\.promptRowID) } })
                                let missing = cited.subtracting(prompts.keys)
                                if !missing.isEmpty {
                                    for (row, prompt) in try catalog.promptContexts(missing) { prompts[row] = ReportPages.PromptText(prompt) }
                                }
                                let page = ReportPages.HeadPage(plan: plan, checkpoint: unit.checkpoint, layer: first.layer, head: first.head,
                                                                kvHead: first.kvHead, decompositions: group,
                                                                prompts: prompts, trajectories: trajectories)
                                let html = page.render(top: options.top, budget: options.pageBudget)
                                let relative = plan.headPage(checkpoint: unit.checkpoint, layer: first.layer, head: first.head)
                                    ?? "\(plan.slug)/\(plan.checkpointSlugs[unit.checkpoint] ?? "-")/L\(first.layer)H\(first.head).html"
                                try html.withUnsafeBufferPointer { try Self.writeFile($0, to: directory.appendingPathComponent(relative)) }
                                output.pages.append((relative, html.count))
                                output.searchEntries += Self.searchEntries(page)
                                written += 1
                                group.removeAll(keepingCapacity: true)
                            }
                            for record in records {
                                if let first = group.first, first.head != record.head { try flush() }
                                group.append(record)
                            }
                            try flush()
                            queue.withLock { progressBox.value(written) }
                        }
                    } catch {
                        output.error = error
                        queue.stop()   // the other workers stop after their unit
                    }
                    slots.buffer[worker] = output
                }
            }
        }
        for output in outputs {
            if let error = output.error { throw error }
        }
        for output in outputs {
            for (relative, size) in output.pages {
                summary.pages += 1
                summary.headPages += 1
                summary.bytes += size
                if size > summary.largestPage { (summary.largestPage, summary.largestPagePath) = (size, relative) }
            }
            searchEntries += output.searchEntries
        }
    }

    /// Hands the units out one at a time to the workers.
    private final class UnitQueue: @unchecked Sendable {
        private let units: [HeadPageUnit]
        private let lock = NSLock()
        private var position = 0

        init(_ units: [HeadPageUnit]) { self.units = units }

        func next() -> HeadPageUnit? {
            lock.withLock {
                defer { position += 1 }
                return position < units.count ? units[position] : nil
            }
        }

        func stop() { lock.withLock { position = units.count } }

        func withLock<T>(_ body: () throws -> T) rethrows -> T { try lock.withLock(body) }
    }

    /// A value the workers of one `concurrentPerform` use under a lock.
    private struct UncheckedBox<Value>: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    /// The compare pages of one model and their rows' counts by status, filled by one thread and read by the builder
    /// after waiting for it.
    private final class ComparePages: @unchecked Sendable {
        var pages: [(html: String, counts: [ChangeStatus: Int])] = []
    }

    /// A buffer the workers of one `concurrentPerform` write at distinct indices.
    private struct UncheckedBuffer<Element>: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<Element>
        init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
    }

    /// Writes `text` as UTF-8.
    static func writeFile(_ text: String, to url: URL) throws {
        var text = text
        try text.withUTF8 { try writeFile($0, to: url) }
    }

    /// Writes `bytes`: open, one `write(2)` (more only if the kernel takes part of it) and close; no fsync per page,
    /// the report is moved into place as a whole.
    static func writeFile(_ bytes: UnsafeBufferPointer<UInt8>, to url: URL) throws {
        let path = url.path
        let failure = { CommandError.failure("cannot write \(path): \(String(cString: strerror(errno)))") }
        var file: Int32
        repeat { file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666) } while file < 0 && errno == EINTR
        guard file >= 0 else { throw failure() }
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(file, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 {
                if written == 0 { errno = EIO }
                let error = failure()
                close(file)
                throw error
            }
            offset += written
        }
        guard close(file) == 0 else { throw failure() }
    }

    /// Every checkpoint's stored subspaces (pooled and per value) within the feature filter.
    private func storedSubspaces(_ plan: ModelPlan) throws -> [String: [StoredSubspaces]] {
        var stored: [String: [StoredSubspaces]] = [:]
        let needed = plan.allCheckpoints.count > 1 ? plan.allCheckpoints : plan.checkpoints
        for checkpoint in needed {
            stored[checkpoint.name] = try catalog.subspaces(model: plan.model.name, checkpoint: checkpoint.name,
                                                            filters: SearchFilters(feature: options.feature))
        }
        return stored
    }

    /// One point of a head's pooled decomposition over the checkpoints.
    struct TrajectoryPoint: Equatable, Sendable {
        var sigma1: Double
        var rank: Int
        var similarityToLast: Double?
    }

    /// Per pooled (layer, head, feature): one optional point per checkpoint of the model, in training order.
    static func trajectories(_ plan: ModelPlan, stored: [String: [StoredSubspaces]], thresholds: CompareThresholds)
        -> [SubspaceKey: [TrajectoryPoint?]]
    {
        let names = plan.allCheckpoints.map(\.name)
        let last = Dictionary((stored[names.last ?? ""] ?? []).filter { $0.value == nil }.map { ($0.key, $0) },
                              uniquingKeysWith: { a, _ in a })
        var result: [SubspaceKey: [TrajectoryPoint?]] = [:]
        for (index, name) in names.enumerated() {
            for record in stored[name] ?? [] where record.value == nil {
                var point = TrajectoryPoint(sigma1: record.sigma1, rank: record.rank, similarityToLast: nil)
                if let target = last[record.key] {
                    point.similarityToLast = SubspaceChange(from: record.subspaces, to: target.subspaces, thresholds: thresholds).similarity
                }
                result[record.key, default: Array(repeating: nil, count: names.count)][index] = point
            }
        }
        return result
    }

    /// One component in the search index: its label, top tokens, link, title and source, as the page shows them.
    struct SearchEntry {
        var sigma: Double
        var label: String
        var text: String
        var href: String
        var title: String
        var source: String

        /// About what the entry adds to the index.
        var bytes: Int { label.utf8.count + text.utf8.count + href.utf8.count + title.utf8.count + source.utf8.count + 20 }

        var json: JSONValue { .array([.string(HTML.displayToken(label)), .string(text), .string(href), .string(title), .string(source)]) }
    }

    /// The search index's entries for a head page's components.
    private static func searchEntries(_ page: ReportPages.HeadPage) -> [SearchEntry] {
        var entries: [SearchEntry] = []
        let source = HTML.displayToken("\(page.plan.model.name) @ \(page.checkpoint)")
        for d in page.decompositions {
            // What every component of the decomposition shares (the display of a string is that of its characters).
            let titlePrefix = HTML.displayToken("L\(d.layer) H\(d.head) · \(d.feature)" + (d.value.map { "=\($0)" } ?? ""))
            let page = page.plan.headPage(checkpoint: page.checkpoint, layer: d.layer, head: d.head) ?? ""
            for c in d.components {
                func tokens(_ side: Side) -> String {
                    c.tokenAggregates.lazy.filter { $0.side == side && $0.extreme == .high }.prefix(3).map { aggregate in
                        let shown = HTML.displayToken(aggregate.token)
                        return shown.hasPrefix(" ") ? String(shown.drop { $0 == " " }) : shown
                    }.joined(separator: " ")
                }
                let text = "keys " + tokens(.key) + " · queries " + tokens(.query)
                entries.append(SearchEntry(sigma: c.sigma, label: c.label, text: text, href: page + "#c\(c.id)",
                                           title: titlePrefix + " c\(c.index)", source: source))
            }
        }
        return entries
    }

    /// `assets/search-index.js`: the strongest components' labels and top tokens, within the byte budget.
    private func writeSearchIndex() throws {
        // Workers finish in any order: ties broken by link, so that the same catalog gives the same index.
        searchEntries.sort { ($0.sigma, $1.href) > ($1.sigma, $0.href) }
        var kept: [JSONValue] = [], bytes = 0
        for entry in searchEntries {
            bytes += entry.bytes
            if bytes > options.searchIndexBudget { break }
            kept.append(entry.json)
        }
        searchEntriesIndexed = kept.count
        let json = JSONValue.object([("total", .int(searchEntries.count)), ("entries", .array(kept))]).rendered(pretty: false)
        try write("window.QKCAT_SEARCH_INDEX = " + ReportPages.scriptSafeJSON(json) + ";\n", to: "assets/search-index.js", isPage: false)
    }

    private func write(_ text: String, to relativePath: String, isPage: Bool = true) throws {
        try Self.writeFile(text, to: directory.appendingPathComponent(relativePath))
        let size = text.utf8.count
        summary.bytes += size
        if isPage {
            summary.pages += 1
            if size > summary.largestPage { (summary.largestPage, summary.largestPagePath) = (size, relativePath) }
        }
    }
}
