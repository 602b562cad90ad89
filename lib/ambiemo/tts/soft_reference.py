"""A supervised soft-label reference: what a small model trained on the corpus's own votes reaches.

The reference rows of Jia et al. (2026) (prior, uniform, resampled raters) never listen to
the audio. This row does (issue #17): per-clip acoustic features (eGeMAPS v02, or a speech
encoder's pooled hidden states), standardised, then a multinomial logistic regression trained
on the human *distributions*: the soft-label cross-entropy

    L(W, b) = sum_i sum_k p_ik * -log softmax(W x_i + b)_k  +  ||W||^2 / (2 C),

which scikit-learn's `LogisticRegression` minimises exactly when each clip is expanded into K
rows (x_i, class k) weighted by p_ik (`soft_label_rows`); zero-weight rows are dropped, they
add nothing to L. The standardisation is fitted with the same weights, which sum to 1 per
clip, so it is the clip-level mean and variance. C is chosen by inner cross-validation over
speaker groups (the lowest held-out soft cross-entropy), inside each outer training fold.

Cross-fitting: clips are dealt into speaker-independent folds (corpora/splits.py); each fold
is predicted by a model fitted on the others, so every clip's prediction comes from a model
that never heard its speaker (asserted per fold). Folds are computed, and training rows
ordered, by utt_id, so a clip's prediction does not depend on the Manifest's row order. A
clip without features (a failure row of features/cache.py) or without a known speaker (with
`unknown="exclude"`) gets a missing prediction, which scoring counts at the metric's worst.

The output is a Predictions frame in the layout of references.py (strategy "reference",
n 1), model `egemaps_soft` or `wavlm_soft`, each row's `params` naming its fold, its C and
every setting that shaped it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ambiemo.corpora.splits import (EXCLUDED, assert_speaker_independent, group_folds,
                                    speaker_groups)
from ambiemo.features.cache import feature_matrix
from ambiemo.labels import columns
from ambiemo.tts.predictions import params_json
from ambiemo.corpora.manifest import manifest_classes

DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_N_FOLDS = 5
DEFAULT_INNER_FOLDS = 3
MAX_ITER = 500
DEFAULT_MAX_INNER_CLIPS = 5000
EPS = 1e-12
SOFT_REFERENCE_MODELS = ("egemaps_soft", "wavlm_soft")


def soft_label_rows(X: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_rows, y, w): clip i repeated once per class k with p_ik > 0, labelled k, weighted p_ik.

    Weighted multinomial cross-entropy over these rows equals the soft-label cross-entropy
    of the clips (rows with weight 0 contribute nothing and are left out).
    """
    i, k = np.nonzero(P > 0)
    return X[i], k, P[i, k]


