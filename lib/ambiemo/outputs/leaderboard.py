"""The cross-corpus leaderboard: one row per model and prompt arm, one block per corpus.

What a reader of an evaluation harness looks for first (lm-evaluation-harness prints one
table of tasks per model; EmoBox one of datasets per model): for each (model, prompt arm),
per corpus, the main metric (JS divergence to the human distribution, lower is better;
Jia et al., 2026) of the greedy answer, of the model's best strategy (named beside it) and
of the controls every gain is read against (greedy_smoothed, label_logits_tempered, and
vote_share when scored). The reference rows (prior, uniform, new_raters, egemaps_soft) follow,
their value in the `best` column. Written by the analyse stage from every corpus's summary
as `tables/<config>/leaderboard.{csv,md,tex}`: CSV and Markdown one wide row per model and
arm; the LaTeX page one block of rows per corpus, so it stays a page wide however many
corpora there are. The numbers are the main tables' (no new computation): a leaderboard
never disagrees with them.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.outputs.tables import _fmt, latex_escape, to_markdown
from ambiemo.tts.controls import CONTROLS
from ambiemo.tts.references import is_reference

MAIN_METRIC = "js_divergence"
# Controls: rows built from the model's own answers with as much information as a strategy
# (tts/controls.py), and vote_share (a strategy that is itself a control; README).
CONTROL_STRATEGIES = (*CONTROLS, "vote_share")
BLOCK = ("greedy", "best", "best_strategy", *CONTROL_STRATEGIES)
# The page's headers of the controls (the caption names them in full).
SHORT = {"greedy_smoothed": "smoothed", "label_logits_tempered": "tempered",
         "vote_share": "vote share"}


def leaderboard(summary: pd.DataFrame, metric: str = MAIN_METRIC,
                corpora: Sequence[str] | None = None,
                strategies: Sequence[str] | None = None) -> pd.DataFrame:
    """The leaderboard from the summaries of every corpus (`corpus` column; one row per
    model, prompt, strategy and n as `analysis.summary_table` writes them).

    Columns: `model, prompt`, then per corpus `<corpus>:greedy`, `<corpus>:best`,
    `<corpus>:best_strategy` (its name, `@n` when n > 1), and one column per control; the
    best of a model is the strategy (controls left out) with the best value in the metric's
    direction, greedy included; of tied strategies the first in `strategies` (the config's
    order) wins. Reference rows carry their value in `best`."""
    if "corpus" not in summary:
        raise KeyError("leaderboard: the summary needs a corpus column (summary_<corpus>."
                       "parquet as the score stage writes it)")
    lower = M.direction(metric) == "lower"
    corpora = list(corpora) if corpora is not None else list(pd.unique(summary["corpus"]))
    rows = summary.assign(prompt=summary["prompt"] if "prompt" in summary else "-")
    rows = rows.assign(_ref=is_reference(rows))
    keys = list(dict.fromkeys(zip(rows.loc[~rows["_ref"], "model"],
                                  rows.loc[~rows["_ref"], "prompt"])))
    refs = list(dict.fromkeys(rows.loc[rows["_ref"], "model"]))
    out = []
    for model, prompt in keys:
        line = {"model": model, "prompt": prompt}
        for corpus in corpora:
            mine = rows[(rows["corpus"] == corpus) & (rows["model"] == model)
                        & (rows["prompt"] == prompt) & ~rows["_ref"]]
            line.update(_block(mine, corpus, metric, lower, strategies))
        out.append(line)
    for ref in refs:
        line = {"model": ref, "prompt": "-"}
        for corpus in corpora:
            mine = rows[(rows["corpus"] == corpus) & (rows["model"] == ref)]
            value = float(mine[metric].iloc[0]) if len(mine) else np.nan
            line.update({f"{corpus}:{k}": np.nan for k in BLOCK})
            line.update({f"{corpus}:best": value, f"{corpus}:best_strategy":
                         "reference" if len(mine) else ""})
        out.append(line)
    columns = ["model", "prompt", *[f"{c}:{k}" for c in corpora for k in BLOCK]]
    table = pd.DataFrame(out, columns=columns)
    table.attrs.update(metric=metric, corpora=corpora)
    return table


def _block(rows: pd.DataFrame, corpus: str, metric: str, lower: bool,
           strategies: Sequence[str] | None) -> dict:
    """One corpus's cells of one (model, arm)."""
    def value(strategy):
        hit = rows.loc[rows["strategy"] == strategy, metric]
        return float(hit.iloc[0]) if len(hit) else np.nan
    cells = {f"{corpus}:greedy": value("greedy")}
    candidates = rows[~rows["strategy"].isin(CONTROL_STRATEGIES) & rows[metric].notna()]
    if len(candidates):
        if strategies is not None:   # ties go to the first strategy in the config's order
            rank = {s: i for i, s in enumerate(strategies)}
            candidates = candidates.assign(_rank=candidates["strategy"].map(rank)
                                           .fillna(len(rank))).sort_values("_rank", kind="stable")
        pick = candidates[metric].to_numpy(dtype=float)
        best = candidates.iloc[int(np.argmin(pick) if lower else np.argmax(pick))]
        n = best.get("n")
        name = best["strategy"] + (f"@{int(n)}" if pd.notna(n) and int(n) > 1 else "")
        cells.update({f"{corpus}:best": float(best[metric]), f"{corpus}:best_strategy": name})
    else:
        cells.update({f"{corpus}:best": np.nan, f"{corpus}:best_strategy": ""})
    cells.update({f"{corpus}:{c}": value(c) for c in CONTROL_STRATEGIES})
    return cells


