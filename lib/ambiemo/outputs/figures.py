"""Every diagnostic figure of the study, one function each (matplotlib/seaborn).

Figures follow Jia et al. (2026): human ambiguity per corpus; each metric per model and
strategy with its bootstrap interval; each metric by ambiguity bin and the gain of each
strategy over the greedy baseline against ambiguity; model capacity (log parameter count)
against each metric; predicted against human entropy; the reliability of the top class; and
the test-time-scaling curves (metric against n). Each function takes the tidy tables of
`ambiemo.analysis`, returns the Figure, labels its axes with units and names the corpus.
Panels wrap into a grid of at most four columns sized for a two-column paper, and every
strategy has one colour, marker and line style in every figure (`ambiemo.outputs.style`).
The paper's own figures, one file each with a caption, are in `paper_figures`; `save`
writes PNG and PDF.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ambiemo import metrics as M
from ambiemo.outputs.style import (COLUMN_WIDTH_IN, DPI, OKABE_ITO, PAGE_WIDTH_IN,
                                   SERIES_COLOURS, facet_grid, new_figure, reference_style,
                                   shared_legend, strategy_style, styled, wrap_label)
from ambiemo.tts import STRATEGIES
from ambiemo.tts.controls import CONTROL_STRATEGIES
from ambiemo.tts.references import is_reference


def strategy_colours(strategies=None) -> dict[str, str]:
    """One fixed colour per strategy, the same in every figure (`style.strategy_style`)."""
    names = (list(STRATEGIES) + [c for c in CONTROL_STRATEGIES if c not in STRATEGIES]
             if strategies is None else list(strategies))
    return {s: strategy_style(s)["color"] for s in names}


def _bins(table: pd.DataFrame) -> list:
    col = table["ambiguity_bin"]
    return (list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype)
            else list(pd.unique(col)))


def error_lengths(y, lo, hi) -> np.ndarray:
    """The (2, n) error-bar lengths below and above `y` for matplotlib: NaN bounds draw no
    bar, and a bound equal to the value up to float noise (a constant answer's bootstrap:
    y - lo = -1.3e-23) is a zero-length bar, since matplotlib refuses negative lengths."""
    y, lo, hi = (np.asarray(a, dtype=float) for a in (y, lo, hi))
    err = np.vstack([y - lo, hi - y])
    return np.clip(np.where(np.isfinite(err), err, 0), 0, None)


def _errorbar(ax, x, y, lo, hi, *, style: dict, label: str):
    err = error_lengths(y, lo, hi)
    return ax.errorbar(x, np.asarray(y, dtype=float), yerr=err, capsize=2, ms=4,
                       label=label, **style)


def save(fig: plt.Figure, stem: str | Path, formats: Sequence[str] = ("png", "pdf")
         ) -> list[Path]:
    """Write `fig` as `<stem>.<fmt>` for each format; returns the paths. The figure keeps
    its size (no tight bounding box), so a figure sized for a column prints at that width."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        # A fixed creation date keeps PDFs byte-identical across reruns.
        fig.savefig(path, dpi=DPI, metadata={"CreationDate": None} if fmt == "pdf" else None)
        paths.append(path)
    return paths


@styled
def human_entropy(manifest: pd.DataFrame) -> plt.Figure:
    """Distribution of the human vote entropy per clip, per corpus."""
    k = len(manifest.attrs.get("classes", [])) or None
    fig = new_figure((COLUMN_WIDTH_IN, 2.4))
    ax = fig.subplots()
    sns.histplot(data=manifest, x="entropy_bits", hue="corpus", bins=12, ax=ax,
                 palette=SERIES_COLOURS[:manifest["corpus"].nunique()], element="step",
                 stat="count")
    if k:
        ax.axvline(np.log2(k), color="0.5", ls=":", lw=1)
        ax.set_xlim(right=max(ax.get_xlim()[1], np.log2(k) * 1.03))
        # Left of the line, so the label stays inside the axes at any bin range.
        ax.text(np.log2(k), ax.get_ylim()[1] * 0.95, "uniform ", color="0.4", va="top",
                ha="right")
    ax.set_xlabel("entropy of human votes (bits)")
    ax.set_ylabel("clips")
    corpora = manifest["corpus"].unique()
    if len(corpora) == 1:  # the title names the corpus; a one-entry legend only hides bars
        ax.get_legend().remove()
        ax.set_title(f"Human ambiguity: {corpora[0]} ({len(manifest)} clips)")
    else:
        ax.set_title("Human ambiguity")
    return fig


