"""The figures of the paper's argument, each one file with its caption.

Jia et al. (2026) argue in four steps, one figure each: how far each model is from the human
distribution as ambiguity grows (with the prior, uniform and new-rater rows as the
scale, none of them a bound); how much test-time scaling gains over greedy decoding by
ambiguity; whether capacity
helps on ambiguous clips; and how quality scales with n. A fifth puts each strategy's metric
on a compute axis (generated tokens per clip), since test-time scaling buys quality with
compute. Each function returns a `PaperFigure` (the figure sized for the page, a caption
that states what is drawn and every setting behind it); `save_paper_figure` writes
`<stem>.png`, `<stem>.pdf` and the caption as `<stem>.txt`, which the report shows under
the image. Everything else in `figures` is a diagnostic.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ambiemo import metrics as M
from ambiemo.analysis.clusters import binning_caption
import ambiemo.outputs.figures as F
from ambiemo.outputs.style import (MAX_SERIES, PAGE_WIDTH_IN, PAPER_FIGURE_STRATEGIES,
                                   facet_grid, shared_legend, strategy_style, styled,
                                   wrap_label)
from ambiemo.tts.controls import CONTROL_STRATEGIES
from ambiemo.tts.references import is_reference

# One vocabulary in every caption: "controls" are these, never cot or label_logits, and the
# reference rows are never called a bound or a ceiling.
CONTROLS_WORDS = ("the controls (" + ", ".join(CONTROL_STRATEGIES) + "; hollow markers), "
                  "which spend the same information without test-time scaling")
REFERENCE_WORDS = ("the reference rows (prior: the class shares, fitted in-sample; uniform; "
                   "new_raters: a second rater panel of the same size, estimated from split "
                   "halves of each clip's votes; egemaps_soft), which ask no model and are a "
                   "scale, not a bound: a smoothed answer can score better than a second panel")


def paper_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows a paper figure draws: every strategy when there are at most `MAX_SERIES`,
    else the reference rows and `PAPER_FIGURE_STRATEGIES` (the paper's strategies, majority
    and the controls); and the strategies left out, which the caption names."""
    if "strategy" not in frame or frame["strategy"].nunique() <= MAX_SERIES:
        return frame, []
    keep = is_reference(frame) | frame["strategy"].isin(PAPER_FIGURE_STRATEGIES)
    out = frame[keep]
    out.attrs = dict(frame.attrs)
    return out, sorted(set(frame.loc[~keep, "strategy"]))


def _left_out(names: list[str]) -> str:
    return (f" Left out here (in the tables): {', '.join(names)}." if names else "")

PRIMARY_METRIC = "js_divergence"
COST_LABELS = {"tokens_per_clip": "generated tokens per clip",
               "forward_passes_per_clip": "forward passes per clip",
               "seconds_per_clip": "seconds per clip (measured, verifier included)"}


@dataclass(frozen=True)
class PaperFigure:
    """One paper figure: `figure` is None when there is nothing to draw, and `caption`
    then says why (the report shows it as a note)."""
    name: str
    figure: plt.Figure | None
    caption: str


def save_paper_figure(pf: PaperFigure, stem: str | Path) -> list[Path]:
    """`<stem>.png`/`.pdf` (when drawn) and `<stem>.txt` (the caption); returns the paths."""
    stem = Path(stem)
    paths = F.save(pf.figure, stem) if pf.figure is not None else []
    stem.parent.mkdir(parents=True, exist_ok=True)
    caption = stem.with_suffix(".txt")
    caption.write_text(pf.caption.strip() + "\n")
    return [*paths, caption]


_RESAMPLED = {"clip": "over clips", "speaker": "resampling speakers",
              "sentence": "resampling sentences",
              "speaker x sentence": "resampling speakers and sentences (two-way pigeonhole)"}


def _ci(n_boot, frame: pd.DataFrame | None = None) -> str:
    """The interval's description, naming the resampling scheme of `frame`'s rows (its
    `scheme` column, analysis/clusters.py; clips when it has none)."""
    schemes = ([s for s in pd.unique(frame["scheme"].dropna()) if s]
               if frame is not None and "scheme" in frame else []) or ["clip"]
    how = " / ".join(_RESAMPLED.get(s, s) for s in schemes)
    # The hook for the binning option: a frame whose attrs name its binning says so here.
    binning = frame.attrs.get("binning") if frame is not None else None
    return (f"95% bootstrap interval {how}" + (f" ({n_boot} resamples)" if n_boot else "")
            + (f" ({binning_caption(binning)[:-1]})" if binning else ""))


