"""Tests of the distribution and label metrics (ambiemo.metrics), scoring and reference rows."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from ambiemo import metrics as M
from _distributions import dist_pair
from ambiemo.corpora.manifest import build_manifest
from ambiemo.tts.references import reference_predictions

CLASSES = ["neutral", "happy", "sad", "angry"]


def test_registry_and_directions():
    assert set(M.METRICS) == {"js_divergence", "js_distance", "bhattacharyya_coefficient",
                              "kl_divergence", "total_variation", "r2_per_clip"}
    assert {"r2", "r2_pooled", "accuracy"} <= set(M.CORPUS_METRICS)
    assert M.direction("js_divergence") == "lower" and M.direction("bhattacharyya_coefficient") == "higher"
    assert M.direction("accuracy") == "higher" and M.direction("ece") == "lower"
    for name in [*M.METRICS, *M.CORPUS_METRICS]:
        assert M.get_metric(name).name == name
    with pytest.raises(KeyError, match="js_divergence"):
        M.get_metric("jsd")


@settings(max_examples=60, deadline=None)
@given(dist_pair())
def test_js_symmetric_bounded_and_agrees_with_scipy(pq):
    p, q = pq
    js = M.js_divergence(p, q)
    assert 0 <= js <= 1 and np.isclose(js, M.js_divergence(q, p))
    # scipy takes the square root of a divergence that rounding can leave a hair below 0 and
    # returns NaN for near-equal pairs; that is a distance of 0, not a disagreement.
    ref = np.nan_to_num(jensenshannon(p, q, base=2), nan=0.0)
    assert np.isclose(js, ref ** 2, atol=1e-10)
    assert np.isclose(M.js_distance(p, q), ref, atol=1e-6)
    if js < 1e-15:
        assert np.allclose(p, q, atol=1e-6)
    assert M.js_divergence(p, p) < 1e-12


@settings(max_examples=60, deadline=None)
@given(dist_pair())
def test_bc_bounded_and_one_only_for_equal(pq):
    p, q = pq
    bc = M.bhattacharyya_coefficient(p, q)
    assert 0 <= bc <= 1 and np.isclose(bc, M.bhattacharyya_coefficient(q, p))
    assert np.isclose(M.bhattacharyya_coefficient(p, p), 1)
    if bc > 1 - 1e-15:
        assert np.allclose(p, q, atol=1e-6)
    tv = M.total_variation(p, q)
    assert 0 <= tv <= 1 + 1e-12


def test_kl_and_tv_and_r2_agree_with_scipy_and_hand_values():
    p, q = np.array([0.5, 0.5, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0])
    eps = M.KL_EPSILON
    qs = (q + eps) / (1 + 4 * eps)
    assert np.isclose(M.kl_divergence(p, q), sps.entropy(p, qs, base=2))
    assert np.isclose(M.total_variation(p, q), 0.5)
    # r2: 1 - SS_res / SS_tot with mean 1/4: SS_res = 0.5, SS_tot = 4 * 0.0625 = 0.25
    assert np.isclose(M.r2_per_clip(p, q), 1 - 0.5 / 0.25)
    assert np.isnan(M.r2_per_clip(np.full(4, 0.25), q))
    assert np.isclose(M.r2_pooled([p, p], [q, p]), 1 - 0.5 / 0.5)
    # vectorised over rows
    assert M.js_divergence(np.stack([p, q]), np.stack([q, q])).shape == (2,)
    assert np.isclose(M.js_divergence(p, q), jensenshannon(p, q, base=2) ** 2)


def test_label_metrics_hand_computed():
    ref = ["a", "a", "b", None, "b"]
    pred = ["a", "b", "a|b", "a", None]
    assert np.allclose(M.credit(ref, pred), [1, 0, 0.5, np.nan, 0], equal_nan=True)
    assert np.isclose(M.accuracy(ref, pred), 1.5 / 4)
    # expected counts: tp a=1, b=.5; support a=2, b=2; predicted a=1.5, b=1.5
    f1a, f1b = 2 * 1 / (2 + 1.5), 2 * 0.5 / (2 + 1.5)
    assert np.isclose(M.macro_f1(ref, pred), (f1a + f1b) / 2)
    # without ties in the prediction it is scikit-learn's macro F1 (hand-checked)
    assert np.isclose(M.macro_f1(["a", "a", "b", "c"], ["a", "b", "b", "b"]),
                      np.mean([2 / 3, 2 / 4, 0.0]))  # a: 2/(2+1), b: 2/(1+3), c: 0
    # ECE: two bins, (0.9, 1] with conf .95 and accuracy 1/2; (0.5, 0.6] with conf .6 ... correct
    assert np.isclose(M.ece([0.95, 0.95, 0.6, np.nan], [1, 0, 1, 1]),
                      (2 * abs(0.5 - 0.95) + 1 * abs(1 - 0.6)) / 3)
    assert M.top_labels([[0.4, 0.4, 0.2], [np.nan] * 3], ["x", "y", "z"]) == ["x|y", None]


def test_entropy_correlation_is_scipy():
    rng = np.random.default_rng(0)
    h, g = rng.random(30), rng.random(30)
    g[3] = np.nan
    out = M.entropy_correlation(h, g)
    keep = np.isfinite(g)
    assert np.isclose(out["pearson"], sps.pearsonr(h[keep], g[keep]).statistic)
    assert np.isclose(out["spearman"], sps.spearmanr(h[keep], g[keep]).statistic)
    assert out["n"] == 29
    assert np.isnan(M.entropy_correlation(h, np.zeros(30))["pearson"])


def make_manifest(n=6, seed=0, raters=5):
    rng = np.random.default_rng(seed)
    votes = rng.multinomial(raters, [0.4, 0.3, 0.2, 0.1], size=n).astype(float)
    votes[1] = [2, 2, 1, 0] if raters == 5 else [2, 2, 1, raters - 5]  # a tied majority
    records = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "split": "test",
                            "speaker": "s", "audio_path": "none.wav", "n_raters": raters})
    return build_manifest(records, votes, CLASSES, corpus="demo", label_space="4class")


def test_score_applies_the_missing_rule_and_label_columns():
    man = make_manifest()
    q = np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [np.nan] * 4])
    pred = pd.DataFrame({"utt_id": ["u0", "u1", "u2"], "model": "m", "strategy": "greedy",
                         "n": 1})
    pred[[f"p_{c}" for c in CLASSES]] = q
    sc = M.score(pred, man)
    p = man.set_index("utt_id").loc[["u0", "u1"], [f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(sc.js_divergence[:2], M.js_divergence(p, q[:2]))
    miss = sc.iloc[2]
    assert miss.missing and miss.js_divergence == 1 and miss.js_distance == 1
    assert miss.bhattacharyya_coefficient == 0 and miss.total_variation == 1
    assert np.isnan(miss.kl_divergence) and np.isnan(miss.r2_per_clip) and miss.pred_label is None
    if man.majority[2] is None:
        assert np.isnan(miss.correct)
    else:
        assert miss.correct == 0.0
    assert sc.majority[1] is None and np.isnan(sc.correct[1])  # a tie is excluded
    assert sc.pred_label[1] == "neutral|happy" and sc.top_prob[0] == 1.0
    assert (sc.replicate == 0).all()
    # attrs lost (as after Parquet): classes= or the p_ columns still work
    bare = man.copy()
    bare.attrs = {}
    pd.testing.assert_frame_equal(M.score(pred, bare), sc)
    with pytest.raises(ValueError, match="not in the Manifest"):
        M.score(pred.assign(utt_id=["zz", "u1", "u2"]), man)


def test_reference_rows():
    man = make_manifest(n=8)
    ref = reference_predictions(man, n_draws=4, seed=1)
    pcols = [f"p_{c}" for c in CLASSES]
    prior = ref[ref.model == "prior"][pcols].to_numpy()
    assert np.allclose(prior, man[pcols].mean().to_numpy())
    assert np.allclose(ref[ref.model == "uniform"][pcols], 0.25)
    panel = ref[ref.model == "new_raters"]
    assert sorted(panel.replicate.unique()) == [0, 1, 2, 3]
    # five raters are too few to split (the correction needs six): no q
    assert panel[pcols].isna().all().all()
    assert (ref.strategy == "reference").all() and (ref.n == 1).all()
    # the seed reproduces the split halves, and is what they depend on
    pd.testing.assert_frame_equal(ref, reference_predictions(man, n_draws=4, seed=1))
    other = reference_predictions(man, n_draws=4, seed=2)
    assert not np.allclose(other[other.model == "new_raters"][pcols], panel[pcols])
    from ambiemo.tts.references import rescore_new_raters
    sc = rescore_new_raters(M.score(ref, man), man, seed=1)
    # five raters are too few to split (the correction needs six): no value, not missing
    assert sc[sc.model == "new_raters"].js_divergence.isna().all()
    assert not sc[sc.model == "new_raters"].missing.any()
    six = make_manifest(n=8, raters=6)
    sc = rescore_new_raters(M.score(reference_predictions(six, n_draws=4, seed=1), six), six,
                            seed=1)
    q = reference_predictions(six, n_draws=4, seed=1).query("model == 'new_raters'")[pcols]
    assert np.allclose(q.sum(axis=1), 1)   # q = p + sqrt(c) (B - A): sums to 1 like p
    assert (sc[sc.model == "new_raters"].js_divergence >= 0).all()
    assert sc.groupby("model").js_divergence.mean()["new_raters"] > 0


def test_r2_score_is_scikit_learns_over_clips_not_the_mean_per_clip():
    from sklearn.metrics import r2_score as sk
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(4), size=30)
    q = rng.dirichlet(np.ones(4), size=30)
    assert np.isclose(M.r2_score(p, q), sk(p, q))
    assert M.get_metric("r2").fn is M.r2_score and M.direction("r2") == "higher"
    # per class across clips, averaged: by hand
    by_hand = np.mean([1 - ((p[:, k] - q[:, k]) ** 2).sum() / ((p[:, k] - p[:, k].mean()) ** 2).sum()
                       for k in range(4)])
    assert np.isclose(M.r2_score(p, q), by_hand)
    assert not np.isclose(M.r2_score(p, q), np.nanmean(M.r2_per_clip(p, q)))
    # missing predictions are left out; a uniform human row gives no NaN here
    q2 = q.copy()
    q2[:3] = np.nan
    assert np.isclose(M.r2_score(p, q2), sk(p[3:], q[3:]))
    p[0] = 0.25
    assert np.isfinite(M.r2_score(p, q))
    assert "r2_per_clip" in M.R2_FOOTNOTE and "r2_pooled" in M.R2_FOOTNOTE


CREMA_D = "/work/shared/data/crema_d"


def test_r2_forms_on_the_real_crema_d_annotations():
    """A perfect one-hot oracle (each clip's majority class) on CREMA-D: R² over clips is
    positive (+0.020) while the per-clip mean is -0.42 (issue #13); the prior scores 0."""
    import os
    if not os.path.isdir(os.path.join(CREMA_D, "processedResults")):
        pytest.skip("CREMA-D annotations not present")
    from ambiemo import corpora
    man = corpora.load("crema_d", CREMA_D)
    p = man[[f"p_{c}" for c in man.attrs["classes"]]].to_numpy()
    oracle = np.eye(p.shape[1])[p.argmax(1)]
    assert 0.01 < M.r2_score(p, oracle) < 0.03
    assert np.isclose(np.nanmean(M.r2_per_clip(p, oracle)), -0.42, atol=0.005)
    assert abs(M.r2_score(p, np.broadcast_to(p.mean(0), p.shape))) < 1e-9


def test_one_r2_with_the_degenerate_constant_class_defined():
    """The tables' R² (`metrics.r2_score`) and its bootstrap (`summaries.weighted_r2`) are
    one implementation; it equals scikit-learn's where no class is constant, and a class
    constant up to float noise scores 1 when predicted exactly and 0 otherwise (scikit-learn
    divides by the noise: a value near -1e31)."""
    from sklearn.metrics import r2_score as sk
    from ambiemo.analysis import summaries
    assert summaries.weighted_r2 is M.r2_weighted
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(4), 30), rng.dirichlet(np.ones(4), 30)
    assert np.isclose(M.r2_score(p, q), sk(p, q))
    w = rng.integers(0, 3, (5, 30)).astype(float)
    assert np.allclose(M.r2_weighted(p, q, w), [sk(p, q, sample_weight=wb) for wb in w])
    const = np.column_stack([np.full(30, 0.1) + rng.normal(0, 1e-17, 30), p[:, 1:] * 0.9 /
                             p[:, 1:].sum(1, keepdims=True)])
    exact = const.copy()
    exact[:, 1:] = q[:, 1:]
    other = M.r2_score(const[:, 1:], exact[:, 1:])
    assert np.isclose(M.r2_score(const, exact), (1 + 3 * other) / 4)      # class 0: 1
    off = exact.copy()
    off[:, 0] = 0.2
    assert np.isclose(M.r2_score(const, off), (0 + 3 * other) / 4)        # class 0: 0
    assert sk(const, off) < -1e3 or np.isclose(sk(const, off), (0 + 3 * other) / 4)
