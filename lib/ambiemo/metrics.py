"""Distribution and label metrics: how close a model's distribution is to the human one.

The metrics of Jia et al. (2026), "Decoding Ambiguous Emotions with Test-Time Scaling in
Audio-Language Models": Jensen-Shannon divergence and distance, Bhattacharyya coefficient,
KL, total variation and R^2 of the probability vectors per utterance; and over a corpus,
R^2 (`r2_score`, the tables' R^2), accuracy and macro-F1 against the majority label, the
correlation of predicted and human entropy, and the expected calibration error of the top
class.

R^2 comes in three forms, each under its own name (`R2_FOOTNOTE` says which is which):
- `r2` (corpus metric, function `r2_score`): scikit-learn's `r2_score(p, q)` — per class
  across clips, uniform average over classes. This is the paper's R^2 and the tables'. A
  perfect one-hot oracle on CREMA-D gets a positive value here;
- `r2_per_clip`: per clip over its K probabilities (then averaged by a table); a perfect
  one-hot oracle gets -0.42 on CREMA-D and a uniform human row gives NaN;
- `r2_pooled`: over all (clip, class) cells at once.

Conventions, the same for every metric:
- argument order is `(p, q)` = (human reference, model prediction), as in
  `scipy.stats.entropy(pk, qk)` and scikit-learn's `(y_true, y_pred)`; shapes (n, K) give one
  value per row, a single (K,) pair gives a scalar;
- `js_divergence` and `kl_divergence` are in bits; KL is KL(human || model) with the model
  smoothed as q -> (q + KL_EPSILON) / (1 + K KL_EPSILON), since one-hot answers make it
  infinite otherwise;
- each metric's direction ("lower" or "higher" is better) is data in `METRICS` /
  `CORPUS_METRICS`.

The missing-prediction rule (a prediction is missing when no candidate could be parsed): a
bounded metric gets its worst value — JS 1, JS distance 1, BC 0, TV 1, `correct` 0 — so a
strategy cannot improve its score by failing. Unbounded ones (KL, R^2, the entropy
correlations, ECE) are computed over the non-missing predictions, and every table reports the
number missing beside them. `Metric.worst` holds the value (None: excluded).
Ties of the majority label are excluded from accuracy/macro-F1 (`correct` is NaN) and counted.
A tie between the model's top classes gets fractional credit (1/m for m tied classes: the
expected score of breaking the tie at random), so no class order is favoured.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

KL_EPSILON = 1e-3
R2_FOOTNOTE = ("R² is scikit-learn's r2_score(human, model): per class across clips, averaged "
               "over classes (the paper's R²); the per-clip form (over one clip's K "
               "probabilities) is r2_per_clip and the form over all (clip, class) cells at "
               "once is r2_pooled.")
TOP_TIE_ATOL = 1e-9   # model classes this close to the top count as tied
ECE_BINS = 10


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable | None
    direction: str            # "lower" or "higher" is better
    worst: float | None       # value given to a missing prediction; None: excluded, counted

    def __post_init__(self):
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"metric {self.name}: direction must be 'lower' or 'higher'")


METRICS: dict[str, Metric] = {}         # per utterance: fn(p, q) -> (n,)
CORPUS_METRICS: dict[str, Metric] = {}  # over a set of utterances


def register_metric(name: str, *, direction: str, worst: float | None = None,
                    corpus: bool = False):
    registry = CORPUS_METRICS if corpus else METRICS

    def decorate(fn):
        if name in METRICS or name in CORPUS_METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        registry[name] = Metric(name, fn, direction, worst)
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


def _pair(p, q):
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    single = p.ndim == 1 and q.ndim == 1
    p, q = np.atleast_2d(p), np.atleast_2d(q)
    p, q = np.broadcast_arrays(p, q)
    if p.shape[-1] < 1:
        raise ValueError("distributions need at least one class")
    return p, q, single


def _out(values: np.ndarray, single: bool):
    return values[0] if single else values


def _xlogy_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Terms a * log2(a / b) with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * np.log2(a / b), np.where(np.isnan(a), np.nan, 0.0))


@register_metric("js_divergence", direction="lower", worst=1.0)
def js_divergence(p, q):
    """Jensen-Shannon divergence in bits, in [0, 1]; equals scipy's jensenshannon(base=2)**2."""
    p, q, single = _pair(p, q)
    m = (p + q) / 2
    js = 0.5 * _xlogy_ratio(p, m).sum(-1) + 0.5 * _xlogy_ratio(q, m).sum(-1)
    return _out(np.clip(js, 0.0, 1.0), single)


