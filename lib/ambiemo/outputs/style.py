"""The look every figure shares: sizes for a two-column paper, legible fonts, a grid of
facets, and one colour-blind-safe style (colour, marker, line style) per strategy.

A figure of Jia et al. (2026)-style results is read at one column (3.5 in) or the page width
(7.2 in) of a two-column paper, so panels wrap into a grid of at most `MAX_COLUMNS` columns
and every text is at least `MIN_FONT_PT` points printed. Colours are the Okabe-Ito palette
(Okabe & Ito, 2008, "Color Universal Design"), safe for the common colour-vision deficiencies;
each strategy also has its own marker and line style, so strategies that coincide (majority,
w_bon and w_alm_v often do) or print in grey stay apart.
"""
from __future__ import annotations

import functools
import math
import sys

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ambiemo.tts import STRATEGIES


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill, nbval): an IPython shell with a
    kernel attached. A plain `ipython` terminal or a script is not one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def use_backend() -> str:
    """Headless files everywhere, inline figures in a notebook.

    Outside a kernel the backend is Agg: the pipeline writes files and must run without a
    display. Inside one the kernel's own backend is kept (inline in JupyterLab and in
    papermill's executed notebooks): forcing Agg there left every figure as the text
    `<Figure size ...>`. Activating the kernel's backend now registers IPython's display of a
    Figure as PNG, which the inline backend otherwise does only when pyplot first draws; the
    figures here are made without pyplot (`new_figure`), so it would never happen."""
    if in_notebook_kernel():
        plt.switch_backend(matplotlib.get_backend())
    else:
        matplotlib.use("Agg")
    return matplotlib.get_backend()


use_backend()

COLUMN_WIDTH_IN = 3.5     # one column of a two-column paper
PAGE_WIDTH_IN = 7.2       # both columns
MAX_COLUMNS = 4           # facets per row; more panels wrap onto further rows
MIN_FONT_PT = 7           # smallest printed text
DPI = 200

RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
      "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 8,
      "legend.title_fontsize": 7, "lines.linewidth": 1.2, "lines.markersize": 4,
      "axes.spines.top": False, "axes.spines.right": False}

# Okabe-Ito, yellow left out (it vanishes on white), in the order used below.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
             "green": "#009E73", "blue": "#0072B2", "vermillion": "#D55E00",
             "purple": "#CC79A7", "grey": "#7F7F7F"}

# One style per registered strategy, fixed by name so it never moves when a config lists
# strategies in another order. Related strategies share a colour family but never a marker
# or line style: bon / w_bon (log-probability selection), alm_v / w_alm_v (verifier).
STRATEGY_STYLES: dict[str, dict] = {
    "greedy":       dict(color=OKABE_ITO["black"], marker="o", linestyle="-"),
    "cot":          dict(color=OKABE_ITO["grey"], marker="x", linestyle="--"),
    "label_logits": dict(color=OKABE_ITO["grey"], marker="+", linestyle=":"),
    "majority":     dict(color=OKABE_ITO["orange"], marker="s", linestyle="-"),
    "bon":          dict(color=OKABE_ITO["sky_blue"], marker="^", linestyle="--"),
    "w_bon":        dict(color=OKABE_ITO["blue"], marker="v", linestyle="-."),
    "alm_v":        dict(color=OKABE_ITO["purple"], marker="D", linestyle="--"),
    "w_alm_v":      dict(color=OKABE_ITO["vermillion"], marker="P", linestyle=(0, (1, 1))),
    "dirichlet":    dict(color=OKABE_ITO["green"], marker="*", linestyle=(0, (3, 1, 1, 1))),
    "bon_sample":   dict(color=OKABE_ITO["sky_blue"], marker="<", linestyle=":"),
    "w_bon_sample": dict(color=OKABE_ITO["blue"], marker=">", linestyle=":"),
    "vote_share":   dict(color=OKABE_ITO["orange"], marker="h", linestyle="--",
                         markerfacecolor="white"),   # a control: hollow, as below
    # The controls (tts/controls.py CONTROL_STRATEGIES): hollow markers and broken lines,
    # so a strategy's gain is read against them at a glance.
    # greedy_smoothed is grey and hollow, never black like greedy, which it smooths.
    "greedy_smoothed":       dict(color=OKABE_ITO["grey"], marker="8", linestyle="--",
                                  markerfacecolor="white"),
    "label_logits_tempered": dict(color=OKABE_ITO["purple"], marker="p", linestyle="-.",
                                  markerfacecolor="white"),
    "first_parsable":        dict(color=OKABE_ITO["green"], marker="d", linestyle=(0, (5, 2)),
                                  markerfacecolor="white"),
}
_SPARE = [dict(color=c, marker=m, linestyle=ls) for c, m, ls in
          zip(OKABE_ITO.values(), "hd<>p8", ["-", "--", "-.", ":", "-", "--"])]
