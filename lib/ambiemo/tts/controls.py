"""Controls scored beside every strategy: what a gain over greedy must beat.

Issue #13 (study protocol v2) found that part of a strategy's gain over the greedy baseline
is produced by the metrics themselves: JS and BC reward any mixture over a one-hot answer.
On CREMA-D, smoothing a one-hot greedy answer with no new information (0.6 one-hot + 0.4
uniform) kept accuracy at 0.455 but moved JS 0.572 -> 0.381 and BC 0.447 -> 0.665, and that
"gain" grew with ambiguity. A strategy's gain over greedy therefore counts only against
controls that spend the same information, scored as Predictions of the same model:

- `greedy_smoothed`: the greedy answer mixed with the uniform distribution,
  (1 - w) greedy + w / K, with the weight w cross-fitted over speaker-independent folds;
- `vote_share`: the share of the N sampled answers' top classes (a tts strategy, since it
  needs no fitting; see `tts.vote_share`);
- `first_parsable`: the first of the N samples that parses (a tts strategy too): a gain
  over greedy that it shares is a missing greedy answer rescued, not aggregation;
- `label_logits_tempered`: the class-name probabilities (`label_logits`) with one
  temperature, p ** (1 / T) renormalised, cross-fitted the same way: one parameter of
  calibration against N-fold sampling.

Cross-fitting (Jia et al., 2026, evaluate zero-shot; anything fitted on human labels must
not see the clips it is scored on): the Manifest's speakers are split into folds
(`corpora.splits.speaker_folds`); the parameter for the clips of fold f is the one that
minimises the mean JS divergence on the other folds' clips, so no clip's own labels, nor
its speaker's, are used. Clips whose speaker is unknown belong to no fold and get the
parameter fitted on every clip with a known speaker. Every row records its fold, its
fitted parameter, the number of folds, the seed and the objective.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from ambiemo import metrics as M
from ambiemo.corpora.splits import EXCLUDED, speaker_folds
from ambiemo.labels import columns
from ambiemo.corpora.manifest import manifest_classes
from ambiemo.tts.predictions import params_json

CONTROL_STRATEGIES = ("greedy_smoothed", "vote_share", "first_parsable",
                      "label_logits_tempered")
DEFAULT_N_FOLDS = 5
OBJECTIVE = "js_divergence"
LOG_T_BOUNDS = (np.log(0.02), np.log(50.0))  # temperatures searched: 0.02 .. 50


class ControlUnavailable(ValueError):
    """A control cannot be fitted for one model and arm (e.g. no other fold has a scored
    clip): that model's control is an `unavailable` row with this reason, never the end of
    the score stage for every model."""


def smooth_with_uniform(q: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) q + weight / K per row."""
    return (1.0 - weight) * q + weight / q.shape[-1]


def temper(q: np.ndarray, temperature: float) -> np.ndarray:
    """q ** (1 / T) renormalised per row (zeros stay zero); T = 1 returns q."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logq = np.where(q > 0, np.log(np.where(q > 0, q, 1.0)), -np.inf) / temperature
        logq = logq - logq.max(axis=-1, keepdims=True)
        e = np.exp(logq)
        return e / e.sum(axis=-1, keepdims=True)


def fit_smoothing_weight(p: np.ndarray, q: np.ndarray) -> float:
    """The weight w in [0, 1] minimising mean JS(p, (1 - w) q + w / K)."""
    res = minimize_scalar(lambda w: M.js_divergence(p, smooth_with_uniform(q, w)).mean(),
                          bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-6})
    return float(res.x)


def fit_temperature(p: np.ndarray, q: np.ndarray) -> float:
    """The temperature T minimising mean JS(p, q ** (1 / T) renormalised), T in 0.02..50."""
    res = minimize_scalar(lambda t: M.js_divergence(p, temper(q, np.exp(t))).mean(),
                          bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def cross_fit(p: np.ndarray, q: np.ndarray, folds: np.ndarray,
              fit: Callable[[np.ndarray, np.ndarray], float],
              apply: Callable[[np.ndarray, float], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions and the parameter used per row.

    Rows of fold f get the parameter fitted on the rows of every other fold (missing
    predictions, NaN rows of q, are never fitted on and stay NaN); rows with fold
    `EXCLUDED` get the parameter fitted on every row with a fold.
    """
    ok = np.isfinite(q).all(axis=1) & np.isfinite(p).all(axis=1)
    out = np.full(q.shape, np.nan)
    param = np.full(len(q), np.nan)
    for f in np.unique(folds):
        train = ok & (folds != EXCLUDED) & (folds != f)
        if not train.any():
            raise ControlUnavailable(f"fold {f}: no other fold has a scored clip to fit on")
        value = fit(p[train], q[train])
        rows = folds == f
        param[rows] = value
        out[rows & ok] = apply(q[rows & ok], value)
    return out, param


