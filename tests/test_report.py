"""The HTML report, opened in a real headless Chromium at 1280 px: the page loads offline,
every image loads, every link resolves inside the report folder, the console shows no errors,
tables are real tables (none inside <pre>), the page never scrolls sideways, main results
come first and reported numbers that were not run collapse into one line. A screenshot is
kept under build/test-artifacts/ (ignored by git) for a person to look at.

Chromium and chromedriver come from Debian packages (`scripts/setup.sh test` installs them).
"""
import re
import shutil
from urllib.parse import unquote, urlparse

import matplotlib
import nbformat
import pandas as pd
import pytest

matplotlib.use("Agg")

from ambiemo.outputs import figures as plots  # noqa: E402
from ambiemo.outputs.paper_figures import PaperFigure, save_paper_figure  # noqa: E402
from ambiemo.outputs.report import markdown_table_html, write_report  # noqa: E402
from ambiemo.outputs.tables import write_table  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report built from real artefacts: an executed-notebook file with a PNG output, a
    figure saved by ambiemo.outputs.figures (PNG + PDF), a table written by ambiemo.outputs.tables."""
    import matplotlib.pyplot as plt

    src = tmp_path_factory.mktemp("run")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["angry", "happy", "neutral", "sad"], [0.1, 0.4, 0.3, 0.2])
    plots.save(fig, src / "figures" / "demo_js_divergence", formats=("png", "pdf"))
    png = (src / "figures" / "demo_js_divergence.png").read_bytes()
    wide = plt.figure(figsize=(7.2, 2.5))
    wide.add_subplot().plot([1, 2, 4], [0.3, 0.25, 0.2])
    save_paper_figure(PaperFigure("scaling", wide, "demo: JS against n, the caption."),
                      src / "figures" / "demo_paper_scaling")
    save_paper_figure(PaperFigure("capacity", None, "demo: capacity not drawn: one size."),
                      src / "figures" / "demo_paper_capacity")
    save_paper_figure(PaperFigure("cost", wide, "demo: JS against forward passes."),
                      src / "figures" / "demo_paper_cost")
    table = pd.DataFrame({"model": ["tiny-qwen2-audio", "prior"], "strategy": ["majority", "reference"],
                          "js_divergence": [0.123456, 0.2345]})
    # a main table as wide as a real one: long interval cells and a note
    main = pd.DataFrame({"model": ["tiny-qwen2-audio"] * 3, "strategy": ["greedy", "w_bon", "alm_v"],
                         **{f"metric_{i}": ["0.123 [0.100, 0.150]"] * 3 for i in range(9)},
                         "note": ["", "", "unavailable: no verifier run for this model, so "
                                          "alm_v and w_alm_v cannot be computed"]})
    bold = pd.DataFrame(False, index=main.index, columns=main.columns)
    bold.iloc[1, 2] = True
    write_table(main, src / "tables" / "demo_main", markdown=main, bold=bold,
                caption="demo: mean over clips with 95% bootstrap interval; best in bold.")
    write_table(table, src / "tables" / "demo_corpus_statistics")
    write_table(pd.DataFrame({
        "corpus": ["demo"] * 3, "model": ["tiny-qwen2-audio", "qwen2-audio", "gpt-4o"],
        "strategy": ["majority", "w_bon", "greedy"], "metric": ["js_divergence"] * 3,
        "reported": [0.1, 0.2, 0.3], "reproduced": [0.12, None, None],
        "status": ["reproduced", "not run: no qwen2-audio / w_bon on demo in this config",
                   "not run: no gpt-4o / greedy on demo in this config"]}),
        src / "tables" / "reported_vs_reproduced")
    import base64
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 04 · Score\n\n$JS(p, q)$ against the human votes"),
        nbformat.v4.new_code_cell("print('scored 24 clips')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="scored 24 clips\n"),
            nbformat.v4.new_output("display_data", data={
                "image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"})])])
    (src / "executed").mkdir()
    nbformat.write(nb, src / "executed" / "04_score__demo.ipynb")
    config = src / "fixture.yaml"
    config.write_text("name: fixture\nmodels: [tiny-qwen2-audio]  # <the model>\n")
    summary = [{"stage": "score", "job": "04_score [demo]", "state": "ran", "seconds": 1.5, "note": ""},
               {"stage": "generate", "job": "02_generate [demo, m]", "state": "cached",
                "seconds": 0.4, "note": "all 3 batches came from the sample store"}]
    index = write_report(src / "report", title="ambiemo report: fixture", config_file=config,
                         executed_dir=src / "executed", table_dir=src / "tables",
                         figure_dir=src / "figures", summary=summary)
    shutil.rmtree(src / "figures")   # the report folder must stand alone
    shutil.rmtree(src / "tables")
    return index


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not (chromium and driver_bin):
        pytest.fail("chromium and chromedriver are needed: run `scripts/setup.sh test` (as "
                    "root it installs the Debian packages chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    yield driver
    driver.quit()


def severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_report_opens_offline_with_every_image_and_link_working(report, browser):
    browser.get(report.as_uri())
    assert browser.title == "ambiemo report: fixture"
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    # paper figures in the order of the argument (scaling before cost), diagnostics after
    assert [i[0] for i in images] == ["figures/demo_paper_scaling.png",
                                      "figures/demo_paper_cost.png",
                                      "figures/demo_js_divergence.png"]
    assert all(done and width > 100 for _, done, width in images), images
    hrefs = [a.get_dom_attribute("href") for a in browser.find_elements("tag name", "a")]
    folder = report.parent.resolve()
    anchors = [h for h in hrefs if h.startswith("#")]   # the table of contents
    assert {"#findings", "#main-results", "#paper-figures", "#versions"} <= set(anchors)
    for a in anchors:
        assert browser.find_elements("id", a[1:]), f"{a}: no such section"
    hrefs = [h for h in hrefs if not h.startswith("#")]
    for href in hrefs:
        assert not re.match(r"^[a-z]+:|^//", href), f"{href} leaves the report folder"
        target = (folder / unquote(href)).resolve()
        assert target.is_relative_to(folder) and target.is_file(), href
    assert {"tables/demo_main.csv", "tables/demo_main.md", "tables/demo_main.tex",
            "figures/demo_js_divergence.pdf", "notebooks/04_score__demo.html",
            "figures/demo_paper_scaling.pdf", "tables/reported_vs_reproduced.csv"} <= set(hrefs)
    assert severe(browser) == []
    text = browser.find_element("tag name", "body").text
    assert "Reported (Jia et al., 2026) vs reproduced" in text
    assert "all 3 batches came from the sample store" in text
    assert "<the model>" in text          # the config, escaped, not swallowed as a tag
    assert re.search(r"transformers\s+\d+\.\d+", text) and re.search(r"torch\s+\d+\.\d+", text)


def test_report_reads_like_a_paper_at_1280_px(report, browser, request):
    browser.set_window_size(1280, 900)
    browser.get(report.as_uri())
    page = browser.execute_script("""
        const d = document.documentElement;
        return {scroll: d.scrollWidth, client: d.clientWidth,
                preTables: document.querySelectorAll('pre table').length,
                preText: Array.from(document.querySelectorAll('pre')).map(p => p.textContent),
                headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
                bold: Array.from(document.querySelectorAll('#main-results ~ .table-wrap strong, .table-wrap strong')).map(b => b.textContent),
                wraps: Array.from(document.querySelectorAll('.table-wrap')).map(w => [w.scrollWidth > w.clientWidth, getComputedStyle(w).overflowX]),
                textAlign: getComputedStyle(document.querySelector('.table-wrap td')).textAlign,
                captions: Array.from(document.querySelectorAll('figure.paper figcaption')).map(c => c.textContent),
                notes: Array.from(document.querySelectorAll('p.note')).map(p => p.textContent),
                summaries: Array.from(document.querySelectorAll('details > summary')).map(s => s.textContent)};
    """)
    assert page["client"] > 1200 and page["scroll"] <= page["client"], page   # no sideways scroll
    assert page["preTables"] == 0
    assert not any("|---" in t or "**" in t for t in page["preText"]), "a table shown as raw Markdown"
    assert page["headings"][:5] == ["Findings", "Run summary", "Main results", "Paper figures",
                                    "Reported (Jia et al., 2026) vs reproduced"]
    assert "0.123 [0.100, 0.150]" in page["bold"]       # best value in bold, not **
    assert [True, "auto"] in page["wraps"]              # the wide main table scrolls in its box
    assert page["textAlign"] in ("left", "start")       # text columns left-aligned
    assert page["captions"][0].startswith("demo_paper_scaling. demo: JS against n")
    assert page["notes"] == ["demo: capacity not drawn: one size."]
    assert page["summaries"] == ["demo_main: every row",     # the full table, collapsed
                                 "2 reported number(s) not run in this config"]
    body = browser.find_element("tag name", "body").text
    assert "tiny-qwen2-audio majority js_divergence 0.1000 0.1200 reproduced" in body
    assert "qwen2-audio" not in body.replace("tiny-qwen2-audio", "")   # collapsed, not shown
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(full + 100, 8000))
    artefacts = request.config.rootpath / "build" / "test-artifacts"
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "report_1280px.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    browser.set_window_size(1280, 900)


def test_rendered_notebook_opens_offline_with_its_outputs(report, browser):
    page = report.parent / "notebooks" / "04_score__demo.html"
    browser.get(page.as_uri())
    assert browser.title == "04_score__demo"
    assert "scored 24 clips" in browser.find_element("tag name", "body").text
    images = browser.execute_script(
        "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);")
    assert images == [True]
    assert severe(browser) == []
    scripts = [urlparse(s) for s in re.findall(r"<script[^>]*\bsrc=['\"]([^'\"]+)", page.read_text())]
    assert scripts == [], "the rendered notebook fetches scripts"


def test_markdown_tables_become_html_with_bold_and_alignment_and_html_escaped():
    html = markdown_table_html("caption with **x**\n\n| model | js |\n|---|---:|\n"
                               "| a<b | **0.1 [0.0, 0.2]** |\n")
    assert "<pre>" not in html and "<p>caption with <strong>x</strong></p>" in html
    assert "<div class='table-wrap'><table>" in html
    assert "<td>a&lt;b</td>" in html
    assert '<td style="text-align: right;"><strong>0.1 [0.0, 0.2]</strong></td>' in html


def test_report_of_a_run_without_outputs_says_so(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: empty\n")
    index = write_report(tmp_path / "report", title="ambiemo report: empty", config_file=config,
                         executed_dir=tmp_path / "executed", table_dir=tmp_path / "tables",
                         figure_dir=tmp_path / "figures")
    text = index.read_text()
    assert "0 notebook(s), 0 table(s), 0 figure(s)" in text
    assert text.count("<p>none</p>") == 3   # main results, other tables, diagnostic figures


def test_findings_name_each_models_best_strategy_and_control_with_intervals(tmp_path):
    """Findings from a real main table: per arm, each model's greedy, best strategy and best
    control (JS, lower is better) with their intervals, and the reference rows."""
    from ambiemo.outputs import tables
    from ambiemo.outputs.findings import findings_html

    rows = []
    for strategy, js in [("greedy", 0.50), ("w_bon", 0.30), ("majority", 0.35),
                         ("greedy_smoothed", 0.32), ("vote_share", 0.40)]:
        rows.append(dict(model="m", prompt="distribution", strategy=strategy, n=8, n_utts=10,
                         n_missing=0, share_missing=0.0, n_ties=0, js_divergence=js,
                         js_divergence_lo=js - 0.02, js_divergence_hi=js + 0.02))
    rows.append(dict(model="prior", prompt="-", strategy="reference", n=1, n_utts=10,
                     n_missing=0, share_missing=0.0, n_ties=0, js_divergence=0.2,
                     js_divergence_lo=0.18, js_divergence_hi=0.22))
    table = tables.main_table(pd.DataFrame(rows), metrics=("js_divergence",))
    tables.write_main_table(table, tmp_path / "demo_main", corpus="demo",
                            metrics=("js_divergence",))
    html = findings_html(tmp_path)
    assert "demo, distribution prompt" in html
    cells = re.findall(r"<td>(.*?)</td>", html)
    assert cells[:6] == ["m", "0.500 [0.480, 0.520]", "w_bon", "0.300 [0.280, 0.320]",
                         "greedy_smoothed", "0.320 [0.300, 0.340]"]
    assert "prior" in cells and "0.200 [0.180, 0.220]" in cells
    assert "not a bound" in html
