"""Label metrics against the majority label, calibration, and entropy correlation.

Jia et al. (2026) report accuracy and macro-F1 against the majority label beside the
distribution metrics. Ties of the majority label are excluded (`correct` is NaN) and counted;
a tie between the model's top classes gets fractional credit (1/m for m tied classes: the
expected score of breaking the tie at random), so no class order is favoured. The argument
order and the missing-prediction rule are those of `ambiemo.metrics.distribution`.

Accuracy, macro-F1 and the confusion matrix are scikit-learn's: a prediction of m tied
classes becomes m rows of weight 1/m (`sample_weight`), which is exactly the expected count
under random tie breaking, and a missing prediction one row of a label no class has.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ambiemo.metrics.registry import register_metric

TOP_TIE_ATOL = 1e-9   # model classes this close to the top count as tied
NO_ANSWER = "(no answer)"   # the label of a missing prediction, never a class
ECE_BINS = 10


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


def expand_ties(reference, predicted) -> tuple[list[str], list[str], np.ndarray]:
    """(reference, prediction, weight) rows for scikit-learn: tied references left out (ties
    are excluded), a prediction of m tied classes as m rows of weight 1/m, a missing one as
    one row labelled `NO_ANSWER`."""
    ref_rows, pred_rows, weights = [], [], []
    for ref, pred in zip(reference, predicted):
        if not _is_label(ref):
            continue
        tied = pred.split("|") if _is_label(pred) else [NO_ANSWER]
        ref_rows += [ref] * len(tied)
        pred_rows += tied
        weights += [1.0 / len(tied)] * len(tied)
    return ref_rows, pred_rows, np.asarray(weights, dtype=float)


@register_metric("accuracy", direction="higher", worst=0.0, corpus=True,
                 label='accuracy vs majority label', short='accuracy', latex='accuracy')
def accuracy(reference, predicted) -> float:
    """Share of non-tied utterances whose majority label the model predicts (ties excluded);
    scikit-learn's `accuracy_score` with the tie weights of `expand_ties`."""
    ref, pred, w = expand_ties(reference, predicted)
    return float(accuracy_score(ref, pred, sample_weight=w)) if ref else float("nan")


@register_metric("macro_f1", direction="higher", worst=0.0, corpus=True,
                 label='macro-F1 vs majority label', short='macro-F1', latex='macro-F1')
def macro_f1(reference, predicted, classes: Sequence[str] | None = None) -> float:
    """Macro-F1 against the majority label, ties in the reference excluded.

    A tied prediction of m classes counts 1/m towards each (expected counts under random tie
    breaking); a missing prediction counts towards no class (it lowers recall only). The mean
    runs over the classes that occur as reference or prediction, as scikit-learn's default
    (`f1_score(average="macro")` with the weights of `expand_ties`).
    """
    ref, pred, w = expand_ties(reference, predicted)
    labels = (set(ref) | set(pred)) - {NO_ANSWER}
    if classes is not None:
        labels &= set(classes)
    if not labels:
        return float("nan")
    return float(f1_score(ref, pred, labels=sorted(labels), average="macro", sample_weight=w,
                          zero_division=0.0))


def confusion(reference, predicted, classes: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix against the majority label (rows: reference class, columns:
    predicted class and `NO_ANSWER`), ties in the reference excluded and tied predictions
    counted 1/m each: scikit-learn's `confusion_matrix` with the weights of `expand_ties`."""
    ref, pred, w = expand_ties(reference, predicted)
    unknown = (set(ref) | set(pred)) - set(classes) - {NO_ANSWER}
    if unknown:
        raise ValueError(f"confusion: labels {sorted(unknown)} are not among the classes "
                         f"{list(classes)}")
    labels = [*classes, NO_ANSWER]
    m = (confusion_matrix(ref, pred, labels=labels, sample_weight=w) if ref
         else np.zeros((len(labels), len(labels))))
    return pd.DataFrame(m[:len(classes)], index=pd.Index(list(classes), name="reference"),
                        columns=pd.Index(labels, name="predicted"))


@register_metric("ece", direction="lower", corpus=True,
                 label='expected calibration error of the top class', short='ECE', latex='ECE')
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


@register_metric("entropy_pearson", direction="higher", corpus=True,
                 label="Pearson's r of predicted and human entropy", short='entropy r', latex='entropy $r$')
def entropy_pearson(entropy_human, entropy_pred) -> float:
    return entropy_correlation(entropy_human, entropy_pred)["pearson"]


@register_metric("entropy_spearman", direction="higher", corpus=True,
                 label="Spearman's rho of predicted and human entropy", short='entropy ρ', latex='entropy $\\rho$')
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


