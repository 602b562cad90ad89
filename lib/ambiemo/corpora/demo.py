"""The embedded demo corpus (`data/demo/`): synthetic espeak-ng clips with simulated raters.

Exists so that the whole study of Jia et al. (2026) -- Manifest, sampling, test-time
scaling, scoring -- runs end to end on any laptop with nothing downloaded. The clips and
votes are made by `data/demo/make_demo.py`; nothing about them is real human judgement.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.input_files import check_vote_columns, read_csv
from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import classes_for, columns

REQUIRED = ["utt_id", "speaker", "split", "sentence", "intended", "intensity", "n_raters"]


@register_corpus("demo")
def load_demo(root: Path, label_space: str | None = None) -> pd.DataFrame:
    classes = classes_for("demo", label_space)
    path = Path(root) / "votes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"demo corpus: {path} not found (expected votes.csv in {root})")
    table = read_csv(path)     # not UTF-8: the file, line and what to do (issue #25)
    vote_cols = columns("votes", classes)
    check_vote_columns(table.columns, classes, path, corpus="demo")
    missing = [c for c in REQUIRED + vote_cols if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    votes = table[vote_cols]
    # Line numbers are 1-based with the header on line 1, so data row r is on line r + 2.
    bad = votes.isna().any(axis=1) | (votes < 0).any(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}:{r + 2}: vote counts must be non-negative numbers, got "
                         f"{votes.iloc[r].to_dict()}")
    counts = votes.to_numpy(dtype=float)
    mismatch = counts.sum(axis=1) != table["n_raters"].to_numpy()
    if mismatch.any():
        r = int(np.flatnonzero(mismatch)[0])
        raise ValueError(f"{path}:{r + 2}: votes sum to {counts[r].sum():g} but n_raters is "
                         f"{table['n_raters'].iloc[r]}")
    no_votes = counts.sum(axis=1) == 0
    records = table.loc[~no_votes].assign(
        audio_path=[str(Path(root) / "wav" / f"{u}.wav") for u in table.loc[~no_votes, "utt_id"]])
    return build_manifest(records, counts[~no_votes], classes, corpus="demo",
                          label_space=label_space or "4class",
                          dropped={"no_votes": int(no_votes.sum())},
                          extras=["sentence", "intended", "intensity"])