CONTROLS = {
    # control: (strategy it is built from, fit, apply, name of its parameter)
    "greedy_smoothed": ("greedy", fit_smoothing_weight, smooth_with_uniform, "weight"),
    "label_logits_tempered": ("label_logits", fit_temperature, temper, "temperature"),
}


def control_predictions(predictions: pd.DataFrame, manifest: pd.DataFrame, *,
                        n_folds: int = DEFAULT_N_FOLDS, seed: int = 0,
                        unknown: str = "exclude",
                        classes: Sequence[str] | None = None,
                        unavailable: list | None = None) -> pd.DataFrame:
    """Predictions rows of `greedy_smoothed` and `label_logits_tempered` for every model of
    `predictions` (and prompt arm, if a `prompt` column is present) that has `greedy` /
    `label_logits` rows (a model without them has no such control). Same columns as `predict`; `n` 1, `replicate` 0; `params` holds the fold, the
    fitted parameter (`weight` or `temperature`), `n_folds`, `seed`, `objective` and the
    source strategy. `n_folds` is capped at the number of known speakers.

    With a list `unavailable`, a control that cannot be fitted for one model and arm
    (`ControlUnavailable`) is appended to it as a dict (model, [prompt,] strategy, reason)
    and the other models' controls are still built; without it, the error is raised.
    """
    classes = manifest_classes(manifest, classes)
    pcols = columns("p", classes)
    speakers = manifest["speaker"].dropna().nunique()
    k = min(n_folds, speakers)
    if k < 2:
        raise ValueError(f"cross-fitting needs at least two speakers; the Manifest has {speakers}")
    fold_of = pd.Series(speaker_folds(manifest, k, seed=seed, unknown=unknown).to_numpy(),
                        index=manifest["utt_id"])
    human = manifest.set_index("utt_id")[pcols]
    frames = []
    # One control per model and, when Predictions carry it, per prompt arm.
    keys = ["model"] + [k for k in ("prompt",) if k in predictions]
    for key, of_model in predictions.groupby(keys, sort=False):
        model = key[0]
        for control, (source, fit, apply, pname) in CONTROLS.items():
            # Single-answer strategies have one replicate (0; absent or NaN in hand-built frames).
            replicate = (of_model["replicate"].fillna(0) if "replicate" in of_model
                         else pd.Series(0, index=of_model.index))
            rows = of_model[(of_model["strategy"] == source) & (replicate == 0)]
            if rows.empty:
                continue
            utts = rows["utt_id"].to_numpy()
            folds = fold_of.reindex(utts).to_numpy()
            if np.isnan(folds.astype(float)).any():
                raise ValueError(f"{model}/{source}: utterances not in the Manifest: "
                                 f"{list(utts[np.isnan(folds.astype(float))][:5])}")
            try:
                out, param = cross_fit(human.loc[utts].to_numpy(float),
                                       rows[pcols].to_numpy(float), folds.astype(int), fit,
                                       apply)
            except ControlUnavailable as e:
                if unavailable is None:
                    raise
                unavailable.append({**dict(zip(keys, key)), "strategy": control,
                                    "reason": f"not fitted on {source}: {e}"})
                continue
            missing = ~np.isfinite(out).all(axis=1)
            frame = pd.DataFrame({
                "utt_id": utts, **dict(zip(keys, key)), "strategy": control, "n": 1,
                "replicate": 0,
                "n_usable": (~missing).astype(int), "n_failed": missing.astype(int),
                "missing": missing,
                "params": [params_json({"fold": int(f), pname: float(v), "n_folds": k,
                                        "seed": seed, "objective": OBJECTIVE,
                                        "source": source})
                           for f, v in zip(folds, param)]})
            for col in ("n_parsed", "n_one_hot"):   # the source's candidates, their form
                if col in rows:
                    frame[col] = rows[col].to_numpy()
            frame[pcols] = out
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*predictions.columns])
    return pd.concat(frames, ignore_index=True)
