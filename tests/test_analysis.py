"""Tests of the statistics (ambiemo.analysis): bootstrap, paired tests, Holm, summary, capacity."""
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from ambiemo import analysis, metrics, tts
from ambiemo.corpora.manifest import build_manifest
from ambiemo.tts.references import reference_predictions

CLASSES = ["neutral", "happy", "sad", "angry"]
PCOLS = [f"p_{c}" for c in CLASSES]


def make_manifest(n=60, seed=0):
    rng = np.random.default_rng(seed)
    votes = rng.multinomial(5, [0.4, 0.3, 0.2, 0.1], size=n).astype(float)
    records = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "split": "test",
                            "speaker": "s", "audio_path": "none.wav", "n_raters": 5})
    return build_manifest(records, votes, CLASSES, corpus="demo", label_space="4class")


def make_scores(man, models=("small", "large"), seed=0):
    """Two fake models: 'large' predicts closer to the humans; a few predictions missing."""
    rng = np.random.default_rng(seed)
    human = man[PCOLS].to_numpy()
    frames = []
    for m, noise in zip(models, (3.0, 0.5)):
        for strategy in ("greedy", "majority"):
            q = human + rng.random(human.shape) * noise
            if strategy == "greedy":
                q = np.eye(4)[q.argmax(1)]
            q = q / q.sum(1, keepdims=True)
            q[:2] = np.nan
            f = pd.DataFrame({"utt_id": man.utt_id, "model": m, "strategy": strategy, "n": 1})
            f[PCOLS] = q
            frames.append(f)
    frames.append(reference_predictions(man, n_draws=3))
    return metrics.score(pd.concat(frames, ignore_index=True), man)


def test_bootstrap_ci_is_reproducible_from_its_seed():
    """The seed is what makes a table's interval reproducible: the same seed gives the same
    interval, another seed another one (the seed reaches the resampling). Agreement with
    scipy's bootstrap at a tolerance that tells 95 % from 90 %: tests/test_metric_values.py."""
    x = np.random.default_rng(3).normal(size=200)
    est, lo, hi = analysis.bootstrap_ci(x, n_boot=500, seed=5)
    assert np.isclose(est, x.mean()) and lo < est < hi
    assert analysis.bootstrap_ci(x, n_boot=500, seed=5) == (est, lo, hi)
    assert analysis.bootstrap_ci(x, n_boot=500, seed=6)[1:] != (lo, hi)


def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.002, np.nan])
    ok = np.isfinite(p)
    assert np.allclose(analysis.holm(p)[ok], multipletests(p[ok], method="holm")[1])
    assert np.isnan(analysis.holm(p)[-1])


def test_paired_comparison_agrees_with_scipy_permutation_test():
    man = make_manifest()
    sc = make_scores(man)
    a = {"model": "large", "strategy": "majority", "n": 1}
    b = {"model": "small", "strategy": "majority", "n": 1}
    res = analysis.paired_comparison(sc, a, b, "js_divergence", n_perm=4000)
    da = sc[(sc.model == "large") & (sc.strategy == "majority")].set_index("utt_id").js_divergence
    db = sc[(sc.model == "small") & (sc.strategy == "majority")].set_index("utt_id").js_divergence
    d = (da - db).to_numpy()
    assert res.n_utts == len(d) and np.isclose(res.diff, d.mean())
    assert res.a_better and res.diff_lo < res.diff < res.diff_hi
    ref = sps.permutation_test((da.to_numpy(), db.to_numpy()), lambda x, y: np.mean(x - y),
                               permutation_type="samples", n_resamples=4000, random_state=0)
    assert abs(res.p_value - ref.pvalue) < 0.01
    # a comparison with itself: zero difference, p-value 1
    self_vs_self = analysis.paired_comparison(sc, a, a, "js_divergence", n_perm=200)
    assert self_vs_self.diff == 0 and self_vs_self.p_value == 1 and not self_vs_self.a_better
    table = analysis.paired_table(sc[sc.strategy != "reference"],
                                  {"model": "small", "strategy": "greedy", "n": 1})
    assert len(table) == 3 and np.allclose(table.p_holm, analysis.holm(table.p_value))
    with pytest.raises(ValueError, match="exactly one"):
        analysis.paired_comparison(sc, "majority", "greedy")


