"""The HTML report of one study run: runs/<config>/report/index.html.

One self-contained folder that opens from file:// with nothing fetched from the internet and
no JavaScript: the run summary, the reported-vs-reproduced comparison with Jia et al. (2026)
where it exists, every table (shown, with its CSV/Markdown/LaTeX files linked), every figure
(PNG shown, PDF linked), every executed notebook rendered to HTML by nbconvert, the config
used and the versions of the software that produced the numbers.
"""
from __future__ import annotations

import html
import importlib.metadata
import platform
import shutil
from pathlib import Path

import pandas as pd

TABLE_FILES = (".md", ".csv", ".tex")
FIGURE_FILES = (".png", ".pdf", ".svg")
VERSIONED = ("ambiemo", "torch", "transformers", "pandas", "numpy", "statsmodels")

CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; padding-top: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
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
    return write_report(cfg.run_dir / "report", title=f"ambiemo report: {cfg.name}",
                        config_file=cfg.path, executed_dir=cfg.run_dir / "executed",
                        table_dir=cfg.table_dir, figure_dir=cfg.figure_dir, summary=summary,
                        since=since)


STALE = "<p class='stale'>From an earlier run: not remade by this run.</p>"


def write_report(out: Path, *, title: str, config_file: Path, executed_dir: Path,
                 table_dir: Path, figure_dir: Path, summary: list[dict] | None = None,
                 since: float | None = None) -> Path:
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
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p>Config <code>{_e(config_file.name)}</code>; {len(notebooks)} notebook(s), "
             f"{len(tables) + bool(comparison)} table(s), {len(figures)} figure(s).</p>"]
    if summary:
        parts += ["<h2 id='summary'>Run summary</h2>", _summary_table(summary)]
    if comparison:
        parts += ["<h2 id='reported-vs-reproduced'>Reported (Jia et al., 2026) vs reproduced</h2>",
                  _table_section("reported_vs_reproduced", comparison)]
    def old(files) -> bool:       # copies keep the source's time (shutil.copy2)
        return since is not None and all(f.stat().st_mtime < since for f in files)
    parts.append("<h2 id='tables'>Tables</h2>")
    parts += [_table_section(stem, files) + (STALE if old(files) else "")
              for stem, files in tables.items()] or ["<p>none</p>"]
    parts.append("<h2 id='figures'>Figures</h2>")
    parts += [_figure(stem, files) + (STALE if old(files) else "")
              for stem, files in figures.items()] or ["<p>none</p>"]
    parts.append("<h2 id='notebooks'>Executed notebooks</h2><ul>")
    parts += [f"<li><a href='notebooks/{_e(p.stem)}.html'>{_e(p.stem)}</a>"
              + (" <span class='stale'>(from an earlier run)</span>" if old([p]) else "")
              + "</li>" for p in sorted(executed_dir.glob("*.ipynb"))]
    parts.append("</ul>")
    parts += ["<h2 id='config'>Config</h2>", f"<pre>{_e(config_file.read_text())}</pre>",
              "<h2 id='versions'>Versions</h2>", _versions_table()]
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


def _table_section(stem: str, files: list[Path]) -> str:
    by_suffix = {f.suffix: f for f in files}
    if ".md" in by_suffix:   # the Markdown view carries the formatted intervals
        shown = markdown_table_html(by_suffix[".md"].read_text())
    elif ".csv" in by_suffix:
        shown = pd.read_csv(by_suffix[".csv"]).to_html(index=False, na_rep="", border=0)
    else:
        shown = ""
    return (f"<h3 id='table-{_e(stem)}'>{_e(stem)}</h3>{shown}<p class='files'>"
            + "".join(f"<a href='tables/{_e(f.name)}'>{_e(f.suffix[1:])}</a>" for f in files)
            + "</p>")


def markdown_table_html(text: str) -> str:
    """A Markdown pipe table as an HTML table; text that is not one is shown verbatim."""
    rows = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(rows) < 2 or not all(r.startswith("|") for r in rows) \
            or set(rows[1].replace("|", "").strip()) - set("-: "):
        return f"<pre>{_e(text)}</pre>"
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    head = "".join(f"<th>{_e(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in cells[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(stem: str, files: list[Path]) -> str:
    by_suffix = {f.suffix: f for f in files}
    shown = by_suffix.get(".png") or by_suffix.get(".svg")
    img = f"<img src='figures/{_e(shown.name)}' alt='{_e(stem)}'>" if shown else ""
    links = "".join(f"<a href='figures/{_e(f.name)}'>{_e(f.suffix[1:])}</a>" for f in files)
    return f"<figure id='figure-{_e(stem)}'>{img}<figcaption>{_e(stem)} " \
           f"<span class='files'>{links}</span></figcaption></figure>"


def _summary_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("stage", "job", "state", "seconds", "note"))
    body = "".join(f"<tr class='{_e(r['state'])}'>" + "".join(
        f"<td>{_e(r[c])}</td>" for c in ("stage", "job", "state", "seconds", "note")) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _versions_table() -> str:
    versions = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in versions.items()) + "</table>"


def _e(x) -> str:
    return html.escape(str(x), quote=True)
