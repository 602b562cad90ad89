"""Values, not only properties: the metrics and statistics against independent computations.

Property tests (bounded, symmetric, 1 on equal inputs) let a wrong formula through: BC =
1 - TV satisfies all of them. Here each is compared with a computation that shares no code
with the library: the Bhattacharyya coefficient with the Hellinger identity and hand values,
the bootstrap interval with scipy.stats.bootstrap at a tolerance a 90 % interval fails, and
the sign-flip permutation p-value with the exact enumeration of all 2^n sign vectors.
"""
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from scipy import stats as sps
from scipy.spatial.distance import euclidean

from ambiemo import analysis
from ambiemo import metrics as M
from _distributions import dist_pair


# -- Bhattacharyya coefficient ----------------------------------------------------------------

def test_bc_hand_values():
    # sqrt(.5 * 1) = 0.7071 (1 - TV would give 0.5); disjoint supports: 0; Bernoulli closed form
    assert M.bhattacharyya_coefficient([0.5, 0.5], [1.0, 0.0]) == pytest.approx(np.sqrt(0.5))
    assert M.bhattacharyya_coefficient([0.5, 0.5, 0], [0, 0, 1.0]) == 0
    a, b = 0.2, 0.7
    assert M.bhattacharyya_coefficient([a, 1 - a], [b, 1 - b]) == pytest.approx(
        np.sqrt(a * b) + np.sqrt((1 - a) * (1 - b)))
    # vectorised rows give the per-row values
    out = M.bhattacharyya_coefficient([[0.5, 0.5], [0.2, 0.8]], [[1.0, 0.0], [0.2, 0.8]])
    np.testing.assert_allclose(out, [np.sqrt(0.5), 1.0])


@settings(max_examples=100, deadline=None)
@given(dist_pair())
def test_bc_is_one_minus_half_the_squared_hellinger_distance(pq):
    """BC = 1 - H^2 with H^2 = ||sqrt p - sqrt q||^2 / 2 (scipy's euclidean distance)."""
    p, q = pq
    hellinger_sq = euclidean(np.sqrt(p), np.sqrt(q)) ** 2 / 2
    assert M.bhattacharyya_coefficient(p, q) == pytest.approx(1 - hellinger_sq, abs=1e-9)


def test_total_variation_is_not_bc():
    """The pair that tells BC from 1 - TV: TV = 0.5 but BC = 0.707."""
    p, q = [0.5, 0.5], [1.0, 0.0]
    assert M.total_variation(p, q) == pytest.approx(0.5)
    assert abs(M.bhattacharyya_coefficient(p, q) - (1 - M.total_variation(p, q))) > 0.2


# -- bootstrap interval -----------------------------------------------------------------------

X = np.random.default_rng(3).normal(size=200)
N_BOOT = 20_000
# Monte Carlo error of a 2.5 % quantile over 20 000 resamples: ~0.0013 here; the 90 %
# interval's ends lie ~0.022 inside the 95 % one's. 0.006 separates the two.
BOOT_TOL = 0.006


def _scipy_interval(confidence):
    return sps.bootstrap((X,), np.mean, n_resamples=N_BOOT, method="percentile",
                         confidence_level=confidence, random_state=1).confidence_interval


@pytest.mark.parametrize("confidence", [0.95, 0.80])
def test_bootstrap_ci_equals_scipy_at_the_same_confidence(confidence):
    est, lo, hi = analysis.bootstrap_ci(X, n_boot=N_BOOT, seed=0, confidence=confidence)
    ref = _scipy_interval(confidence)
    assert est == pytest.approx(X.mean())
    assert lo == pytest.approx(ref.low, abs=BOOT_TOL) and hi == pytest.approx(ref.high, abs=BOOT_TOL)


def test_bootstrap_tolerance_rejects_a_90_percent_interval():
    """The tolerance above is tight enough to tell 95 % from 90 %."""
    _, lo90, hi90 = analysis.bootstrap_ci(X, n_boot=N_BOOT, seed=0, confidence=0.90)
    ref = _scipy_interval(0.95)
    assert abs(lo90 - ref.low) > 2 * BOOT_TOL and abs(hi90 - ref.high) > 2 * BOOT_TOL


def test_bootstrap_ci_drops_non_finite_values_and_handles_empty():
    _, lo, hi = analysis.bootstrap_ci(np.r_[X, np.nan, np.inf], n_boot=500, seed=2)
    assert (lo, hi) == analysis.bootstrap_ci(X, n_boot=500, seed=2)[1:]
    assert all(np.isnan(analysis.bootstrap_ci([np.nan, np.inf])))


# -- permutation p-value ----------------------------------------------------------------------

def _scores(d: np.ndarray) -> pd.DataFrame:
    """Scores of two strategies on len(d) utterances whose per-utterance difference is d."""
    base = np.linspace(0.3, 0.6, len(d))
    rows = [dict(utt_id=f"u{i}", model="m", strategy=s, n=1, js_divergence=v)
            for i, (b, x) in enumerate(zip(base, d)) for s, v in (("a", b + x), ("b", b))]
    return pd.DataFrame(rows)


def exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p-value by enumerating all 2^n sign vectors (no sampling)."""
    observed = abs(d.mean())
    hits = sum(abs(np.mean(np.array(s) * d)) >= observed - 1e-12
               for s in itertools.product((-1.0, 1.0), repeat=len(d)))
    return hits / 2 ** len(d)


D = np.array([0.12, -0.03, 0.08, 0.05, -0.02, 0.09, 0.01, -0.06, 0.07, 0.04])


def test_exact_enumeration_agrees_with_scipy():
    """The reference itself: scipy's permutation_test is exact for 2^10 < n_resamples."""
    ref = sps.permutation_test((D,), np.mean, permutation_type="samples",
                               n_resamples=10_000).pvalue
    assert exact_sign_flip_p(D) == pytest.approx(ref)


def test_permutation_p_value_equals_exact_enumeration():
    exact = exact_sign_flip_p(D)
    assert 0.05 < exact < 0.5                 # a case away from 0, where errors show
    res = analysis.paired_comparison(_scores(D), "a", "b", n_perm=100_000, n_boot=100)
    # sd of the sampled p at 1e5 draws: sqrt(p(1-p)/1e5) ~ 0.0013
    assert res.p_value == pytest.approx(exact, abs=0.005)
    assert res.diff == pytest.approx(D.mean()) and res.n_utts == len(D)
    assert res.a_better is False               # js lower is better; a is worse on average


def test_permutation_p_value_small_cases_by_hand():
    # n = 3, all differences equal: only the all-+ and all-- sign vectors reach |mean|,
    # so the exact p is 2/8; one difference: p = 1 (both signs reach it).
    for d, exact in ((np.full(3, 0.1), 0.25), (np.array([0.2]), 1.0)):
        res = analysis.paired_comparison(_scores(d), "a", "b", n_perm=50_000, n_boot=50)
        assert res.p_value == pytest.approx(exact, abs=0.01)
    # the +1 of (1 + hits) / (1 + n_perm): with 9 draws of 6 equal differences (exact
    # p = 2/64) the p-value is a multiple of 1/10 and never 0
    res = analysis.paired_comparison(_scores(np.full(6, 0.1)), "a", "b", n_perm=9, n_boot=20)
    assert res.p_value > 0 and (res.p_value * 10) == pytest.approx(round(res.p_value * 10))


# -- entropy, entropy correlation, pooled R2 (mutation-testing survivors, docs/testing.md) ----

def test_entropy_is_scipys_in_bits_with_nan_rows_kept():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [np.nan] * 3, [1.0, 0.0, 0.0]])
    out = M.entropy(p)
    np.testing.assert_allclose(out[[0, 1, 3]], sps.entropy(p[[0, 1, 3]], base=2, axis=1))
    assert np.isnan(out[2]) and out[0] == pytest.approx(1.0) and out[3] == 0
    assert M.entropy([0.25] * 4) == pytest.approx(2.0)


def test_entropy_correlation_edge_cases():
    keys = {"pearson", "spearman", "n"}
    # two pairs are enough for a correlation (+-1); a range of exactly 1 is not constant
    two = M.entropy_correlation([0.0, 1.0], [0.2, 0.1])
    assert set(two) == keys and two["pearson"] == pytest.approx(-1) and two["n"] == 2
    unit = M.entropy_correlation([0.0, 0.5, 1.0], [0.0, 0.4, 1.0])
    assert unit["spearman"] == pytest.approx(1) and np.isfinite(unit["pearson"])
    # either side constant: NaN (not scipy's warning), with every key present
    for h, g in (([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]), ([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])):
        out = M.entropy_correlation(h, g)
        assert set(out) == keys and np.isnan(out["pearson"]) and np.isnan(out["spearman"])
        assert out["n"] == 3


def test_r2_pooled_excludes_rows_missing_on_either_side():
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    q = np.array([[0.4, 0.6], [0.8, 0.2], [np.nan, np.nan], [0.5, 0.5]])
    p_nan = p.copy()
    p_nan[3] = np.nan
    assert M.r2_pooled(p, q) == pytest.approx(M.r2_pooled(p[[0, 1, 3]], q[[0, 1, 3]]))
    assert M.r2_pooled(p_nan, q) == pytest.approx(M.r2_pooled(p[[0, 1]], q[[0, 1]]))
    kept = p[[0, 1]]
    by_hand = 1 - ((kept - q[[0, 1]]) ** 2).sum() / ((kept - kept.mean()) ** 2).sum()
    assert M.r2_pooled(p_nan, q) == pytest.approx(by_hand)


def test_top_labels_go_on_after_a_missing_row():
    assert M.top_labels([[0.1, 0.9], [np.nan, np.nan], [0.7, 0.3], [0.5, 0.5]], ["x", "y"]) == \
        ["y", None, "x", "x|y"]


@pytest.mark.parametrize("name", ["js_divergence", "js_distance", "bhattacharyya_coefficient",
                                  "kl_divergence", "total_variation", "r2_per_clip"])
def test_metric_shapes_one_pair_is_a_scalar_rows_broadcast(name):
    """One pair gives a scalar (what a table cell holds); one distribution against several
    rows, in either order, gives one value per row, each the single-pair value."""
    f = getattr(M, name)
    p, q = np.array([0.5, 0.3, 0.2]), np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    one = f(p, q[0])
    assert np.ndim(one) == 0 and isinstance(float(one), float)
    for a, b in ((p, q), (q, p)):
        rows = f(a, b)
        assert np.shape(rows) == (2,)
        np.testing.assert_allclose(rows, [f(p, q[0]) if a is p else f(q[0], p),
                                          f(p, q[1]) if a is p else f(q[1], p)])
    with pytest.raises(ValueError, match="at least one class"):
        f(np.empty((2, 0)), np.empty((2, 0)))
