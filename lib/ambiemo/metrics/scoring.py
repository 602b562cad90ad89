"""Predictions + Manifest -> Scores: every per-utterance metric of metrics.py for every row.

The `metrics` arrow of docs/design.md (Jia et al., 2026). Missing predictions are scored by the
one rule stated in metrics.py (bounded metrics get their worst value, unbounded ones NaN),
so no table can silently drop them. Re-exported as `ambiemo.metrics.score`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ambiemo.corpora.manifest import manifest_classes
from ambiemo.labels import columns
from ambiemo.metrics.classification import credit, top_labels
from ambiemo.metrics.distribution import entropy
from ambiemo.metrics.registry import METRICS

SCORE_KEYS = ["utt_id", "model", "prompt", "strategy", "n", "replicate"]  # prompt: if present
# The Manifest's clusters (analysis/clusters.py resamples them), copied where present.
CLUSTER_COLUMNS = ("speaker", "sentence")
# The candidates' form (tts.predictions): parsed candidates and how many were one-hot.
FORM_COLUMNS = ("n_parsed", "n_one_hot")


def _reference_label(x):
    return x if isinstance(x, str) and x != "" else None


def score(predictions: pd.DataFrame, manifest: pd.DataFrame, *,
          classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-utterance Scores of `predictions` against the human distributions in `manifest`.

    Columns: the prediction keys (utt_id, model, [prompt,] strategy, n, replicate), `missing`, every
    metric of `metrics.METRICS`, `correct` (credit against the majority label; NaN on a
    tied majority), `pred_label` (top class, ties joined by '|', None when missing),
    `majority`, `entropy_pred`, `entropy_human`, `top_prob`, and both distributions,
    `p_<class>` (the model's, as in Predictions) and `human_p_<class>`, which corpus metrics
    over clips (R², `metrics.r2_score`) need. Where present: the Manifest's `speaker` and
    `sentence` (the clusters every interval resamples) and the Predictions' `n_parsed`,
    `n_one_hot` (the candidates' form).
    """
    classes = manifest_classes(manifest, classes)
    pcols = columns("p", classes)
    lacking = [c for c in pcols if c not in predictions]
    if lacking:
        raise ValueError(f"predictions lack columns {lacking} for classes {classes}")
    unknown = pd.Index(predictions["utt_id"].unique()).difference(manifest["utt_id"])
    if len(unknown):
        raise ValueError(f"{len(unknown)} predicted utterances are not in the Manifest: "
                         f"{list(unknown[:5])}")
    human = manifest.set_index("utt_id").loc[predictions["utt_id"]]
    p = human[pcols].to_numpy(dtype=float)
    q = predictions[pcols].to_numpy(dtype=float)
    missing = ~np.isfinite(q).all(axis=1)
    keys = [k for k in SCORE_KEYS if k in predictions]
    out = predictions[keys].reset_index(drop=True).copy()
    if "replicate" not in out:
        out["replicate"] = 0
    out["missing"] = missing
    for col in CLUSTER_COLUMNS:
        if col in human:
            out[col] = human[col].to_numpy()
    for col in FORM_COLUMNS:
        if col in predictions:
            out[col] = pd.to_numeric(predictions[col], errors="coerce").to_numpy(dtype=float)
    for name, metric in METRICS.items():
        values = np.asarray(metric.fn(p, q), dtype=float)
        values[missing] = np.nan if metric.worst is None else metric.worst
        out[name] = values
    majority = [_reference_label(x) for x in human["majority"]]
    pred = top_labels(q, classes)
    out["correct"] = credit(majority, pred)
    out["pred_label"] = pd.Series(pred, dtype=object)
    out["majority"] = pd.Series(majority, dtype=object)
    out["entropy_pred"] = entropy(q)
    out["entropy_human"] = human["entropy_bits"].to_numpy(dtype=float) \
        if "entropy_bits" in human else entropy(p)
    out["top_prob"] = np.where(missing, np.nan, np.nanmax(np.where(missing[:, None], 0, q), axis=1))
    out[pcols] = q
    out[columns("human_p", classes)] = p
    return out
