"""Corpus statistics: how ambiguous each corpus's human judgements are.

The corpus table of Jia et al. (2026) describes IEMOCAP, MSP-Podcast and CREMA-D by the
number of clips, raters per clip, the entropy of the human vote distribution and how often
raters agree; notebook 01 prints this table from `corpus_statistics`. Everything is computed
from the Manifest alone, so no audio is needed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ambiemo.labels import columns


def corpus_statistics(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row describing `manifest`.

    Columns: `corpus`, `label_space`, `clips`, `raters_mean|min|max` (`n_raters`),
    `entropy_bits_mean`, `share_unanimous` (every vote on one class: entropy 0),
    `share_tied` (the top vote count is shared, so `majority` is None), `missing_audio`,
    `unusable_audio` (files present that a model cannot be given: audio_check.py), and
    two class priors: `prior_<class>`, the mean of the per-clip distributions (each clip
    weighs the same; this is the corpus-prior baseline a distribution metric is compared
    with) and `vote_share_<class>`, the share of all votes (clips with more raters weigh
    more; for a corpus with whole votes this is what counting the annotation file gives).
    """
    classes = list(manifest.attrs["classes"])
    p = manifest[columns("p", classes)].to_numpy(dtype=float)
    votes = manifest[columns("votes", classes)].to_numpy(dtype=float)
    raters = manifest["n_raters"].to_numpy(dtype=float)
    row = {
        "corpus": manifest.attrs.get("corpus"),
        "label_space": manifest.attrs.get("label_space"),
        "clips": len(manifest),
        "raters_mean": raters.mean(),
        "raters_min": raters.min(),
        "raters_max": raters.max(),
        "entropy_bits_mean": manifest["entropy_bits"].mean(),
        # Unanimity read from the votes, not the rounded entropy: exact for fractional votes.
        "share_unanimous": float(np.mean((votes > 0).sum(axis=1) == 1)),
        "share_tied": float(manifest["majority"].isna().mean()),
        "missing_audio": int((~manifest["has_audio"].astype(bool)).sum()),
        # Present but unusable (empty, unreadable, too short, NaN): corpora/audio_check.py.
        "unusable_audio": (int((~manifest["audio_status"].isin(["ok", "missing"])).sum())
                           if "audio_status" in manifest else 0),
    }
    row |= dict(zip(columns("prior", classes), p.mean(axis=0)))
    row |= dict(zip(columns("vote_share", classes), votes.sum(axis=0) / votes.sum()))
    return pd.DataFrame([row])
