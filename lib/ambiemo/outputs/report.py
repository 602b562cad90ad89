"""The HTML report of one study run: runs/<config>/report/index.html.

One self-contained folder that opens from file:// with nothing fetched from the internet and
no JavaScript: the run summary, the reported-vs-reproduced comparison with Jia et al. (2026)
where it exists, every table (shown, with its CSV/Markdown/LaTeX files linked), every figure
(PNG shown, PDF linked), every executed notebook rendered to HTML by nbconvert, the config
used and the versions of the software that produced the numbers.

A reader comes for the results: a table of contents, then **Findings** (`findings`: per
corpus and arm the best strategy per model against greedy and the controls, the reference
rows, the paper's numbers beside this run's), then the main tables (collapsed: open one to
read every row; the first column stays in view while a wide table scrolls), then the paper figures (files
named `*paper_*`, each with the caption `paper_figures.save_paper_figure` wrote beside it, or
the caption alone as a note when there was nothing to draw), then the comparison with the
paper, where reported numbers this config did not run collapse into one line; the other
tables and the diagnostic figures follow. Tables are rendered from their Markdown by the
`markdown` library (bold best values, numbers right-aligned, text left-aligned), inside a box
that scrolls sideways when a table is wider than the page.
"""
from __future__ import annotations

import html
import importlib.metadata
import platform
import shutil
from pathlib import Path

import markdown as md_lib
import pandas as pd

from ambiemo.outputs.findings import findings_html
from ambiemo.outputs.provenance import git_state

