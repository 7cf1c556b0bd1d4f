import Foundation
import QKEngine
import QKStore

extension ReportPages {
    /// A cited prompt's tokens, displayed and escaped once for every page that shows it.
    struct PromptText: Sendable {
        /// The prompt's id, escaped.
        var id: String
        /// Byte-level BPE and SentencePiece tokens carry their own spaces and are joined as they are; others
        /// (WordPiece) are joined with spaces.
        var carriesSpaces: Bool
        /// Every token as a page shows it, joined as above (UTF-8): any run of tokens is one slice.
        var text: [UInt8] = []
        /// Where each token starts and ends in `text`.
        var starts: [Int] = []
        var ends: [Int] = []

        var count: Int { starts.count }

        init(_ prompt: PromptContext) {
            id = HTML.escape(prompt.promptID)
            carriesSpaces = prompt.tokens.contains { $0.hasPrefix("Ġ") || $0.hasPrefix(" ") || $0.hasPrefix("▁") || $0.contains("Ċ") }
            for (i, token) in prompt.tokens.enumerated() {
                if i > 0, !carriesSpaces { text.append(UInt8(ascii: " ")) }
                starts.append(text.count)
                text.append(contentsOf: HTML.token(token).utf8)
                ends.append(text.count)
            }
        }

        /// Tokens `range` as the page joins them.
        func joined(_ range: Range<Int>) -> ArraySlice<UInt8> {
            range.isEmpty ? [] : text[starts[range.lowerBound]..<ends[range.upperBound - 1]]
        }
    }

    /// One head of one checkpoint: every decomposition's spectrum and components, its trajectory over checkpoints.
    struct HeadPage: Sendable {
        var plan: Plan
        var checkpoint: String
        var layer: Int
        var head: Int
        var kvHead: Int
        /// Pooled first, then per value (the export cursor's order).
        var decompositions: [DecompositionRecord]
        var prompts: [Int64: PromptText]
        var trajectories: [SubspaceKey: [ReportBuilder.TrajectoryPoint?]]

        static let root = "../../"
        /// Examples listed before the rest fold away under "more".
        static let visibleExamples = 5
        /// Tokens either side of an example's token.
        static let contextRadius = 5

        /// The page (UTF-8), with `top` examples per list, or fewer when that would pass `budget` bytes.
        func render(top: Int, budget: Int) -> [UInt8] {
            var examples = top
            var html = render(examples: examples, cut: false)
            while html.count > budget, examples > 1 {
                examples /= 2
                html = render(examples: examples, cut: true)
            }
            return html
        }

        func render(examples: Int, cut: Bool) -> [UInt8] {
            let root = Self.root
            var html = HTMLBuffer(capacity: 1 << 18)
            html += HTML.pageStart(
                title: "L\(layer) H\(head) · \(plan.model.name) @ \(checkpoint) · qkcat", root: root,
                breadcrumbs: [("report", root + "index.html"), (plan.model.name, root + "index.html#" + plan.slug),
                              (checkpoint, root + (plan.checkpointPage(checkpoint) ?? "index.html")), ("L\(layer) H\(head)", nil)])
            var body = "<h1>Layer \(layer) · head \(head) <span class=\"facts\">kv head \(kvHead) · \(HTML.escape(plan.model.name)) @ "
                + "\(HTML.escape(checkpoint))</span></h1>"
            body += "<p class=\"sub\">"
            var links: [String] = []
            let previous = head > 0 ? (layer, head - 1) : (layer - 1, plan.model.headCount - 1)
            let next = head + 1 < plan.model.headCount ? (layer, head + 1) : (layer + 1, 0)
            if let href = plan.headPage(checkpoint: checkpoint, layer: previous.0, head: previous.1) {
                links.append("<a href=\"\(HTML.escape(root + href))\">← L\(previous.0) H\(previous.1)</a>")
            }
            if let href = plan.headPage(checkpoint: checkpoint, layer: next.0, head: next.1) {
                links.append("<a href=\"\(HTML.escape(root + href))\">L\(next.0) H\(next.1) →</a>")
            }
            let elsewhere = plan.checkpoints.filter { $0.name != checkpoint }.compactMap { other in
                plan.headPage(checkpoint: other.name, layer: layer, head: head).map {
                    "<a href=\"\(HTML.escape(root + $0))\">\(HTML.escape(other.name))</a>"
                }
            }
            if !elsewhere.isEmpty { links.append("this head at " + elsewhere.joined(separator: ", ")) }
            body += links.joined(separator: " · ") + "</p>"
            if cut {
                body += "<p class=\"facts\">Examples cut to \(examples) per list to keep this page under 1 MB; "
                    + "<code>qkcat show</code> lists them all.</p>"
            }
            body += "<p class=\"toc\">" + decompositions.map {
                "<a href=\"#d\($0.id)\">\(HTML.escape(pooledName($0.feature, $0.value)))</a> <span class=\"facts\">rank \($0.rank)</span>"
            }.joined(separator: "<br>") + "</p>"
            body += trajectorySection()
            html += body
            for d in decompositions { appendDecomposition(d, examples: examples, to: &html) }
            html += HTML.pageEnd(root: root)
            return html.bytes
        }

