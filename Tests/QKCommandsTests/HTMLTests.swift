import Foundation
import Testing
@testable import QKCommands

@Suite("HTML")
struct HTMLTests {
    @Test("markup characters and both quotes become entities")
    func escape() {
        #expect(HTML.escape(#"<img src=x onerror="alert(1)">&'"#)
            == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;")
        #expect(HTML.escape("plain ünïcode ✓") == "plain ünïcode ✓")
    }

    @Test("BPE markers, control and direction characters are shown, not obeyed")
    func tokens() {
        #expect(HTML.displayToken("Ġthe") == " the")
        #expect(HTML.displayToken("Ċ") == "↵")
        #expect(HTML.displayToken("a\tb\n") == "a→b↵")
        #expect(HTML.displayToken("\u{0}\u{1B}") == "␀␛")
        #expect(HTML.displayToken("\u{202E}evil") == "⟨U+202E⟩evil")
        #expect(HTML.displayToken("x\u{200B}y\u{200F}") == "x⟨U+200B⟩y⟨U+200F⟩")
        #expect(HTML.token("Ġ<script>") == " &lt;script&gt;")
    }

    @Test("file names keep letters, digits, dots, dashes and underscores")
    func slug() {
        #expect(HTML.slug("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers-all-MiniLM-L6-v2")
        #expect(HTML.slug("../etc") == "-etc")
        #expect(HTML.slug("") == "-")
    }

    @Test("JSON inside a script cannot close it")
    func scriptJSON() {
        let json = JSONValue.array([.string("</script><script>alert(1)</script>&\u{2028}")]).rendered()
        let safe = ReportPages.scriptSafeJSON(json)
        #expect(!safe.contains("<") && !safe.contains(">") && !safe.contains("&") && !safe.contains("\u{2028}"))
        let decoded = try? JSONSerialization.jsonObject(with: Data(safe.utf8)) as? [String]
        #expect(decoded == ["</script><script>alert(1)</script>&\u{2028}"])
    }

    @Test("a page escapes its title and crumbs and links only local assets")
    func page() {
        let html = HTML.page(title: "<b>t</b>", root: "../../", breadcrumbs: [("a\"b", "x.html"), ("<c>", nil)], body: "<p>body</p>")
        #expect(html.contains("<title>&lt;b&gt;t&lt;/b&gt;</title>"))
        #expect(html.contains("<a href=\"x.html\">a&quot;b</a>") && html.contains("<span>&lt;c&gt;</span>"))
        #expect(html.contains("href=\"../../assets/report.css\"") && html.contains("src=\"../../assets/report.js\""))
        #expect(!html.contains("http://") && !html.contains("https://"))
    }
}

@Suite("SVG charts")
struct SVGChartsTests {
    @Test("numbers as %.Nf would write them")
    func fixed() {
        for (x, digits) in [(0.0, 3), (5.4004, 3), (-1.2345, 2), (-0.0004, 3), (99.95, 1), (123456.4, 0), (-7.0, 0), (0.6, 0)] {
            #expect(SVGCharts.fixed(x, digits: digits) == String(format: "%.\(digits)f", x).replacingOccurrences(of: "-0.000", with: "0.000"),
                    "\(x) \(digits)")
        }
        #expect(SVGCharts.number(5.8649) == "5.865" && SVGCharts.number(21.81) == "21.8" && SVGCharts.number(162.7) == "163")
        #expect(SVGCharts.number(.nan) == "–")
    }

    @Test("a spectrum marks its rank; the tail is one path")
    func spectrum() {
        let svg = SVGCharts.spectrum([4, 2, 1, 0.5, 0.1], rank: 2, energy: 0.99)
        #expect(svg.components(separatedBy: "<rect class=\"kept\"").count - 1 == 2)
        #expect(svg.components(separatedBy: "<path class=\"rest\"").count - 1 == 1)
        #expect(svg.contains("rank 2 · 99% of Σσ²"))
    }
}