TABLE_FILES = (".md", ".csv", ".tex")
FIGURE_FILES = (".png", ".pdf", ".svg", ".txt")   # .txt: a paper figure's caption
PAPER_MARK = "paper_"
# The order of the paper's argument (paper_figures): distance by ambiguity, gain, capacity,
# scaling, then scaling on a compute axis; anything else after them.
PAPER_ORDER = ("metric_by_ambiguity", "gain_by_ambiguity", "capacity", "scaling", "cost")
NOT_RUN = "not run"
VERSIONED = ("ambiemo", "torch", "transformers", "pandas", "numpy", "statsmodels")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-top: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.table-wrap { max-width: 100%; overflow-x: auto; }
.table-wrap th:first-child, .table-wrap td:first-child { position: sticky; left: 0;
       background: #fff; z-index: 1; } .table-wrap th:first-child { background: #f3f3f3; }
nav.toc ul { columns: 2; } details > summary { cursor: pointer; font-weight: 600; }
.table-wrap table { white-space: nowrap; }
figure.paper { display: block; margin: 1rem 0; }
figure.paper img { max-width: 100%; }
figcaption { font-size: 0.9rem; max-width: 60rem; }
p.note { font-style: italic; }
tr.failed td { background: #fde2e2; } tr.skipped td { background: #fff4d6; }
.stale { color: #a05a00; font-style: italic; }
figure { display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 34rem; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
.files a { margin-right: 0.6rem; }
"""

# nbconvert's lab template fetches require.js, MathJax and mermaid from a CDN; the report must
# open offline without console errors, and the executed notebooks need none of them.
OFFLINE_NOTEBOOK_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""


def build_report(cfg, summary: list[dict] | None = None, since: float | None = None) -> Path:
    """Build the report of study config `cfg` (a StudyConfig); returns index.html's path."""
    return write_report(cfg.run_dir / "report", title=f"ambiemo report: {cfg.run_name}",
                        config_file=cfg.path, executed_dir=cfg.run_dir / "executed",
                        table_dir=cfg.table_dir, figure_dir=cfg.figure_dir, summary=summary,
                        since=since, repo=cfg.root)


STALE = "<p class='stale'>From an earlier run: not remade by this run.</p>"


def write_report(out: Path, *, title: str, config_file: Path, executed_dir: Path,
                 table_dir: Path, figure_dir: Path, summary: list[dict] | None = None,
                 since: float | None = None, repo: Path | None = None) -> Path:
    """Write `out`/index.html with copies of the tables and figures and the notebooks
    rendered to HTML, so the folder stands alone. Earlier contents of `out` are replaced.
    Given the run's start time `since`, every table, figure and notebook older than it
    (left by an earlier run, e.g. when this run's stage failed) is marked as such."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tables = _copy_grouped(table_dir, TABLE_FILES, out / "tables")
    figures = _copy_grouped(figure_dir, FIGURE_FILES, out / "figures")
    notebooks = [render_notebook(nb, out / "notebooks")
                 for nb in sorted(executed_dir.glob("*.ipynb"))]
    comparison = tables.pop("reported_vs_reproduced", None)
    main = {k: v for k, v in tables.items() if k.endswith("_main")}
    other = {k: v for k, v in tables.items() if k not in main}
    paper = dict(sorted(((k, v) for k, v in figures.items() if PAPER_MARK in k),
                        key=lambda kv: _paper_rank(kv[0])))
    diagnostic = {k: v for k, v in figures.items() if k not in paper}
    drawn = sum(any(f.suffix != ".txt" for f in v) for v in figures.values())
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p>Config <code>{_e(config_file.name)}</code>; {len(notebooks)} notebook(s), "
             f"{len(tables) + bool(comparison)} table(s), {drawn} figure(s).</p>"]
    toc_at = len(parts)
    found = findings_html(out / "tables")
    if found:
        parts += ["<h2 id='findings'>Findings</h2>", found]
    if summary:
        parts += ["<h2 id='summary'>Run summary</h2>", _summary_table(summary)]

    def old(files) -> bool:       # copies keep the source's time (shutil.copy2)
        return since is not None and all(f.stat().st_mtime < since for f in files)

    parts.append("<h2 id='main-results'>Main results</h2>")
    parts += [f"<details><summary>{_e(stem)}: every row</summary>"
              + _table_section(stem, files) + (STALE if old(files) else "") + "</details>"
              for stem, files in main.items()] or ["<p>none</p>"]
    if paper:
        parts.append("<h2 id='paper-figures'>Paper figures</h2>")
        parts += [_figure(stem, files, paper=True) for stem, files in paper.items()]
    if comparison:
        parts += ["<h2 id='reported-vs-reproduced'>Reported (Jia et al., 2026) vs reproduced</h2>",
                  _comparison_section(comparison)]
    parts.append("<h2 id='tables'>Other tables</h2>")
    parts += [_table_section(stem, files) + (STALE if old(files) else "")
              for stem, files in other.items()] or ["<p>none</p>"]
    parts.append("<h2 id='figures'>Diagnostic figures</h2>")
    parts += [_figure(stem, files) + (STALE if old(files) else "")
              for stem, files in diagnostic.items()] or ["<p>none</p>"]
    parts.append("<h2 id='notebooks'>Executed notebooks</h2><ul>")
    parts += [f"<li><a href='notebooks/{_e(p.stem)}.html'>{_e(p.stem)}</a>"
              + (" <span class='stale'>(from an earlier run)</span>" if old([p]) else "")
              + "</li>" for p in sorted(executed_dir.glob("*.ipynb"))]
    parts.append("</ul>")
    parts += ["<h2 id='config'>Config</h2>", f"<pre>{_e(config_file.read_text())}</pre>",
              "<h2 id='versions'>Versions</h2>", _versions_table(repo or config_file.parent)]
    parts.insert(toc_at, _toc(parts))
    index = out / "index.html"
    index.write_text("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                     f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
                     + "\n".join(parts) + "\n</body></html>\n")
    return index


def render_notebook(notebook: Path, out_dir: Path) -> Path:
    """`notebook` rendered by nbconvert to `out_dir`/<stem>.html, outputs embedded."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader(
        {"ambiemo_offline.html.j2": OFFLINE_NOTEBOOK_TEMPLATE})],
        template_file="ambiemo_offline.html.j2", embed_images=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                          resources={"metadata": {"name": notebook.stem}})
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{notebook.stem}.html"
    target.write_text(body)
    return target


def _copy_grouped(src: Path, suffixes: tuple[str, ...], dst: Path) -> dict[str, list[Path]]:
    """Copy the files of `src` with these suffixes to `dst`; {stem: copies} sorted by stem."""
    groups: dict[str, list[Path]] = {}
    for f in sorted(src.glob("*")) if src.is_dir() else []:
        if f.is_file() and f.suffix in suffixes:
            dst.mkdir(parents=True, exist_ok=True)
            groups.setdefault(f.stem, []).append(Path(shutil.copy2(f, dst / f.name)))
    return dict(sorted(groups.items()))


def _paper_rank(stem: str) -> tuple[int, int, str]:
    """The paper's order; a prompt arm after the main one (`..._scaling__direct_label`)
    follows the main arm's figures of the same kind."""
    name, _, arm = stem.split(PAPER_MARK, 1)[1].partition("__")
    return (PAPER_ORDER.index(name) if name in PAPER_ORDER else len(PAPER_ORDER), bool(arm),
            stem)


def _links(folder: str, files: list[Path]) -> str:
    return "".join(f"<a href='{folder}/{_e(f.name)}'>{_e(f.suffix[1:])}</a>" for f in files)


def _table_section(stem: str, files: list[Path]) -> str:
    by_suffix = {f.suffix: f for f in files}
    if ".md" in by_suffix:   # the Markdown view carries the formatted intervals and bold
        shown = markdown_html(by_suffix[".md"].read_text())
    elif ".csv" in by_suffix:
        shown = _wrap(pd.read_csv(by_suffix[".csv"]).to_html(index=False, na_rep="", border=0))
    else:
        shown = ""
    return (f"<h3 id='table-{_e(stem)}'>{_e(stem)}</h3>{shown}<p class='files'>"
            + _links("tables", files) + "</p>")


def _comparison_section(files: list[Path]) -> str:
    """The reported-vs-reproduced table: rows this config reproduced as a table, the rows it
    did not run collapsed into one line that opens to list them."""
    by_suffix = {f.suffix: f for f in files}
    if ".csv" not in by_suffix:
        return _table_section("reported_vs_reproduced", files)
    table = pd.read_csv(by_suffix[".csv"])
    not_run = table["status"].astype(str).str.startswith(NOT_RUN) if "status" in table \
        else pd.Series(False, index=table.index)
    ran, skipped = table[~not_run], table[not_run]
    parts = [_wrap(ran.to_html(index=False, na_rep="", border=0, float_format="{:.4f}".format))
             if len(ran) else "<p>No reported number was reproduced by this config.</p>"]
    if len(skipped):
        keys = [c for c in ("corpus", "model", "strategy", "metric") if c in skipped]
        parts.append(f"<details><summary>{len(skipped)} reported number(s) not run in this "
                     "config</summary>" + _wrap(skipped[keys + ["status"]].to_html(
                         index=False, na_rep="", border=0)) + "</details>")
    return ("<h3 id='table-reported_vs_reproduced'>reported_vs_reproduced</h3>" + "".join(parts)
            + "<p class='files'>" + _links("tables", files) + "</p>")


def _wrap(table_html: str) -> str:
    return f"<div class='table-wrap'>{table_html}</div>"


def markdown_html(text: str) -> str:
    """Markdown (a caption line and a pipe table, as `tables.write_table` writes it) as HTML:
    the table a real `<table>` in a sideways-scrolling box, `**best**` in bold, the caption a
    paragraph. Raw HTML in the text is escaped, never passed through."""
    body = md_lib.markdown(html.escape(text, quote=False), extensions=["tables"])
    return body.replace("<table>", "<div class='table-wrap'><table>").replace(
        "</table>", "</table></div>")


def markdown_table_html(text: str) -> str:
    """A Markdown pipe table as HTML (`markdown_html`; kept for callers of the old name)."""
    return markdown_html(text)


def _figure(stem: str, files: list[Path], *, paper: bool = False) -> str:
    by_suffix = {f.suffix: f for f in files}
    caption = by_suffix[".txt"].read_text().strip() if ".txt" in by_suffix else ""
    shown = by_suffix.get(".png") or by_suffix.get(".svg")
    links = _links("figures", [f for f in files if f.suffix != ".txt"])
    if shown is None and caption:   # a paper figure with nothing to draw: its note
        return f"<p class='note' id='figure-{_e(stem)}'>{_e(caption)}</p>"
    img = f"<img src='figures/{_e(shown.name)}' alt='{_e(stem)}'>" if shown else ""
    text = f"<strong>{_e(stem)}.</strong> {_e(caption)}" if caption else _e(stem)
    return (f"<figure class='{'paper' if paper else 'diagnostic'}' id='figure-{_e(stem)}'>"
            f"{img}<figcaption>{text} <span class='files'>{links}</span></figcaption></figure>")


def _summary_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("stage", "job", "state", "seconds", "note"))
    body = "".join(f"<tr class='{_e(r['state'])}'>" + "".join(
        f"<td>{_e(r[c])}</td>" for c in ("stage", "job", "state", "seconds", "note")) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _toc(parts: list[str]) -> str:
    """Links to every section (h2) of the page, in order."""
    import re
    heads = [m for p in parts for m in re.findall(r"<h2 id='([^']+)'>(.*?)</h2>", p)]
    return ("<nav class='toc'><strong>Contents</strong><ul>"
            + "".join(f"<li><a href='#{i}'>{t}</a></li>" for i, t in heads) + "</ul></nav>")


def _versions_table(where: Path | None = None) -> str:
    versions = {"python": platform.python_version()}
    if where is not None:
        git = git_state(where)
        versions["git commit"] = (f"{git['commit']}" + (" (uncommitted changes)"
                                                        if git["dirty"] else "")
                                  if git["commit"] else "not a git checkout")
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in versions.items()) + "</table>"


def _e(x) -> str:
    return html.escape(str(x), quote=True)