def soft_cross_entropy(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Per-clip -sum_k p_k log q_k (nats); q clipped at 1e-12 so a zero never gives inf."""
    return -(P * np.log(np.clip(Q, EPS, 1.0))).sum(axis=1)


def fit_soft_logreg(X: np.ndarray, P: np.ndarray, C: float, *, warm=None):
    """Standardise + multinomial logistic regression fitted on soft labels P (n, K)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    Xr, y, w = soft_label_rows(X, P)
    model = warm if warm is not None else Pipeline(
        [("scale", StandardScaler()),
         ("logreg", LogisticRegression(C=C, max_iter=MAX_ITER, warm_start=True))])
    model.set_params(logreg__C=C)
    # A feature constant within the fold (voicing features of unvoiced clips) can get a
    # weighted variance of -1e-20; sklearn then treats it as constant (scale 1), harmlessly.
    with np.errstate(invalid="ignore"):
        model.fit(Xr, y, scale__sample_weight=w, logreg__sample_weight=w)
    return model


def predict_soft(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, K) probabilities; a class absent from the training labels gets probability 0."""
    out = np.zeros((len(X), n_classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def select_C(X: np.ndarray, P: np.ndarray, groups: np.ndarray, *, Cs: Sequence[float],
             inner_folds: int, seed: int) -> tuple[float, dict[float, float]]:
    """The C of `Cs` with the lowest mean held-out soft cross-entropy over speaker folds.

    Returns (C, {C: mean held-out loss per clip}). With fewer than 2 speakers the inner
    split is impossible and the largest C (weakest penalty) is returned with no losses.
    """
    Cs = sorted(float(c) for c in Cs)
    n_groups = len(set(groups))
    if len(Cs) == 1 or n_groups < 2:
        return Cs[-1], {}
    folds = group_folds(pd.Series(groups, dtype=object), min(inner_folds, n_groups),
                        seed=seed).to_numpy()
    loss = {c: 0.0 for c in Cs}
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        warm = None
        for c in Cs:  # ascending C: each fit starts from the more penalised solution
            warm = fit_soft_logreg(X[tr], P[tr], c, warm=warm)
            loss[c] += soft_cross_entropy(P[te], predict_soft(warm, X[te], P.shape[1])).sum()
    loss = {c: v / len(X) for c, v in loss.items()}
    return min(loss, key=loss.get), loss


def _fit_fold(X_train, P_train, groups_train, X_test, *, Cs, inner_folds, max_inner_clips,
              seed):
    """One outer fold: C by inner speaker CV (on a seeded subsample), refit, predict."""
    from threadpoolctl import threadpool_limits

    # One thread: sklearn's OpenMP loss loops spin-wait, and on a shared or busy machine
    # several threads per fit were measured 30x slower than one (and folds run in parallel).
    with threadpool_limits(limits=1):
        inner = np.arange(len(X_train))
        if len(inner) > max_inner_clips:
            inner = np.sort(np.random.default_rng(seed).choice(inner, max_inner_clips,
                                                               replace=False))
        C, losses = select_C(X_train[inner], P_train[inner], groups_train[inner], Cs=Cs,
                             inner_folds=inner_folds, seed=seed)
        model = fit_soft_logreg(X_train, P_train, C)
        return predict_soft(model, X_test, P_train.shape[1]), C, losses, len(inner)


def _rows(utt_ids, model: str, Q: np.ndarray, classes, params: list[str],
          missing: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"utt_id": np.asarray(utt_ids), "model": model,
                          "strategy": "reference", "n": 1, "replicate": 0,
                          "n_usable": (~missing).astype(int), "n_failed": missing.astype(int),
                          "missing": missing, "params": params})
    frame[columns("p", classes)] = Q
    return frame


def soft_reference_predictions(manifest: pd.DataFrame, features: pd.DataFrame, *,
                               name: str = "egemaps_soft", seed: int = 0,
                               n_folds: int = DEFAULT_N_FOLDS,
                               inner_folds: int = DEFAULT_INNER_FOLDS,
                               Cs: Sequence[float] = DEFAULT_CS, unknown: str = "exclude",
                               max_inner_clips: int = DEFAULT_MAX_INNER_CLIPS,
                               n_jobs: int = 1,
                               classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Cross-fitted soft-label predictions for every Manifest clip, as reference rows.

    `features`: a features frame of features/cache.py (utt_id, status, feature columns) with
    a row for every Manifest clip. `n_folds` speaker-independent outer folds (fewer when the
    corpus has fewer speakers: the number used is in `params`), `inner_folds` speaker folds
    inside each training part to choose C from `Cs`; `unknown` is the policy for clips
    without a speaker (corpora/splits.py). C is chosen on at most `max_inner_clips` clips of
    each training part (a seeded subsample: on a large corpus the penalty barely matters,
    and the inner search would otherwise cost 15 full fits per fold); `n_jobs` outer folds
    are fitted at a time (joblib processes, one BLAS/OpenMP thread each). Output columns:
    utt_id, model (= `name`), strategy "reference", n 1, replicate 0, n_usable, n_failed,
    missing, params, p_<class>, in the Manifest's row order.
    """
    classes = manifest_classes(manifest, classes)
    order = np.argsort(manifest["utt_id"].astype(str).to_numpy(), kind="stable")
    m = manifest.iloc[order].reset_index(drop=True)  # canonical order: row order never matters
    X, ok = feature_matrix(m, features)
    P = m[columns("p", classes)].to_numpy(dtype=float)
    usable_p = np.isfinite(P).all(axis=1) & np.isclose(P.sum(axis=1), 1.0, atol=1e-6)
    groups = speaker_groups(m, unknown)
    n_speakers = groups[ok & usable_p].nunique()
    if n_speakers < 2:
        raise ValueError(f"{name}: cross-fitting needs at least 2 speakers with features, "
                         f"found {n_speakers}")
    k_folds = min(n_folds, n_speakers)
    folds = group_folds(groups, k_folds, seed=seed).to_numpy()
    assert_speaker_independent(m, pd.Series(folds))
    settings = dict(features.attrs.get("settings", {}))
    train_sizes = [int(((folds != f) & (folds != EXCLUDED) & ok & usable_p).sum())
                   for f in range(k_folds)]
    base = {"features": settings, "n_folds": k_folds, "inner_folds": inner_folds,
            "max_inner_clips": max_inner_clips, "Cs": [float(c) for c in Cs], "seed": seed,
            "unknown": unknown,
            "loss": "soft-label cross-entropy", "scaler": "StandardScaler (per fold)"}
    Q = np.full(P.shape, np.nan)
    params = [None] * len(m)
    tests, jobs = [], []
    for f in range(k_folds):
        test = (folds == f) & ok
        train = (folds != f) & (folds != EXCLUDED) & ok & usable_p
        leaked = set(groups[train]) & set(groups[test])
        if leaked:  # group_folds guarantees this; a fold that leaks must never be scored
            raise AssertionError(f"{name}: fold {f} trains on speakers it predicts: "
                                 f"{sorted(leaked)[:5]}")
        tests.append(test)
        jobs.append(delayed(_fit_fold)(X[train], P[train], groups[train].to_numpy(),
                                       X[test], Cs=Cs, inner_folds=inner_folds,
                                       max_inner_clips=max_inner_clips, seed=seed + f))
    for f, (test, (q, C, losses, n_inner)) in enumerate(
            zip(tests, Parallel(n_jobs=n_jobs)(jobs))):
        Q[test] = q
        fold_params = params_json({**base, "fold": f, "C": C, "n_train": int(train_sizes[f]),
                                   "n_inner": n_inner,
                                   "inner_loss": {str(c): round(v, 6)
                                                  for c, v in losses.items()}})
        for i in np.flatnonzero(test):
            params[i] = fold_params
    for i in np.flatnonzero(np.isnan(Q).any(axis=1)):
        why = ("no features: " + str(features.set_index("utt_id").loc[m["utt_id"].iloc[i],
                                                                        "reason"])
               if not ok[i] else f"speaker unknown (unknown={unknown!r})")
        params[i] = params_json({**base, "missing": why})
    missing = np.isnan(Q).any(axis=1)
    out = _rows(m["utt_id"], name, Q, classes, params, missing)
    # Back to the caller's row order.
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def supervised_references(manifest: pd.DataFrame, references: Sequence[str], *,
                          features_dir: str | Path, corpus: str, seed: int = 0,
                          n_jobs: int = 1, executor: str = "process",
                          encoder: str = "wavlm-base-plus", layer: int | None = None,
                          progress: bool = True, **options) -> pd.DataFrame:
    """The rows of every supervised reference named in `references` (a config's list).

    Names other than `SOFT_REFERENCE_MODELS` (prior, uniform, ...) are left to
    references.py and ignored here; an empty frame comes back when none is named. Features
    are extracted once and cached at `<features_dir>/<corpus>__egemaps.parquet` (and
    `__<encoder>_L<layer>.parquet` for `wavlm_soft`); `options` go to
    `soft_reference_predictions` (n_folds, inner_folds, Cs, unknown, ...).
    """
    features_dir = Path(features_dir)
    frames = []
    for name in [r for r in references if r in SOFT_REFERENCE_MODELS]:
        if name == "egemaps_soft":
            from ambiemo.features.egemaps import extract_egemaps

            feats = extract_egemaps(manifest, features_dir / f"{corpus}__egemaps.parquet",
                                    n_jobs=n_jobs, executor=executor, progress=progress)
        else:
            from ambiemo.features.ssl import extract_ssl, get_encoder

            layer = get_encoder(encoder).layer if layer is None else layer
            feats = extract_ssl(manifest, features_dir / f"{corpus}__{encoder}_L{layer}.parquet",
                                encoder=encoder, layer=layer, n_jobs=n_jobs,
                                executor=executor, progress=progress)
        frames.append(soft_reference_predictions(manifest, feats, name=name, seed=seed,
                                                 n_jobs=n_jobs, **options))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def reference_as_strategy(scores: pd.DataFrame, reference: str = "egemaps_soft") -> pd.DataFrame:
    """`scores` plus the reference's rows copied into every model as strategy `reference`.

    Reference rows are left out of per-model comparisons (analysis.gain_by_ambiguity); with
    this copy, `gain_by_ambiguity(reference_as_strategy(scores), manifest, metric)` also
    gives, per model and ambiguity bin, the paired gain of the supervised reference over the
    model's greedy answer, on the same clips: where a model trained for the task sits beside
    the test-time-scaling gains.
    """
    ref = scores[(scores["model"] == reference) & (scores["strategy"] == "reference")]
    if ref.empty:
        present = sorted(scores.loc[scores["strategy"] == "reference", "model"].unique())
        raise ValueError(f"scores have no rows of the reference {reference!r}; "
                         f"present: {present}")
    models = scores.loc[scores["strategy"] != "reference", "model"].unique()
    copies = [ref.assign(model=m, strategy=reference) for m in models]
    return pd.concat([scores, *copies], ignore_index=True)
