import Foundation
import QKEngine
import QKStore

/// The report's pages as HTML text: the index, a page per checkpoint, per head and per compared pair.
enum ReportPages {
    typealias Plan = ReportBuilder.ModelPlan

    static func pooledName(_ feature: String, _ value: String?) -> String { feature + (value.map { "=\($0)" } ?? "") }

    /// JSON that is safe inside a script: `<`, `>` and `&` (and the two line separators JavaScript once rejected)
    /// escaped as `\u` sequences, so no string can close the script or open markup.
    static func scriptSafeJSON(_ json: String) -> String {
        var output = ""
        output.reserveCapacity(json.utf8.count)
        for scalar in json.unicodeScalars {
            switch scalar {
            case "<": output += "\\u003c"
            case ">": output += "\\u003e"
            case "&": output += "\\u0026"
            case "\u{2028}": output += "\\u2028"
            case "\u{2029}": output += "\\u2029"
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    static func percent(_ x: Double, digits: Int = 1) -> String { SVGCharts.fixed(100 * x, digits: digits) + "%" }

    // MARK: Heatmaps

    /// One feature's layers × heads map of a checkpoint: σ₁, ‖ΔC‖ and rank of the pooled decompositions.
    struct FeatureMap {
        var feature: String
        var html: String
    }

    static let metricNames = ["σ₁", "‖ΔC‖", "rank"]

    /// `root`: the path from the page showing the maps to the report's folder.
    static func featureMaps(_ plan: Plan, checkpoint: String, stored: [StoredSubspaces], root: String) -> [FeatureMap] {
        return plan.features.compactMap { feature in
            let pooled = stored.filter { $0.feature == feature && $0.value == nil }
            guard !pooled.isEmpty else { return nil }
            let metrics: [[Double]] = [pooled.map(\.sigma1), pooled.map(\.frobenius), pooled.map { Double($0.rank) }]
            let scales = [SVGCharts.Scale(values: metrics[0]), SVGCharts.Scale(values: metrics[1]),
                          SVGCharts.Scale(values: metrics[2], fixed: 0...Double(max(metrics[2].max() ?? 1, 1)))]
            let cells = pooled.map { record in
                SVGCharts.Cell(
                    layer: record.layer, head: record.head,
                    bins: [scales[0].bin(record.sigma1), scales[1].bin(record.frobenius), scales[2].bin(Double(record.rank))],
                    tooltip: "L\(record.layer) H\(record.head) · σ₁ \(SVGCharts.number(record.sigma1)) · ‖ΔC‖ "
                        + "\(SVGCharts.number(record.frobenius)) · rank \(record.rank)",
                    href: plan.headPage(checkpoint: checkpoint, layer: record.layer, head: record.head).map { root + $0 })
            }
            let legends = (0..<3).map { SVGCharts.legend(scales[$0], title: metricNames[$0], metric: $0, integer: $0 == 2) }
            let html = heatmapBlock(id: "hm-" + (root.isEmpty ? "i-" : "") + HTML.slug(checkpoint) + "-" + HTML.slug(feature), metrics: metricNames,
                                    legends: legends, svg: SVGCharts.heatmap(layers: Array(0..<plan.model.layerCount),
                                                                             heads: plan.model.headCount, cells: cells, metricCount: 3))
            return FeatureMap(feature: feature, html: html)
        }
    }

    /// Radio buttons choosing the colouring, then the legends and the map (the stylesheet shows the chosen ones).
    static func heatmapBlock(id: String, metrics: [String], legends: [String], svg: String) -> String {
        var html = "<div class=\"hm\">"
        if metrics.count > 1 {
            html += "<span class=\"facts\">colour by </span>"
            for (i, name) in metrics.enumerated() {
                html += "<input type=\"radio\" class=\"r\(i)\" name=\"\(id)\" id=\"\(id)-\(i)\"\(i == 0 ? " checked" : "")>"
                    + "<label for=\"\(id)-\(i)\">\(HTML.escape(name))</label>"
            }
        } else {
            html += "<input type=\"radio\" class=\"r0\" name=\"\(id)\" id=\"\(id)-0\" checked>"
        }
        return html + "<div class=\"maps\">" + legends.joined() + svg + "</div></div>"
    }

    // MARK: Index

    struct ModelSection {
        var plan: Plan
        /// The last checkpoint's maps, for the index.
        var maps: [FeatureMap]
        var strongest: [String: [ComponentHit]]
        var comparisons: [(from: String, to: String, counts: [ChangeStatus: Int])]
    }

    static func indexPage(_ sections: [ModelSection], catalogPath: String, options: ReportOptions,
                          searchIndexed: Int, searchTotal: Int) -> String {
        let catalogName = URL(fileURLWithPath: catalogPath).lastPathComponent
        var body = "<h1>qkcat report</h1><p class=\"sub\">Query–key features of <code title=\"\(HTML.escape(catalogPath))\">"
            + "\(HTML.escape(catalogName))</code>"
        var scope: [String] = []
        if let model = options.model { scope.append("model " + model) }
        if let checkpoint = options.checkpoint { scope.append("checkpoint " + checkpoint) }
        if let feature = options.feature { scope.append("feature " + feature) }
        if !scope.isEmpty { body += " (" + HTML.escape(scope.joined(separator: ", ")) + ")" }
        body += ". Each cell of a map is one attention head; click it for its spectra and top tokens.</p>"
        body += "<div class=\"search\"><label for=\"search\"><strong>Search</strong> labels and top tokens</label><br>"
            + "<input id=\"search\" type=\"search\" placeholder=\"e.g. horse, fruit, order\" autocomplete=\"off\" disabled>"
            + "<p class=\"nojs\">Search needs JavaScript; everything else works without it.</p>"
            + "<ul id=\"results\" aria-live=\"polite\"></ul>"
        if searchIndexed < searchTotal {
            body += "<p class=\"facts\">The search covers the \(searchIndexed) strongest of \(searchTotal) components; "
                + "<code>qkcat search</code> covers all.</p>"
        }
        body += "</div>"
        body += "<h2>Models</h2><table class=\"sortable\"><thead><tr><th>model</th><th class=\"n\">layers</th><th class=\"n\">heads</th>"
            + "<th class=\"n\">kv heads</th><th class=\"n\">d_head</th><th>checkpoints</th></tr></thead><tbody>"
        for section in sections {
            let plan = section.plan
            let links = plan.checkpoints.map { checkpoint in
                "<a href=\"\(HTML.escape(plan.checkpointPage(checkpoint.name) ?? ""))\">\(HTML.escape(checkpoint.name))</a>"
            }.joined(separator: " · ")
            body += "<tr><td><a href=\"#\(HTML.escape(plan.slug))\">\(HTML.escape(plan.model.name))</a></td>"
                + "<td class=\"n\">\(plan.model.layerCount)</td><td class=\"n\">\(plan.model.headCount)</td>"
                + "<td class=\"n\">\(plan.model.kvHeadCount)</td><td class=\"n\">\(plan.model.headDimension)</td><td>\(links)</td></tr>"
        }
        body += "</tbody></table>"
        for section in sections {
            let plan = section.plan
            guard let shown = plan.checkpoints.last else { continue }
            body += "<h2 id=\"\(HTML.escape(plan.slug))\">\(HTML.escape(plan.model.name))</h2>"
            body += "<p class=\"sub\">\(plan.model.layerCount) layers × \(plan.model.headCount) heads, d_head \(plan.model.headDimension). "
            if plan.checkpoints.count > 1 {
                body += "Checkpoints in training order: " + plan.checkpoints.map { checkpoint in
                    "<a href=\"\(HTML.escape(plan.checkpointPage(checkpoint.name) ?? ""))\">\(HTML.escape(checkpoint.name))</a>"
                }.joined(separator: " → ") + ". Maps below: <strong>\(HTML.escape(shown.name))</strong>."
            } else {
                body += "Checkpoint <a href=\"\(HTML.escape(plan.checkpointPage(shown.name) ?? ""))\">\(HTML.escape(shown.name))</a>."
            }
            body += "</p>"
            if !section.comparisons.isEmpty {
                body += "<h3>Between checkpoints</h3><table><thead><tr><th>compare</th>"
                for status in ChangeStatus.allCases { body += "<th class=\"n\">\(status.rawValue)</th>" }
                body += "</tr></thead><tbody>"
                for comparison in section.comparisons {
                    body += "<tr><td><a href=\"\(HTML.escape(plan.comparePage(from: comparison.from, to: comparison.to)))\">"
                        + "\(HTML.escape(comparison.from)) → \(HTML.escape(comparison.to))</a></td>"
                    for status in ChangeStatus.allCases {
                        body += "<td class=\"n st-\(status.rawValue)\">\(comparison.counts[status] ?? 0)</td>"
                    }
                    body += "</tr>"
                }
                body += "</tbody></table>"
            }
            body += "<div class=\"maprow\">"
            for map in section.maps {
                body += "<div><h3>\(HTML.escape(map.feature)) <span class=\"facts\">pooled, \(HTML.escape(shown.name))</span></h3>" + map.html + "</div>"
            }
            body += "</div>"
            body += "<h3>Strongest components <span class=\"facts\">\(HTML.escape(shown.name)), by σ</span></h3>"
            body += strongestTable(plan, checkpoint: shown.name, hits: section.strongest[shown.name] ?? [], root: "")
        }
        return HTML.page(title: "qkcat report", root: "", breadcrumbs: [("qkcat report", nil)], body: body,
                         scripts: ["search-index.js"])
    }

    static func strongestTable(_ plan: Plan, checkpoint: String, hits: [ComponentHit], root: String) -> String {
        var html = "<table class=\"sortable\"><thead><tr><th class=\"n\">σ</th><th class=\"n\">share</th><th>head</th>"
            + "<th>feature</th><th>#</th><th>label</th></tr></thead><tbody>"
        for hit in hits {
            let href = plan.headPage(checkpoint: checkpoint, layer: hit.layer, head: hit.head).map { root + $0 + "#c\(hit.id)" }
            let head = "L\(hit.layer) H\(hit.head)"
            html += "<tr><td class=\"n\">\(SVGCharts.number(hit.sigma))</td><td class=\"n\">\(percent(hit.energyShare))</td>"
                + "<td>" + (href.map { "<a href=\"\(HTML.escape($0))\">\(head)</a>" } ?? head) + "</td>"
                + "<td>\(HTML.escape(pooledName(hit.feature, hit.value)))</td><td>c\(hit.index)</td>"
                + "<td>\(HTML.token(hit.label))</td></tr>"
        }
        return html + "</tbody></table>"
    }

    // MARK: Checkpoint

    static func checkpointPage(_ plan: Plan, checkpoint: String, maps: [FeatureMap], strongest: [ComponentHit]) -> String {
        let root = "../../"
        var body = "<h1>\(HTML.escape(plan.model.name)) <span class=\"facts\">@ \(HTML.escape(checkpoint))</span></h1>"
        body += "<p class=\"sub\">\(plan.heads[checkpoint]?.count ?? 0) heads with decompositions. "
        let others = plan.checkpoints.filter { $0.name != checkpoint }
        if !others.isEmpty {
            body += "Other checkpoints: " + others.map {
                "<a href=\"\(HTML.escape(root + (plan.checkpointPage($0.name) ?? "")))\">\(HTML.escape($0.name))</a>"
            }.joined(separator: " · ") + "."
        }
        body += "</p>"
        body += "<div class=\"maprow\">"
        for map in maps { body += "<div><h2>\(HTML.escape(map.feature)) <span class=\"facts\">pooled</span></h2>" + map.html + "</div>" }
        body += "</div>"
        body += "<h2>Strongest components</h2>" + strongestTable(plan, checkpoint: checkpoint, hits: strongest, root: root)
        body += "<h2>Heads</h2><p class=\"toc\">"
        for head in plan.heads[checkpoint] ?? [] {
            if let href = plan.headPage(checkpoint: checkpoint, layer: head.layer, head: head.head) {
                body += "<a href=\"\(HTML.escape(root + href))\">L\(head.layer) H\(head.head)</a> "
            }
        }
        body += "</p>"
        return HTML.page(title: "\(plan.model.name) @ \(checkpoint) · qkcat", root: root,
                         breadcrumbs: [("report", root + "index.html"), (plan.model.name, root + "index.html#" + plan.slug), (checkpoint, nil)],
                         body: body)
    }

    // MARK: Compare

    static func comparePage(_ plan: Plan, from: String, to: String, rows: [CheckpointComparison.Row], budget: Int) -> String {
        let root = "../"
        var body = "<h1>\(HTML.escape(plan.model.name)) <span class=\"facts\">\(HTML.escape(from)) → \(HTML.escape(to))</span></h1>"
        body += "<p class=\"sub\">How each head's feature subspaces changed: similarity is the mean squared cosine of the principal "
            + "angles over the larger rank, averaged over the query and key sides (as <code>qkcat compare</code>). "
        for status in ChangeStatus.allCases {
            let count = rows.filter { $0.change.status == status }.count
            body += "<span class=\"pill st-\(status.rawValue)\">\(count) \(status.rawValue)</span> "
        }
        body += "</p>"
        func headLink(_ key: SubspaceKey, _ change: SubspaceChange) -> String? {
            let checkpoint = change.rankTo == nil ? from : to
            return plan.headPage(checkpoint: checkpoint, layer: key.layer, head: key.head).map { root + $0 }
        }
        for feature in plan.features {
            let pooled = rows.filter { $0.key.feature == feature && $0.key.value == nil }
            guard !pooled.isEmpty else { continue }
            let scale = SVGCharts.Scale(values: [], fixed: 0...1)
            let cells = pooled.map { row in
                SVGCharts.Cell(layer: row.key.layer, head: row.key.head, bins: [scale.bin(row.change.similarity)],
                               tooltip: "L\(row.key.layer) H\(row.key.head) · similarity \(Shared.number(row.change.similarity)) · "
                                   + "\(row.change.status.rawValue) · rank \(row.change.rankFrom.map(String.init) ?? "–")→\(row.change.rankTo.map(String.init) ?? "–")",
                               href: headLink(row.key, row.change))
            }
            body += "<h2>\(HTML.escape(feature)) <span class=\"facts\">pooled, similarity \(HTML.escape(from)) → \(HTML.escape(to))</span></h2>"
            body += heatmapBlock(id: "cmp-" + HTML.slug(feature), metrics: ["similarity"],
                                 legends: [SVGCharts.legend(scale, title: "similarity", metric: 0)],
                                 svg: SVGCharts.heatmap(layers: Array(0..<plan.model.layerCount), heads: plan.model.headCount,
                                                        cells: cells, metricCount: 1))
        }
        body += "<h2>Every decomposition <span class=\"facts\">largest change first</span></h2>"
        var table = "<table class=\"sortable\"><thead><tr><th class=\"n\">layer</th><th class=\"n\">head</th><th>feature</th>"
            + "<th>value</th><th>rank</th><th class=\"n\">q angle</th><th class=\"n\">k angle</th><th class=\"n\">similarity</th>"
            + "<th class=\"n\">Δσ₁</th><th class=\"n\">Δ‖ΔC‖</th><th>status</th></tr></thead><tbody>\n"
        var shown = 0
        for row in rows {
            // Rows stop before the page outgrows its budget; `qkcat compare` lists them all.
            if body.utf8.count + table.utf8.count > budget - 20_000 { break }
            let change = row.change
            let head = headLink(row.key, change).map { "<a href=\"\(HTML.escape($0))\">\(row.key.head)</a>" } ?? String(row.key.head)
            table += "<tr><td class=n>\(row.key.layer)<td class=n>\(head)<td>\(HTML.escape(row.key.feature))<td>\(HTML.escape(row.key.value ?? "*"))"
                + "<td>\(change.rankFrom.map(String.init) ?? "–")→\(change.rankTo.map(String.init) ?? "–")"
                + "<td class=n>\(CompareCommand.degrees(change.queryAngleDegrees))<td class=n>\(CompareCommand.degrees(change.keyAngleDegrees))"
                + "<td class=n>\(Shared.number(change.similarity))<td class=n>\(CompareCommand.signed(change.sigma1Change))"
                + "<td class=n>\(CompareCommand.signed(change.frobeniusChange))<td class=\"st-\(change.status.rawValue)\">\(change.status.rawValue)</tr>\n"
            shown += 1
        }
        table += "</tbody></table>"
        if shown < rows.count {
            body += "<p class=\"facts\">The first \(shown) of \(rows.count) rows, to keep this page small; "
                + "<code>qkcat compare --model \(HTML.escape(plan.model.name)) --from \(HTML.escape(from)) --to \(HTML.escape(to))</code> lists all.</p>"
        }
        body += table
        return HTML.page(title: "\(plan.model.name) \(from) → \(to) · qkcat", root: root,
                         breadcrumbs: [("report", root + "index.html"), (plan.model.name, root + "index.html#" + plan.slug),
                                       ("\(from) → \(to)", nil)],
                         body: body)
    }
}