@styled
def metric_by_row(summary: pd.DataFrame, metric: str) -> plt.Figure:
    """One metric for every (model, strategy) row with its bootstrap interval; reference
    rows (prior, uniform, new_raters) are drawn in grey beside the models."""
    rows = summary.assign(row=summary["model"] + " / " + summary["strategy"])
    fig = new_figure((COLUMN_WIDTH_IN, 0.2 * len(rows) + 0.9))
    ax = fig.subplots()
    for i, (_, r) in enumerate(rows.iterrows()):
        style = ({"color": "0.55", "marker": "o"} if r["strategy"] == "reference"
                 else {k: v for k, v in strategy_style(r["strategy"]).items()
                       if k != "linestyle"})
        ax.errorbar(r[metric], i, xerr=error_lengths([r[metric]], [r[f"{metric}_lo"]],
                                                     [r[f"{metric}_hi"]]),
                    ls="none", capsize=2, **style)
    ax.set_yticks(range(len(rows)), rows["row"])
    ax.invert_yaxis()
    ax.set_xlabel(wrap_label(M.axis_label(metric) + ", 95% bootstrap CI"))
    ax.grid(axis="x", alpha=0.3)
    return fig


def _by_bin_panel(ax, rows, bins, value, lo, hi):
    """One line per strategy across the ambiguity bins, dodged so intervals stay apart."""
    strategies = list(pd.unique(rows["strategy"]))
    for i, s in enumerate(strategies):
        r = rows[rows["strategy"] == s].set_index("ambiguity_bin").reindex(bins)
        x = np.arange(len(bins)) + (i - (len(strategies) - 1) / 2) * 0.07
        label = f"{s} (control)" if s in CONTROL_STRATEGIES else s
        _errorbar(ax, x, r[value], r[lo], r[hi], style=strategy_style(s), label=label)
    ax.set_xticks(range(len(bins)), [str(b) for b in bins])
    ax.grid(axis="y", alpha=0.3)
    return strategies


@styled
def metric_by_ambiguity(by_bin: pd.DataFrame, metric: str, corpus: str) -> plt.Figure:
    """`metric` per ambiguity bin (x), one line per strategy with its 95% interval, one
    panel per model; the reference rows are grey lines. `by_bin` is
    `summary.summary_by_ambiguity` output."""
    refs = by_bin[is_reference(by_bin)]
    models = list(pd.unique(by_bin.loc[~is_reference(by_bin), "model"])) or ["(no model)"]
    bins = _bins(by_bin)
    fig, axes = facet_grid(len(models))
    for ax, model in zip(axes, models):
        _by_bin_panel(ax, by_bin[by_bin["model"] == model], bins, metric, f"{metric}_lo",
                      f"{metric}_hi")
        for ref, r in refs.groupby("model", sort=False):
            r = r.set_index("ambiguity_bin").reindex(bins)
            ax.plot(np.arange(len(bins)), r[metric], label=f"{ref} (reference)",
                    **reference_style(ref))
        ax.set_title(model)
    for ax in axes:
        ax.set_xlabel("ambiguity bin\n(human-vote entropy)")
    axes[0].set_ylabel(wrap_label(M.axis_label(metric)))
    fig.suptitle(f"{corpus}: {M.short_label(metric)} by ambiguity")
    shared_legend(fig, axes)
    return fig


@styled
def gain_vs_ambiguity(gains: pd.DataFrame, corpus: str) -> plt.Figure:
    """Gain of each strategy over the baseline (positive = better) per ambiguity bin, with
    the paired 95% interval, one panel per model; `gains` is `analysis.gain_by_ambiguity`.
    The controls (greedy_smoothed, vote_share, label_logits_tempered; tts/controls.py) are
    drawn dashed and labelled "(control)": a strategy's gain counts only above theirs."""
    metric = gains["metric"].iloc[0] if len(gains) else gains.attrs.get("metric", "metric")
    baseline = gains.attrs.get("baseline", "greedy")
    models = list(pd.unique(gains["model"])) or ["(no model with a baseline row)"]
    bins = _bins(gains) if len(gains) else []
    fig, axes = facet_grid(len(models))
    for ax, model in zip(axes, models):
        _by_bin_panel(ax, gains[gains["model"] == model], bins, "gain", "gain_lo", "gain_hi")
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_title(model)
        ax.set_xlabel("ambiguity bin\n(human-vote entropy)")
    # short_label carries the unit already ("JS (bits)"): no second "(bits)".
    axes[0].set_ylabel(f"gain in {M.short_label(metric)} over {baseline}\n"
                       "(positive = better, paired 95% CI)")
    notes = gains.attrs.get("notes") or []
    fig.suptitle(f"{corpus}: gain over {baseline} by ambiguity"
                 + (f"\n{'; '.join(notes)}" if notes else ""))
    shared_legend(fig, axes)
    return fig