@register_metric("js_distance", direction="lower", worst=1.0)
def js_distance(p, q):
    """Square root of `js_divergence` (a metric on distributions), in [0, 1]."""
    return np.sqrt(js_divergence(p, q))


@register_metric("bhattacharyya_coefficient", direction="higher", worst=0.0)
def bhattacharyya_coefficient(p, q):
    """sum_k sqrt(p_k q_k), in [0, 1]; 1 only for equal distributions."""
    p, q, single = _pair(p, q)
    return _out(np.clip(np.sqrt(p * q).sum(-1), 0.0, 1.0), single)


@register_metric("kl_divergence", direction="lower")
def kl_divergence(p, q, *, epsilon: float = KL_EPSILON):
    """KL(p || q) in bits with q smoothed by `epsilon` (p: human, q: model)."""
    p, q, single = _pair(p, q)
    k = q.shape[-1]
    q = (q + epsilon) / (1 + k * epsilon)
    return _out(_xlogy_ratio(p, q).sum(-1), single)


@register_metric("total_variation", direction="lower", worst=1.0)
def total_variation(p, q):
    """Half the L1 distance, in [0, 1]."""
    p, q, single = _pair(p, q)
    return _out(0.5 * np.abs(p - q).sum(-1), single)


@register_metric("r2_per_clip", direction="higher")
def r2_per_clip(p, q):
    """Coefficient of determination of q (model) as a prediction of p (human), per row
    (over one clip's K probabilities) — not the tables' R² (`r2_score`).

    1 - sum (p - q)^2 / sum (p - mean p)^2; NaN where the human distribution is uniform (no
    variance to explain).
    """
    p, q, single = _pair(p, q)
    ss_res = ((p - q) ** 2).sum(-1)
    ss_tot = ((p - p.mean(-1, keepdims=True)) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)
    return _out(out, single)