_GAIN_CI = {"clip": "95% percentile bootstrap interval over clips",
            "speaker": "95% t interval on the speaker-cluster bootstrap standard error",
            "sentence": "95% t interval on the sentence-cluster bootstrap standard error",
            "speaker x sentence": "95% t interval on the two-way (speaker x sentence) "
                                  "cluster-robust standard error"}


def _gain_ci(gains: pd.DataFrame) -> str:
    """The paired gain interval's description (analysis/clusters.py's scheme per row)."""
    schemes = [s for s in pd.unique(gains["scheme"].dropna()) if s] \
        if "scheme" in gains else []
    return " / ".join(_GAIN_CI.get(s, s) for s in schemes or ["clip"])


def metric_by_ambiguity(by_bin: pd.DataFrame, corpus: str, *, metric: str = PRIMARY_METRIC,
                        n_boot: int | None = None) -> PaperFigure:
    """The metric per ambiguity bin, one panel per model, reference rows as grey lines."""
    by_bin, gone = paper_rows(by_bin)
    fig = F.metric_by_ambiguity(by_bin, metric, corpus)
    caption = (f"{corpus}: {M.axis_label(metric)} per ambiguity bin (tertiles of the entropy "
               f"of the human votes), one panel per model, one line per strategy with its "
               f"{_ci(n_boot, by_bin)}, beside {CONTROLS_WORDS}. Grey lines: {REFERENCE_WORDS}."
               + _left_out(gone))
    return PaperFigure("metric_by_ambiguity", fig, caption)


def gain_by_ambiguity(gains: pd.DataFrame, corpus: str, *, n_boot: int | None = None,
                      form: str = "all") -> PaperFigure:
    """Gain over greedy per ambiguity bin, each strategy beside the controls
    (`tts.controls.CONTROL_STRATEGIES`): a gain counts only above theirs. `form`
    "complete_case" draws the gains on clips both sides answered (the `cc_` columns of
    `analysis.gain_by_ambiguity`), as `gain_by_ambiguity_complete_case`."""
    if form not in ("all", "complete_case"):
        raise ValueError(f"form must be 'all' or 'complete_case', got {form!r}")
    gains, gone = paper_rows(gains)
    drawn = gains
    if form == "complete_case":
        cc = {f"cc_{c}": c for c in ("gain", "gain_lo", "gain_hi", "p_value", "n_utts")}
        drawn = (gains.drop(columns=list(cc.values())).rename(columns=cc)
                 .dropna(subset=["gain"]))
        drawn.attrs = gains.attrs
    fig = F.gain_vs_ambiguity(drawn, corpus)
    metric = gains["metric"].iloc[0] if len(gains) else gains.attrs.get("metric", "metric")
    baseline = gains.attrs.get("baseline", "greedy")
    dropped = (f" Complete-case: only clips where both the strategy and {baseline} gave an "
               "answer (a rescued missing answer is no gain); "
               f"{gains['share_dropped'].mean():.0%} of clips left out on average."
               if form == "complete_case" and len(gains) else
               " All clips: a missing answer scores the metric's worst value; the "
               "complete-case gains are drawn beside this figure.")
    caption = (f"{corpus}: gain in {M.short_label(metric) if metric in M.METRICS else metric} "
               f"of each strategy over {baseline} decoding of the same model (positive = "
               f"better), per ambiguity bin, with the paired {_gain_ci(gains)}; a strategy's "
               f"gain counts only above that of {CONTROLS_WORDS}." + dropped + _left_out(gone))
    name = "gain_by_ambiguity" + ("" if form == "all" else "_complete_case")
    return PaperFigure(name, fig, caption)


def capacity(by_bin: pd.DataFrame, n_params: dict, corpus: str, *,
             metric: str = PRIMARY_METRIC, n_boot: int | None = None,
             fit: pd.DataFrame | None = None, caveats=()) -> PaperFigure:
    """Metric against log10 parameter count per ambiguity bin; no figure (a note instead)
    when fewer than two model sizes are known. `fit` is the capacity fit of this metric
    (`analysis.capacity_analysis`): where it is not estimable, the title and the caption
    say so and the points are not joined. `caveats`: sentences the caption adds (e.g. a
    model that stands in for another of a different size, `paper_numbers.capacity_caveats`)."""
    rows, hosted = F.capacity_points(by_bin, n_params)
    fig = F.capacity_vs_metric(by_bin, n_params, metric, corpus, fit=fit)
    extra = "".join(f" {c.strip()}" for c in caveats if c)
    if fig is None:
        sizes = sorted(rows["model"].unique())
        return PaperFigure("capacity", None, (
            f"{corpus}: capacity x ambiguity not drawn: {len(sizes)} model(s) of known size "
            f"({', '.join(sizes) or 'none'}), and a trend needs at least two"
            + (f"; size not published: {', '.join(hosted)}" if hosted else "") + "." + extra))
    estimable, why = F.capacity_estimability(by_bin, n_params, fit)
    verdict = ("" if estimable else
               f" Capacity is not estimable here ({why}): the points are shown unjoined, "
               "and no capacity trend is read from them.")
    caption = (f"{corpus}: {M.axis_label(metric)} against log10 parameter count (every weight "
               f"the adapter loads), one {'line' if estimable else 'set of points'} per "
               f"ambiguity bin, one panel per strategy, with the {_ci(n_boot, by_bin)}"
               + (f"; left out, size not published: {', '.join(hosted)}" if hosted else "")
               + "." + verdict + extra)
    return PaperFigure("capacity", fig, caption)


