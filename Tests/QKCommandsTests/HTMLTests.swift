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
