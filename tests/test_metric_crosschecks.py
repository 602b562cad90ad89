"""What stays hand-written is checked against an independent computation: the label metrics
(now scikit-learn's) against the tie-credit definition written out by hand, the weighted
macro-F1 and ECE of the vectorised bootstrap against scikit-learn and `metrics.ece` on
explicitly resampled data, the bootstrap interval against a plain loop over resamples, and
the Bhattacharyya coefficient against the Hellinger distance from scipy."""
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import euclidean
from sklearn.metrics import f1_score

from ambiemo import metrics as M
from ambiemo.analysis import summaries
from ambiemo.metrics.classification import confusion, expand_ties

CLASSES = ["angry", "happy", "neutral", "sad"]


def _labels(seed=0, n=80):
    """Majority labels with ties (None) and predictions with tied tops and missing answers."""
    rng = np.random.default_rng(seed)
    ref = [None if rng.random() < 0.15 else CLASSES[rng.integers(4)] for _ in range(n)]
    pred = []
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            pred.append(None)
        elif r < 0.3:
            pred.append("|".join(sorted(rng.choice(CLASSES, size=rng.integers(2, 4),
                                                   replace=False))))
        else:
            pred.append(CLASSES[rng.integers(4)])
    return ref, pred


def _hand_macro_f1(ref, pred):
    """The documented definition, counted by hand."""
    tp, support, npred = {}, {}, {}
    for r, p in zip(ref, pred):
        if r is None:
            continue
        support[r] = support.get(r, 0) + 1
        tied = p.split("|") if p else []
        for c in tied:
            npred[c] = npred.get(c, 0) + 1 / len(tied)
        if r in tied:
            tp[r] = tp.get(r, 0) + 1 / len(tied)
    labels = set(support) | set(npred)
    return np.mean([2 * tp.get(c, 0) / (support.get(c, 0) + npred.get(c, 0)) for c in labels])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sklearn_accuracy_and_macro_f1_equal_the_tie_credit_definition(seed):
    ref, pred = _labels(seed)
    credit = [(1 / len(p.split("|")) if p and r in p.split("|") else 0.0)
              for r, p in zip(ref, pred) if r is not None]
    assert M.accuracy(ref, pred) == pytest.approx(np.mean(credit), abs=1e-12)
    assert M.macro_f1(ref, pred) == pytest.approx(_hand_macro_f1(ref, pred), abs=1e-12)
    assert np.isnan(M.accuracy([None, None], ["angry", "sad"]))


def test_confusion_matrix_counts_tied_predictions_fractionally():
    ref = ["angry", "angry", "sad", None, "happy"]
    pred = ["angry", "angry|sad", None, "sad", "neutral"]
    m = confusion(ref, pred, CLASSES)
    assert m.loc["angry", "angry"] == 1.5 and m.loc["angry", "sad"] == 0.5
    assert m.loc["sad", "(no answer)"] == 1 and m.loc["happy", "neutral"] == 1
    assert m.to_numpy().sum() == 4          # the tied reference is excluded
    assert np.trace(m.to_numpy()[:, :4]) / 4 == pytest.approx(M.accuracy(ref, pred))
    with pytest.raises(ValueError, match="'calm'"):
        confusion(["calm"], ["angry"], CLASSES)


def test_bootstrap_weighted_macro_f1_and_ece_match_sklearn_and_ece_on_resampled_data():
    ref, pred = _labels(3, n=40)
    rng = np.random.default_rng(7)
    w = np.stack([np.bincount(rng.integers(0, 40, 40), minlength=40) for _ in range(5)]
                 ).astype(float)
    r1, pw = summaries._f1_counts(np.array(ref, dtype=object), np.array(pred, dtype=object),
                                  CLASSES)
    fast = summaries._macro_f1_weighted(r1, pw, w)
    for b in range(len(w)):
        idx = np.repeat(np.arange(40), w[b].astype(int))
        rr, pp, tw = expand_ties([ref[i] for i in idx], [pred[i] for i in idx])
        labels = sorted((set(rr) | set(pp)) - {"(no answer)"})
        slow = f1_score(rr, pp, labels=labels, average="macro", sample_weight=tw,
                        zero_division=0.0)
        assert fast[b] == pytest.approx(slow, abs=1e-12)
    conf = rng.uniform(0.25, 1.0, 40)
    conf[[3, 9]] = 1.0                        # confidence 1.0 sits in the last bin
    corr = (rng.random(40) < conf).astype(float)
    corr[5] = np.nan                           # a tied reference: left out
    fast = summaries._ece_weighted(conf, corr, w)
    for b in range(len(w)):
        idx = np.repeat(np.arange(40), w[b].astype(int))
        assert fast[b] == pytest.approx(M.ece(conf[idx], corr[idx]), abs=1e-12)


def test_summary_interval_equals_a_plain_loop_over_resamples():
    rng = np.random.default_rng(0)
    js = rng.random(30)
    js[4] = np.nan                      # an unbounded metric's missing value is left out
    scores = pd.DataFrame({"utt_id": [f"u{i}" for i in range(30)], "model": "m",
                           "strategy": "greedy", "n": 1, "missing": False, "majority": "sad",
                           "kl_divergence": js})
    row = summaries.summary_table(scores, metrics=("kl_divergence",), n_boot=200,
                                  seed=3).iloc[0]
    idx = np.random.default_rng(3).integers(0, 30, size=(200, 30))
    boot = np.array([np.nanmean(js[i]) for i in idx])
    assert row["kl_divergence"] == pytest.approx(np.nanmean(js))
    assert row["kl_divergence_lo"] == pytest.approx(np.quantile(boot, 0.025))
    assert row["kl_divergence_hi"] == pytest.approx(np.quantile(boot, 0.975))


def test_bhattacharyya_coefficient_equals_one_minus_squared_hellinger():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4) * 0.3)
        hellinger = euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2)
        assert M.bhattacharyya_coefficient(p, q) == pytest.approx(1 - hellinger ** 2, abs=1e-12)
