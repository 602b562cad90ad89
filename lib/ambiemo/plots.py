"""Every figure of the study, one function each (seaborn/matplotlib).

Figures follow Jia et al. (2026): human ambiguity per corpus, and each metric per model and
strategy with its bootstrap interval. Each function takes tidy tables, returns the Figure,
labels its axes with units, and uses a colour-blind-safe palette; `save` writes the files.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; notebooks display them inline anyway
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = "colorblind"
METRIC_LABELS = {
    "js_divergence": "Jensen-Shannon divergence (bits, lower is better)",
    "bhattacharyya_coefficient": "Bhattacharyya coefficient (higher is better)",
    "accuracy": "accuracy vs majority label (higher is better)",
    "r2": "R² of class probabilities (higher is better)",
    "macro_f1": "macro-F1 vs majority label (higher is better)",
}


def save(fig: plt.Figure, stem: str | Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write `fig` as `<stem>.<fmt>` for each format; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        # A fixed creation date keeps PDFs byte-identical across reruns.
        fig.savefig(path, dpi=150, bbox_inches="tight",
                    metadata={"CreationDate": None} if fmt == "pdf" else None)
        paths.append(path)
    return paths


def human_entropy(manifest: pd.DataFrame) -> plt.Figure:
    """Distribution of the human vote entropy per clip, per corpus."""
    k = len(manifest.attrs.get("classes", [])) or None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.histplot(data=manifest, x="entropy_bits", hue="corpus", bins=12, ax=ax,
                 palette=PALETTE, element="step", stat="count")
    if k:
        ax.axvline(np.log2(k), color="grey", ls=":", lw=1)
        ax.text(np.log2(k), ax.get_ylim()[1] * 0.95, " uniform", color="grey", va="top", fontsize=8)
    ax.set_xlabel("entropy of human votes (bits)")
    ax.set_ylabel("clips")
    corpora = manifest["corpus"].unique()
    if len(corpora) == 1:  # the title names the corpus; a one-entry legend only hides bars
        ax.get_legend().remove()
        ax.set_title(f"Human ambiguity: {corpora[0]} ({len(manifest)} clips)")
    else:
        ax.set_title("Human ambiguity")
    fig.tight_layout()
    return fig


def metric_by_row(summary: pd.DataFrame, metric: str) -> plt.Figure:
    """One metric for every (model, strategy) row with its bootstrap interval; reference
    rows (prior, uniform, ceiling) are drawn in grey beside the models."""
    rows = summary.assign(row=summary["model"] + " / " + summary["strategy"])
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(rows) + 1.2))
    colours = sns.color_palette(PALETTE, n_colors=max(len(rows), 3))
    for i, (_, r) in enumerate(rows.iterrows()):
        grey = r["strategy"] == "reference"
        c = "0.55" if grey else colours[i % len(colours)]
        ax.errorbar(r[metric], i, xerr=[[r[metric] - r[f"{metric}_lo"]], [r[f"{metric}_hi"] - r[metric]]],
                    fmt="o", color=c, capsize=3)
    ax.set_yticks(range(len(rows)), rows["row"])
    ax.invert_yaxis()
    ax.set_xlabel(METRIC_LABELS.get(metric, metric) + ", 95% bootstrap CI")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
