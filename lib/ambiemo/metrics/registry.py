"""The metric registry: each metric registered once with what every consumer needs to know.

A metric is registered with its direction (which way is better), the value a missing
prediction gets (`worst`), its level (per utterance, or over a set of utterances), and the
labels tables and figures print. Tables, figures and summaries ask this registry instead of
keeping their own lists of names, arrows or special cases (the lm-evaluation-harness
pattern: a metric registered with its direction and aggregation together).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ARROWS = {"lower": "↓", "higher": "↑"}
LATEX_ARROWS = {"lower": r"$\downarrow$", "higher": r"$\uparrow$"}


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable | None
    direction: str            # "lower" or "higher" is better
    worst: float | None       # value given to a missing prediction; None: excluded, counted
    level: str = "utterance"  # "utterance": fn(p, q) -> (n,); "corpus": one value over a set
    label: str = ""           # axis label, e.g. "Jensen-Shannon divergence (bits)"
    short: str = ""           # column / legend label, e.g. "JS"
    latex: str = ""           # the short label in LaTeX
    unit: str = ""            # e.g. "bits"; figures add it to the short label

    def __post_init__(self):
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name}: direction must be 'lower' or 'higher'")
        if self.level not in ("utterance", "corpus"):
            raise ValueError(f"metric {self.name}: level must be 'utterance' or 'corpus'")

    @property
    def header(self) -> str:
        """Table column header with the direction arrow: "JS ↓"."""
        return f"{self.short or self.name} {ARROWS[self.direction]}"

    @property
    def latex_header(self) -> str:
        return f"{self.latex or self.short or self.name} {LATEX_ARROWS[self.direction]}"

    @property
    def axis_label(self) -> str:
        """Figure axis label: "Jensen-Shannon divergence (bits, lower is better)"."""
        text = self.label or self.short or self.name
        better = f"{self.direction} is better"
        return f"{text[:-1]}, {better})" if text.endswith(")") else f"{text} ({better})"


# The metrics the main tables and the paper figures report, in column order.
MAIN_METRICS = ("js_divergence", "bhattacharyya_coefficient", "r2", "accuracy", "macro_f1")

METRICS: dict[str, Metric] = {}         # per utterance: fn(p, q) -> (n,)
CORPUS_METRICS: dict[str, Metric] = {}  # over a set of utterances


def register_metric(name: str, *, direction: str, worst: float | None = None,
                    corpus: bool = False, label: str = "", short: str = "", latex: str = "",
                    unit: str = ""):
    registry = CORPUS_METRICS if corpus else METRICS

    def decorate(fn):
        if name in METRICS or name in CORPUS_METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        registry[name] = Metric(name, fn, direction, worst, "corpus" if corpus else "utterance",
                                label, short, latex, unit)
        return fn
    return decorate


def get_metric(name: str) -> Metric:
    """A per-utterance or corpus metric by name; unknown names list the valid ones."""
    if name in METRICS:
        return METRICS[name]
    if name in CORPUS_METRICS:
        return CORPUS_METRICS[name]
    raise KeyError(f"unknown metric {name!r}; valid: {sorted(METRICS) + sorted(CORPUS_METRICS)}")


def direction(name: str) -> str:
    return get_metric(name).direction


def axis_label(name: str) -> str:
    """A figure's axis label for a registered metric (the name itself for anything else)."""
    return get_metric(name).axis_label if name in METRICS or name in CORPUS_METRICS else name


def table_header(name: str, *, latex: bool = False) -> str:
    """A table's column header with the direction arrow ("JS ↓"); unregistered names as they are."""
    if name in METRICS or name in CORPUS_METRICS:
        return get_metric(name).latex_header if latex else get_metric(name).header
    return name


def short_label(name: str) -> str:
    """A legend / title label for a registered metric, with its unit: "JS (bits)" (the name
    itself for anything else)."""
    if name in METRICS or name in CORPUS_METRICS:
        m = get_metric(name)
        return f"{m.short or name} ({m.unit})" if m.unit else (m.short or name)
    return name
