"""The study's tables, written as CSV (for machines), Markdown and LaTeX (for people).

The main table of Jia et al. (2026) per corpus: model x strategy with JS, BC, R^2, accuracy
and macro-F1, each with its 95% bootstrap interval, the best model row per column marked,
the reference rows (prior, uniform, a new rater panel) beside them, the share of
missing predictions, and strategies a model cannot run shown as "unavailable" with the
reason, never as numbers. Also the capacity-fit table (statsmodels). Rounding happens only
here, at the edge; the CSV keeps full precision.

Every `.tex` goes into a paper as it is, with `booktabs` and `longtable` loaded: a table of
more than `LONG_ROWS` rows is a `longtable` (it breaks across pages, its header repeated), a
shorter one a `table` float; long headers stack their words, and no table is wider than a
landscape A4 page with 1 cm margins (tests/test_tables.py compiles each and reads the log for
"Overfull" and "Float too large"). The paper's own table is short: per corpus and prompt arm
(`<corpus>_paper__<arm>`), the paper's strategies, the controls and the reference rows, one
value per metric; the full dump (`<corpus>_main`, every strategy with its interval) is a
longtable.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.tts.references import REFERENCE_NOTES, is_reference

MAIN_METRICS = M.MAIN_METRICS
UNAVAILABLE = "unavailable"
# What a row cost per clip (tts.costs.strategy_costs), shown when the summary carries it:
# test-time scaling trades compute for quality, so each row says what it spent. Counts only:
# the measured seconds differ between runs and machines, so they stay in <corpus>_costs and
# the main table stays identical between a resumed, a sharded and an uninterrupted run.
COST_COLUMNS = {"tokens_per_clip": "tokens/clip", "forward_passes_per_clip": "passes/clip"}


def _fmt(v, digits: int) -> str:
    if isinstance(v, (float, np.floating)):
        return "–" if np.isnan(v) else f"{v:.{digits}f}"
    return "" if v is None else str(v)


def to_markdown(df: pd.DataFrame, digits: int = 3, bold: pd.DataFrame | None = None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); cells where `bold` (same
    shape, booleans) is True are written `**x**`."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---"
                          for c in df.columns) + "|"
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cells = [_fmt(v, digits) for v in row]
        if bold is not None:
            cells = [f"**{c}**" if bool(bold.iat[i, j]) else c for j, c in enumerate(cells)]
        body.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([head, rule, *body]) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "–": "--", "²": r"\textsuperscript{2}",
                  "↓": r"$\downarrow$", "↑": r"$\uparrow$", "×": r"$\times$"}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular cell (underscores, %, &, ... escaped)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


LONG_TEXT = 30          # a text column with a longer cell wraps in a paragraph column
PARAGRAPH = "p{4.2cm}"
WIDE_COLUMNS = 10       # a table this wide with few rows goes into LaTeX transposed


def _align(col: pd.Series) -> str:
    if pd.api.types.is_numeric_dtype(col):
        return "r"
    longest = max((str(v) for v in col), key=len, default="")
    # Only prose wraps: a long token (a model term) would stick out of a paragraph column.
    return PARAGRAPH if len(longest) > LONG_TEXT and " " in longest else "l"


LONG_ROWS = 35          # more lines than this: a longtable that breaks across pages
HEADER_LINE = 8         # a header longer than this stacks its words on lines


def header_cell(name: str) -> str:
    """A column name as a LaTeX header cell: escaped, and when long, its parts (split after
    spaces and underscores, which stay) stacked so the column is as narrow as its numbers."""
    if len(name) <= HEADER_LINE:
        return latex_escape(name)
    lines: list[str] = []
    for token in re.findall(r"[^_ ]+[_ ]?", name):     # "js_", "divergence": "_" kept
        if lines and len(lines[-1] + token.rstrip()) <= HEADER_LINE:
            lines[-1] += token
        else:
            lines.append(token)
    if len(lines) == 1:
        return latex_escape(name)
    return (r"\begin{tabular}[b]{@{}c@{}}"
            + r"\\".join(latex_escape(x.rstrip()) for x in lines) + r"\end{tabular}")


def latex_environment(align: str, head: str, body: Sequence[str], caption: str | None,
                      *, size: str = r"\small", long: bool | None = None) -> str:
    """`body` rows (already LaTeX, each ending in `\\\\`) under `head` in a booktabs table:
    a `table` float with the caption below, or, past `LONG_ROWS` rows (or `long=True`), a
    `longtable` with the caption on top and the header repeated on every page. Without a
    caption and with few rows, a bare tabular (to place in one's own float)."""
    long = len(body) > LONG_ROWS if long is None else long
    setup = [size, r"\setlength{\tabcolsep}{4pt}"]
    rules = [r"\toprule", head, r"\midrule"]
    if long:
        cap = [r"\caption{" + latex_escape(caption) + r"}\\"] if caption else []
        lines = [r"\begingroup", *setup, r"\begin{longtable}{" + align + "}", *cap,
                 *rules, r"\endfirsthead", *rules, r"\endhead", r"\bottomrule",
                 r"\endlastfoot", *body, r"\end{longtable}", r"\endgroup"]
    else:
        lines = [r"\begin{tabular}{" + align + "}", *rules, *body, r"\bottomrule",
                 r"\end{tabular}"]
        if caption:
            lines = [r"\begin{table}[t]", r"\centering", *setup, *lines,
                     r"\caption{" + latex_escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, digits: int = 3, bold: pd.DataFrame | None = None,
             header: Sequence[str] | None = None, caption: str | None = None,
             long: bool | None = None) -> str:
    """A booktabs table of `df`; cells escaped, `bold` cells in \\textbf{}. `header`
    replaces the column names verbatim (already LaTeX) and must name every column. Long text
    (notes, statuses) wraps in a paragraph column and long names stack (`header_cell`), so
    the table fits a page; past `LONG_ROWS` rows it is a longtable (`latex_environment`)."""
    align = "".join(_align(df[c]) for c in df.columns)
    if header is not None and len(header) != df.shape[1]:
        raise ValueError(f"to_latex: {len(header)} header cells for {df.shape[1]} columns "
                         f"({list(df.columns)}); a header must name every column")
    names = list(header) if header is not None else [header_cell(str(c)) for c in df.columns]
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cells = [latex_escape(_fmt(v, digits)) for v in row]
        if bold is not None:
            cells = [rf"\textbf{{{c}}}" if bool(bold.iat[i, j]) else c
                     for j, c in enumerate(cells)]
        body.append(" & ".join(cells) + r" \\")
    if long is None:   # a wrapped paragraph cell makes its row as tall as its lines
        wrapped = [c for c in df.columns if _align(df[c]) == PARAGRAPH]
        lines = sum(max([1, *(-(-len(str(v)) // LONG_TEXT) for v in row)])
                    for row in df[wrapped].itertuples(index=False)) if wrapped else len(df)
        long = lines > LONG_ROWS
    return latex_environment(align, " & ".join(names) + r" \\", body, caption, long=long)


def with_intervals(summary: pd.DataFrame, metrics, digits: int = 3,
                   keys=("model", "strategy", "n")) -> pd.DataFrame:
    """The people's view of a summary table: one `value [lo, hi]` cell per metric (from the
    `<m>`, `<m>_lo`, `<m>_hi` columns) beside the key columns and the missing share."""
    out = summary[list(keys)].copy()
    for m in metrics:
        out[m] = [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(v) else "–"
                  for v, lo, hi in zip(summary[m], summary[f"{m}_lo"], summary[f"{m}_hi"])]
    share = "missing_share" if "missing_share" in summary else "share_missing"
    if share in summary:
        out["missing"] = [f"{x:.1%}" if np.isfinite(x) else "–" for x in summary[share]]
    return out


def transposed(view: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A wide table of few rows turned on its side: one row per column, one column per
    row (named by its first cell), cells formatted, as a page holds it."""
    cells = view.astype(object).map(lambda v: _fmt(v, digits))
    out = cells.set_index(cells.columns[0]).T.reset_index()
    return out.rename(columns={"index": str(view.columns[0])})


def write_table(df: pd.DataFrame, stem: str | Path, digits: int = 3,
                markdown: pd.DataFrame | None = None, bold: pd.DataFrame | None = None,
                latex_header: Sequence[str] | None = None,
                caption: str | None = None, latex: pd.DataFrame | None = None) -> list[Path]:
    """Write `<stem>.csv` (full precision), `<stem>.md` and `<stem>.tex` (rounded, or the
    given `markdown` view of the same rows, with `bold` cells marked); returns the paths.
    `latex` is a narrower view for the page (e.g. without long free-text columns); without
    one, a table of more than `WIDE_COLUMNS` columns and at most three rows is transposed."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md, tex = (stem.with_suffix(s) for s in (".csv", ".md", ".tex"))
    df.to_csv(csv, index=False)
    view = df if markdown is None else markdown
    md.write_text((f"{caption}\n\n" if caption else "") + to_markdown(view, digits, bold))
    if latex is not None:
        tex.write_text(to_latex(latex, digits, caption=caption))
    elif bold is None and latex_header is None and view.shape[1] > WIDE_COLUMNS \
            and len(view) <= 3:
        tex.write_text(to_latex(transposed(view, digits), digits, caption=caption))
    else:
        tex.write_text(to_latex(view, digits, bold, header=latex_header, caption=caption))
    return [csv, md, tex]


# --- the main table --------------------------------------------------------------------------

def main_table(summary: pd.DataFrame, unavailable: pd.DataFrame | None = None, *,
               metrics: Sequence[str] = MAIN_METRICS,
               strategy_order: Sequence[str] | None = None) -> pd.DataFrame:
    """The main table of one corpus from `summary.summary_table` output.

    `unavailable` has columns model, strategy, reason (predict.unavailable_strategies with
    the model, and the prompt arm when the summary has one, added). Rows: each model's
    strategies, per prompt arm, in the order given (unavailable ones in
    the same list, with `row_type` "unavailable", NaN metrics and the reason in `note`), then
    the reference rows (prior, uniform, new_raters); `strategy_order` (e.g. the config's
    strategies) orders each model's rows, else first-seen order. Columns: row_type, model,
    [prompt,] strategy, n, each metric with `_lo`/`_hi`, `best_<metric>` (True on the best model row(s) in the
    metric's direction, references and unavailable rows never), missing_share, n_missing,
    n_utts, n_ties, one_hot_share (of the row's parsed candidates) and scheme (the
    bootstrap's resampling) where the summary has them, note.
    """
    lacking = [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi") if c not in summary]
    if lacking:
        raise KeyError(f"main_table: the summary lacks columns {lacking}; run summary_table "
                       f"with metrics={list(metrics)}")
    is_ref = is_reference(summary)
    rows = summary.assign(row_type=np.where(is_ref, "reference", "model"),
                          note=np.where(is_ref, summary["model"].map(REFERENCE_NOTES)
                                        .fillna("reference"), ""))
    rows = rows.rename(columns={"share_missing": "missing_share"})
    # A row is (model, prompt arm, strategy) where the summary has arms, else (model, strategy).
    ident = ["model", "prompt", "strategy"] if "prompt" in rows else ["model", "strategy"]
    if unavailable is not None and len(unavailable):
        lacking = [c for c in ident if c not in unavailable]
        if lacking:
            raise KeyError(f"main_table: `unavailable` lacks {lacking}; the summary has them")
        clash = unavailable.merge(rows[ident], on=ident)
        if len(clash):
            raise ValueError("strategies both scored and marked unavailable: "
                             f"{clash[ident].values.tolist()}")
        rows = pd.concat([rows, unavailable[[*ident, "reason"]]
                          .rename(columns={"reason": "note"}).assign(row_type=UNAVAILABLE)],
                         ignore_index=True)
    # Model rows (scored or unavailable) in their first-seen order, each model's arms in
    # first-seen order, references last.
    order = {m: i for i, m in enumerate(pd.unique(rows["model"]))}
    rank = rows["model"].map(order) * 100 + np.where(rows["row_type"] == "reference",
                                                      10_000_000, 0)
    if "prompt" in rows:
        arms = {a: i for i, a in enumerate(pd.unique(rows["prompt"]))}
        rank = rank + rows["prompt"].map(arms).fillna(0)
    strategy_rank = rows.groupby(ident[:-1], sort=False, dropna=False).cumcount()
    if strategy_order is not None:
        pos = {s: i for i, s in enumerate(strategy_order)}
        strategy_rank = rows["strategy"].map(pos).fillna(len(pos)) * 1000 + strategy_rank
    rows = rows.assign(_r=rank, _s=strategy_rank).sort_values(["_r", "_s"], kind="stable")
    scored = rows["row_type"] == "model"
    for m in metrics:
        values = rows[m].where(scored).astype(float)
        best = values.min() if M.direction(m) == "lower" else values.max()
        # Ties at the reported precision are not distinguishable, so all of them are marked.
        rows[f"best_{m}"] = scored & np.isclose(values, best, rtol=0, atol=1e-12)
    cols = ["row_type", *ident, "n",
            *[c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi")],
            *[f"best_{m}" for m in metrics], "missing_share", "n_missing", "n_utts", "n_ties",
            *[c for c in ("one_hot_share", "scheme") if c in rows],
            *[c for c in COST_COLUMNS if c in rows], "note"]
    return rows.reindex(columns=cols).reset_index(drop=True)


def main_table_view(table: pd.DataFrame, metrics: Sequence[str] = MAIN_METRICS,
                    digits: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, bold): the people's view of `main_table` — `value [lo, hi]` per metric,
    "unavailable" across an unavailable row's metrics with the reason in `note` — and the
    mask of cells to set in bold (the best per column)."""
    keys = [k for k in ("model", "prompt", "strategy", "n") if k in table]
    view = with_intervals(table, metrics, digits, keys=keys)
    unavailable = (table["row_type"] == UNAVAILABLE).to_numpy()
    for m in metrics:
        view.loc[unavailable, m] = UNAVAILABLE
    view.loc[unavailable, "missing"] = "–"
    view["n"] = [("–" if not np.isfinite(v) else str(int(v))) for v in table["n"].astype(float)]
    if "one_hot_share" in table:   # the candidates' form: JS/BC/R² reward a mixture by form
        view["one-hot"] = ["–" if not np.isfinite(v) else f"{v:.0%}"
                           for v in table["one_hot_share"].astype(float)]
    view["note"] = table["note"].fillna("").replace({"": ""})
    refs = table["row_type"] == "reference"
    view.loc[refs, "note"] = table.loc[refs, "note"].replace({"": "reference"}).fillna(
        "reference")
    for col, label in COST_COLUMNS.items():
        if col in table:
            view.insert(len(view.columns) - 1, label,
                        ["–" if not np.isfinite(v) else f"{v:.3g}"
                         for v in table[col].astype(float)])
    bold = pd.DataFrame(False, index=view.index, columns=view.columns)
    for m in metrics:
        bold[m] = table[f"best_{m}"].fillna(False).astype(bool).to_numpy()
    return view, bold


def _schemes_caption(table: pd.DataFrame) -> str:
    """' Resampling: ...' for the schemes a table's rows were resampled by (none: '')."""
    from ambiemo.analysis.clusters import scheme_caption

    if "scheme" not in table:
        return ""
    schemes = [s for s in pd.unique(table["scheme"].dropna()) if s]
    return "".join(" " + scheme_caption(s) for s in schemes)


def write_comparisons_table(table: pd.DataFrame, stem: str | Path, *, corpus: str,
                            digits: int = 3) -> list[Path]:
    """`analysis.comparisons_table` as .csv (full precision), .md and .tex, with its caption
    (forms, Holm, the resampling scheme); p-values with 4 digits."""
    from ambiemo.analysis.comparisons import comparisons_caption

    view = table.copy()
    for c in ("p", "p_holm"):
        view[c] = ["–" if not np.isfinite(v) else f"{v:.4f}" for v in table[c].astype(float)]
    view["share_dropped"] = ["–" if not np.isfinite(v) else f"{v:.1%}"
                             for v in table["share_dropped"].astype(float)]
    return write_table(table, stem, digits, markdown=view, latex=view,
                       caption=comparisons_caption(table, corpus))


def write_main_table(table: pd.DataFrame, stem: str | Path, *, corpus: str,
                     metrics: Sequence[str] = MAIN_METRICS, digits: int = 3) -> list[Path]:
    """The main table as .csv (full precision), .md and .tex (best per column in bold; the
    .tex a longtable, `main_table_latex`); the paper's short tables are `write_paper_tables`."""
    view, bold = main_table_view(table, metrics, digits)
    caption = (f"{corpus}: mean over clips with 95% bootstrap interval; best model row per "
               "column in bold (JS lower is better, the others higher); accuracy and macro-F1 "
               "against the majority label, ties excluded. " + M.R2_FOOTNOTE
               + (" prompt: the prompt arm the model answered (the candidates' form: "
                  "distribution, verbalised probabilities; direct_label, one emotion word); "
                  "reference rows ask no model (-)." if "prompt" in table else "")
               + (" one-hot: share of the row's parsed candidates that name one class only "
                  "(JS, BC and R² reward a mixture over them by form alone)."
                  if "one_hot_share" in table else "")
               + _schemes_caption(table))
    view = view.rename(columns={m: M.table_header(m) for m in metrics})
    paths = write_table(table, stem, digits, markdown=view, bold=bold, caption=caption)
    paths[2].write_text(main_table_latex(table, metrics, digits, caption=caption + (
        " Unavailable rows give the reason across the metric columns; the reference rows "
        "follow the rule.")))
    return paths


def _latex_value(v, lo, hi, digits: int, bold: bool) -> str:
    """A metric cell of the full table: the value, its interval small on a second line."""
    if not np.isfinite(v):
        return "--"
    value = rf"\textbf{{{v:.{digits}f}}}" if bold else f"{v:.{digits}f}"
    return (r"\begin{tabular}[t]{@{}r@{}}" + value + r"\\{\scriptsize["
            + f"{lo:.{digits}f}, {hi:.{digits}f}" + r"]}\end{tabular}")


def main_table_latex(table: pd.DataFrame, metrics: Sequence[str] = MAIN_METRICS,
                     digits: int = 3, caption: str | None = None) -> str:
    """Every row of `main_table` as a longtable that fits a landscape page: each metric's
    interval under its value, an unavailable row's reason across the metric columns, the
    reference rows after a rule, the cost per clip when the table has it."""
    keys = [k for k in ("model", "prompt", "strategy") if k in table]
    costs = [c for c in COST_COLUMNS if c in table]
    one_hot = "one_hot_share" in table   # the candidates' form (protocol v3)
    header = [*keys, "$n$", *[M.table_header(m, latex=True) if m in M.METRICS
                               or m in M.CORPUS_METRICS else latex_escape(m) for m in metrics],
              "missing", *(["one-hot"] if one_hot else []),
              *[header_cell(COST_COLUMNS[c]) for c in costs]]
    align = "l" * len(keys) + "r" * (1 + len(metrics) + 1 + one_hot + len(costs))
    body, refs_started = [], False
    for _, r in table.iterrows():
        if r["row_type"] == "reference" and not refs_started:
            body.append(r"\midrule")
            refs_started = True
        cells = [latex_escape(r[k]) for k in keys]
        cells.append("--" if not np.isfinite(float(r["n"])) else str(int(r["n"])))
        if r["row_type"] == UNAVAILABLE:
            cells.append(rf"\multicolumn{{{len(metrics)}}}{{p{{{1.7 * len(metrics):.1f}cm}}}}"
                         + "{" + latex_escape(f"unavailable: {r['note']}") + "}")
        else:
            cells += [_latex_value(float(r[m]), float(r[f"{m}_lo"]), float(r[f"{m}_hi"]),
                                   digits, bool(r.get(f"best_{m}", False))) for m in metrics]
        share = float(r["missing_share"]) if pd.notna(r["missing_share"]) else np.nan
        cells.append("--" if not np.isfinite(share) or r["row_type"] == UNAVAILABLE
                     else latex_escape(f"{share:.1%}"))
        if one_hot:
            oh = float(r["one_hot_share"]) if pd.notna(r["one_hot_share"]) else np.nan
            cells.append("--" if not np.isfinite(oh) or r["row_type"] == UNAVAILABLE
                         else latex_escape(f"{oh:.0%}"))
        cells += ["--" if not np.isfinite(float(r[c])) else f"{float(r[c]):.3g}"
                  for c in costs]
        body.append(" & ".join(cells) + r" \\")
    n_cols = len(align)
    widths = {len(b.split(" & ")) + (len(metrics) - 1 if "multicolumn" in b else 0)
              for b in body if b != r"\midrule"}
    if len(header) != n_cols or widths - {n_cols}:
        raise ValueError(f"main_table_latex: header {len(header)} cells, columns {n_cols}, "
                         f"rows {sorted(widths)}")
    return latex_environment(align, " & ".join(header) + r" \\", body, caption,
                             size=r"\footnotesize", long=True)


# The strategies of Jia et al. (2026): the greedy baseline, BoN, W-BoN, ALM-v and W-ALM-v.
PAPER_STRATEGIES = ("greedy", "bon", "w_bon", "alm_v", "w_alm_v")


def paper_table(table: pd.DataFrame, prompt: str | None = None) -> pd.DataFrame:
    """The rows of `main_table` the paper's table shows for one prompt arm: each model's
    `PAPER_STRATEGIES` and controls (`tts.controls.CONTROL_STRATEGIES`) that were scored,
    then the reference rows; `best_<metric>` recomputed among these model rows."""
    from ambiemo.tts.controls import CONTROL_STRATEGIES

    keep = set(PAPER_STRATEGIES) | set(CONTROL_STRATEGIES)
    arm = table["prompt"] == prompt if prompt is not None and "prompt" in table else True
    models = table[(table["row_type"] == "model") & arm & table["strategy"].isin(keep)]
    rows = pd.concat([models, table[table["row_type"] == "reference"]]).copy()
    for m in [c.removeprefix("best_") for c in rows if c.startswith("best_")]:
        values = rows[m].where(rows["row_type"] == "model").astype(float)
        best = values.min() if M.direction(m) == "lower" else values.max()
        rows[f"best_{m}"] = (rows["row_type"] == "model") & np.isclose(values, best, rtol=0,
                                                                        atol=1e-12)
    return rows.reset_index(drop=True)


def write_paper_tables(table: pd.DataFrame, stem: str | Path, *, corpus: str,
                       metrics: Sequence[str] = MAIN_METRICS, digits: int = 3) -> list[Path]:
    """One short table per prompt arm, `<corpus>_paper__<arm>` beside `stem`
    (`<corpus>_main`): `paper_table`'s rows, one value per metric (the intervals are in the
    main table), best in bold; returns the paths."""
    from ambiemo.tts.controls import CONTROL_STRATEGIES
    from ambiemo.tts.references import NO_PROMPT

    stem = Path(stem)
    arms = ([a for a in pd.unique(table["prompt"]) if a != NO_PROMPT] if "prompt" in table
            else [None])
    paths = []
    for arm in arms:
        rows = paper_table(table, arm)
        view = rows[["model", "strategy", *metrics]].copy()
        bold = pd.DataFrame(False, index=view.index, columns=view.columns)
        for m in metrics:
            bold[m] = rows[f"best_{m}"].to_numpy(bool)
        header = ["model", "strategy", *[M.table_header(m, latex=True) for m in metrics]]
        name = stem.name.removesuffix("_main") + "_paper" + (f"__{arm}" if arm else "")
        caption = (f"{corpus}" + (f", {arm} prompt" if arm else "") + ": mean over clips of "
                   "the paper's strategies (greedy, BoN, W-BoN, ALM-v, W-ALM-v) and the "
                   f"controls ({', '.join(CONTROL_STRATEGIES)}) of each model, then the "
                   "reference rows, which ask no model; best model row per column in bold. "
                   f"Intervals and every other strategy: {stem.name}.")
        paths += write_table(rows, stem.with_name(name), digits,
                             markdown=view.rename(columns={m: M.table_header(m)
                                                           for m in metrics}),
                             bold=bold, latex_header=header, caption=caption)
    return paths


# --- the capacity fit ------------------------------------------------------------------------

CAPACITY_COLUMNS = ["corpus", "prompt", "metric", "term", "effect", "estimate", "std_error",
                    "statistic", "p_value", "p_holm", "ci_lo", "ci_hi", "df", "status",
                    "n_models", "log10_span", "formula", "method", "n_obs", "note"]


def capacity_table(fits: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """One table from `analysis.capacity_analysis` results keyed by (corpus, prompt arm,
    metric) (or (corpus, metric): no arm): each fitted term a row with the formula and fit
    size; a key without a fit one row whose `note` says why (term empty, no numbers)."""
    frames = []
    for key, fit in fits.items():
        corpus, prompt, metric = key if len(key) == 3 else (key[0], None, key[1])
        note = "; ".join(fit.attrs.get("notes", []))
        meta = dict(corpus=corpus, prompt=prompt, metric=metric, formula=fit.attrs.get("formula"),
                    method=fit.attrs.get("method"), n_obs=fit.attrs.get("n_obs", 0),
                    n_models=fit.attrs.get("n_models", fit.attrs.get("n_clusters", 0)),
                    log10_span=fit.attrs.get("log10_span", np.nan), note=note)
        if fit.attrs.get("fitted", len(fit) > 0) and len(fit):
            frames.append(fit.assign(**meta))
        else:
            frames.append(pd.DataFrame([{**meta, "term": "no fit"}]))
    out = pd.concat(frames, ignore_index=True).reindex(columns=CAPACITY_COLUMNS)
    return out if out["prompt"].notna().any() else out.drop(columns=["prompt"])


_TREATMENT = re.compile(r"C\((\w+)(?:, *Treatment\([^)]*\))?\)\[T\.([^\]]+)\]")


def short_term(term) -> str:
    """A model term as a page prints it: patsy's `C(strategy, Treatment('greedy'))[T.bon]`
    becomes `bon`, an interaction `bon × high` (the formula in the caption says which
    factor and reference level each level belongs to)."""
    if not isinstance(term, str):
        return term
    return _TREATMENT.sub(lambda m: m.group(2), term).replace(":", " × ")


def write_capacity_table(table: pd.DataFrame, stem: str | Path, digits: int = 3) -> list[Path]:
    """The capacity fit as .csv (full precision), .md and .tex (formula and notes kept)."""
    view = table.drop(columns=["method"]).copy()
    for c in ("n_obs", "n_models"):
        view[c] = view[c].astype("Int64").astype(str)
    # "not estimable" instead of a p-value: the status says why there is no number.
    view["p_value"] = [s if s == "not estimable" else p
                       for s, p in zip(view["status"].astype(object).fillna(""), view["p_value"])]
    caption = ("Capacity x ambiguity x TTS: metric ~ strategy x ambiguity bin x capacity "
               "(centred log10 parameter count), linear mixed model with a random intercept "
               "per model and a model x strategy variance component, fitted on (model, "
               "strategy, bin) means; the bin is sum-coded, so capacity and capacity x "
               "strategy are slopes averaged over the bins and the bin interactions are "
               "deviations from them (column effect of the CSV). Capacity terms use t with n_models - 2 "
               "df; p_holm is adjusted over the capacity family (Holm over the bin-averaged "
               "terms, the bin interactions tested only behind them); they are 'not "
               "estimable' with fewer than 4 models or less than half a decade of parameter "
               "count (Jia et al., 2026).")
    paths = write_table(table, stem, digits, markdown=view, caption=caption)
    # A paper page cannot hold the formula and the notes as columns: in LaTeX they go into
    # the caption, once each, and the table keeps the numbers.
    formulas = "; ".join(str(f) for f in pd.unique(table["formula"].dropna()))
    where = [c for c in ("corpus", "prompt", "metric") if c in table]
    notes = "; ".join(f"{'/'.join(map(str, k))}: {n}" for *k, n in table[[*where, "note"]]
                      .drop_duplicates().itertuples(index=False) if isinstance(n, str) and n)
    narrow = view.drop(columns=["formula", "note", "effect"], errors="ignore").assign(
        term=view["term"].map(short_term), metric=view["metric"].map(M.table_header))
    paths[2].write_text(to_latex(narrow, digits, caption=caption + (
        f" Formulas: {formulas}." if formulas else "") + (f" Notes: {notes}." if notes else "")))
    return paths