def capacity_points(by_bin: pd.DataFrame, n_params: dict) -> tuple[pd.DataFrame, list[str]]:
    """The model rows of `by_bin` with a known parameter count (`log_params` added), and the
    models left out because their size is not published."""
    rows = by_bin[~is_reference(by_bin)]
    hosted = [m for m in pd.unique(rows["model"]) if n_params.get(m) is None]
    rows = rows[~rows["model"].isin(hosted)]
    return rows.assign(log_params=np.log10(rows["model"].map(
        lambda m: float(n_params[m])).astype(float))), hosted


def capacity_drawable(by_bin: pd.DataFrame, n_params: dict) -> bool:
    """True when at least two models of different known size were scored: one size alone
    plots a column of points."""
    rows, _ = capacity_points(by_bin, n_params)
    return rows["log_params"].nunique() >= 2


def capacity_estimability(by_bin: pd.DataFrame, n_params: dict, fit: pd.DataFrame | None = None
                          ) -> tuple[bool, str]:
    """(estimable, why): the capacity fit's own verdict (`fit.attrs["estimable"]`, from
    `analysis.capacity_analysis`) where given, else the same rule on the plotted models (at
    least `MIN_MODELS` models of known size spanning `MIN_SPAN_DECADES` decades); `why`
    names the count and the span."""
    from ambiemo.analysis.capacity import MIN_MODELS, MIN_SPAN_DECADES

    rows, _ = capacity_points(by_bin, n_params)
    sizes = rows.drop_duplicates("model")["log_params"]
    n = int(fit.attrs.get("n_models", len(sizes))) if fit is not None else len(sizes)
    span = (float(fit.attrs.get("log10_span", np.nan)) if fit is not None
            else float(np.ptp(sizes)) if len(sizes) else 0.0)
    if fit is not None:
        estimable = bool(fit.attrs.get("estimable", False))
    else:
        estimable = n >= MIN_MODELS and span >= MIN_SPAN_DECADES
    why = (f"{n} models of known size spanning {span:.2f} decades of parameter count"
           + ("" if estimable else f"; a capacity trend needs at least {MIN_MODELS} spanning "
              f"{MIN_SPAN_DECADES}"))
    return estimable, why


def capacity_has_a_trend(by_bin: pd.DataFrame, n_params: dict,
                         fit: pd.DataFrame | None = None) -> bool:
    """True only where a capacity trend can be read: at least two sizes to draw *and* the
    capacity terms estimable (`capacity_estimability`). A figure of models 0.03 decades
    apart is points, never a trend."""
    return capacity_drawable(by_bin, n_params) and capacity_estimability(by_bin, n_params,
                                                                         fit)[0]


