"""The Findings section of the report: what the run found, in a few short tables.

Per corpus and prompt arm, for the primary metric (JS divergence): each model's greedy
baseline, its best strategy and its best control (`tts.controls`), each with its interval,
and the reference rows; where the score stage wrote `<corpus>_comparisons.csv` (paired gains
with cluster-robust intervals and Holm-adjusted p), each model's best strategy against
greedy and against every control instead. Then the paper's reported numbers beside this
run's. Everything is read from the tables the run wrote (the report's copies), nothing is
computed again.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.tts.controls import CONTROL_STRATEGIES

PRIMARY = "js_divergence"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _cell(v, lo, hi) -> str:
    return "–" if not np.isfinite(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _table(df: pd.DataFrame) -> str:
    return ("<div class='table-wrap'>" + df.to_html(index=False, border=0, na_rep="–",
                                                    escape=True) + "</div>")


def _pick(rows: pd.DataFrame, metric: str):
    values = rows[metric].astype(float)
    if values.notna().sum() == 0:
        return None
    return rows.loc[values.idxmin() if M.direction(metric) == "lower" else values.idxmax()]


def from_main(main: pd.DataFrame, corpus: str, metric: str = PRIMARY) -> list[str]:
    """Per prompt arm: each model's greedy, best strategy and best control with intervals,
    then the reference rows."""
    needed = {"row_type", "model", "strategy", metric, f"{metric}_lo", f"{metric}_hi"}
    if not needed <= set(main.columns):     # not a main table of `tables.main_table`
        return []
    parts = []
    scored = main[main["row_type"] == "model"]
    refs = main[main["row_type"] == "reference"]
    arms = list(pd.unique(scored["prompt"])) if "prompt" in scored else [None]
    label = M.table_header(metric)
    for arm in arms:
        rows = scored if arm is None else scored[scored["prompt"] == arm]
        out = []
        for model, r in rows.groupby("model", sort=False):
            greedy = r[r["strategy"] == "greedy"]
            tts = r[~r["strategy"].isin(["greedy", *CONTROL_STRATEGIES])]
            controls = r[r["strategy"].isin(CONTROL_STRATEGIES)]
            best, control = _pick(tts, metric), _pick(controls, metric)
            g = greedy.iloc[0] if len(greedy) else None
            out.append({
                "model": model,
                f"greedy {label}": _cell(*(g[[metric, f"{metric}_lo", f"{metric}_hi"]]
                                           .astype(float))) if g is not None else "–",
                "best strategy": best["strategy"] if best is not None else "–",
                f"its {label}": _cell(*(best[[metric, f"{metric}_lo", f"{metric}_hi"]]
                                        .astype(float))) if best is not None else "–",
                "best control": control["strategy"] if control is not None else "–",
                f"control {label}": _cell(*(control[[metric, f"{metric}_lo",
                                                     f"{metric}_hi"]].astype(float)))
                if control is not None else "–"})
        title = f"{corpus}" + (f", {arm} prompt" if arm else "")
        parts.append(f"<h3 id='findings-{_e(corpus)}-{_e(arm or 'all')}'>{_e(title)}</h3>"
                     + _table(pd.DataFrame(out)))
    if len(refs):
        parts.append(f"<p>Reference rows on {_e(corpus)} (ask no model; a scale, not a "
                     "bound):</p>" + _table(pd.DataFrame({
                         "reference": refs["model"],
                         label: [_cell(*x) for x in refs[[metric, f"{metric}_lo",
                                                          f"{metric}_hi"]].astype(float)
                                 .itertuples(index=False)]})))
    return parts


def from_comparisons(comp: pd.DataFrame, corpus: str, metric: str = PRIMARY) -> list[str]:
    """Per prompt arm: each model's best strategy by its gain over greedy, and its gain
    against greedy and every control with the cluster-robust interval and Holm's p."""
    if not {"model", "prompt", "strategy", "baseline", "metric", "gain", "lo", "hi",
            "p_holm"} <= set(comp.columns):
        return []
    rows = comp[(comp["metric"] == metric)]
    if "form" in rows:
        rows = rows[rows["form"] == "all"]
    parts = []
    for arm, a in rows.groupby("prompt", sort=False):
        out = []
        for model, r in a.groupby("model", sort=False):
            vs_greedy = r[r["baseline"] == "greedy"]
            if not len(vs_greedy):
                continue
            best = vs_greedy.loc[vs_greedy["gain"].astype(float).idxmax(), "strategy"]
            row = {"model": model, "best strategy": best}
            for _, c in r[r["strategy"] == best].iterrows():
                row[f"gain vs {c['baseline']}"] = (
                    f"{_cell(float(c['gain']), float(c['lo']), float(c['hi']))}"
                    f" p_holm={float(c['p_holm']):.3g}")
            out.append(row)
        if out:
            parts.append(f"<h3 id='findings-{_e(corpus)}-{_e(arm)}'>{_e(corpus)}, {_e(arm)} "
                         "prompt: gain of the best strategy (positive = better)</h3>"
                         + _table(pd.DataFrame(out)))
    return parts


def findings_html(table_dir: Path) -> str:
    """The Findings section's body from the tables in `table_dir` ('' when none)."""
    parts = []
    for csv in sorted(Path(table_dir).glob("*_main.csv")):
        corpus = csv.stem.removesuffix("_main")
        main = pd.read_csv(csv)
        comp = Path(table_dir) / f"{corpus}_comparisons.csv"
        if comp.is_file():
            parts += from_comparisons(pd.read_csv(comp), corpus)
        parts += from_main(main, corpus)
    reported = Path(table_dir) / "reported_vs_reproduced.csv"
    if reported.is_file():
        beside = pd.read_csv(reported)
        ran = beside[beside["status"].astype(str) == "reproduced"] if "status" in beside \
            else beside
        keys = [c for c in ("corpus", "model", "prompt", "strategy", "metric", "reported",
                            "reproduced", "reproduced_lo", "reproduced_hi") if c in ran]
        parts.append("<h3 id='findings-reported'>The paper's numbers beside this run's</h3>"
                     + (_table(ran[keys].round(4)) if len(ran) else
                        f"<p>None of the {len(beside)} reported numbers was run by this "
                        "config (see below).</p>"))
    return "\n".join(parts)
