"""Reference rows scored beside every model: corpus prior, uniform, a new rater panel.

Jia et al. (2026) report model rows next to trivial references, because on some corpora a
trivial answer is already strong (on CREMA-D voice-only the class prior reaches JS 0.29,
BC 0.74 and 57% accuracy against the majority label). A gain means something only against
these rows (and the controls of controls.py), so they are Predictions like any other and go
through the same scoring.

`new_raters` (formerly `rater_ceiling`) redraws each clip's votes from its own human
distribution with the same number of raters: it estimates how well a second, independent
panel of raters would agree with the first. It is *not* an upper bound: its distributions
are as coarse as the panel (multiples of 1 / n_raters), so a smoothed output can score a
better JS or BC than it, and on clear clips a one-hot answer can match it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ambiemo.labels import columns
from ambiemo.corpora.manifest import manifest_classes
from ambiemo.tts.predictions import params_json

DEFAULT_N_DRAWS = 10
REFERENCE_MODELS = ("prior", "uniform", "new_raters")


def is_reference(frame: pd.DataFrame) -> pd.Series:
    """True for reference rows: strategy "reference" (every reference row has it), or a
    reference model's name. The one test of "is this a reference row" every table, figure
    and analysis uses."""
    return frame["strategy"].eq("reference") | frame["model"].isin(REFERENCE_MODELS)


NO_PROMPT = "-"   # the `prompt` of rows that ask no model (reference rows): in every arm


def of_arm(frame: pd.DataFrame, prompt: str) -> pd.DataFrame:
    """The rows of one prompt arm (`generation.prompts`) and the reference rows, which
    belong to every arm; a frame without a `prompt` column is one arm and comes back whole."""
    if "prompt" not in frame:
        return frame
    return frame[frame["prompt"].eq(prompt) | is_reference(frame)]


def _rows(utt_ids, model: str, dists: np.ndarray, classes, *, replicate: int = 0,
          params: dict | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"utt_id": np.asarray(utt_ids), "model": model, "strategy": "reference",
                          "n": 1, "replicate": replicate, "n_usable": 1, "n_failed": 0,
                          "missing": False, "params": params_json(params or {})})
    frame[columns("p", classes)] = dists
    return frame


def reference_predictions(manifest: pd.DataFrame, *, n_draws: int = DEFAULT_N_DRAWS,
                          seed: int = 0, classes=None) -> pd.DataFrame:
    """Predictions frame (strategy "reference", n 1) for the models prior, uniform, new_raters.

    - `prior`: the mean human distribution over the Manifest's utterances, computed
      in-sample (over the same utterances that are scored, as the paper's prior row implies);
      it is an optimistic trivial baseline, since it has seen the evaluation labels.
    - `uniform`: 1/K for every class.
    - `new_raters`: for each clip, `n_raters` votes redrawn from its own human
      distribution, `n_draws` seeded draws, one row per draw (`replicate` = draw): the
      agreement of a second rater panel with the first, not a bound (module docstring).
      Metrics are averaged over draws after scoring: the redrawn distributions averaged
      first would converge to the human one and score perfectly.
    """
    classes = manifest_classes(manifest, classes)
    p = manifest[columns("p", classes)].to_numpy(dtype=float)
    utt_ids = manifest["utt_id"].to_numpy()
    raters = manifest["n_raters"].to_numpy(dtype=float)
    if not np.isfinite(raters).all() or (raters < 1).any():
        bad = manifest.loc[~(np.isfinite(raters) & (raters >= 1)), "utt_id"].head(5).tolist()
        raise ValueError(f"new_raters needs n_raters >= 1 for every utterance; not so for {bad}")
    raters = np.rint(raters).astype(int)
    prior = np.broadcast_to(p.mean(axis=0), p.shape)
    uniform = np.full(p.shape, 1.0 / len(classes))
    frames = [_rows(utt_ids, "prior", prior, classes, params={"in_sample": True}),
              _rows(utt_ids, "uniform", uniform, classes)]
    rng = np.random.default_rng(seed)
    # Renormalise so that float noise in a stored distribution cannot trip multinomial's check.
    pvals = p / p.sum(axis=1, keepdims=True)
    for d in range(n_draws):
        votes = rng.multinomial(raters, pvals)
        frames.append(_rows(utt_ids, "new_raters", votes / raters[:, None], classes,
                            replicate=d, params={"n_draws": n_draws, "seed": seed}))
    return pd.concat(frames, ignore_index=True)
