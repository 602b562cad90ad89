"""Distribution metrics: how close a model's distribution is to the human one.

The metrics of Jia et al. (2026), "Decoding Ambiguous Emotions with Test-Time Scaling in
Audio-Language Models": Jensen-Shannon divergence and distance, Bhattacharyya coefficient,
KL, total variation and R^2 of the probability vectors per utterance; and over a corpus,
accuracy and macro-F1 against the majority label, the correlation of predicted and human
entropy, and the expected calibration error of the top class.

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

R^2 comes in three forms, each under its own name (`R2_FOOTNOTE` says which is which):
- `r2` (corpus metric, function `r2_score`): scikit-learn's `r2_score(p, q)` -- per class
  across clips, uniform average over classes. This is the paper's R^2 and the tables'. A
  perfect one-hot oracle on CREMA-D gets a positive value here;
- `r2_per_clip`: per clip over its K probabilities (then averaged by a table); a perfect
  one-hot oracle gets -0.42 on CREMA-D and a uniform human row gives NaN;
- `r2_pooled`: over all (clip, class) cells at once.
"""
from __future__ import annotations

import numpy as np

from ambiemo.metrics.registry import register_metric

KL_EPSILON = 1e-3
R2_FOOTNOTE = ("R² is scikit-learn's r2_score(human, model): per class across clips, averaged "
               "over classes (the paper's R²); the per-clip form (over one clip's K "
               "probabilities) is r2_per_clip and the form over all (clip, class) cells at "
               "once is r2_pooled.")


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


@register_metric("js_divergence", direction="lower", worst=1.0,
                 label='Jensen-Shannon divergence (bits)', short='JS', latex='JS',
                 unit='bits')
def js_divergence(p, q):
    """Jensen-Shannon divergence in bits, in [0, 1]; equals scipy's jensenshannon(base=2)**2."""
    p, q, single = _pair(p, q)
    m = (p + q) / 2
    js = 0.5 * _xlogy_ratio(p, m).sum(-1) + 0.5 * _xlogy_ratio(q, m).sum(-1)
    return _out(np.clip(js, 0.0, 1.0), single)


@register_metric("js_distance", direction="lower", worst=1.0,
                 label='Jensen-Shannon distance', short='JS distance', latex='JS distance')
def js_distance(p, q):
    """Square root of `js_divergence` (a metric on distributions), in [0, 1]."""
    return np.sqrt(js_divergence(p, q))


@register_metric("bhattacharyya_coefficient", direction="higher", worst=0.0,
                 label='Bhattacharyya coefficient', short='BC', latex='BC')
def bhattacharyya_coefficient(p, q):
    """sum_k sqrt(p_k q_k), in [0, 1]; 1 only for equal distributions."""
    p, q, single = _pair(p, q)
    return _out(np.clip(np.sqrt(p * q).sum(-1), 0.0, 1.0), single)


@register_metric("kl_divergence", direction="lower",
                 label='KL divergence, human || model (bits)', short='KL', latex='KL',
                 unit='bits')
def kl_divergence(p, q, *, epsilon: float = KL_EPSILON):
    """KL(p || q) in bits with q smoothed by `epsilon` (p: human, q: model)."""
    p, q, single = _pair(p, q)
    k = q.shape[-1]
    q = (q + epsilon) / (1 + k * epsilon)
    return _out(_xlogy_ratio(p, q).sum(-1), single)


@register_metric("total_variation", direction="lower", worst=1.0,
                 label='total variation distance', short='TV', latex='TV')
def total_variation(p, q):
    """Half the L1 distance, in [0, 1]."""
    p, q, single = _pair(p, q)
    return _out(0.5 * np.abs(p - q).sum(-1), single)


@register_metric("r2_per_clip", direction="higher",
                 label='R² within each clip, averaged', short='R² per clip',
                 latex='$R^2$ per clip')
def r2_per_clip(p, q):
    """Coefficient of determination of q (model) as a prediction of p (human), per row
    (over one clip's K probabilities) -- not the tables' R² (`r2_score`).

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


@register_metric("r2", direction="higher", corpus=True,
                 label='R² per class across clips', short='R²', latex='$R^2$')
def r2_score(p, q) -> float:
    """The tables' R²: scikit-learn's `r2_score(p, q)` with p the human and q the model
    distributions, shape (n clips, K): per class across clips, uniform average over classes.
    Missing predictions (rows with NaN) are excluded; NaN with fewer than two clips.

    The degenerate case, defined here (scikit-learn's force_finite only catches an exact
    zero): a class whose human probabilities vary by no more than float noise (SS_tot at
    most 1e-12 of the class's sum of squares) is constant; it scores 1 if predicted exactly
    (SS_res <= 1e-24) and 0 otherwise. scikit-learn divides by the noise instead (-1e31 on a
    class constant up to float noise). One implementation, `r2_weighted`, serves the tables
    and their bootstrap."""
    p, q = _finite_rows(p, q)
    if len(p) < 2:
        return float("nan")
    return float(r2_weighted(p, q, np.ones(len(p)))[0])


def r2_weighted(p, q, w) -> np.ndarray:
    """`r2_score` with clip weights, for each weight vector w_b of w (B, U) (a bootstrap's
    resample counts): scikit-learn's r2_score(p, q, sample_weight=w_b) with the degenerate
    constant class of `r2_score`. Rows of p or q with NaN get weight 0; NaN where fewer
    than two clips carry weight."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    ok = np.isfinite(q).all(axis=1) & np.isfinite(p).all(axis=1)
    w = np.atleast_2d(np.asarray(w, dtype=float)) * ok
    p0, q0 = np.where(ok[:, None], p, 0.0), np.where(ok[:, None], q, 0.0)
    s0 = w.sum(axis=1, keepdims=True)
    ss_res = w @ (p0 - q0) ** 2
    ss_tot = w @ p0 ** 2 - (w @ p0) ** 2 / np.where(s0 > 0, s0, 1)
    # Float cancellation can leave a tiny non-zero SS_tot on a constant class.
    ss_tot = np.where(ss_tot > 1e-12 * np.maximum(w @ p0 ** 2, 1e-300), ss_tot, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(ss_tot > 0, 1 - ss_res / ss_tot,
                             np.where(ss_res <= 1e-24, 1.0, 0.0))
    out = per_class.mean(axis=1)
    return np.where((w > 0).sum(axis=1) >= 2, out, np.nan)


@register_metric("r2_pooled", direction="higher", corpus=True,
                 label='R² over all clip-class cells', short='R² (pooled)', latex='$R^2$ (pooled)')
def r2_pooled(p, q) -> float:
    """R^2 over all (utterance, class) cells at once; missing predictions excluded."""
    p, q = _finite_rows(p, q)
    ss_tot = ((p - p.mean()) ** 2).sum()
    return float(1 - ((p - q) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