def entropy(p) -> np.ndarray:
    """Shannon entropy in bits per row (NaN rows give NaN)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), np.where(np.isnan(p), np.nan, 0.0))
    return terms.sum(axis=-1)


# --- corpus-level metrics --------------------------------------------------------------------

def _finite_rows(p, q):
    p, q, _ = _pair(p, q)
    keep = np.isfinite(p).all(-1) & np.isfinite(q).all(-1)
    return p[keep], q[keep]


@register_metric("r2", direction="higher", corpus=True)
def r2_score(p, q) -> float:
    """The tables' R²: scikit-learn's `r2_score(p, q)` with p the human and q the model
    distributions, shape (n clips, K): per class across clips, uniform average over classes
    (a class the humans never vary on scores 1 if predicted exactly, else 0, as
    scikit-learn's force_finite). Missing predictions (rows with NaN) are excluded."""
    from sklearn.metrics import r2_score as sk_r2_score

    p, q = _finite_rows(p, q)
    if len(p) < 2:
        return float("nan")
    return float(sk_r2_score(p, q, multioutput="uniform_average"))


@register_metric("r2_pooled", direction="higher", corpus=True)
def r2_pooled(p, q) -> float:
    """R^2 over all (utterance, class) cells at once; missing predictions excluded."""
    p, q = _finite_rows(p, q)
    ss_tot = ((p - p.mean()) ** 2).sum()
    return float(1 - ((p - q) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def top_labels(q, classes: Sequence[str]) -> list[str | None]:
    """The model's top class per row; tied top classes joined by '|'; None for a NaN row."""
    q = np.atleast_2d(np.asarray(q, dtype=float))
    out: list[str | None] = []
    for row in q:
        if not np.isfinite(row).all():
            out.append(None)
            continue
        tied = np.flatnonzero(row >= row.max() - TOP_TIE_ATOL)
        out.append("|".join(classes[i] for i in tied))
    return out


def _is_label(x) -> bool:
    return isinstance(x, str) and x != ""


def credit(reference, predicted) -> np.ndarray:
    """Per utterance: 1/m if the reference is among the m predicted top classes, else 0.

    NaN where the reference is a tie (None); a missing prediction (None) scores 0.
    """
    out = np.full(len(reference), np.nan)
    for i, (ref, pred) in enumerate(zip(reference, predicted)):
        if not _is_label(ref):
            continue
        tied = pred.split("|") if _is_label(pred) else []
        out[i] = (1.0 / len(tied)) if ref in tied else 0.0
    return out


@register_metric("accuracy", direction="higher", worst=0.0, corpus=True)
def accuracy(reference, predicted) -> float:
    """Share of non-tied utterances whose majority label the model predicts (ties excluded)."""
    c = credit(reference, predicted)
    return float(np.nanmean(c)) if np.isfinite(c).any() else float("nan")


@register_metric("macro_f1", direction="higher", worst=0.0, corpus=True)
def macro_f1(reference, predicted, classes: Sequence[str] | None = None) -> float:
    """Macro-F1 against the majority label, ties in the reference excluded.

    A tied prediction of m classes counts 1/m towards each (expected counts under random tie
    breaking); a missing prediction counts towards no class (it lowers recall only). The mean
    runs over the classes that occur as reference or prediction, as scikit-learn's default.
    """
    tp, support, npred = {}, {}, {}
    for ref, pred in zip(reference, predicted):
        if not _is_label(ref):
            continue
        support[ref] = support.get(ref, 0.0) + 1
        tied = pred.split("|") if _is_label(pred) else []
        for c in tied:
            npred[c] = npred.get(c, 0.0) + 1.0 / len(tied)
        if ref in tied:
            tp[ref] = tp.get(ref, 0.0) + 1.0 / len(tied)
    labels = set(support) | set(npred)
    if classes is not None:
        labels &= set(classes)
    if not labels:
        return float("nan")
    f1 = [2 * tp.get(c, 0.0) / (support.get(c, 0.0) + npred.get(c, 0.0)) for c in labels]
    return float(np.mean(f1))


@register_metric("ece", direction="lower", corpus=True)
def ece(top_prob, correct, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top class: sum_b (n_b / n) |accuracy_b - confidence_b|.

    Equal-width bins on (0, 1]; utterances with a tied reference or a missing prediction
    (NaN in either input) are excluded.
    """
    conf, corr = np.asarray(top_prob, dtype=float), np.asarray(correct, dtype=float)
    keep = np.isfinite(conf) & np.isfinite(corr)
    conf, corr = conf[keep], corr[keep]
    if len(conf) == 0:
        return float("nan")
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(corr[sel].mean() - conf[sel].mean())
    return float(total / len(conf))


@register_metric("entropy_pearson", direction="higher", corpus=True)
def entropy_pearson(entropy_human, entropy_pred) -> float:
    return entropy_correlation(entropy_human, entropy_pred)["pearson"]


@register_metric("entropy_spearman", direction="higher", corpus=True)
def entropy_spearman(entropy_human, entropy_pred) -> float:
    return entropy_correlation(entropy_human, entropy_pred)["spearman"]


def entropy_correlation(entropy_human, entropy_pred) -> dict[str, float]:
    """Pearson and Spearman correlation of human and predicted entropy (bits, 1-D arrays).

    Missing predictions (NaN) are excluded and `n` says how many pairs remain; a constant
    input (e.g. every greedy answer one-hot, entropy 0) gives NaN.
    """
    h, g = np.asarray(entropy_human, dtype=float), np.asarray(entropy_pred, dtype=float)
    keep = np.isfinite(h) & np.isfinite(g)
    h, g = h[keep], g[keep]
    if len(h) < 2 or np.ptp(h) == 0 or np.ptp(g) == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n": int(len(h))}
    return {"pearson": float(stats.pearsonr(h, g).statistic),
            "spearman": float(stats.spearmanr(h, g).statistic), "n": int(len(h))}


# score() turns Predictions + Manifest into Scores; it lives in scoring.py and is re-exported
# so that every metric entry point is found under `ambiemo.metrics` (resolved on first use,
# PEP 562, so that importing scoring first cannot be circular).
def __getattr__(name: str):
    if name == "score":
        from ambiemo.scoring import score
        return score
    raise AttributeError(f"module 'ambiemo.metrics' has no attribute {name!r}")
