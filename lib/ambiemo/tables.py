"""Writing the study's tables: the same frame as CSV (for machines) and Markdown (for people).

Rounding happens only here, at the edge; every number upstream keeps full precision.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---"
                          for c in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def with_intervals(summary: pd.DataFrame, metrics, digits: int = 3,
                   keys=("model", "strategy", "n")) -> pd.DataFrame:
    """The people's view of a summary table: one `value [lo, hi]` cell per metric (from the
    `<m>`, `<m>_lo`, `<m>_hi` columns) beside the key columns and the missing share."""
    out = summary[list(keys)].copy()
    for m in metrics:
        out[m] = [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(v) else "–"
                  for v, lo, hi in zip(summary[m], summary[f"{m}_lo"], summary[f"{m}_hi"])]
    if "share_missing" in summary:
        out["missing"] = [f"{x:.1%}" for x in summary["share_missing"]]
    return out


def write_table(df: pd.DataFrame, stem: str | Path, digits: int = 3,
                markdown: pd.DataFrame | None = None) -> list[Path]:
    """Write `<stem>.csv` (full precision) and `<stem>.md` (rounded, or the given `markdown`
    view of the same rows); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False)
    md.write_text(to_markdown(df if markdown is None else markdown, digits))
    return [csv, md]
