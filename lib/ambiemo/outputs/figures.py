"""Every figure of the study, one function each (seaborn/matplotlib).

Figures follow Jia et al. (2026): human ambiguity per corpus; each metric per model and
strategy with its bootstrap interval; each metric by ambiguity bin and the gain of each
strategy over the greedy baseline against ambiguity; model capacity (log parameter count)
against each metric; predicted against human entropy; the reliability of the top class; and
the test-time-scaling curves (metric against n). Each function takes the tidy tables of
`ambiemo.analysis.summaries` / `ambiemo.analysis`, returns the Figure, labels its axes with units, names
the corpus in its title and draws every strategy in the same colour-blind-safe colour in
every figure; `save` writes PNG and PDF.
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

from ambiemo import metrics as M  # noqa: E402
from ambiemo.tts.controls import CONTROL_STRATEGIES  # noqa: E402
from ambiemo.tts.references import is_reference  # noqa: E402
from ambiemo.tts import STRATEGIES  # noqa: E402

PALETTE = "colorblind"
REFERENCE_STYLES = {"prior": ":", "uniform": "-.", "new_raters": "--"}


def strategy_colours(strategies=None) -> dict[str, tuple]:
    """One fixed colour per registered strategy (registry order), the same in every figure."""
    names = list(STRATEGIES) + [c for c in CONTROL_STRATEGIES if c not in STRATEGIES]
    colours = sns.color_palette(PALETTE, n_colors=max(len(names), 10))
    out = {s: colours[i % len(colours)] for i, s in enumerate(names)}
    return out if strategies is None else {s: out.get(s, "0.3") for s in strategies}


def _panels(n: int, *, width: float = 4.2, height: float = 3.2, sharey: bool = True):
    fig, axes = plt.subplots(1, max(n, 1), figsize=(width * max(n, 1), height),
                             sharey=sharey, squeeze=False)
    return fig, list(axes[0])


def _errorbar(ax, x, y, lo, hi, **kw):
    y, lo, hi = (np.asarray(a, dtype=float) for a in (y, lo, hi))
    err = np.vstack([y - lo, hi - y])
    kw.setdefault("marker", "o")
    return ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), capsize=3, ms=4, **kw)


def _legend_outside(ax) -> None:
    """The legend to the right of the axes: with nine strategies and three reference rows
    a legend inside the plot hides the data."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig = ax.figure
    if not getattr(fig, "_ambiemo_widened", False):   # room for the legend, once per figure
        w, h = fig.get_size_inches()
        fig.set_size_inches(w + 1.8, h)
        fig._ambiemo_widened = True