def scaling(curve: pd.DataFrame, corpus: str, *, metric: str = PRIMARY_METRIC,
            n_subsets: int | None = None, seed: int | None = None,
            n_boot: int | None = None, references: pd.DataFrame | None = None) -> PaperFigure:
    """The test-time-scaling curve of the primary metric, one panel per model, with the
    reference rows (`references`: their summary rows) as horizontal lines."""
    curve, gone = paper_rows(curve)
    fig = F.scaling_curves(curve, [metric], corpus, references=references)
    subsets = (f"{n_subsets} random n-subsets of each clip's candidates" if n_subsets
               else "random n-subsets of each clip's candidates")
    caption = (f"{corpus}: {M.axis_label(metric)} against the number n of sampled candidates "
               f"per clip (log2 axis), one panel per model, one line per strategy with its "
               f"{_ci(n_boot, curve)}; {subsets}" + (f", seed {seed}" if seed is not None else "")
               + ". Single-answer strategies are flat lines"
               + (f"; grey horizontal lines are {REFERENCE_WORDS}; no n changes them."
                  if references is not None else ".") + _left_out(gone))
    return PaperFigure("scaling", fig, caption)


@styled
def _cost_figure(data: pd.DataFrame, metric: str, cost: str, corpus: str) -> plt.Figure:
    models = list(pd.unique(data["model"])) or ["(no model)"]
    fig, axes = facet_grid(len(models), sharey=True, width=PAGE_WIDTH_IN if len(models) > 1
                           else None)
    for ax, model in zip(axes, models):
        rows = data[data["model"] == model]
        for s, rs in rows.groupby("strategy", sort=False):
            rs = rs.sort_values(cost)
            y, lo, hi = (rs[c].to_numpy(float) for c in (metric, f"{metric}_lo", f"{metric}_hi"))
            ax.errorbar(rs[cost], y, yerr=F.error_lengths(y, lo, hi), capsize=2,
                        label=f"{s} (control)" if s in CONTROL_STRATEGIES else s,
                        **strategy_style(s))
        ax.set_xscale("log")
        ax.set_xlabel(COST_LABELS.get(cost, cost) + " (log)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(wrap_label(M.axis_label(metric)))
    fig.suptitle(f"{corpus}: quality against compute")
    shared_legend(fig, axes)
    return fig


def cost(curve: pd.DataFrame, costs: pd.DataFrame, corpus: str, *,
         metric: str = PRIMARY_METRIC, cost: str = "forward_passes_per_clip",
         n_boot: int | None = None) -> PaperFigure:
    """Each strategy's metric against its cost per clip (`tts.costs.strategy_costs` rows
    joined to the scaling-curve summary on model, strategy, n): the scaling curve on a
    compute axis. Rows without a measured cost are left out and the caption says how many."""
    if cost not in COST_LABELS:
        raise KeyError(f"cost {cost!r}; valid: {sorted(COST_LABELS)}")
    rows, gone = paper_rows(curve[~is_reference(curve)])
    data = rows.merge(costs, on=["model", "strategy", "n"], how="left", validate="one_to_one")
    unmeasured = data[cost].isna() | (data[cost] <= 0)
    fig = _cost_figure(data[~unmeasured], metric, cost, corpus)
    caption = (f"{corpus}: {M.axis_label(metric)} against {COST_LABELS[cost]} (log axis), "
               f"one point per n = 1, 2, 4, ... for each strategy, with the {_ci(n_boot, curve)}. "
               "Cost counts every answer the strategy reads and, for verifier strategies, "
               "the verifier's judgements."
               + (f" {int(unmeasured.sum())} row(s) without a measured cost left out."
                  if unmeasured.any() else "") + _left_out(gone))
    return PaperFigure("cost", fig, caption)