        /// Small line charts of σ₁, rank and the similarity to the last checkpoint, per feature, when the model has
        /// several checkpoints.
        func trajectorySection() -> String {
            guard plan.allCheckpoints.count > 1 else { return "" }
            let labels = plan.allCheckpoints.map(\.name)
            var html = ""
            for feature in plan.features {
                guard let points = trajectories[SubspaceKey(layer: layer, head: head, feature: feature, value: nil)] else { continue }
                html += "<div class=\"card\"><h4>\(HTML.escape(feature)) <span class=\"facts\">pooled, across checkpoints</span></h4>"
                    + "<div class=\"spark\">"
                html += SVGCharts.lineChart(title: "σ₁", labels: labels, values: points.map { $0?.sigma1 })
                html += SVGCharts.lineChart(title: "rank", labels: labels, values: points.map { $0.map { Double($0.rank) } }, integer: true)
                html += SVGCharts.lineChart(title: "similarity to \(String((labels.last ?? "").prefix(12)))", labels: labels,
                                            values: points.map { $0?.similarityToLast }, range: 0...1)
                html += "</div></div>"
            }
            return html.isEmpty ? "" : "<h2>Trajectory</h2><div class=\"cards\">" + html + "</div>"
        }

        func appendDecomposition(_ d: DecompositionRecord, examples: Int, to html: inout HTMLBuffer) {
            let header: String = "<section class=\"decomp\" id=\"d\(d.id)\"><header><h3>\(HTML.escape(d.feature))"
                + (d.value.map { " = <span class=\"tok\">\(HTML.token($0))</span>" } ?? " <span class=\"facts\">pooled</span>")
                + "</h3><span class=\"pill\">\(HTML.escape(d.featureKind))</span>"
                + "<span class=\"facts\">\(d.positivePairs) positive / \(d.negativePairs) negative pairs · ‖ΔC‖ "
                + "\(SVGCharts.number(d.frobenius)) · rank \(d.rank) of \(d.singularValues.count) at \(percent(d.energy, digits: 0)) of Σσ²</span>"
                + "</header>"
            html += header
            html += SVGCharts.spectrum(d.singularValues, rank: d.rank, energy: d.energy)
            for component in d.components { appendComponent(component, examples: examples, to: &html) }
            html += "</section>\n"
        }

        func appendComponent(_ c: ComponentRecord, examples: Int, to html: inout HTMLBuffer) {
            html += "<div class=\"comp\" id=\"c\(c.id)\"><h4>c\(c.index) <span class=\"label\">\(HTML.token(c.label))</span></h4>"
            html += "<div class=\"facts\">σ \(SVGCharts.number(c.sigma)) · \(percent(c.energyShare)) of Σσ² · id \(c.id)"
            if c.humanLabel != nil { html += " · <span class=\"auto\">auto: \(HTML.token(c.autoLabel))</span>" }
            html += "</div>"
            if let note = c.note { html += "<div class=\"note\">\(HTML.token(note))</div>" }
            // One colour scale per component, so both ends of both sides compare.
            let maxScore = c.examples.reduce(0) { max($0, abs($1.score)) }
            html += "<div class=\"sides\">"
            for side in [Side.key, .query] {
                for extreme in [Extreme.high, .low] {
                    appendList(c, side: side, extreme: extreme, examples: examples, maxScore: maxScore, to: &html)
                }
            }
            html += "</div></div>\n"
        }

