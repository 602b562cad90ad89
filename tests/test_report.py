"""The HTML report, opened in a real headless Chromium: the page loads offline, every image
loads, every link resolves inside the report folder, and the console shows no errors.

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
    table = pd.DataFrame({"model": ["tiny-qwen2-audio", "prior"], "strategy": ["majority", "reference"],
                          "js_divergence": [0.123456, 0.2345]})
    write_table(table, src / "tables" / "demo_main")
    write_table(table.assign(reported=[0.1, 0.2]), src / "tables" / "reported_vs_reproduced")
    (src / "tables" / "demo_main.tex").write_text("\\begin{tabular}{ll}\\end{tabular}\n")
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
    assert images == [["figures/demo_js_divergence.png", True, images[0][2]]] and images[0][2] > 100
    hrefs = [a.get_dom_attribute("href") for a in browser.find_elements("tag name", "a")]
    folder = report.parent.resolve()
    for href in hrefs:
        assert not re.match(r"^[a-z]+:|^//", href), f"{href} leaves the report folder"
        target = (folder / unquote(href)).resolve()
        assert target.is_relative_to(folder) and target.is_file(), href
    assert {"tables/demo_main.csv", "tables/demo_main.md", "tables/demo_main.tex",
            "figures/demo_js_divergence.pdf", "notebooks/04_score__demo.html",
            "tables/reported_vs_reproduced.csv"} <= set(hrefs)
    assert severe(browser) == []
    # the tables are on the page, not only linked; the comparison has its own section
    text = browser.find_element("tag name", "body").text
    assert "tiny-qwen2-audio majority 0.123" in text
    assert "Reported (Jia et al., 2026) vs reproduced" in text
    assert "all 3 batches came from the sample store" in text
    assert "<the model>" in text          # the config, escaped, not swallowed as a tag
    assert re.search(r"transformers\s+\d+\.\d+", text) and re.search(r"torch\s+\d+\.\d+", text)


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


def test_markdown_tables_become_html_and_other_text_stays_verbatim():
    html = markdown_table_html("| model | js |\n|:--|--:|\n| a<b | 0.1 [0.0, 0.2] |\n")
    assert html == ("<table><thead><tr><th>model</th><th>js</th></tr></thead><tbody><tr>"
                    "<td>a&lt;b</td><td>0.1 [0.0, 0.2]</td></tr></tbody></table>")
    assert markdown_table_html("no table <here>") == "<pre>no table &lt;here&gt;</pre>"


def test_report_of_a_run_without_outputs_says_so(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: empty\n")
    index = write_report(tmp_path / "report", title="ambiemo report: empty", config_file=config,
                         executed_dir=tmp_path / "executed", table_dir=tmp_path / "tables",
                         figure_dir=tmp_path / "figures")
    text = index.read_text()
    assert "0 notebook(s), 0 table(s), 0 figure(s)" in text
    assert text.count("<p>none</p>") == 2