def caption(metric: str, limit: int | None = None) -> str:
    label = M.table_header(metric)
    return (f"Leaderboard: {label} (mean over clips; {M.direction(metric)} is better) per "
            "corpus, for each model and prompt arm: the greedy answer, the best strategy "
            "(named, @n its number of answers; controls left out) and the controls every gain "
            "is read against (greedy_smoothed, label_logits_tempered and vote_share; on the "
            "page smoothed, tempered, vote share). Reference rows ask no "
            "model; their value stands under best. Intervals: the main tables."
            + (f" A limited run: the first {limit} clips of each corpus, not the study's "
               "numbers." if limit else ""))


def to_latex_blocks(table: pd.DataFrame, digits: int = 3, cap: str | None = None) -> str:
    """The page version: one block of rows per corpus (a booktabs tabular with the corpus as
    a spanning row), model and arm on every row."""
    corpora = table.attrs.get("corpora") or sorted({c.split(":")[0] for c in table.columns
                                                    if ":" in c})
    heads = ["model", "prompt", "greedy", "best", "strategy",
             *[SHORT.get(c, c) for c in CONTROL_STRATEGIES]]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{3pt}",
             r"\begin{tabular}{llrrl" + "r" * len(CONTROL_STRATEGIES) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in heads) + r" \\"]
    for corpus in corpora:
        lines += [r"\midrule",
                  rf"\multicolumn{{{len(heads)}}}{{l}}{{\textit{{{latex_escape(corpus)}}}}} \\"]
        for row in table.itertuples(index=False):
            r = dict(zip(table.columns, row))
            cells = [r["model"], r["prompt"]] + [r[f"{corpus}:{k}"] for k in BLOCK]
            lines.append(" & ".join(latex_escape(_fmt(v, digits)) for v in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if cap:
        lines.append(r"\caption{" + latex_escape(cap) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_leaderboard(summary: pd.DataFrame, stem: str | Path, *, metric: str = MAIN_METRIC,
                      corpora: Sequence[str] | None = None,
                      strategies: Sequence[str] | None = None, limit: int | None = None,
                      digits: int = 3) -> pd.DataFrame:
    """Write `<stem>.csv` (full precision), `.md` and `.tex`; returns the table."""
    table = leaderboard(summary, metric, corpora, strategies)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cap = caption(metric, limit)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(f"{cap}\n\n" + to_markdown(table, digits))
    stem.with_suffix(".tex").write_text(to_latex_blocks(table, digits, cap))
    return table
