"""`qkcat report` opened in headless Chromium: the bundled MiniLM catalog and a capture of hostile tokens.

Each page is checked for console errors, uncaught exceptions and any request leaving the report's folder; the index
for its heatmaps and search, a head page for its spectrum and highlighted tokens. Screenshots are written to a
temporary folder (to docs/ with QKCAT_UPDATE_SCREENSHOTS=1) and compared with the committed ones for size and
non-blankness.
"""
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import qkcapture
from browser import Browser, find_chromium, png_colours, png_size
from test_qkcat_ingest import qkcat_binary

REPO = pathlib.Path(__file__).resolve().parents[2]
MINILM = REPO / "Examples" / "minilm" / "capture"
DOCS = REPO / "docs"
MODEL_SLUG = "sentence-transformers-all-MiniLM-L6-v2"
HOSTILE = "<img src=x onerror=alert(1)>"

if not find_chromium():
    if os.environ.get("QKCAT_REQUIRE_BROWSER"):
        raise RuntimeError("chromium is required (apt-get install -y chromium)")
    pytest.skip("chromium is not installed (make test installs it)", allow_module_level=True)


def run(*arguments):
    result = subprocess.run([str(qkcat_binary()), *map(str, arguments)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def minilm_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("minilm-report")
    db = root / "demo.sqlite"
    run("ingest", MINILM, "--db", db, "--per-value", "--quiet")
    site = root / "site"
    out = run("report", "--db", db, "--out", site)
    assert out.strip() == str(site / "index.html")
    return site


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A capture whose key tokens are markup, quotes, control and direction characters."""
    root = tmp_path_factory.mktemp("hostile-report")
    strange = [HOSTILE, "<script>alert(2)</script>", "\"'&amp;", "\u202eevil", "Ġspace", "Ċ", "\x07bell"]
    rng = np.random.default_rng(7)
    capture = root / "capture"
    with qkcapture.CaptureWriter(capture, model="test/hostile", checkpoint="main", n_layers=1, n_heads=2,
                                 n_kv_heads=2, d_head=8, layers=[0], features={"category": {"kind": "semantic"}},
                                 positional="none") as writer:
        for p in range(60):
            tokens = ["<s>", strange[p % len(strange)], ",", strange[(p + 3) % len(strange)], ",", "fruits", "?"]
            writer.add_prompt(f"p<{p}>", tokens=tokens, query_position=5, query_labels={"category": "a" if p % 2 else "b"},
                              keys=[{"position": 1, "labels": {"category": "a"}},
                                    {"position": 3, "labels": {"category": "b"}}],
                              q={0: rng.standard_normal((2, 8)).astype(np.float32)},
                              k={0: rng.standard_normal((2, 2, 8)).astype(np.float32)})
    db = root / "hostile.sqlite"
    run("ingest", capture, "--db", db, "--quiet")
    site = root / "site"
    run("report", "--db", db, "--out", site)
    return site


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1280, height=900) as b:
        yield b


def open_page(browser, site, relative):
    page = browser.page()
    browser.events.clear()
    page.open((site / relative).resolve().as_uri())
    return page


def assert_clean(page, site):
    assert page.console_errors() == []
    prefix = site.resolve().as_uri() + "/"
    outside = [url for url in page.requests() if not url.startswith(prefix)]
    assert outside == [], f"requests outside the report: {outside}"
    assert page.dialogs() == []


VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"]


def rgb(hex_colour):
    return "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


def check_screenshot(page, name, tmp_path, full_page=False):
    """Writes the screenshot; compares it with the committed one (same width, similar size, not blank)."""
    update = os.environ.get("QKCAT_UPDATE_SCREENSHOTS")
    path = (DOCS if update else tmp_path) / name
    data = page.screenshot(path, full_page=full_page)
    width, height = png_size(data)
    assert width == 1280 and height >= 600
    assert png_colours(data) > 40, "the screenshot is nearly blank"
    committed = DOCS / name
    if committed.exists() and not update:
        reference = committed.read_bytes()
        assert png_size(reference)[0] == width
        assert 0.5 < len(data) / len(reference) < 2, (len(data), len(reference))


def test_index_heatmaps_search_and_no_network(browser, minilm_site, tmp_path):
    page = open_page(browser, minilm_site, "index.html")
    assert_clean(page, minilm_site)
    # One map per feature (category, order), one linked cell per head: 6 layers × 12 heads.
    cells = page.evaluate("Array.from(document.querySelectorAll('svg.heatmap')).map("
                          "s => [s.querySelectorAll('rect.cell').length, s.querySelectorAll('a > rect.cell').length])")
    assert cells == [[72, 72], [72, 72]]
    check_screenshot(page, "report-index.png", tmp_path)
    # Cells are coloured by the metric chosen with the radio buttons (CSS only): σ₁ first, then rank.
    first_cell = "document.querySelector('svg.heatmap rect.cell')"
    classes = page.evaluate(f"{first_cell}.getAttribute('class')").split()
    bins = {c[:2]: int(c[3:]) for c in classes if c[:2] in ("m0", "m2")}
    assert page.evaluate(f"getComputedStyle({first_cell}).fill") == rgb(VIRIDIS[bins["m0"]])
    page.evaluate("document.querySelector('.hm label[for$=\"-2\"]').click()")
    assert page.evaluate("document.querySelector('.hm input.r2').checked") is True
    assert page.evaluate(f"getComputedStyle({first_cell}).fill") == rgb(VIRIDIS[bins["m2"]])
    assert page.evaluate("getComputedStyle(document.querySelector('.hm .legend.lg2')).display") == "flex"
    assert page.evaluate("getComputedStyle(document.querySelector('.hm .legend.lg0')).display") == "none"
    # Search: every result names horse in its label or top tokens, and links to an existing head page.
    page.evaluate("const i = document.getElementById('search'); i.value = 'horse'; i.dispatchEvent(new Event('input'))")
    results = page.evaluate("Array.from(document.querySelectorAll('#results li a')).map(a => [a.parentNode.textContent, a.getAttribute('href')])")
    assert len(results) >= 5
    assert all("horse" in text.lower() for text, _ in results)
    for _, href in results:
        assert (minilm_site / href.split("#")[0]).exists(), href
    assert page.console_errors() == []


def test_head_page_spectrum_and_highlighted_tokens(browser, minilm_site, tmp_path):
    page = open_page(browser, minilm_site, f"{MODEL_SLUG}/main/L2H9.html")
    assert_clean(page, minilm_site)
    # The pooled category decomposition first: 32 singular values, 9 kept for 99% of Σσ².
    bars = page.evaluate("(() => { const s = document.querySelector('section.decomp svg.spectrum');"
                         " return [s.querySelectorAll('rect.kept').length, s.querySelector('path.rest').getAttribute('d').split('M').length - 1,"
                         " s.querySelector('.rl').textContent]; })()")
    assert bars == [9, 23, "rank 9 · 99% of Σσ²"]
    marks = page.evaluate("Array.from(document.querySelectorAll('#d' + document.querySelector('section.decomp').id.slice(1)"
                          " + ' .comp')[0].querySelectorAll('mark')).map(m => [m.textContent, m.className])")
    assert len(marks) >= 20
    assert {"horse", "boat"} <= {text for text, _ in marks}
    assert {cls[0] for _, cls in marks} == {"p", "n"}, "both ends are coloured"
    # Visible: the first component's top key row shows its context around the marked token.
    visible = page.evaluate("document.querySelector('.comp table tr').getBoundingClientRect().height")
    assert visible > 0
    check_screenshot(page, "report-head.png", tmp_path)


def test_every_page_is_small_and_offline(browser, minilm_site):
    pages = sorted(minilm_site.rglob("*.html"))
    assert len(pages) == 72 + 1 + 1
    assert max(p.stat().st_size for p in pages) < 1_000_000
    for relative in ["index.html", f"{MODEL_SLUG}/main/index.html", f"{MODEL_SLUG}/main/L0H2.html"]:
        page = open_page(browser, minilm_site, relative)
        assert_clean(page, minilm_site)


def test_hostile_tokens_are_text(browser, hostile_site):
    heads = sorted(hostile_site.rglob("L*H*.html"))
    assert len(heads) == 2
    for head in heads:
        page = open_page(browser, hostile_site, head.relative_to(hostile_site))
        assert_clean(page, hostile_site)
        assert page.evaluate("document.querySelectorAll('main img, main script, main b').length") == 0
        text = page.evaluate("document.body.textContent")
        assert HOSTILE in text and "<script>alert(2)</script>" in text
        assert "\u202e" not in text and "\x07" not in text and "⟨U+202E⟩evil" in text
    page = open_page(browser, hostile_site, "index.html")
    assert_clean(page, hostile_site)
    page.evaluate("const i = document.getElementById('search'); i.value = 'onerror'; i.dispatchEvent(new Event('input'))")
    assert page.evaluate("document.querySelectorAll('#results img').length") == 0
    assert HOSTILE in page.evaluate("document.getElementById('results').textContent")
    assert page.dialogs() == []