@styled
def capacity_vs_metric(by_bin: pd.DataFrame, n_params: dict, metric: str,
                       corpus: str, fit: pd.DataFrame | None = None) -> plt.Figure | None:
    """`metric` against log10(parameter count), one line per ambiguity bin, one panel per
    strategy; None when fewer than two model sizes are known (`capacity_drawable`), so the
    report says so in words instead. Where capacity is not estimable
    (`capacity_estimability`, `fit` the capacity fit of this metric when given) the points
    are not joined and the title says "capacity not estimable". Models whose parameter
    count is None (hosted) are left out, and the title says which."""
    if not capacity_drawable(by_bin, n_params):
        return None
    estimable, why = capacity_estimability(by_bin, n_params, fit)
    rows, hosted = capacity_points(by_bin, n_params)
    strategies = list(pd.unique(rows["strategy"]))
    bins = _bins(by_bin)
    colours = dict(zip(bins, SERIES_COLOURS))
    fig, axes = facet_grid(len(strategies))
    for ax, s in zip(axes, strategies):
        r = rows[rows["strategy"] == s]
        for j, b in enumerate(bins):
            rb = r[r["ambiguity_bin"] == b].sort_values("log_params")
            if len(rb):
                style = dict(color=colours[b], marker="osD^v"[j % 5])
                if not estimable:
                    style["linestyle"] = "none"   # points, not a line: no trend to show
                _errorbar(ax, rb["log_params"], rb[metric], rb[f"{metric}_lo"],
                          rb[f"{metric}_hi"], label=f"{b} ambiguity", style=style)
        ax.set_xlabel("log10 parameter count")
        ax.set_title(s)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(wrap_label(M.axis_label(metric)))
    left_out = f"\nleft out (size not published): {', '.join(hosted)}" if hosted else ""
    verdict = "" if estimable else f"\ncapacity not estimable: {why.split(';')[0]}"
    fig.suptitle(f"{corpus}: capacity vs {M.short_label(metric)}{verdict}{left_out}")
    shared_legend(fig, axes)
    return fig


def correlation_words(r: float) -> str:
    """Pearson's r for a legend; a NaN r says why in words (one of the two entropies is the
    same on every clip, e.g. one-hot greedy answers)."""
    return "r undefined: constant entropy" if not np.isfinite(r) else f"r = {r:.2f}"