REFERENCE_STYLES = {"prior": ":", "uniform": "-.", "new_raters": "--", "egemaps_soft": (0, (6, 2)),
                    "wavlm_soft": (0, (6, 2, 1, 2))}
# Reference lines differ in grey level and width as well as dash, so close lines stay apart.
REFERENCE_LOOKS = {"prior": dict(color="0.15", lw=1.3), "uniform": dict(color="0.6", lw=1.8),
                   "new_raters": dict(color="0.35", lw=1.0),
                   "egemaps_soft": dict(color="0.5", lw=1.2),
                   "wavlm_soft": dict(color="0.5", lw=1.2)}


def reference_style(name: str) -> dict:
    """{color, lw, ls} of a reference row's line (prior, uniform, new_raters, ...)."""
    return {**REFERENCE_LOOKS.get(name, dict(color="0.5", lw=1.0)),
            "ls": REFERENCE_STYLES.get(name, ":")}


# What a paper figure draws (the tables hold every strategy): the paper's strategies
# (Jia et al., 2026: greedy, BoN, W-BoN, ALM-v, W-ALM-v), majority voting, and the controls.
PAPER_FIGURE_STRATEGIES = ("greedy", "majority", "bon", "w_bon", "alm_v", "w_alm_v",
                           "greedy_smoothed", "vote_share", "label_logits_tempered",
                           "first_parsable")
MAX_SERIES = 10   # strategies per panel at most in a paper figure
# Ambiguity bins and models: ordered colours from the same palette.
SERIES_COLOURS = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple",
                                          "sky_blue", "black", "grey")]


def strategy_style(strategy: str) -> dict:
    """{color, marker, linestyle} of `strategy`, the same in every figure; a strategy not in
    `STRATEGY_STYLES` (registered later) takes a spare style by its registry position."""
    if strategy in STRATEGY_STYLES:
        return dict(STRATEGY_STYLES[strategy])
    names = [s for s in STRATEGIES if s not in STRATEGY_STYLES]
    i = names.index(strategy) if strategy in names else len(names)
    return dict(_SPARE[i % len(_SPARE)])


def new_figure(figsize, **kwargs) -> Figure:
    """A Figure with a constrained layout, made without pyplot: nothing keeps it alive once
    the caller drops it (no "more than 20 figures" warning from a study of many figures), and
    a notebook shows it where a cell returns it, not every figure a stage made at once."""
    fig = Figure(figsize=figsize, layout="constrained", **kwargs)
    FigureCanvasAgg(fig)    # draws and measures text like pyplot's figures, and saves any format
    return fig


def styled(fn):
    """Run a figure function under the shared font sizes (`RC`)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def grid_shape(n: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) for `n` panels: at most `max_columns` per row, rows as even as can be."""
    n = max(n, 1)
    rows = math.ceil(n / max_columns)
    return rows, math.ceil(n / rows)


def facet_grid(n: int, *, panel_height: float = 1.9, width: float | None = None,
               max_columns: int = MAX_COLUMNS, sharey: bool = True, sharex: bool = False):
    """A figure of `n` panels wrapped into a grid; (fig, the n axes in reading order).

    The width is one column for a single panel and the page width otherwise, unless given;
    unused grid cells are removed. The layout is constrained, so a legend placed with
    `shared_legend` sits below the grid without overlapping it.
    """
    rows, cols = grid_shape(n, max_columns)
    if width is None:
        width = COLUMN_WIDTH_IN if cols == 1 else PAGE_WIDTH_IN
    fig = new_figure((width, panel_height * rows + 0.9))
    axes = fig.subplots(rows, cols, sharey=sharey, sharex=sharex, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[max(n, 1):]:
        ax.remove()
    return fig, flat[:max(n, 1)]


def shared_legend(fig, axes, *, ncol: int | None = None) -> None:
    """One legend for the whole figure, below the panels: every label once, in first-seen
    order (a legend per panel repeats itself and hides data)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lbl in zip(*ax.get_legend_handles_labels()):
            if not lbl.startswith("_") and lbl not in seen:
                seen[lbl] = h
    if not seen:
        return
    width = fig.get_size_inches()[0]
    ncol = ncol or max(1, min(len(seen), int(width // 1.6)))
    fig.legend(list(seen.values()), list(seen.keys()), loc="outside lower center", ncol=ncol,
               frameon=False)


def wrap_label(text: str, width: int = 28) -> str:
    """A long axis label on two lines, broken before its parenthesis ("Jensen-Shannon
    divergence\\n(bits, lower is better)"), so it fits beside a panel two inches high."""
    if len(text) <= width or "\n" in text or " (" not in text:
        return text
    head, _, tail = text.partition(" (")
    return f"{head}\n({tail}"