def save(fig: plt.Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf")
         ) -> list[Path]:
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
    rows (prior, uniform, new_raters) are drawn in grey beside the models."""
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
    ax.set_xlabel(M.axis_label(metric) + ", 95% bootstrap CI")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def metric_by_ambiguity(by_bin: pd.DataFrame, metric: str, corpus: str) -> plt.Figure:
    """`metric` per ambiguity bin (x), one line per strategy with its 95% interval, one
    panel per model; the reference rows are grey lines. `by_bin` is
    `summary.summary_by_ambiguity` output."""
    refs = by_bin[is_reference(by_bin)]
    models = list(pd.unique(by_bin.loc[~is_reference(by_bin), "model"]))
    bins = list(by_bin["ambiguity_bin"].cat.categories) if isinstance(
        by_bin["ambiguity_bin"].dtype, pd.CategoricalDtype) else list(pd.unique(by_bin["ambiguity_bin"]))
    colours = strategy_colours()
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        rows = by_bin[by_bin["model"] == model]
        strategies = list(pd.unique(rows["strategy"]))
        for i, s in enumerate(strategies):
            r = rows[rows["strategy"] == s].set_index("ambiguity_bin").reindex(bins)
            # A small dodge keeps overlapping intervals of different strategies readable.
            x = np.arange(len(bins)) + (i - (len(strategies) - 1) / 2) * 0.06
            _errorbar(ax, x, r[metric], r[f"{metric}_lo"], r[f"{metric}_hi"], label=s,
                      color=colours.get(s, "0.3"))
        for ref, r in refs.groupby("model", sort=False):
            r = r.set_index("ambiguity_bin").reindex(bins)
            ax.plot(np.arange(len(bins)), r[metric], color="0.55", lw=1,
                    ls=REFERENCE_STYLES.get(ref, ":"), label=f"{ref} (reference)")
        ax.set_xticks(range(len(bins)), [str(b) for b in bins])
        ax.set_xlabel("ambiguity bin (entropy of human votes)")
        ax.set_title(f"{corpus}: {model}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(M.axis_label(metric))
    _legend_outside(axes[-1])
    fig.tight_layout()
    return fig


def gain_vs_ambiguity(gains: pd.DataFrame, corpus: str) -> plt.Figure:
    """Gain of each strategy over the baseline (positive = better) per ambiguity bin, with
    the paired 95% interval, one panel per model; `gains` is `analysis.gain_by_ambiguity`.
    The controls' curves (greedy_smoothed, vote_share, label_logits_tempered) are dashed."""
    metric = gains["metric"].iloc[0] if len(gains) else gains.attrs.get("metric", "metric")
    baseline = gains.attrs.get("baseline", "greedy")
    models = list(pd.unique(gains["model"])) or ["(no model with a baseline row)"]
    bins = list(gains["ambiguity_bin"].cat.categories) if isinstance(
        gains["ambiguity_bin"].dtype, pd.CategoricalDtype) else list(pd.unique(gains["ambiguity_bin"]))
    colours = strategy_colours()
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        rows = gains[gains["model"] == model]
        strategies = list(pd.unique(rows["strategy"]))
        for i, s in enumerate(strategies):
            r = rows[rows["strategy"] == s].set_index("ambiguity_bin").reindex(bins)
            x = np.arange(len(bins)) + (i - (len(strategies) - 1) / 2) * 0.06
            # Controls (controls.py) dashed: a strategy's gain counts only above theirs.
            control = s in CONTROL_STRATEGIES
            _errorbar(ax, x, r["gain"], r["gain_lo"], r["gain_hi"],
                      label=f"{s} (control)" if control else s,
                      color=colours.get(s, "0.3"), ls="--" if control else "-",
                      marker="s" if control else "o")
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(bins)), [str(b) for b in bins])
        ax.set_xlabel("ambiguity bin (entropy of human votes)")
        ax.set_title(f"{corpus}: {model}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if strategies:
            _legend_outside(ax)
    axes[0].set_ylabel(f"gain in {M.short_label(metric)} over {baseline}\n"
                       "(positive = better, paired 95% CI)")
    notes = gains.attrs.get("notes") or []
    if notes:
        fig.suptitle("; ".join(notes), fontsize=7, y=0.02, va="bottom")
    fig.tight_layout()
    return fig


def capacity_vs_metric(by_bin: pd.DataFrame, n_params: dict, metric: str,
                       corpus: str) -> plt.Figure:
    """`metric` against log10(parameter count), one line per ambiguity bin, one panel per
    strategy. Models whose parameter count is None (hosted) are left out, and the title says
    which."""
    rows = by_bin[~is_reference(by_bin)]
    models = list(pd.unique(rows["model"]))
    hosted = [m for m in models if n_params.get(m) is None]
    rows = rows[~rows["model"].isin(hosted)].assign(
        log_params=lambda d: np.log10(d["model"].map(lambda m: float(n_params[m]))))
    strategies = list(pd.unique(rows["strategy"])) or ["(no model with a known size)"]
    bins = list(by_bin["ambiguity_bin"].cat.categories) if isinstance(
        by_bin["ambiguity_bin"].dtype, pd.CategoricalDtype) else list(pd.unique(by_bin["ambiguity_bin"]))
    colours = dict(zip(bins, sns.color_palette(PALETTE, n_colors=max(len(bins), 3))))
    fig, axes = _panels(len(strategies), width=3.6)
    for ax, s in zip(axes, strategies):
        r = rows[rows["strategy"] == s]
        for b in bins:
            rb = r[r["ambiguity_bin"] == b].sort_values("log_params")
            if len(rb):
                _errorbar(ax, rb["log_params"], rb[metric], rb[f"{metric}_lo"],
                          rb[f"{metric}_hi"], label=f"{b} ambiguity", color=colours[b])
        ax.set_xlabel("log10 parameter count")
        ax.set_title(s, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(M.axis_label(metric))
    if len(rows):
        axes[-1].legend(fontsize=7, loc="best")
    left_out = f"; left out (size not published): {', '.join(hosted)}" if hosted else ""
    fig.suptitle(f"{corpus}: capacity vs {M.short_label(metric)}{left_out}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def entropy_pred_vs_human(scores: pd.DataFrame, corpus: str) -> plt.Figure:
    """Entropy of each prediction against the entropy of the human votes (bits), one panel
    per strategy, one colour per model, with the identity line and Pearson r."""
    rows = scores[~is_reference(scores)]
    strategies = list(pd.unique(rows["strategy"]))
    models = list(pd.unique(rows["model"]))
    colours = dict(zip(models, sns.color_palette(PALETTE, n_colors=max(len(models), 3))))
    fig, axes = _panels(len(strategies), width=3.4, height=3.4)
    top = max(float(np.nanmax(rows[["entropy_human", "entropy_pred"]].to_numpy(float)))
              if len(rows) else 1.0, 1e-3)
    for ax, s in zip(axes, strategies):
        for m in models:
            r = rows[(rows["strategy"] == s) & (rows["model"] == m)]
            if len(r):
                corr = M.entropy_correlation(r["entropy_human"], r["entropy_pred"])["pearson"]
                ax.scatter(r["entropy_human"], r["entropy_pred"], s=12, alpha=0.7,
                           color=colours[m], label=f"{m} (r = {corr:.2f})")
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("entropy of human votes (bits)")
        ax.set_title(s, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("entropy of prediction (bits)")
    fig.suptitle(f"{corpus}: predicted vs human entropy", fontsize=10)
    fig.tight_layout()
    return fig


def reliability_diagram(reliability: pd.DataFrame, corpus: str) -> plt.Figure:
    """Top-class confidence against accuracy (majority label) per strategy, one column per
    model, with the number of clips per confidence bin below; `reliability` is
    `summary.reliability_table` output (reference rows are left out)."""
    rows = reliability[~is_reference(reliability)]
    models = list(pd.unique(rows["model"])) or ["(no model)"]
    colours = strategy_colours()
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 5),
                             squeeze=False, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for j, model in enumerate(models):
        top, bottom = axes[0, j], axes[1, j]
        r = rows[rows["model"] == model]
        for s, rs in r.groupby("strategy", sort=False):
            top.plot(rs["confidence"], rs["accuracy"], marker="o", ms=4, label=s,
                     color=colours.get(s, "0.3"))
            bottom.plot((rs["bin_lo"] + rs["bin_hi"]) / 2, rs["count"], marker=".",
                        color=colours.get(s, "0.3"), drawstyle="steps-mid")
        top.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--", label="perfect calibration")
        top.set(xlim=(0, 1), ylim=(-0.02, 1.02), title=f"{corpus}: {model}")
        top.set_ylabel("accuracy vs majority label")
        top.legend(fontsize=7, loc="upper left")
        bottom.set_xlabel("top-class probability (confidence)")
        bottom.set_ylabel("clips per bin")
    fig.tight_layout()
    return fig


def scaling_curves(curve: pd.DataFrame, metrics, corpus: str) -> plt.Figure:
    """Each metric against n = 1, 2, 4, ..., N (log2 axis), one line per strategy with its
    95% interval, one row of panels per model. Strategies that read one answer (greedy,
    cot, label_logits) do not depend on n and are drawn as flat dashed lines. `curve` is the
    `summary_table` of `scaling.scaling_curve` predictions."""
    rows = curve[~is_reference(curve)]
    models = list(pd.unique(rows["model"])) or ["(no model)"]
    metrics = list(metrics)
    colours = strategy_colours()
    n_max = int(rows["n"].max()) if len(rows) else 1
    fig, axes = plt.subplots(len(models), len(metrics), figsize=(3.6 * len(metrics),
                             3.0 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        r = rows[rows["model"] == model]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for s, rs in r.groupby("strategy", sort=False):
                rs = rs.sort_values("n")
                if STRATEGIES[s].single if s in STRATEGIES else rs["n"].nunique() == 1:
                    ax.plot([1, max(n_max, 2)], [rs[metric].iloc[0]] * 2, ls="--", lw=1.2,
                            color=colours.get(s, "0.3"), label=f"{s} (one answer)")
                else:
                    _errorbar(ax, rs["n"], rs[metric], rs[f"{metric}_lo"], rs[f"{metric}_hi"],
                              label=s, color=colours.get(s, "0.3"))
            ax.set_xscale("log", base=2)
            ticks = [1 << k for k in range(int(np.log2(max(n_max, 1))) + 1)]
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlabel("n candidates per clip (log2 scale)")
            ax.set_ylabel(M.axis_label(metric), fontsize=8)
            ax.set_title(f"{corpus}: {model}", fontsize=9)
            ax.grid(alpha=0.3)
        _legend_outside(axes[i, -1])
    fig.tight_layout()
    return fig
