"""A corpus kept as a Hugging Face dataset, read into a Manifest.

Many labs keep their CREMA-D, IEMOCAP or MSP-Podcast copies as Hugging Face datasets: a
folder written by `save_to_disk`, or a dataset repository in the hub cache (Parquet files
and a README). `load("hf", path, classes=[...], votes="votes_", ...)` reads either, with
the columns named by options: the audio column, the human judgements as per-class vote
columns or as a list of rater labels per clip, the clip id, the speaker and the split.
The distribution of human judgements is what Jia et al. (2026) compare models against, so
rater labels are counted per class exactly as the other corpora's vote files are.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import LABEL_SPACES, canonical

OPTIONS = {
    "classes": "class names in column order (canonical names, e.g. angry, happy); or give "
               "label_space as <corpus>:<space>, e.g. crema_d:6class",
    "votes": "prefix of the per-class vote columns (votes_ -> votes_angry, ...) or a "
             "{class: column} mapping",
    "raters": "column holding each clip's list of rater labels (instead of votes)",
    "audio": "audio column: an Audio feature or a path relative to the dataset folder "
             "(default 'audio')",
    "utt_id": "clip id column (default 'id'; the row number when absent and not named)",
    "speaker": "speaker column (default 'speaker')",
    "split": "split column; default: the DatasetDict split the row came from",
    "hf_split": "read only this split of a DatasetDict",
    "corpus_name": "corpus name written into the Manifest (default 'hf')",
    "audio_dir": "where audio stored inside the dataset (bytes) is written as files "
                 "(default <path>/.ambiemo_audio)",
}


def _classes(classes, label_space: str | None) -> list[str]:
    if classes is not None:
        out = []
        for c in classes:
            name = canonical(str(c), allow_codes=True)
            if name is None:
                raise ValueError(f"hf corpus: class {c!r} is not an emotion name ambiemo knows "
                                 "(labels.SYNONYMS)")
            out.append(name)
        return out
    if label_space and ":" in label_space:
        corpus, space = label_space.split(":", 1)
        if corpus in LABEL_SPACES and space in LABEL_SPACES[corpus]:
            return list(LABEL_SPACES[corpus][space])
    valid = [f"{c}:{s}" for c, spaces in LABEL_SPACES.items() for s in spaces]
    raise ValueError(f"hf corpus: give classes=[...] or label_space as one of {valid}; got "
                     f"label_space={label_space!r}")


def read_dataset(path: Path, hf_split: str | None = None) -> pd.DataFrame:
    """The dataset at `path` as one DataFrame with `_hf_split` naming each row's split: a
    `save_to_disk` folder (Dataset or DatasetDict), else a dataset repository folder as
    the hub cache keeps it (`datasets.load_dataset` on the folder)."""
    import datasets

    saved = any((path / f).is_file() for f in ("dataset_info.json", "state.json",
                                                "dataset_dict.json"))
    ds = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    parts = dict(ds) if isinstance(ds, datasets.DatasetDict) else {"test": ds}
    if hf_split is not None:
        if hf_split not in parts:
            raise KeyError(f"{path}: no split {hf_split!r}; splits: {sorted(parts)}")
        parts = {hf_split: parts[hf_split]}
    frames = []
    for split, part in parts.items():
        for col, feature in part.features.items():
            if isinstance(feature, datasets.Audio):
                # The path and bytes only: decoding every clip to read a Manifest is waste.
                part = part.cast_column(col, datasets.Audio(decode=False))
        frames.append(part.to_pandas().assign(_hf_split=split))
    return pd.concat(frames, ignore_index=True)


def _audio_paths(table: pd.DataFrame, column: str, root: Path, audio_dir: Path,
                 ids: pd.Series) -> list[str]:
    out = []
    for utt, value in zip(ids, table[column]):
        if isinstance(value, dict):       # an Audio feature: {"path": ..., "bytes": ...}
            path, data = value.get("path"), value.get("bytes")
            if data is not None:          # embedded audio: written once, as a file
                target = audio_dir / f"{utt}{Path(path or '').suffix or '.wav'}"
                if not target.is_file():
                    audio_dir.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                out.append(str(target))
                continue
            value = path
        if value is None or value == "":
            out.append("")
            continue
        p = Path(str(value))
        out.append(str(p if p.is_absolute() else root / p))
    return out


def _rater_votes(table: pd.DataFrame, column: str, classes: list[str], ids: pd.Series
                 ) -> tuple[np.ndarray, int]:
    """Counts per class from each clip's rater labels; labels of emotions outside the label
    space are counted as left out; words that name no emotion raise."""
    votes = np.zeros((len(table), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    outside = 0
    for r, (utt, labels) in enumerate(zip(ids, table[column])):
        if labels is None or isinstance(labels, str):
            raise ValueError(f"hf corpus: column {column!r} of clip {utt!r} must be a list of "
                             f"rater labels, got {labels!r}")
        for word, n in Counter(str(x) for x in labels).items():
            name = canonical(word, allow_codes=True)
            if name is None:
                raise ValueError(f"hf corpus: clip {utt!r}: rater label {word!r} in column "
                                 f"{column!r} names no emotion ambiemo knows")
            if name in index:
                votes[r, index[name]] += n
            else:
                outside += n
    return votes, outside


@register_corpus("hf")
def load_hf(root: Path, label_space: str | None = None, **options) -> pd.DataFrame:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"hf corpus: unknown option(s) {unknown}; valid: " + "; ".join(
            f"{k} ({v})" for k, v in OPTIONS.items()))
    root = Path(root)
    classes = _classes(options.get("classes"), label_space)
    table = read_dataset(root, options.get("hf_split"))
    columns = list(table.columns.drop("_hf_split"))

    def column(option: str, default: str | None, required: bool = True) -> str | None:
        name = options.get(option, default)
        if name is not None and name not in table:
            if option not in options and not required:
                return None
            raise KeyError(f"hf corpus {root}: {option} column {name!r} not in the dataset; "
                           f"columns: {columns}")
        return name

    id_col = column("utt_id", "id", required=False)
    ids = (table[id_col].astype(str) if id_col else
           pd.Series([f"{options.get('corpus_name', 'hf')}_{i:06d}" for i in range(len(table))]))
    if options.get("raters") is not None and options.get("votes") is not None:
        raise ValueError("hf corpus: give votes or raters, not both")
    dropped = {}
    if options.get("raters") is not None:
        votes, outside = _rater_votes(table, column("raters", None), classes, ids)
        dropped["rater_labels_outside_label_space"] = outside
    else:
        spec = options.get("votes", "votes_")
        names = (dict(spec) if isinstance(spec, dict) else {c: f"{spec}{c}" for c in classes})
        missing = [names.get(c) for c in classes if names.get(c) not in table]
        if missing:
            raise KeyError(f"hf corpus {root}: vote column(s) {missing} not in the dataset "
                           f"(columns: {columns}); name them with votes= or give raters=")
        votes = table[[names[c] for c in classes]].to_numpy(dtype=float)
        bad = ~np.isfinite(votes).all(1) | (votes < 0).any(1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"hf corpus {root}: clip {ids.iloc[r]!r} has vote counts "
                             f"{dict(zip(classes, votes[r]))}; they must be non-negative")
    empty = votes.sum(1) == 0
    dropped["no_votes"] = int(empty.sum())
    speaker_col = column("speaker", "speaker")
    split_col = options.get("split")
    audio_col = column("audio", "audio")
    audio_dir = Path(options.get("audio_dir", root / ".ambiemo_audio"))
    keep = ~empty
    records = pd.DataFrame({
        "utt_id": ids[keep].to_numpy(),
        "split": (table[column("split", None)] if split_col else table["_hf_split"])[keep]
        .astype(str).to_numpy(),
        "speaker": table[speaker_col][keep].astype(str).to_numpy(),
        "audio_path": _audio_paths(table[keep], audio_col, root, audio_dir, ids[keep]),
        "n_raters": votes[keep].sum(1),
    })
    return build_manifest(records, votes[keep], classes, corpus=options.get("corpus_name", "hf"),
                          label_space=label_space or "+".join(classes), dropped=dropped)


load_hf.options = tuple(OPTIONS)   # what corpora.loader_options reports
