/// The report's shared stylesheet and script, written once to `assets/` and linked from every page.
enum ReportAssets {
    /// Viridis, ten steps: perceptually even and legible in grey and for the colour-blind.
    static let sequential = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e",
                             "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"]
    /// Negative scores (strongest first) and positive ones (weakest first), for highlighted tokens.
    static let negative = ["#dbe9f6", "#bcd7ee", "#94c1e3", "#6aa6d6", "#4a8bc7"]
    static let positive = ["#fde4cf", "#fbc9a0", "#f8a96f", "#f1864a", "#e0622f"]
    /// How many metrics a heatmap can switch between.
    static let maxMetrics = 3

    static var css: String {
        var css = baseCSS
        for metric in 0..<maxMetrics {
            for (bin, colour) in sequential.enumerated() {
                css += ".r\(metric):checked~.maps .m\(metric)q\(bin),.legend i.m\(metric)q\(bin){fill:\(colour);background:\(colour)}\n"
            }
            css += ".r\(metric):checked~.maps .m\(metric)na,.legend i.m\(metric)na{fill:#e4e4e7;background:#e4e4e7}\n"
            css += ".r\(metric):checked~.maps .lg\(metric){display:flex}\n"
        }
        for (i, colour) in negative.enumerated() { css += "mark.n\(i + 1){background:\(colour)}\n" }
        for (i, colour) in positive.enumerated() { css += "mark.p\(i + 1){background:\(colour)}\n" }
        css += "mark.n4,mark.n5,mark.p5{color:#fff}\n"
        return css
    }

    static let baseCSS = """
        :root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa;--accent:#3e4989;--kept:#31688e;--rest:#c9ced6}
        *{box-sizing:border-box}
        body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
        main{max-width:1180px;margin:0 auto;padding:8px 24px 40px}
        nav.crumbs{padding:10px 24px;background:var(--soft);border-bottom:1px solid var(--line);font-size:14px}
        nav.crumbs .sep{color:var(--muted);margin:0 4px}
        footer{max-width:1180px;margin:0 auto;padding:16px 24px;color:var(--muted);font-size:12px;border-top:1px solid var(--line)}
        a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
        h1{font-size:24px;margin:18px 0 6px}h2{font-size:19px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
        h3{font-size:16px;margin:20px 0 6px}h4{font-size:15px;margin:0}
        .sub{color:var(--muted);margin:0 0 12px}
        code,.mono,.ctx,.tok{font-family:ui-monospace,"SF Mono","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
        table{border-collapse:collapse;font-size:14px}
        th,td{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
        th{font-weight:600;color:var(--muted);border-bottom:1px solid var(--line);white-space:nowrap}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
        tbody tr:nth-child(even){background:#fafbfc}
        table.sortable th{cursor:pointer}table.sortable th:hover{color:var(--fg)}
        .pill{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;background:var(--soft);border:1px solid var(--line);color:var(--muted)}
        .st-stable{color:#1a7f37}.st-rotated{color:#9a6700}.st-grew{color:#0969da}.st-shrank{color:#8250df}.st-emerged{color:#1f883d;font-weight:600}.st-vanished{color:#cf222e;font-weight:600}
        .hm{margin:8px 0 22px}
        .hm>input{position:absolute;opacity:0;pointer-events:none}
        .hm>label{display:inline-block;padding:2px 10px;margin:0 4px 6px 0;border:1px solid var(--line);border-radius:14px;cursor:pointer;font-size:13px;color:var(--muted)}
        .hm>input:checked+label{background:var(--accent);border-color:var(--accent);color:#fff}
        .hm>input:focus-visible+label{outline:2px solid #0b57d0}
        .maps{overflow-x:auto}
        .legend{display:none;align-items:center;gap:6px;font-size:12px;color:var(--muted);margin:2px 0 6px}
        .legend .lt{color:var(--fg);font-weight:600}.swatches{display:inline-flex}
        .legend i{display:inline-block;width:16px;height:12px}.lnote i{width:10px;height:10px;vertical-align:-1px}
        svg text{font:11px system-ui,sans-serif;fill:var(--muted)}
        svg .ax{text-anchor:middle}svg .ay{text-anchor:end}svg .ct{font-weight:600;fill:var(--fg)}
        svg.heatmap a:hover rect,svg.heatmap a:focus rect{stroke:#111;stroke-width:2}
        svg .axis{stroke:var(--line)}svg .kept{fill:var(--kept)}svg .rest{fill:var(--rest)}
        svg .rankline{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:4 3}svg .rl{fill:#cf222e;font-weight:600}
        svg .series{fill:none;stroke:var(--accent);stroke-width:2}svg .pt{fill:var(--accent)}
        .cards{display:flex;flex-wrap:wrap;gap:12px}
        .card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fff}
        .decomp{border:1px solid var(--line);border-radius:10px;padding:12px 16px;margin:16px 0;background:#fff}
        .decomp>header{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:baseline}
        .facts{color:var(--muted);font-size:13px}
        .comp{border-top:1px solid var(--line);margin-top:12px;padding-top:10px}
        .comp .label{font-weight:600}.comp .auto{color:var(--muted);font-size:13px}
        .note{color:var(--muted);font-style:italic}
        .sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(430px,1fr));gap:6px 24px;margin-top:6px}
        .list h5{margin:8px 0 2px;font-size:13px;color:var(--muted);font-weight:600}
        .list table{width:100%}.list td{padding:1px 8px 1px 0}
        table.ex td:first-child{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        table.ex td:nth-child(2){white-space:nowrap;color:var(--muted);font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
        table.ex td:nth-child(3){font-family:ui-monospace,"SF Mono","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;white-space:pre-wrap;word-break:break-word;unicode-bidi:isolate}
        .el{color:#8c959f}
        .aggs i{font-style:normal;white-space:nowrap}
        .aggs kbd{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px;background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:0 4px;white-space:pre;unicode-bidi:isolate}
        mark{border-radius:3px;padding:0 2px;color:var(--fg);font-weight:600;unicode-bidi:isolate}
        .aggs{margin:4px 0 0;font-size:13px;line-height:1.9}
        .tok{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:0 4px;white-space:pre;unicode-bidi:isolate}
        .maprow{display:flex;flex-wrap:wrap;gap:0 40px}
        .aggs sub{color:var(--muted);font-size:11px;margin:0 8px 0 2px;vertical-align:baseline}
        details>summary{cursor:pointer;color:#0b57d0;font-size:13px}
        .search{margin:8px 0 4px}.search input{font:inherit;padding:6px 10px;width:min(520px,100%);border:1px solid var(--line);border-radius:8px}
        #results{margin:6px 0 0;padding:0;list-style:none;max-height:420px;overflow-y:auto}#results li{padding:3px 0;border-bottom:1px solid #eef0f2}
        #results a{font-weight:600;margin-right:10px}#results .rlabel{margin-right:10px}#results .rm{color:var(--muted);font-size:13px}
        .nojs{color:var(--muted);font-size:13px}
        .toc{columns:3 220px;font-size:14px}
        .spark{display:flex;flex-wrap:wrap;gap:4px 20px}

        """

    static let javascript = """
        "use strict";
        (function () {
          // Sortable tables: click a header to sort by its column (numbers as numbers), again to reverse.
          document.querySelectorAll("table.sortable").forEach(function (table) {
            var headers = table.tHead ? table.tHead.rows[0].cells : [];
            Array.prototype.forEach.call(headers, function (th, column) {
              th.title = "sort";
              th.addEventListener("click", function () {
                var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
                var descending = th.dataset.sort !== "desc";
                Array.prototype.forEach.call(headers, function (h) { delete h.dataset.sort; });
                th.dataset.sort = descending ? "desc" : "asc";
                function key(row) {
                  var text = row.cells[column] ? row.cells[column].textContent.trim() : "";
                  var number = parseFloat(text.replace("\\u2212", "-"));
                  return isNaN(number) ? text.toLowerCase() : number;
                }
                rows.sort(function (a, b) {
                  var x = key(a), y = key(b);
                  if (typeof x !== typeof y) { x = String(x); y = String(y); }
                  return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
                });
                rows.forEach(function (row) { body.appendChild(row); });
              });
            });
          });
          // Search over the embedded index of labels and top tokens. Results are built as text nodes, never markup.
          var input = document.getElementById("search"), list = document.getElementById("results");
          var index = window.QKCAT_SEARCH_INDEX;
          if (!input || !list || !index) { return; }
          input.disabled = false;
          document.querySelectorAll(".nojs").forEach(function (e) { e.hidden = true; });
          var lowered = index.entries.map(function (e) { return (e[0] + " " + e[1] + " " + e[3] + " " + e[4]).toLowerCase(); });
          function show() {
            var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
            list.textContent = "";
            if (!words.length) { return; }
            var shown = 0, found = 0;
            for (var i = 0; i < lowered.length; i++) {
              if (!words.every(function (w) { return lowered[i].indexOf(w) >= 0; })) { continue; }
              found++;
              if (shown >= 50) { continue; }
              shown++;
              var e = index.entries[i], li = document.createElement("li"), a = document.createElement("a");
              a.href = e[2];
              a.textContent = e[3];
              var label = document.createElement("span"), more = document.createElement("span");
              label.className = "rlabel";
              label.textContent = e[0];
              more.className = "rm";
              more.textContent = e[1] + " \\u00b7 " + e[4];
              li.appendChild(a);
              li.appendChild(label);
              li.appendChild(more);
              list.appendChild(li);
            }
            var summary = document.createElement("li");
            summary.className = "sub";
            summary.textContent = found + " match" + (found === 1 ? "" : "es") + (found > shown ? ", first " + shown + " shown" : "");
            list.insertBefore(summary, list.firstChild);
          }
          input.addEventListener("input", show);
          if (input.value) { show(); }
        })();

        """
}