def test_summary_table_estimates_match_direct_computation():
    man = make_manifest()
    man.loc[man.index[5], "majority"] = None  # a tie (five raters give many): excluded, counted
    sc = make_scores(man)
    table = analysis.summary_table(sc, metrics=("js_divergence", "bhattacharyya_coefficient",
                                                "r2", "accuracy", "macro_f1", "ece"),
                                   n_boot=200)
    assert len(table) == 4 + 3
    row = table.set_index(["model", "strategy"]).loc[("small", "greedy")]
    g = sc[(sc.model == "small") & (sc.strategy == "greedy")]
    assert row.n_utts == 60 and row.n_missing == 2 and row.n_ties == man.majority.isna().sum() > 0
    assert np.isclose(row.js_divergence, g.js_divergence.mean())  # missing -> worst value 1
    # R² over the clips (scikit-learn's r2_score), missing excluded
    assert np.isclose(row.r2, metrics.r2_score(g[[f"human_{c}" for c in PCOLS]].to_numpy(),
                                               g[PCOLS].to_numpy()))
    assert row.r2_lo <= row.r2 <= row.r2_hi
    assert np.isclose(row.accuracy, metrics.accuracy(g.majority, g.pred_label))
    assert np.isclose(row.macro_f1, metrics.macro_f1(g.majority, g.pred_label))
    assert np.isclose(row.ece, metrics.ece(g.top_prob, g.correct))
    for m in ("js_divergence", "accuracy", "macro_f1"):
        assert row[f"{m}_lo"] <= row[m] <= row[f"{m}_hi"]
    # replicates (new-rater draws) are averaged per utterance, not blended
    ceil = table.set_index("model").loc["new_raters"]
    c = sc[sc.model == "new_raters"]
    assert np.isclose(ceil.js_divergence, c.groupby("utt_id").js_divergence.mean().mean())
    assert np.isclose(ceil.macro_f1, np.mean([metrics.macro_f1(r.majority, r.pred_label)
                                              for _, r in c.groupby("replicate")]))
    with pytest.raises(KeyError, match="js_divergence"):
        analysis.summary_table(sc, metrics=("nope",))


def test_summary_of_a_scaling_curve():
    rng = np.random.default_rng(0)
    man = make_manifest(n=10)
    rows = []
    for u in man.utt_id:
        for j in range(4):
            rows.append(dict(utt_id=u, kind="sample", idx=j, text="", logprob=-rng.random(),
                             n_tokens=1, parse_ok=True, **dict(zip(PCOLS, np.eye(4)[rng.integers(4)]))))
    curve = tts.scaling_curve(pd.DataFrame(rows), CLASSES, ["majority", "bon_sample"], model="m",
                              n_subsets=4)
    table = analysis.summary_table(metrics.score(curve, man), n_boot=50)
    assert sorted(table.n.unique()) == [1, 2, 4] and (table.n_utts == 10).all()


def test_capacity_model_matches_statsmodels_and_drops_single_model():
    man = make_manifest()
    sc = make_scores(man)
    out = analysis.capacity_model(sc, man, {"small": 1e9, "large": 7e9})
    assert {"term", "estimate", "std_error", "statistic", "p_value", "ci_lo", "ci_hi"} <= set(out)
    assert "log_params" in set(out.term) and "left out" in out.attrs["notes"][0]
    assert out.attrs["n_clusters"] == 60
    # the same fit by hand
    d = sc[sc.strategy != "reference"].dropna(subset=["js_divergence"]).copy()
    bins = analysis.ambiguity_bin_of(man)
    d["ambiguity_bin"] = pd.Categorical(bins.reindex(d.utt_id).to_numpy(),
                                        categories=bins.cat.categories).remove_unused_categories()
    d["log_params"] = np.log10(d.model.map({"small": 1e9, "large": 7e9}))
    fit = smf.ols("js_divergence ~ C(strategy, Treatment('greedy')) * C(ambiguity_bin) + "
                  "log_params", d).fit(cov_type="cluster",
                                       cov_kwds={"groups": d.utt_id.astype("category").cat.codes})
    est = out.set_index("term").estimate
    assert np.allclose(est["log_params"], fit.params["log_params"])
    assert np.allclose(out.set_index("term").std_error["log_params"], fit.bse["log_params"])
    one = analysis.capacity_model(sc[sc.model != "large"], man, {"small": 1e9})
    assert "log_params" not in set(one.term)
    assert any("capacity term dropped" in n for n in one.attrs["notes"])
    with pytest.raises(KeyError, match="large"):
        analysis.capacity_model(sc, man, {"small": 1e9})
    mixed = analysis.capacity_model(sc, man, {"small": 1e9, "large": 7e9}, method="mixedlm")
    assert "log_params" in set(mixed.term)


