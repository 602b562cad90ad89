"""CREMA-D as human vote distributions, read from a clone of its public repository.

CREMA-D (Cao, Cooper, Keutmann, Gur, Nenkova & Verma, "CREMA-D: Crowd-sourced Emotional
Multimodal Actors Dataset", IEEE Trans. Affective Computing 5(4), 2014): 91 actors speak 12
sentences in six emotions; every clip was rated by crowd workers in three presentation
modes. Jia et al. (2026) score audio-language models against the *voice-only* vote
distribution, the default here.

Layout read: `processedResults/tabulatedVotes.csv` (first column unnamed: the row id,
100000 x mode + clip number, mode 1 voice, 2 face, 3 audio-visual; vote counts `A,D,F,H,N,S`;
`fileName`; `numResponses`; `agreement`; `emoVote` with ties joined by ':'),
`AudioWAV/<fileName>.wav`, and, if present, `VideoDemographics.csv` for the actor's sex.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.input_files import read_csv
from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import classes_for

MODES = {"voice": 1, "face": 2, "audiovisual": 3}
# Vote columns of the file, in the order of LABEL_SPACES["crema_d"]["6class"].
CODES = {"A": "angry", "D": "disgusted", "F": "fearful", "H": "happy", "N": "neutral",
         "S": "sad"}
ACTED = {"ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy",
         "NEU": "neutral", "SAD": "sad"}
INTENSITIES = {"LO", "MD", "HI", "XX"}  # XX: unspecified
REQUIRED = ["", *CODES, "fileName", "numResponses", "agreement", "emoVote"]


@register_corpus("crema_d")
def load_crema_d(root: Path, label_space: str | None = None, *,
                 mode: str = "voice") -> pd.DataFrame:
    """CREMA-D clips with the vote distribution of presentation `mode`.

    `mode` is "voice" (default: audio only, as in the paper), "face" (video without sound)
    or "audiovisual". Extras: `acted_label` and `intensity` from the file name, the file's
    own `emo_vote` and `agreement`, `sentence` (the sentence code of the file name, e.g.
    DFA), and `gender` when VideoDemographics.csv is present.
    """
    classes = classes_for("crema_d", label_space)
    space = label_space or "6class"
    if mode not in MODES:
        raise ValueError(f"crema_d: unknown mode {mode!r}; valid: {sorted(MODES)}")
    path = Path(root) / "processedResults" / "tabulatedVotes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"crema_d: {path} not found (expected a clone of the "
                                f"CREMA-D repository at {root})")
    # keep_default_na=False: an empty cell must fail the checks below, not become NaN.
    table = read_csv(path, dtype=str, keep_default_na=False)
    table.columns = ["" if c.startswith("Unnamed: 0") else c for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{path}:1: missing column(s) {missing} (header: {list(table.columns)})")
    line = pd.Series(np.arange(len(table)) + 2, index=table.index)  # header is line 1

    row_id = _integers(table[""], path, line, "row id")
    table = table[row_id // 100000 == MODES[mode]]
    line, row_id = line[table.index], row_id[table.index]
    counts = np.column_stack([_integers(table[c], path, line, f"vote count {c}")
                              for c in CODES])
    n = _integers(table["numResponses"], path, line, "numResponses")
    bad = np.flatnonzero(counts.sum(axis=1) != n)
    if len(bad):
        r = bad[0]
        raise ValueError(f"{path}:{line.iloc[r]}: votes sum to {counts[r].sum()} but "
                         f"numResponses is {n[r]}")
    valid_vote = table["emoVote"].str.fullmatch(f"[{''.join(CODES)}](:[{''.join(CODES)}])*")
    if not valid_vote.all():
        r = int(np.flatnonzero(~valid_vote.to_numpy())[0])
        raise ValueError(f"{path}:{line.iloc[r]}: unknown emotion {table['emoVote'].iloc[r]!r} "
                         f"in emoVote (valid: {', '.join(CODES)}, ties joined by ':')")
    parts = table["fileName"].str.extract(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
    valid_name = parts[2].isin(list(ACTED)) & parts[3].isin(list(INTENSITIES))
    if not valid_name.all():
        r = int(np.flatnonzero(~valid_name.to_numpy())[0])
        raise ValueError(f"{path}:{line.iloc[r]}: file name {table['fileName'].iloc[r]!r} is "
                         f"not ACTOR_SENTENCE_EMOTION_INTENSITY (e.g. 1001_IEO_HAP_HI)")
    audio_dir = Path(root) / "AudioWAV"
    records = pd.DataFrame({
        "utt_id": table["fileName"].to_numpy(),
        "split": "all",  # CREMA-D has no official split; see corpora/splits.py
        "speaker": parts[0].to_numpy(),
        # The sentence code (IEO, DFA, ...): 12 sentences every actor speaks, a second
        # cluster of the clips beside the speaker (analysis/clusters.py).
        "sentence": parts[1].to_numpy(),
        "audio_path": [str(audio_dir / f"{f}.wav") for f in table["fileName"]],
        "n_raters": n,
        "acted_label": parts[2].map(ACTED).to_numpy(),
        "intensity": parts[3].to_numpy(),
        "emo_vote": table["emoVote"].to_numpy(),
        "agreement": pd.to_numeric(table["agreement"]).to_numpy(),
        "clip_number": row_id.to_numpy() % 100000,
    })
    records["gender"] = records["speaker"].map(_actor_sex(Path(root)))
    votes = counts[:, [list(CODES.values()).index(c) for c in classes]].astype(float)
    # Every clip has >= 4 responses in the public file; a zero row would be dropped, counted.
    empty = votes.sum(axis=1) == 0
    manifest = build_manifest(
        records[~empty], votes[~empty], classes, corpus="crema_d", label_space=space,
        dropped={"no_votes": int(empty.sum())},
        extras=["sentence", "acted_label", "intensity", "emo_vote", "agreement", "clip_number", "gender"])
    manifest.attrs["mode"] = mode
    return manifest


def _integers(col: pd.Series, path: Path, line: pd.Series, what: str) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() | (values < 0) | (values % 1 != 0)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}:{line.iloc[r]}: {what} must be a non-negative integer, "
                         f"got {col.iloc[r]!r}")
    return values.astype(np.int64)


def _actor_sex(root: Path) -> dict[str, str]:
    """Actor id -> "female"/"male" from VideoDemographics.csv ({} if the file is absent)."""
    path = root / "VideoDemographics.csv"
    if not path.is_file():
        return {}
    demo = read_csv(path, dtype=str)
    if not {"ActorID", "Sex"} <= set(demo.columns):
        raise ValueError(f"{path}:1: missing column(s) ActorID/Sex")
    return dict(zip(demo["ActorID"], demo["Sex"].str.lower()))
