"""The supervised soft-label reference (soft_reference.py, issue #17).

A synthetic corpus where loudness alone decides the vote distribution (quiet clips "sad",
loud ones "angry"), with speakers that differ in pitch: eGeMAPS + the cross-fitted soft-label
model must recover the distributions, fall back to the prior when the labels are shuffled,
never train on the speaker it predicts, and not depend on the order of the rows.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ambiemo.tts import soft_reference as S
from ambiemo.corpora.manifest import build_manifest
from ambiemo.metrics import js_divergence
from ambiemo.tts.references import reference_predictions

SR = 16_000
CLASSES = ["sad", "neutral", "angry"]
N_SPEAKERS, PER_SPEAKER = 10, 8


@pytest.fixture(scope="module")
def loud_corpus(tmp_path_factory):
    """(manifest, eGeMAPS features): p(class) = softmax(-4z, 0, 4z), z the clip's standardised
    log amplitude; 10 raters per clip."""
    from ambiemo.features.egemaps import extract_egemaps

    root = tmp_path_factory.mktemp("loud")
    rng = np.random.default_rng(7)
    rows, votes = [], []
    t = np.arange(int(0.8 * SR)) / SR
    for s in range(N_SPEAKERS):
        f0 = 110 + 15 * s  # speakers differ in pitch, not in how loud they are
        for c in range(PER_SPEAKER):
            log_amp = rng.uniform(np.log10(0.003), np.log10(0.5))
            z = (log_amp - np.log10(0.04)) / 0.6
            x = 10 ** log_amp * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)
                                 + 0.05 * rng.standard_normal(len(t)))
            path = root / f"s{s}_c{c}.wav"
            sf.write(path, x.astype("float32"), SR, subtype="FLOAT")
            logits = np.array([-4 * z, 0.0, 4 * z])
            p = np.exp(logits - logits.max())
            votes.append(rng.multinomial(10, p / p.sum()))
            rows.append({"utt_id": f"s{s}_c{c}", "split": "test", "speaker": f"spk{s}",
                         "audio_path": str(path), "n_raters": 10, "duration_s": 0.8})
    manifest = build_manifest(pd.DataFrame(rows), np.array(votes), CLASSES, corpus="loud",
                              label_space="3class")
    features = extract_egemaps(manifest, root / "loud__egemaps.parquet", n_jobs=2,
                               progress=False)
    return manifest, features


def _js(manifest, pred):
    p = manifest.set_index("utt_id").loc[pred["utt_id"], [f"p_{c}" for c in CLASSES]]
    return float(js_divergence(p.to_numpy(), pred[[f"p_{c}" for c in CLASSES]].to_numpy()).mean())


def test_recovers_a_loudness_rule_far_below_the_prior(loud_corpus):
    manifest, features = loud_corpus
    pred = S.soft_reference_predictions(manifest, features, seed=0)
    assert pred["utt_id"].tolist() == manifest["utt_id"].tolist()
    assert (pred["model"] == "egemaps_soft").all() and (pred["strategy"] == "reference").all()
    assert not pred["missing"].any() and (pred["n"] == 1).all()
    np.testing.assert_allclose(pred[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)
    refs = reference_predictions(manifest, n_draws=1)
    prior_js = _js(manifest, refs[refs["model"] == "prior"])
    soft_js = _js(manifest, pred)
    assert prior_js > 0.3, prior_js  # the corpus is far from its prior...
    assert soft_js < 0.4 * prior_js, (soft_js, prior_js)  # ...and loudness explains it
    params = json.loads(pred.loc[0, "params"])
    assert params["n_folds"] == 5 and params["C"] in S.DEFAULT_CS
    assert params["features"]["feature_set"] == "eGeMAPSv02"


def test_shuffled_labels_fall_back_to_about_the_prior(loud_corpus):
    manifest, features = loud_corpus
    pcols = [f"p_{c}" for c in CLASSES]
    shuffled = manifest.copy()
    perm = np.random.default_rng(1).permutation(len(manifest))
    shuffled[pcols] = manifest[pcols].to_numpy()[perm]
    pred = S.soft_reference_predictions(shuffled, features, seed=0, Cs=(1e-4, 1e-2, 1.0))
    refs = reference_predictions(shuffled, n_draws=1)
    prior_js = _js(shuffled, refs[refs["model"] == "prior"])
    soft_js = _js(shuffled, pred)
    assert abs(soft_js - prior_js) < 0.05, (soft_js, prior_js)


def test_no_speaker_is_both_trained_on_and_predicted(loud_corpus, monkeypatch):
    manifest, features = loud_corpus
    X, _ = S.feature_matrix(manifest, features)
    speaker_of = {X[i].tobytes(): manifest["speaker"].iloc[i] for i in range(len(X))}
    seen = []
    real = S._fit_fold

    def spy(X_train, P_train, groups_train, X_test, **kw):
        seen.append(({speaker_of[r.tobytes()] for r in X_train},
                     [speaker_of[r.tobytes()] for r in X_test]))
        return real(X_train, P_train, groups_train, X_test, **kw)

    monkeypatch.setattr(S, "_fit_fold", spy)
    S.soft_reference_predictions(manifest, features, n_folds=4, Cs=(1e-2,))
    assert len(seen) == 4
    for train, test in seen:
        assert train.isdisjoint(test)
    predicted = [s for _, test in seen for s in test]
    assert len(predicted) == len(manifest)  # every clip predicted exactly once
    # A fold assignment that leaks is refused before anything is fitted.
    monkeypatch.setattr(S, "group_folds",
                        lambda groups, k, seed: pd.Series(np.arange(len(groups)) % k))
    with pytest.raises(AssertionError, match="more than one split|trains on speakers"):
        S.soft_reference_predictions(manifest, features, n_folds=4, Cs=(1e-2,))


def test_a_clips_prediction_ignores_the_order_of_the_other_rows(loud_corpus):
    manifest, features = loud_corpus
    a = S.soft_reference_predictions(manifest, features, n_folds=3, Cs=(1e-3, 1e-1))
    perm = np.random.default_rng(3).permutation(len(manifest))
    b = S.soft_reference_predictions(manifest.iloc[perm], features.iloc[::-1], n_folds=3,
                                     Cs=(1e-3, 1e-1))
    a = a.set_index("utt_id")
    b = b.set_index("utt_id").loc[a.index]
    pcols = [f"p_{c}" for c in CLASSES]
    np.testing.assert_array_equal(a[pcols].to_numpy(), b[pcols].to_numpy())
    assert (a["params"] == b["params"]).all()


def test_clips_without_features_or_speaker_are_missing_with_the_reason(loud_corpus):
    manifest, features = loud_corpus
    features = features.copy()
    features.loc[3, "status"] = "failed"
    features.loc[3, "reason"] = "/x/s0_c3.wav: audio file not found"
    m = manifest.copy()
    m.loc[5, "speaker"] = None
    pred = S.soft_reference_predictions(m, features, n_folds=3, Cs=(1e-2,))
    assert pred["missing"].tolist() == [i in (3, 5) for i in range(len(m))]
    assert pred.loc[3, ["n_usable", "n_failed"]].tolist() == [0, 1]
    assert pred.loc[[3, 5], [f"p_{c}" for c in CLASSES]].isna().all().all()
    assert "audio file not found" in json.loads(pred.loc[3, "params"])["missing"]
    assert "speaker unknown" in json.loads(pred.loc[5, "params"])["missing"]


def test_soft_label_loss_matches_a_direct_computation():
    """sklearn's weighted fit on the expanded rows minimises the soft-label cross-entropy
    with penalty ||W||^2 / (2C), computed here directly in numpy and minimised by scipy."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    n, d, K, C = 60, 4, 3, 0.5
    X = rng.normal(size=(n, d))
    P = rng.dirichlet(np.full(K, 0.7), size=n)
    P[:5] = np.eye(K)[rng.integers(0, K, 5)]  # some unanimous clips: zero-weight rows dropped

    model = S.fit_soft_logreg(X, P, C)
    Z = model.named_steps["scale"].transform(X)
    # The scaler fitted with the expanded rows' weights is the clip-level standardisation.
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-12)

    def objective(theta):
        W, b = theta[:K * d].reshape(K, d), theta[K * d:]
        return -(P * log_softmax(Z @ W.T + b, axis=1)).sum() + (W ** 2).sum() / (2 * C)

    lr = model.named_steps["logreg"]
    sk_theta = np.concatenate([lr.coef_.ravel(), lr.intercept_])
    direct = minimize(objective, np.zeros(K * (d + 1)), method="L-BFGS-B",
                      options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 5000})
    assert objective(sk_theta) == pytest.approx(direct.fun, rel=1e-6)
    Q = S.predict_soft(model, X, K)
    Q_direct = np.exp(log_softmax(Z @ direct.x[:K * d].reshape(K, d).T + direct.x[K * d:], axis=1))
    np.testing.assert_allclose(Q, Q_direct, atol=1e-4)
    # The expanded rows' weighted log loss is the soft-label cross-entropy.
    Xr, y, w = S.soft_label_rows(X, P)
    assert len(y) == (P > 0).sum()
    rows_loss = log_loss(y, model.predict_proba(Xr), sample_weight=w, normalize=False,
                         labels=range(K))
    assert rows_loss == pytest.approx(S.soft_cross_entropy(P, Q).sum(), rel=1e-10)
    assert S.soft_cross_entropy(P, Q).sum() == pytest.approx(
        -(P * np.log(Q)).sum(), rel=1e-12)