def test_summary_by_ambiguity_is_summary_table_within_each_bin():
    man = make_manifest()
    sc = make_scores(man)
    by_bin = analysis.summary_by_ambiguity(sc, man, metrics=("js_divergence", "accuracy"),
                                           n_boot=50)
    bins = analysis.ambiguity_bin_of(man)
    assert list(by_bin.ambiguity_bin.cat.categories) == list(bins.cat.categories)
    high = bins[bins == bins.cat.categories[-1]].index
    row = by_bin[(by_bin.model == "large") & (by_bin.strategy == "majority")
                 & (by_bin.ambiguity_bin == bins.cat.categories[-1])].iloc[0]
    g = sc[(sc.model == "large") & (sc.strategy == "majority") & sc.utt_id.isin(high)]
    assert row.n_utts == len(high) and np.isclose(row.js_divergence, g.js_divergence.mean())
    assert by_bin.groupby(["model", "strategy"]).n_utts.sum().eq(60).all()


def test_gain_by_ambiguity_is_signed_so_positive_is_better():
    man = make_manifest()
    sc = make_scores(man)
    gains = analysis.gain_by_ambiguity(sc, man, "js_divergence", n_perm=200, n_boot=100)
    assert set(gains.strategy) == {"majority"} and set(gains.model) == {"small", "large"}
    assert len(gains) == 2 * 3 and (gains.gain_lo <= gains.gain).all() and (gains.gain <= gains.gain_hi).all()
    bins = analysis.ambiguity_bin_of(man)
    low = bins[bins == "low"].index
    g = sc[sc.utt_id.isin(low) & (sc.model == "small")].pivot_table(
        index="utt_id", columns="strategy", values="js_divergence")
    row = gains[(gains.model == "small") & (gains.ambiguity_bin == "low")].iloc[0]
    # JS is lower-is-better: gain = greedy - majority
    assert np.isclose(row.gain, (g["greedy"] - g["majority"]).mean())
    acc = analysis.gain_by_ambiguity(sc, man, "accuracy", n_perm=200, n_boot=100)
    assert (acc.direction == "higher").all()
    no_base = analysis.gain_by_ambiguity(sc[sc.strategy != "greedy"], man, n_perm=50, n_boot=50)
    assert no_base.empty and len(no_base.attrs["notes"]) == 2


def test_reliability_table_bins_match_ece():
    man = make_manifest()
    sc = make_scores(man)
    rel = analysis.reliability_table(sc)
    g = sc[(sc.model == "large") & (sc.strategy == "majority")]
    r = rel[(rel.model == "large") & (rel.strategy == "majority")]
    keep = g.top_prob.notna() & g.correct.notna()
    assert r["count"].sum() == keep.sum()
    ece = (r["count"] * (r.accuracy - r.confidence).abs()).sum() / r["count"].sum()
    assert np.isclose(ece, metrics.ece(g.top_prob, g.correct))
    assert ((r.bin_lo < r.confidence + 1e-12) & (r.confidence <= r.bin_hi + 1e-12)).all()


