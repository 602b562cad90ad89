"""Reference rows scored beside every model: corpus prior, uniform, a new rater panel.

Jia et al. (2026) report model rows next to trivial references, because on some corpora a
trivial answer is already strong (on CREMA-D voice-only the class prior reaches JS 0.29,
BC 0.74 and 57% accuracy against the majority label). A gain means something only against
these rows (and the controls of controls.py), so they are Predictions like any other and go
through the same scoring.

`new_raters` (formerly `rater_ceiling`) estimates how well a second, independent panel of
raters, as large as the first, would agree with the first. It is *not* an upper bound (a
smoothed output can score a better JS or BC than a panel, whose distributions are multiples
of 1 / n_raters). Redrawing votes from the observed distribution -- what it did before --
is optimistic: the observed panel is itself a noisy draw, and a redraw adds only one of the
two panels' noise (on CREMA-D's distributions as truth: JS .040 against a true second
panel's .094). It is now measured by split halves (`split_half`):

- each clip's votes are split at random into two halves of n1 = floor(n / 2) and
  n2 = n - n1 votes (a multivariate hypergeometric draw: for raters who vote independently
  from the clip's true distribution p, the halves are independent multinomial panels of
  sizes n1 and n2 from the same p, without knowing p);
- the halves are scored against each other and corrected for the rater count. For two
  independent panels of sizes a and b, E[(P_k - Q_k)^2] = p_k (1 - p_k) (1/a + 1/b), and JS,
  1 - BC and the squared error of R² are to leading order quadratic in P - Q, so each
  scales with (1/a + 1/b): from the halves (1/n1 + 1/n2) to two full panels (2/n), the
  factor c = (2/n) / (1/n1 + 1/n2) (one half for even n). JS is c x JS(half, half); BC is
  1 - c x (1 - BC(half, half)); for R² the row's distribution is
  q = p_observed + sqrt(c) (half B - half A), whose squared error against the observed panel
  has the expected size of a full second panel's (so the tables' R² over clips is the
  corrected one; q is not a distribution, and it is not drawn). Accuracy is the top class
  of q against the observed majority. Metrics with no derived correction (JS distance, KL,
  total variation, R² per clip) are left NaN for this row.
- Validated by simulation with CREMA-D's own distributions and rater counts as truth
  (`tests/test_controls.py`): JS .090 against a true second panel's .093, BC .916 against
  .918, accuracy .788 against .768, R² .637 against .643. The correction is leading-order:
  on dispersed truths with few raters it underestimates (Dirichlet(0.4) truths over six
  classes: -.019 JS at 10 raters, -.039 at 6, -.056 at 4).
- Clips with fewer than `MIN_SPLIT_RATERS` (6) raters or fractional votes (an IEMOCAP
  evaluator naming two classes) are not split: their row is NaN (not missing), and the
  count is in `params` (`clips_not_split`). IEMOCAP's three-rater panels get no new_raters
  value at all: a second panel cannot be measured from three votes.
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


# The main table's note for each reference row: what it is, and what it has seen.
REFERENCE_NOTES = {
    "prior": "reference: fitted in-sample (the mean human distribution of the very clips it "
             "is scored on; its interval does not count that fit)",
    "uniform": "reference: 1/K for every class",
    "new_raters": "reference: a second rater panel of the same size, estimated from split "
                  "halves of each clip's votes (not a bound)",
}

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


DEFAULT_N_SPLITS = DEFAULT_N_DRAWS
# Below this many raters the halves are too small for the leading-order correction (it
# underestimates a second panel's JS by .04-.06 at 6 raters... .06-.10 at 4 on dispersed
# truths; docs/design.md): such clips get no new_raters value rather than a biased one.
MIN_SPLIT_RATERS = 6
# Metrics with a derived rater-count correction; the others are NaN for new_raters.
CORRECTED = {"js_divergence": "quadratic", "bhattacharyya_coefficient": "one_minus_quadratic"}


def rater_count_factor(n_raters) -> np.ndarray:
    """c = (2 / n) / (1 / n1 + 1 / n2), n1 = floor(n / 2), n2 = n - n1: the factor that
    takes a quadratic disagreement between the two halves of an n-rater panel to the
    expected disagreement between two full n-rater panels (module docstring)."""
    n = np.asarray(n_raters, dtype=float)
    n1 = np.floor(n / 2)
    n2 = n - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n1 >= 1, (2 / n) / (1 / n1 + 1 / n2), np.nan)


def split_votes(votes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random split of each row's integer votes into halves of floor(n / 2) and the rest
    (multivariate hypergeometric). Rows that cannot be split come back as NaN."""
    votes = np.asarray(votes, dtype=float)
    n = votes.sum(axis=1)
    ok = splittable(votes)
    a = np.full(votes.shape, np.nan)
    for i in np.flatnonzero(ok):
        a[i] = rng.multivariate_hypergeometric(np.rint(votes[i]).astype(np.int64),
                                               int(n[i] // 2))
    return a, votes - a


def splittable(votes: np.ndarray) -> np.ndarray:
    """Rows with whole votes and at least `MIN_SPLIT_RATERS` of them."""
    votes = np.asarray(votes, dtype=float)
    return (np.isclose(votes, np.rint(votes)).all(axis=1)
            & (np.rint(votes.sum(axis=1)) >= MIN_SPLIT_RATERS))


def split_half(manifest: pd.DataFrame, *, n_splits: int = DEFAULT_N_SPLITS, seed: int = 0,
               classes=None):
    """Per split: the halves' distributions A and B (n, K), the factor c per clip and q, the
    corrected second panel (module docstring). Yields (split, A, B, c, q); deterministic in
    `seed` and the Manifest's row order."""
    classes = manifest_classes(manifest, classes)
    votes = manifest[columns("votes", classes)].to_numpy(dtype=float)
    p = manifest[columns("p", classes)].to_numpy(dtype=float)
    n = votes.sum(axis=1)
    c = rater_count_factor(n)
    rng = np.random.default_rng([seed, 2])   # its own stream: no other reference moves
    for s in range(n_splits):
        a, b = split_votes(votes, rng)
        with np.errstate(invalid="ignore", divide="ignore"):
            pa, pb = a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True)
        yield s, pa, pb, c, p + np.sqrt(c)[:, None] * (pb - pa)


def reference_predictions(manifest: pd.DataFrame, *, n_draws: int = DEFAULT_N_DRAWS,
                          seed: int = 0, classes=None) -> pd.DataFrame:
    """Predictions frame (strategy "reference", n 1) for the models prior, uniform, new_raters.

    - `prior`: the mean human distribution over the Manifest's utterances, computed
      in-sample (over the same utterances that are scored, as the paper's prior row implies);
      it is an optimistic trivial baseline, since it has seen the evaluation labels.
    - `uniform`: 1/K for every class.
    - `new_raters`: a second rater panel estimated by split halves, `n_draws` seeded splits,
      one row per split (`replicate` = split), `p_` = the corrected panel q (module
      docstring); `rescore_new_raters` then puts the split-half metrics into its Scores.
    """
    classes = manifest_classes(manifest, classes)
    p = manifest[columns("p", classes)].to_numpy(dtype=float)
    utt_ids = manifest["utt_id"].to_numpy()
    raters = manifest["n_raters"].to_numpy(dtype=float)
    if not np.isfinite(raters).all() or (raters < 1).any():
        bad = manifest.loc[~(np.isfinite(raters) & (raters >= 1)), "utt_id"].head(5).tolist()
        raise ValueError(f"new_raters needs n_raters >= 1 for every utterance; not so for {bad}")
    prior = np.broadcast_to(p.mean(axis=0), p.shape)
    uniform = np.full(p.shape, 1.0 / len(classes))
    frames = [_rows(utt_ids, "prior", prior, classes, params={"in_sample": True}),
              _rows(utt_ids, "uniform", uniform, classes)]
    unsplit = int((~splittable(manifest[columns("votes", classes)].to_numpy(float))).sum())
    for d, _, _, _, q in split_half(manifest, n_splits=n_draws, seed=seed, classes=classes):
        frames.append(_rows(utt_ids, "new_raters", q, classes, replicate=d,
                            params={"method": "split_half", "n_splits": n_draws, "seed": seed,
                                    "clips_not_split": unsplit}))
    return pd.concat(frames, ignore_index=True)


def rescore_new_raters(scores: pd.DataFrame, manifest: pd.DataFrame, *, seed: int = 0,
                       classes=None) -> pd.DataFrame:
    """`scores` (from `metrics.score`) with the new_raters rows' metrics measured by split
    halves: JS and BC of half against half, corrected for the rater count; accuracy from q's
    top class (scored as usual); the metrics with no derived correction NaN; clips that
    cannot be split NaN throughout. The splits are redrawn from `seed` (the one
    `reference_predictions` was given) for as many splits as the rows have replicates, so
    the values belong to the same halves as the Predictions' q."""
    from ambiemo import metrics as M

    rows = scores["model"].eq("new_raters")
    if not rows.any():
        return scores
    classes = manifest_classes(manifest, classes)
    n_splits = int(scores.loc[rows, "replicate"].max()) + 1
    out = scores.copy()
    index = pd.Index(manifest["utt_id"])
    ok = splittable(manifest[columns("votes", classes)].to_numpy(float))
    no_correction = [m for m in M.METRICS if m not in CORRECTED]
    for s, pa, pb, c, _ in split_half(manifest, n_splits=n_splits, seed=seed, classes=classes):
        these = rows & out["replicate"].eq(s)
        at = index.get_indexer(out.loc[these, "utt_id"])
        js = c * M.js_divergence(pa, pb)
        bc = 1 - c * (1 - M.bhattacharyya_coefficient(pa, pb))
        out.loc[these, "js_divergence"] = js[at]
        out.loc[these, "bhattacharyya_coefficient"] = bc[at]
        out.loc[these, no_correction] = np.nan
        bad = these.copy()
        bad[these] = ~ok[at]
        out.loc[bad, [*M.METRICS, "correct", "top_prob", "entropy_pred"]] = np.nan
        out.loc[bad, columns("p", classes)] = np.nan
    # q is no distribution: its entropy and top probability mean nothing
    out.loc[rows, ["entropy_pred", "top_prob"]] = np.nan
    out.loc[rows, "missing"] = False
    return out