@styled
def entropy_pred_vs_human(scores: pd.DataFrame, corpus: str) -> plt.Figure:
    """Entropy of each prediction against the entropy of the human votes (bits), one panel
    per strategy, one colour per model (one legend below the grid), with the identity line;
    each panel lists Pearson r per model in the model's colour inside its own axes
    ("n/a": one of the two entropies is constant, e.g. one-hot answers)."""
    rows = scores[~is_reference(scores)]
    strategies = list(pd.unique(rows["strategy"])) or ["(no model)"]
    models = list(pd.unique(rows["model"]))
    colours = dict(zip(models, SERIES_COLOURS * (len(models) // len(SERIES_COLOURS) + 1)))
    fig, axes = facet_grid(len(strategies), panel_height=1.7, sharex=True)
    top = max(float(np.nanmax(rows[["entropy_human", "entropy_pred"]].to_numpy(float)))
              if len(rows) else 1.0, 1e-3) * 1.05
    cols = len({round(ax.get_position().x0, 3) for ax in axes})
    for i, (ax, s) in enumerate(zip(axes, strategies)):
        lines = []
        for m in models:
            r = rows[(rows["strategy"] == s) & (rows["model"] == m)]
            if len(r):
                corr = M.entropy_correlation(r["entropy_human"], r["entropy_pred"])["pearson"]
                ax.scatter(r["entropy_human"], r["entropy_pred"], s=6, alpha=0.6,
                           color=colours[m], label=m)
                lines.append((m, "n/a" if not np.isfinite(corr) else f"{corr:.2f}"))
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--", label="identity")
        ax.set(xlim=(0, top), ylim=(0, top))
        for j, (m, r_text) in enumerate(lines):
            ax.text(0.97, 0.04 + 0.11 * j, f"r {r_text}", transform=ax.transAxes,
                    ha="right", va="bottom", color=colours[m])
        ax.set_title(s)
        if i >= len(axes) - cols:         # the bottom row carries the x label
            ax.set_xlabel("human-vote entropy (bits)")
    axes[0].set_ylabel("prediction entropy (bits)")
    fig.suptitle(f"{corpus}: predicted vs human entropy (r: Pearson, per model)")
    shared_legend(fig, axes)
    return fig


@styled
def reliability_diagram(reliability: pd.DataFrame, corpus: str) -> plt.Figure:
    """Top-class confidence against accuracy (majority label) per strategy, one panel per
    model, with the number of clips per confidence bin below; `reliability` is
    `summary.reliability_table` output (reference rows are left out). The axes run a little
    past [0, 1] so points at confidence 1.0 are whole, and the legend is below the grid."""
    rows = reliability[~is_reference(reliability)]
    models = list(pd.unique(rows["model"])) or ["(no model)"]
    n = len(models)
    cols = min(n, 4)
    n_rows = -(-n // cols)
    fig = new_figure((COLUMN_WIDTH_IN if cols == 1 else PAGE_WIDTH_IN, 2.6 * n_rows + 0.9))
    outer = fig.add_gridspec(n_rows, cols)
    tops = []
    for j, model in enumerate(models):
        inner = outer[j // cols, j % cols].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        top = fig.add_subplot(inner[0])
        bottom = fig.add_subplot(inner[1], sharex=top)
        r = rows[rows["model"] == model]
        for s, rs in r.groupby("strategy", sort=False):
            style = strategy_style(s)
            top.plot(rs["confidence"], rs["accuracy"], label=s, **style)
            bottom.plot((rs["bin_lo"] + rs["bin_hi"]) / 2, rs["count"], color=style["color"],
                        marker=style["marker"], ms=3, drawstyle="steps-mid")
        top.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--", label="perfect calibration")
        top.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), title=model)
        top.tick_params(labelbottom=False)
        top.set_ylabel("accuracy vs majority")
        bottom.set_xlabel("top-class probability")
        bottom.set_ylabel("clips")
        tops.append(top)
    fig.suptitle(f"{corpus}: reliability of the top class")
    shared_legend(fig, tops)
    return fig


@styled
def scaling_curves(curve: pd.DataFrame, metrics, corpus: str, *,
                   width: float = PAGE_WIDTH_IN,
                   references: pd.DataFrame | None = None) -> plt.Figure:
    """Each metric against n = 1, 2, 4, ..., N (log2 axis), one line per strategy with its
    95% interval, one panel per (model, metric) wrapped into a grid. Strategies that read
    one answer (greedy, cot, label_logits) do not depend on n and are drawn as flat lines
    in their own style. `curve` is the `summary_table` of `scaling.scaling_curve`
    predictions; `references` (summary rows of the reference models: prior, uniform,
    new_raters, egemaps_soft) are grey horizontal lines, what no n changes."""
    rows = curve[~is_reference(curve)]
    models = list(pd.unique(rows["model"])) or ["(no model)"]
    metrics = list(metrics)
    n_max = int(rows["n"].max()) if len(rows) else 1
    panels = [(m, metric) for m in models for metric in metrics]
    fig, axes = facet_grid(len(panels), sharey=False, width=width)
    for ax, (model, metric) in zip(axes, panels):
        r = rows[rows["model"] == model]
        pooled = [s for s, rs in r.groupby("strategy", sort=False)
                  if not (STRATEGIES[s].single if s in STRATEGIES else rs["n"].nunique() == 1)]
        for s, rs in r.groupby("strategy", sort=False):
            rs = rs.sort_values("n")
            style = strategy_style(s)
            if s in pooled:
                # A small dodge on the log2 axis: strategies that coincide (majority, w_bon,
                # w_alm_v often do) stay visible side by side.
                shift = 2 ** ((pooled.index(s) - (len(pooled) - 1) / 2) * 0.035)
                _errorbar(ax, rs["n"] * shift, rs[metric], rs[f"{metric}_lo"],
                          rs[f"{metric}_hi"], style=style,
                          label=f"{s} (control)" if s in CONTROL_STRATEGIES else s)
            else:
                ax.plot([1, max(n_max, 2)], [rs[metric].iloc[0]] * 2, color=style["color"],
                        ls=style["linestyle"], lw=1.2, label=f"{s} (one answer)")
        if references is not None and metric in references:
            for ref, rr in references.groupby("model", sort=False):
                ax.axhline(float(rr[metric].iloc[0]), label=f"{ref} (reference)",
                           **reference_style(ref))
        ax.set_xscale("log", base=2)
        ticks = sorted({1 << k for k in range(int(np.log2(max(n_max, 1))) + 1)} | {n_max})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("n candidates (log2)")
        ax.set_ylabel(wrap_label(M.axis_label(metric)))
        ax.set_title(model if len(metrics) == 1 else f"{model}: {M.short_label(metric)}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{corpus}: test-time scaling")
    shared_legend(fig, axes)
    return fig


__all__ = ["COLUMN_WIDTH_IN", "PAGE_WIDTH_IN", "OKABE_ITO", "save", "strategy_colours",
           "human_entropy", "metric_by_row", "metric_by_ambiguity", "gain_vs_ambiguity",
           "capacity_points", "capacity_drawable", "capacity_estimability",
           "capacity_has_a_trend", "capacity_vs_metric",
           "correlation_words", "entropy_pred_vs_human", "reliability_diagram",
           "scaling_curves"]