def test_capacity_analysis_leaves_out_hosted_models_and_says_when_not_estimable():
    man = make_manifest()
    sc = make_scores(man)
    fit = analysis.capacity_analysis(sc, man, {"small": 1e9, "large": 7e9})
    # two models: the strategy x ambiguity part is fitted, capacity is not estimable
    assert fit.attrs["fitted"] and fit.attrs["n_models"] == 2
    cap = fit.set_index("term").loc["capacity"]
    assert cap.status == "not estimable" and np.isnan(cap.p_value)
    hosted = analysis.capacity_analysis(sc, man, {"small": 1e9, "large": None})
    assert any("large" in n and "not published" in n for n in hosted.attrs["notes"])
    assert hosted.attrs["n_models"] == 1
    none = analysis.capacity_analysis(sc, man, {"small": None, "large": None})
    assert not none.attrs["fitted"] and none.empty
    assert any(n.startswith("no fit") for n in none.attrs["notes"])
    with pytest.raises(KeyError, match="large"):
        analysis.capacity_analysis(sc, man, {"small": 1e9})
    r2 = analysis.capacity_analysis(sc, man, {"small": 1e9, "large": 7e9}, "r2")
    assert any("r2_per_clip is analysed instead" in n for n in r2.attrs["notes"])
    from ambiemo.outputs.tables import capacity_table
    table = capacity_table({("demo", "js_divergence"): fit, ("demo", "r2"): none})
    assert (table.loc[table.metric == "r2", "term"] == "no fit").all()
    assert table.loc[table.metric == "r2", "estimate"].isna().all()
    assert (table.loc[table.term == "capacity", "status"] == "not estimable").all()


def test_gain_skips_a_strategy_with_no_finite_metric_and_says_so():
    """A strategy whose every prediction is missing (a model that never writes the CoT
    answer line) has no R2 to pair with the baseline: a note, not a crash."""
    import numpy as np
    import pandas as pd
    from ambiemo.analysis import gain_by_ambiguity
    utts = [f"u{i}" for i in range(9)]
    manifest = pd.DataFrame({"utt_id": utts, "entropy_bits": np.linspace(0, 2, 9)})
    rows = []
    for strategy, r2 in (("greedy", 0.5), ("cot", np.nan)):
        for i, u in enumerate(utts):
            rows.append(dict(utt_id=u, model="m", strategy=strategy, n=1, replicate=0,
                             r2_per_clip=r2 if np.isnan(r2) else r2 + 0.01 * i))
    out = gain_by_ambiguity(pd.DataFrame(rows), manifest, "r2", n_perm=50, n_boot=50)
    assert out.empty
    assert any("m/cot/1" in note and "no gain" in note for note in out.attrs["notes"])
    # R² has no per-clip value: the per-clip form is paired, and the notes say so
    assert any("r2_per_clip is analysed instead" in note for note in out.attrs["notes"])


def test_weighted_r2_matches_scikit_learn_sample_weight():
    from sklearn.metrics import r2_score as sk
    from ambiemo.analysis.summaries import weighted_r2
    rng = np.random.default_rng(2)
    p, q = rng.dirichlet(np.ones(4), 25), rng.dirichlet(np.ones(4), 25)
    w = rng.integers(0, 4, size=(5, 25)).astype(float)
    got = weighted_r2(p, q, w)
    assert np.allclose(got, [sk(p, q, sample_weight=wi) for wi in w])
    q[:4] = np.nan  # missing: weight 0
    assert np.isclose(weighted_r2(p, q, np.ones(25))[0], sk(p[4:], q[4:]))
    # a class the humans never vary on: scikit-learn's force_finite (1 if exact, else 0)
    p2 = np.column_stack([p[:, :3] * 0.5 / p[:, :3].sum(1, keepdims=True), np.full(25, 0.5)])
    q2 = rng.dirichlet(np.ones(4), 25)
    assert np.isclose(weighted_r2(p2, q2, np.ones(25))[0], sk(p2, q2))


def test_bootstrap_ci_of_the_mean_resamples_as_one_draw_per_replicate():
    """The vectorised mean bootstrap (blocks of replicates) equals the plain definition:
    one `rng.integers` draw per replicate, mean of each resample, percentiles (to the last
    bits: a row-wise mean may add in another order)."""
    from ambiemo.analysis.inference import _blocks

    for n, n_boot in ((7, 50), (5000, 1000)):     # the second spans several blocks
        assert len(_blocks(n_boot, n)) == (1 if n == 7 else 3)
        v = np.random.default_rng(n).normal(size=n)
        rng = np.random.default_rng(4)
        boot = np.array([v[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
        expected = (v.mean(), np.quantile(boot, 0.025), np.quantile(boot, 0.975))
        # The same resamples; a row-wise mean may sum in another order (last-bit changes).
        assert analysis.bootstrap_ci(v, n_boot=n_boot, seed=4) == pytest.approx(expected,
                                                                                rel=1e-12)