def test_demo_reference_rows_reach_the_main_table_and_the_gain_analysis(repo, tmp_path):
    """What the score stage does with `references: [..., egemaps_soft]` on the smoke corpus."""
    from ambiemo import analysis, corpora, metrics
    from ambiemo.outputs import tables

    manifest = corpora.load("demo", repo / "data" / "demo")
    refs = ["prior", "uniform", "rater_ceiling", "egemaps_soft"]
    rows = S.supervised_references(manifest, refs, features_dir=tmp_path, corpus="demo",
                                   progress=False, Cs=(1e-3, 1e-1))
    assert (tmp_path / "demo__egemaps.parquet").is_file()
    assert rows["model"].unique().tolist() == ["egemaps_soft"] and len(rows) == len(manifest)
    assert S.supervised_references(manifest, refs[:3], features_dir=tmp_path,
                                   corpus="demo").empty
    # A model row beside it: the prior's distribution under a fake model's greedy strategy.
    base = reference_predictions(manifest, n_draws=1)
    greedy = base[base["model"] == "uniform"].assign(model="m", strategy="greedy")
    scores = metrics.score(pd.concat([base, rows, greedy], ignore_index=True), manifest)
    summary = analysis.summary_table(scores, metrics=["js_divergence"], n_boot=50)
    table = tables.main_table(summary, pd.DataFrame(columns=["model", "strategy", "reason"]),
                              metrics=["js_divergence"])
    soft = table[table["model"] == "egemaps_soft"]
    assert soft["row_type"].tolist() == ["reference"]
    gains = analysis.gain_by_ambiguity(S.reference_as_strategy(scores), manifest,
                                       "js_divergence", n_perm=50, n_boot=50)
    assert set(gains["strategy"]) == {"egemaps_soft"} and set(gains["model"]) == {"m"}
    with pytest.raises(ValueError, match="no rows of the reference 'wavlm_soft'"):
        S.reference_as_strategy(scores, "wavlm_soft")


def test_wavlm_soft_rows_from_the_tiny_encoder(repo, tmp_path, monkeypatch):
    from ambiemo import corpora

    monkeypatch.setenv("AMBIEMO_CACHE", str(tmp_path / "cache"))  # the tiny WavLM's build
    manifest = corpora.load("demo", repo / "data" / "demo")
    rows = S.supervised_references(manifest, ["prior", "wavlm_soft"], features_dir=tmp_path,
                                   corpus="demo", encoder="tiny-wavlm", progress=False,
                                   Cs=(1e-2,))
    assert rows["model"].unique().tolist() == ["wavlm_soft"] and not rows["missing"].any()
    assert (tmp_path / "demo__tiny-wavlm_L1.parquet").is_file()
    params = json.loads(rows.loc[0, "params"])
    assert params["features"]["checkpoint"] == "tiny:wavlm" and params["features"]["layer"] == 1