        func appendList(_ c: ComponentRecord, side: Side, extreme: Extreme, examples: Int, maxScore: Double,
                        to html: inout HTMLBuffer) {
            // The component's lists are read in place (a copy of each example would cost more than writing it).
            c.examples.withUnsafeBufferPointer { all in
                c.tokenAggregates.withUnsafeBufferPointer { allAggregates in
                    var shown = 0, aggregates = 0
                    for i in all.indices where shown < examples && all[i].side == side && all[i].extreme == extreme { shown += 1 }
                    for i in allAggregates.indices
                    where aggregates < 8 && allAggregates[i].side == side && allAggregates[i].extreme == extreme {
                        aggregates += 1
                    }
                    guard shown > 0 || aggregates > 0 else { return }
                    html += "<div class=\"list\"><h5>"
                    html += side == .key ? "Keys " : "Queries "
                    html += extreme == .high ? "▲ highest " : "▼ lowest "
                    html += side == .key ? "v·k</h5>" : "u·q</h5>"
                    if aggregates > 0 {
                        html += "<div class=aggs>"
                        var written = 0
                        for i in allAggregates.indices
                        where written < aggregates && allAggregates[i].side == side && allAggregates[i].extreme == extreme {
                            html += "<i><kbd>"
                            html += HTML.token(allAggregates[i].token)
                            html += "</kbd><sub>×"
                            html += String(allAggregates[i].count)
                            html += " "
                            html += SVGCharts.number(allAggregates[i].meanScore)
                            html += "</sub></i> "
                            written += 1
                        }
                        html += "</div>"
                    }
                    html += "<table class=ex>"
                    var row = 0
                    for i in all.indices where row < shown && all[i].side == side && all[i].extreme == extreme {
                        if row == Self.visibleExamples {
                            html += "</table><details><summary>\(shown - row) more</summary><table class=ex>"
                        }
                        let score = all[i].score
                        let prompt = prompts[all[i].promptRowID]
                        html += "<tr><td>"
                        html += SVGCharts.number(score)
                        html += "<td>"
                        html += prompt?.id ?? HTML.escape(all[i].promptID)
                        html += "<td>"
                        if let prompt {
                            Self.appendContext(prompt, position: all[i].position, score: score, maxScore: maxScore, to: &html)
                        } else {
                            html += "<mark class="
                            html += Self.scoreClass(score, maxScore)
                            html += ">"
                            html += HTML.token(all[i].token)
                            html += "</mark>"
                        }
                        html += "</tr>"
                        row += 1
                    }
                    html += shown > Self.visibleExamples ? "</table></details></div>" : "</table></div>"
                }
            }
        }

        /// The colour class of a score: `p1`…`p5` (positive) or `n1`…`n5`, by its share of the largest magnitude.
        static func scoreClass(_ score: Double, _ maxScore: Double) -> String {
            guard maxScore > 0, score.isFinite else { return "p1" }
            let level = min(max(Int((5 * abs(score) / maxScore).rounded(.up)), 1), 5)
            return (score < 0 ? "n" : "p") + String(level)
        }

        /// `contextRadius` tokens either side of `position`, the token marked and coloured by its score.
        static func appendContext(_ prompt: PromptText, position: Int, score: Double, maxScore: Double,
                                  to html: inout HTMLBuffer) {
            guard position >= 0, position < prompt.count else { return }
            let lower = max(0, position - contextRadius), upper = min(prompt.count, position + contextRadius + 1)
            let separator = prompt.carriesSpaces ? "" : " "
            if lower > 0 { html += "<span class=el>…</span>" }
            if lower < position {
                html += prompt.joined(lower..<position)
                html += separator
            }
            html += "<mark class="
            html += scoreClass(score, maxScore)
            html += ">"
            html += prompt.joined(position..<position + 1)
            html += "</mark>"
            if position + 1 < upper {
                html += separator
                html += prompt.joined(position + 1..<upper)
            }
            if upper < prompt.count { html += "<span class=el>…</span>" }
        }
    }
}
