"""Tests of the test-time-scaling strategies (ambiemo.tts), predict and the scaling curves."""
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from ambiemo import tts
from ambiemo.tts.dirichlet_fit import fit_dirichlet, smooth
from ambiemo.tts.predictions import unavailable_strategies, verifier_scores

NAN = np.nan
POOLED = ["majority", "vote_share", "first_parsable", "bon", "w_bon", "bon_sample", "w_bon_sample", "alm_v", "w_alm_v",
          "dirichlet"]
SINGLE = ["greedy", "cot", "label_logits"]


# --- registry --------------------------------------------------------------------------------

def test_registry_resolves_every_name_and_public_functions_match():
    assert set(tts.STRATEGIES) == set(POOLED + SINGLE)
    for name in tts.STRATEGIES:
        assert tts.get_strategy(name).name == name
        assert callable(getattr(tts, name))


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(KeyError, match="w_bon"):
        tts.aggregate("best_of_everything", np.eye(3))


def test_unknown_parameter_is_refused():
    with pytest.raises(TypeError, match="length_norm"):
        tts.aggregate("bon", np.eye(2), logprob=[0, 0], n_tokens=[1, 1], temperature=2)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="twice"):
        tts.register_strategy("majority")(lambda batch: None)


# --- hand-computed examples --------------------------------------------------------------------

D = np.array([[1.0, 0.0, 0.0],   # logprob -1 over 1 token
              [0.0, 1.0, 0.0],   # logprob -4 over 4 tokens (best per token)
              [0.0, 1.0, 0.0],   # logprob -3 over 1 token
              [NAN, NAN, NAN]])  # unparseable
LP = np.array([-1.0, -4.0, -3.0, 0.0])
NT = np.array([1, 4, 1, 1])


def test_greedy_cot_and_label_logits_pass_the_single_answer_through():
    for name in SINGLE:
        assert np.allclose(tts.aggregate(name, [[0.2, 0.3, 0.5]]), [0.2, 0.3, 0.5])
        with pytest.raises(ValueError, match="exactly one"):
            tts.aggregate(name, np.eye(3))


def test_majority_is_the_vote_share_of_parseable_candidates():
    out = tts.combine("majority", D)
    assert np.allclose(out.dist, [1 / 3, 2 / 3, 0])
    assert (out.n, out.n_usable, out.n_failed, out.missing) == (4, 3, 1, False)


