"""Speaker-independent splits of a Manifest.

Jia et al. (2026) evaluate audio-language models zero-shot, but anything fitted on human
labels (a verifier, a calibration map, the Dirichlet pooling of tts.py) must be fitted and
tested on disjoint speakers, or it learns voices rather than emotions. Groups per corpus:
CREMA-D's actor id (1001..1091; Cao et al., 2014), IEMOCAP's session + gender ("Ses01F";
Busso et al., 2008; `session_groups` gives the customary leave-one-session-out), and
MSP-Podcast's SpkrID (Lotfian & Busso, 2019), whose "Unknown" speakers the Manifest stores as
missing. A missing speaker cannot be proven disjoint from any other, so every helper takes
`unknown=`: "exclude" (default; such rows get no fold), "singleton" (each row its own
speaker: use only if you accept the risk) or "together" (all of them one pseudo-speaker).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

UNKNOWN_POLICIES = ("exclude", "singleton", "together")
EXCLUDED = -1


def speaker_groups(manifest: pd.DataFrame, unknown: str = "exclude") -> pd.Series:
    """The grouping key per row (object dtype); None for rows excluded by `unknown`."""
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown={unknown!r}; valid: {UNKNOWN_POLICIES}")
    speaker = manifest["speaker"].astype(object)
    missing = speaker.isna()
    groups = speaker.astype(str).where(~missing, None)
    if unknown == "singleton":
        groups[missing] = "unknown:" + manifest.loc[missing, "utt_id"].astype(str)
    elif unknown == "together":
        groups[missing] = "unknown"
    return groups.astype(object)


def session_groups(manifest: pd.DataFrame) -> pd.Series:
    """IEMOCAP's session ("Ses01".."Ses05") per row: both speakers of a dialog share it."""
    if not manifest["speaker"].astype(str).str.match(r"^Ses0\d[FM]$").all():
        raise ValueError("session_groups needs IEMOCAP speakers such as 'Ses01F'")
    return manifest["speaker"].astype(str).str[:5].astype(object)


def group_folds(groups: pd.Series, n_folds: int, *, seed: int = 0) -> pd.Series:
    """Fold number (0..n_folds-1) per row such that no group spans two folds.

    Groups are shuffled with `seed`, then each goes to the fold with the fewest rows so far
    (largest groups first), so folds are balanced in clips, not only in speakers. Rows whose
    group is None get `EXCLUDED` (-1).
    """
    known = groups.dropna()
    sizes = known.value_counts()
    if n_folds < 2 or n_folds > len(sizes):
        raise ValueError(f"n_folds={n_folds} needs 2 <= n_folds <= {len(sizes)} (the number "
                         f"of speakers/groups)")
    rng = np.random.default_rng(seed)
    order = sizes.index.to_numpy()[rng.permutation(len(sizes))]
    # Stable sort by size after the shuffle: ties among equal sizes are broken by the seed.
    order = sorted(order, key=lambda g: -sizes[g])
    load = np.zeros(n_folds, dtype=int)
    fold_of = {}
    for g in order:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += sizes[g]
    folds = groups.map(fold_of).fillna(EXCLUDED).astype(int)
    return folds.rename("fold")


def speaker_folds(manifest: pd.DataFrame, n_folds: int = 5, *, seed: int = 0,
                  unknown: str = "exclude") -> pd.Series:
    """Leave-speakers-out folds: fold number per row, -1 where the speaker is unknown."""
    return group_folds(speaker_groups(manifest, unknown), n_folds, seed=seed)


def speaker_split(manifest: pd.DataFrame, fractions: Mapping[str, float] | None = None, *,
                  seed: int = 0, unknown: str = "exclude") -> pd.Series:
    """Named split per row (e.g. train/test), each speaker in exactly one; None if excluded.

    `fractions` (default train 0.8, test 0.2) are shares of *clips*; speakers are dealt out
    in a seeded random order, each to the split furthest below its target share.
    """
    fractions = dict(fractions or {"train": 0.8, "test": 0.2})
    if any(v <= 0 for v in fractions.values()) or not np.isclose(sum(fractions.values()), 1):
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    groups = speaker_groups(manifest, unknown)
    sizes = groups.dropna().value_counts()
    rng = np.random.default_rng(seed)
    names = list(fractions)
    target = np.array([fractions[n] for n in names]) * sizes.sum()
    taken = np.zeros(len(names))
    split_of = {}
    for g in sizes.index.to_numpy()[rng.permutation(len(sizes))]:
        k = int(np.argmax(target - taken))
        split_of[g] = names[k]
        taken[k] += sizes[g]
    return groups.map(split_of).astype(object).where(groups.notna(), None).rename("split")


def assert_speaker_independent(manifest: pd.DataFrame, assignment: pd.Series) -> None:
    """Raise if any known speaker appears under two different values of `assignment`."""
    frame = pd.DataFrame({"speaker": manifest["speaker"], "part": assignment})
    frame = frame.dropna()
    frame = frame[frame["part"] != EXCLUDED]
    spread = frame.groupby("speaker")["part"].nunique()
    leaking = spread[spread > 1].index.tolist()
    if leaking:
        raise AssertionError(f"speakers in more than one split: {leaking[:10]}")