def test_first_parsable_is_the_first_candidate_that_parses():
    # Rows 0 and 1 unparseable: the third answer, unaggregated; counts as majority's.
    d = np.vstack([[NAN] * 3, [NAN] * 3, [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    out = tts.combine("first_parsable", d)
    assert np.allclose(out.dist, [0.2, 0.3, 0.5])
    assert (out.n, out.n_usable, out.n_failed, out.missing) == (4, 2, 2, False)
    assert np.allclose(tts.first_parsable(D), [1, 0, 0])
    assert np.isnan(tts.first_parsable(np.full((3, 3), NAN))).all()


def test_bon_with_and_without_length_normalisation():
    # per token: -1, -1, -3 -> a tie between rows 0 and 1, whose mean is returned
    assert np.allclose(tts.bon(D, logprob=LP, n_tokens=NT, length_norm=True), [0.5, 0.5, 0])
    # summed (the default): -1 is best
    assert np.allclose(tts.bon(D, logprob=LP), [1, 0, 0])
    assert np.allclose(tts.bon_sample(D, logprob=LP), [1, 0, 0])


def test_a_multi_token_class_name_gains_nothing_from_its_length():
    # "sad" (1 token + punctuation + end of turn) at p .44 against "disgusted" (3 tokens + 2)
    # at p .39: per-token normalisation would pick "disgusted"; the default ranks by the total.
    d = np.eye(2)
    lp = np.log([0.44, 0.39])
    for n_tokens in ([3, 5], [3, 50], [1, 1]):
        for name in ("bon", "bon_sample"):
            assert np.allclose(tts.aggregate(name, d, logprob=lp, n_tokens=n_tokens), [1, 0])
        for name in ("w_bon", "w_bon_sample"):
            assert np.allclose(tts.aggregate(name, d, logprob=lp, n_tokens=n_tokens),
                               [0.44 / 0.83, 0.39 / 0.83])
    assert np.allclose(tts.bon(d, logprob=lp, n_tokens=[3, 5], length_norm=True), [0, 1])


def test_ties_survive_rounding():
    # Two log-likelihoods equal up to float noise are one tie, both for bon and w_bon tau->0.
    lp = np.array([-0.3 / 3 * 3, -0.1 * 3 + 1e-13, -5.0])
    d = np.eye(3)
    assert np.allclose(tts.bon(d, logprob=lp), [0.5, 0.5, 0])
    assert np.allclose(tts.w_bon(d, logprob=lp, tau=1e-12), [0.5, 0.5, 0])
    # the case that made the hypothesis test flaky: -0.3 / 3 != -0.1 in floating point
    kw = dict(logprob=[-0.3, -0.1], n_tokens=[3, 1], length_norm=True)
    assert np.allclose(tts.bon(np.eye(2), **kw), [0.5, 0.5])
    assert np.allclose(tts.w_bon(np.eye(2), tau=1e-9, **kw), [0.5, 0.5])
    # a real gap above the tolerance is no tie
    assert np.allclose(tts.bon(d, logprob=[-0.3, -0.3001, -5]), [1, 0, 0])


def test_w_bon_hand_computed():
    w = np.exp([-1.0, -4.0, -3.0])
    expected = np.array([w[0], w[1] + w[2], 0]) / w.sum()
    got = tts.w_bon(D, logprob=LP, tau=1.0, length_norm=False)
    assert np.allclose(got, expected)
    w2 = np.exp(np.array([-1.0, -4.0, -3.0]) / 2)
    assert np.allclose(tts.w_bon(D, logprob=LP, tau=2.0, length_norm=False),
                       np.array([w2[0], w2[1] + w2[2], 0]) / w2.sum())


def test_alm_v_and_w_alm_v_hand_computed():
    v = np.array([0.2, 0.5, 0.3, 0.9])  # the 0.9 candidate is unparseable: excluded
    assert np.allclose(tts.alm_v(D, verifier=v), [0, 1, 0])
    assert np.allclose(tts.w_alm_v(D, verifier=v), [0.2, 0.8, 0])
    s = np.exp([0.2, 0.5, 0.3])
    assert np.allclose(tts.w_alm_v(D, verifier=v, weighting="softmax", tau=1.0),
                       [s[0] / s.sum(), (s[1] + s[2]) / s.sum(), 0])
    with pytest.raises(ValueError, match="softmax"):
        tts.w_alm_v(D, verifier=-v)
    assert np.allclose(tts.w_alm_v(D, verifier=np.zeros(4)), tts.majority(D))


def test_alm_v_returns_one_candidate_ties_by_likelihood_then_index():
    d = np.eye(3)[[0, 1, 2]]
    # integer verifier scores tie between 0 and 1: the likelier candidate (1) wins
    assert np.allclose(tts.alm_v(d, verifier=[3, 3, 1], logprob=[-2.0, -1.0, 0.0]), [0, 1, 0])
    # tied likelihood too (or none given): the lowest index wins, never an average
    assert np.allclose(tts.alm_v(d, verifier=[3, 3, 1], logprob=[-1.0, -1.0, 0.0]), [1, 0, 0])
    assert np.allclose(tts.alm_v(d, verifier=[1, 3, 3]), [0, 1, 0])
    # a candidate without a likelihood ranks after one with it
    assert np.allclose(tts.alm_v(d, verifier=[3, 3, 1], logprob=[NAN, -9.0, 0.0]), [0, 1, 0])


def test_unjudged_candidates_are_ignored_not_failed():
    d = np.eye(3)[[0, 1, 2, 2, 2]]
    v = np.array([0.2, 0.9, 0.5, NAN, NAN])  # B = 3 judged of 5
    out = tts.combine("alm_v", d, verifier=v)
    assert np.allclose(out.dist, [0, 1, 0]) and (out.n, out.n_failed) == (3, 0)
    w = tts.combine("w_alm_v", d, verifier=v)
    assert np.allclose(w.dist, [0.2 / 1.6, 0.9 / 1.6, 0.5 / 1.6]) and w.n_failed == 0
    none = tts.combine("alm_v", d, verifier=np.full(5, NAN))
    assert none.missing and (none.n, none.n_failed) == (0, 0)


def test_verifier_strategies_need_scores():
    with pytest.raises(ValueError, match="verifier"):
        tts.alm_v(D)


def test_dirichlet_symmetric_and_identical_candidates():
    assert np.allclose(tts.dirichlet([[0.2, 0.8], [0.8, 0.2]]), [0.5, 0.5])
    # One candidate (or identical ones): the limit is the smoothed candidate.
    eps = 1e-3
    expected = (np.array([1.0, 0.0, 0.0]) + eps) / (1 + 3 * eps)
    assert np.allclose(tts.dirichlet([[1.0, 0.0, 0.0]] * 3), expected)
    assert np.allclose(tts.dirichlet([[1.0, 0.0, 0.0]], epsilon=0.1), [1.1 / 1.3, 0.1 / 1.3, 0.1 / 1.3])


def test_dirichlet_fit_matches_scipy_maximum_likelihood():
    rng = np.random.default_rng(1)
    x = rng.dirichlet([2.0, 5.0, 1.0], size=40)
    alpha = fit_dirichlet(x[None], np.ones((1, 40), bool))[0]

    def nll(log_a):
        return -sps.dirichlet.logpdf(x.T, np.exp(log_a)).sum()
    ref = np.exp(optimize.minimize(nll, np.zeros(3), method="Nelder-Mead",
                                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).x)
    assert np.allclose(alpha, ref, rtol=1e-3)
    assert np.allclose(tts.dirichlet(x, epsilon=1e-12), ref / ref.sum(), atol=1e-4)
    assert np.allclose(smooth(np.array([1.0, 0.0]), 0.5), [0.75, 0.25])


def test_no_usable_candidate_is_missing_not_a_default():
    for name in POOLED:
        out = tts.combine(name, np.full((3, 4), NAN), logprob=np.zeros(3),
                          n_tokens=np.ones(3), verifier=np.ones(3))
        assert out.missing and np.isnan(out.dist).all() and out.n_failed == 3


def test_candidates_without_likelihood_are_excluded_and_counted():
    out = tts.combine("bon", np.eye(2), logprob=[NAN, -1.0], n_tokens=[1, 1])
    assert np.allclose(out.dist, [0, 1]) and out.n_usable == 1 and out.n_failed == 1


def test_rows_off_the_simplex_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        tts.majority([[0.5, 0.2]])


def test_params_record_every_default():
    assert tts.combine("w_bon", np.eye(2), logprob=[0, 0], n_tokens=[1, 1]).params == \
        {"tau": 1.0, "length_norm": False}
    assert tts.resolve_params("dirichlet")["epsilon"] == 1e-3
    with pytest.raises(ValueError, match="tau"):
        tts.resolve_params("w_bon", tau=-1)


# --- properties ------------------------------------------------------------------------------

@st.composite
def candidates(draw, min_n=1, max_n=6):
    n = draw(st.integers(min_n, max_n))
    k = draw(st.integers(2, 5))
    rows = []
    for _ in range(n):
        form = draw(st.sampled_from(["onehot", "soft", "nan"]))
        if form == "onehot":
            rows.append(np.eye(k)[draw(st.integers(0, k - 1))])
        elif form == "soft":
            w = np.array(draw(st.lists(st.floats(0.01, 10), min_size=k, max_size=k)))
            rows.append(w / w.sum())
        else:
            rows.append(np.full(k, NAN))
    # Log-likelihoods on a 0.1 grid: distinct ones differ enough that tau = 1e-9 is already
    # the tau -> 0 limit (a gap of 1e-60 would need a smaller tau still).
    lp = np.array(draw(st.lists(st.integers(-500, 0), min_size=n, max_size=n))) / 10
    nt = np.array(draw(st.lists(st.integers(1, 30), min_size=n, max_size=n)), dtype=float)
    v = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    return np.array(rows), lp, nt, v


def _run(name, d, lp, nt, v, **params):
    return tts.aggregate(name, d, logprob=lp, n_tokens=nt, verifier=v, **params)


@settings(max_examples=40, deadline=None)
@given(candidates(), st.sampled_from(POOLED))
def test_every_strategy_returns_a_distribution_or_all_nan(c, name):
    out = _run(name, *c)
    assert out.shape == (c[0].shape[1],)
    if np.isnan(out).any():
        assert np.isnan(out).all() and np.isnan(c[0]).all()
    else:
        assert (out >= 0).all() and np.isclose(out.sum(), 1)


@settings(max_examples=40, deadline=None)
@given(candidates(), st.sampled_from([s for s in POOLED if s not in ("alm_v", "first_parsable")]),
       st.randoms(use_true_random=False))
def test_candidate_order_never_matters(c, name, rnd):
    # (alm_v breaks a full tie by index on purpose: it returns one candidate; first_parsable
    # is the first answer that parses, in the order sampled, by definition)
    d, lp, nt, v = c
    perm = list(range(len(d)))
    rnd.shuffle(perm)
    a = _run(name, d, lp, nt, v)
    b = _run(name, d[perm], lp[perm], nt[perm], v[perm])
    assert np.allclose(a, b, equal_nan=True, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(candidates(), st.floats(-20, 0))
def test_w_bon_with_equal_likelihoods_is_majority(c, same):
    d, _, nt, v = c
    lp = np.full(len(d), same)
    for tau in (0.1, 1.0, 7.0):
        assert np.allclose(tts.w_bon(d, logprob=lp, tau=tau, length_norm=False),
                           tts.majority(d), equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(candidates(), st.booleans())
def test_w_bon_tau_limits(c, norm):
    d, lp, nt, v = c
    kw = dict(logprob=lp, n_tokens=nt, length_norm=norm)
    assert np.allclose(tts.w_bon(d, tau=0, **kw), tts.bon(d, **kw), equal_nan=True)
    assert np.allclose(tts.w_bon(d, tau=1e-9, **kw), tts.bon(d, **kw), equal_nan=True, atol=1e-6)
    assert np.allclose(tts.w_bon(d, tau=np.inf, **kw), tts.majority(d), equal_nan=True)
    assert np.allclose(tts.w_bon(d, tau=1e9, **kw), tts.majority(d), equal_nan=True, atol=1e-6)


# --- predict and scaling curves ----------------------------------------------------------------

CLASSES = ["neutral", "happy", "sad"]


def _sample_rows(utt, kind, idx, p, logprob=-1.0, n_tokens=2):
    ok = np.isfinite(p).all()
    return dict(utt_id=utt, kind=kind, idx=idx, text="", logprob=logprob, n_tokens=n_tokens,
                parse_ok=ok, **{f"p_{c}": x for c, x in zip(CLASSES, p)})


def make_samples(n_utts=3, n_samples=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_utts):
        utt = f"u{u}"
        rows.append(_sample_rows(utt, "greedy", 0, np.eye(3)[u % 3]))
        rows.append(_sample_rows(utt, "cot", 0, np.eye(3)[(u + 1) % 3]))
        rows.append(_sample_rows(utt, "cot", 1, np.eye(3)[(u + 2) % 3]))
        rows.append(_sample_rows(utt, "label_score", 0, np.array([0.5, 0.3, 0.2])))
        for j in range(n_samples):
            # one unparseable, one distribution-form, the rest one-hot answers
            p = (np.full(3, NAN) if j == 0 else rng.dirichlet(np.ones(3)) if j == 1
                 else np.eye(3)[rng.integers(3)])
            rows.append(_sample_rows(utt, "sample", j, p, logprob=-rng.random() * 5,
                                     n_tokens=int(rng.integers(1, 5))))
        for j in range(3):
            rows.append(_sample_rows(utt, "beam", j, np.eye(3)[(u + j) % 3],
                                     logprob=-1.0 - j, n_tokens=2))
    samples = pd.DataFrame(rows)
    ver = samples[samples.kind == "sample"][["utt_id", "idx"]].assign(
        score=rng.random((samples.kind == "sample").sum()))
    return samples, ver


def test_predict_maps_kinds_and_records_counts_and_params():
    samples, ver = make_samples()
    pred = tts.predict(samples, CLASSES, list(tts.STRATEGIES), model="m", verifier=ver)
    assert list(pred.columns[:9]) == ["utt_id", "model", "strategy", "n", "replicate",
                                      "n_usable", "n_failed", "missing", "params"]
    assert len(pred) == 3 * len(tts.STRATEGIES)
    u0 = pred[pred.utt_id == "u0"].set_index("strategy")
    assert np.allclose(u0.loc["greedy", ["p_neutral", "p_happy", "p_sad"]].astype(float), [1, 0, 0])
    assert np.allclose(u0.loc["cot", ["p_neutral", "p_happy", "p_sad"]].astype(float), [0, 1, 0])
    assert np.allclose(u0.loc["label_logits", ["p_neutral", "p_happy", "p_sad"]].astype(float),
                       [0.5, 0.3, 0.2])
    assert u0.loc["majority", "n"] == 4 and u0.loc["majority", "n_failed"] == 1
    s = samples[(samples.utt_id == "u0") & (samples.kind == "sample")]
    assert np.allclose(u0.loc["majority", ["p_neutral", "p_happy", "p_sad"]].astype(float),
                       s[["p_neutral", "p_happy", "p_sad"]].mean())
    assert json.loads(u0.loc["w_bon", "params"]) == {"length_norm": False, "tau": 1.0}


def test_predict_with_params_and_errors():
    samples, ver = make_samples()
    pred = tts.predict(samples, CLASSES, {"w_bon": {"tau": 0.5}}, model="m")
    assert json.loads(pred["params"].iloc[0])["tau"] == 0.5
    with pytest.raises(ValueError, match="verifier"):
        tts.predict(samples, CLASSES, ["alm_v"], model="m")
    with pytest.raises(ValueError, match="'greedy'.*kind 'greedy'"):
        tts.predict(samples[samples.kind != "greedy"], CLASSES, ["greedy"], model="m")
    partial = samples[~((samples.kind == "cot") & (samples.utt_id == "u1"))]
    with pytest.raises(ValueError, match="kind 'cot'.*u1"):
        tts.predict(partial, CLASSES, ["cot"], model="m")


def test_scaling_curve_subsets_are_seeded_and_end_at_predict():
    samples, ver = make_samples(n_utts=4, n_samples=5)
    names = ["greedy", "majority", "w_bon_sample", "w_alm_v", "dirichlet"]
    curve = tts.scaling_curve(samples, CLASSES, names, model="m", n_subsets=3, verifier=ver)
    assert sorted(curve.n.unique()) == [1, 2, 4, 5]
    assert (curve[curve.strategy == "greedy"].n == 1).all()
    majority = curve[curve.strategy == "majority"]
    assert majority.groupby("n").replicate.nunique().to_dict() == {1: 3, 2: 3, 4: 3, 5: 1}
    assert (curve[curve.n == 2].n_usable + curve[curve.n == 2].n_failed == 2).all()
    full = curve[curve.n == 5].sort_values(["strategy", "utt_id"]).reset_index(drop=True)
    ref = tts.predict(samples, CLASSES, names[1:], model="m", verifier=ver)
    ref = ref.sort_values(["strategy", "utt_id"]).reset_index(drop=True)
    pcols = [f"p_{c}" for c in CLASSES]
    assert np.allclose(full[pcols].to_numpy(float), ref[pcols].to_numpy(float), equal_nan=True)
    again = tts.scaling_curve(samples, CLASSES, names, model="m", n_subsets=3, verifier=ver)
    pd.testing.assert_frame_equal(curve, again)
    assert json.loads(majority.params.iloc[0]) == {"seed": 0, "subsets": 3}
    with pytest.raises(ValueError, match="1..5"):
        tts.scaling_curve(samples, CLASSES, ["majority"], model="m", ns=[8])


def test_scaling_curves_of_verifier_strategies_stop_at_the_judged_count():
    samples, ver = make_samples(n_utts=4, n_samples=5)
    judged = verifier_scores(ver.assign(kind="verify")[ver.idx < 3], candidates="sample", n=3)
    curve = tts.scaling_curve(samples, CLASSES, ["majority", "alm_v", "w_alm_v", "bon"],
                              model="m", ns=[1, 2, 4, 5], n_subsets=3, verifier=judged)
    by = curve.groupby("strategy").n.unique().map(sorted).to_dict()
    assert by["majority"] == [1, 2, 4, 5]
    assert by["alm_v"] == by["w_alm_v"] == [1, 2, 3]
    assert by["bon"] == [3]                      # beams appear once, at n = B
    alm = curve[curve.strategy == "alm_v"]
    # idx 0 never parses: one failure at most, and a subset without it never fails
    assert (alm.n_usable + alm.n_failed == alm.n).all()
    assert not alm[alm.n == 1].missing.all()     # most n = 1 subsets hold a judged candidate
    assert (alm[alm.n == 3].n_failed == 1).all() and not alm[alm.n == 3].missing.any()


def test_dirichlet_is_unavailable_for_one_hot_candidates():
    samples, ver = make_samples()
    onehot = samples.copy()
    sel = (onehot.kind == "sample") & onehot.parse_ok
    pcols = [f"p_{c}" for c in CLASSES]
    onehot.loc[sel, pcols] = np.eye(3)[onehot.loc[sel, pcols].to_numpy(float).argmax(1)]
    gone = unavailable_strategies(onehot, ["dirichlet", "majority"], classes=CLASSES)
    assert gone.strategy.tolist() == ["dirichlet"] and "one-hot" in gone.reason.iloc[0]
    pred = tts.predict(onehot, CLASSES, ["dirichlet", "majority"], model="m",
                       skip_unavailable=True)
    assert set(pred.strategy) == {"majority"}
    assert tts.predict(samples, CLASSES, ["dirichlet"], model="m").strategy.eq("dirichlet").all()


def test_predict_end_to_end_each_strategy_gets_its_own_answer():
    """A hand-built store where every strategy's right answer differs: a logprob, n_tokens or
    verifier score attached to the wrong candidate changes some strategy's output."""
    e = np.eye(3)
    rows = [_sample_rows("u", "greedy", 0, e[0]),
            _sample_rows("u", "cot", 0, e[1]),
            _sample_rows("u", "label_score", 0, np.array([0.2, 0.3, 0.5]), logprob=NAN),
            # samples: idx 0 most likely in total, idx 1 most likely per token, idx 2 soft,
            # idx 3 best verified but beyond the judged three, idx 4 unparseable
            _sample_rows("u", "sample", 0, e[2], logprob=-1.0, n_tokens=1),
            _sample_rows("u", "sample", 1, e[1], logprob=-1.5, n_tokens=10),
            _sample_rows("u", "sample", 2, np.array([0.6, 0.2, 0.2]), logprob=-4.0, n_tokens=2),
            _sample_rows("u", "sample", 3, e[0], logprob=-9.0, n_tokens=1),
            _sample_rows("u", "sample", 4, np.full(3, NAN), logprob=-0.1, n_tokens=1),
            # beams: idx 1 best in total
            _sample_rows("u", "beam", 0, e[0], logprob=-2.0, n_tokens=1),
            _sample_rows("u", "beam", 1, np.array([0.1, 0.1, 0.8]), logprob=-0.5, n_tokens=5),
            _sample_rows("u", "beam", 2, e[1], logprob=-3.0, n_tokens=1)]
    samples = pd.DataFrame(rows)
    ver = pd.DataFrame({"utt_id": "u", "idx": [0, 1, 2], "score": [0.1, 0.3, 0.6],
                        "kind": "verify"})
    with pytest.raises(ValueError, match="idx >= n = 2"):
        verifier_scores(ver, candidates="sample", n=2)
    ver = verifier_scores(ver, candidates="sample", n=3)
    names = ["greedy", "cot", "label_logits", "majority", "bon", "w_bon", "bon_sample",
             "w_bon_sample", "alm_v", "w_alm_v"]
    pred = tts.predict(samples, CLASSES, names, model="m", verifier=ver).set_index("strategy")
    got = {s: pred.loc[s, [f"p_{c}" for c in CLASSES]].to_numpy(float) for s in names}
    soft = np.array([0.6, 0.2, 0.2])
    wb = np.exp([-2.0, -0.5, -3.0])
    ws = np.exp([-1.0, -1.5, -4.0, -9.0])
    expected = {
        "greedy": e[0], "cot": e[1], "label_logits": [0.2, 0.3, 0.5],
        "majority": (e[2] + e[1] + soft + e[0]) / 4,
        "bon": [0.1, 0.1, 0.8],
        "w_bon": (wb[0] * e[0] + wb[1] * np.array([0.1, 0.1, 0.8]) + wb[2] * e[1]) / wb.sum(),
        "bon_sample": e[2],
        "w_bon_sample": (ws[0] * e[2] + ws[1] * e[1] + ws[2] * soft + ws[3] * e[0]) / ws.sum(),
        "alm_v": soft,
        "w_alm_v": (0.1 * e[2] + 0.3 * e[1] + 0.6 * soft) / 1.0,
    }
    for s in names:
        assert np.allclose(got[s], expected[s]), s
    counts = pred[["n", "n_usable", "n_failed"]].astype(int)
    assert counts.loc["majority"].tolist() == [5, 4, 1]
    assert counts.loc["alm_v"].tolist() == [3, 3, 0]   # the judged three, none failed
    assert counts.loc["bon"].tolist() == [3, 3, 0]
    # per-token normalisation, asked for, picks the other sample
    norm = tts.predict(samples, CLASSES, {"bon_sample": {"length_norm": True}}, model="m")
    assert np.allclose(norm[[f"p_{c}" for c in CLASSES]].to_numpy(float), [e[1]])
