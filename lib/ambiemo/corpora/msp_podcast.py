"""MSP-Podcast (releases 1.9 to 1.12) as human vote distributions.

MSP-Podcast (Lotfian & Busso, "Building naturalistic emotionally balanced speech corpus by
retrieving emotional speech from existing podcast recordings", IEEE Trans. Affective
Computing 10(4), 2019): podcast segments, each labelled by several crowd workers with one
primary emotion (plus secondary emotions and attributes). Jia et al. (2026) compare models
with the distribution of the workers' *primary* emotions over the 8 primary classes.

Layout read: `Labels/labels_consensus.csv` (older releases misspell it
`labels_concensus.csv`) for split, speaker and gender; the per-worker labels from
`Labels/labels_detailed.csv` (`FileName,EmoDetail` with EmoDetail
`WORKER…; Primary; Secondary,Secondary; A:…; V:…; D:…;`, or one column per field) or
`Labels/labels_detailed.json` (`{file: {worker: {EmoClass_Major, …}}}`); audio in
`Audios/<FileName>`.

Which segments enter the study (`split`): the release's partitions are Train, Development
(called Validation in 1.9) and Test1-Test3 (Test3 only in later releases). Evaluation uses
a held-out partition -- `configs/paper.yaml` loads `split="test1"`, the test set most work
on MSP-Podcast reports -- because loading every partition would mix the segments a model
may have been trained on with the test segments. `split=None` loads all of them (corpus
statistics, annotation studies).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.input_files import read_csv
from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import classes_for

PRIMARY = {"angry": "angry", "sad": "sad", "happy": "happy", "surprise": "surprised",
           "fear": "fearful", "disgust": "disgusted", "contempt": "contempt",
           "neutral": "neutral"}
# Consensus codes; X = no agreement among the workers, O = "Other".
CONSENSUS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful",
             "D": "disgusted", "C": "contempt", "N": "neutral", "O": "other", "X": None}
SPLITS = {"train": "train", "development": "development", "validation": "development"}
CONSENSUS_COLUMNS = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID",
                     "Gender", "Split_Set"]
# Column-per-field releases of labels_detailed.csv: accepted spellings of each field.
WORKER_COLUMNS = ("Worker", "WorkerID", "Worker_ID", "Annotator", "AnnotatorID")
PRIMARY_COLUMNS = ("EmoClass_Major", "EmoClass", "Primary", "EmoPrimary")
# Worker id (no spaces); primary; secondaries (may be empty); then the attributes, unchecked.
_DETAIL = re.compile(r"^\s*(\S+?)\s*;\s*([^;]*?)\s*;\s*([^;]*?)\s*(;.*)?$")


@register_corpus("msp_podcast")
def load_msp_podcast(root: Path, label_space: str | None = None, *,
                     split: str | Sequence[str] | None = None) -> pd.DataFrame:
    """MSP-Podcast segments with the distribution of the workers' primary emotions.

    `split` is one partition name or a list of them ("Train", "Development"/"Validation",
    "Test1", ...; case-insensitive); None (default) loads every partition. A name that is
    not a partition name, or a partition this release does not have, is an error naming the
    partitions present. Segments of other partitions are counted in
    `dropped["other_splits"]`; `attrs["splits"]` records the selection.
    Label spaces: "8class" (default; `Other-*` votes dropped and counted) and "9class"
    (`Other-*` kept as one `other` class). A worker listed twice on a segment counts once.
    The `split` column is the release's Split_Set in lower case (Validation, its older name, becomes
    "development"); `speaker` is SpkrID, None where the release says "Unknown".
    """
    classes = list(classes_for("msp_podcast", label_space))
    space = label_space or "8class"
    labels = Path(root) / "Labels"
    consensus = _read_consensus(labels)
    workers, dropped = _read_detailed(labels)
    wanted = _wanted_splits(split, consensus, labels)

    known = workers["utt_id"].isin(consensus["utt_id"])
    dropped["votes_for_files_not_in_consensus"] = int((~known).sum())
    workers = workers[known]
    if wanted is not None:  # after the release-level check above: votes of other splits
        chosen = consensus["split"].isin(wanted)  # are left out with their segments
        dropped["other_splits"] = int((~chosen).sum())
        consensus = consensus[chosen].reset_index(drop=True)
        workers = workers[workers["utt_id"].isin(consensus["utt_id"])]
    in_space = workers["primary"].isin(classes)
    for cls, k in workers.loc[~in_space, "primary"].value_counts().items():
        dropped[f"votes_outside_{space}:{cls}"] = int(k)
    workers = workers[in_space]

    counts = pd.crosstab(workers["utt_id"], workers["primary"]).reindex(columns=classes,
                                                                        fill_value=0)
    has_votes = consensus["utt_id"].isin(counts.index)
    dropped["no_votes"] = int((~has_votes).sum())
    records = consensus[has_votes].reset_index(drop=True)
    votes = counts.loc[records["utt_id"]].to_numpy(dtype=float)
    records["n_raters"] = votes.sum(axis=1).astype(int)  # one primary vote per worker
    records["audio_path"] = [str(Path(root) / "Audios" / f) for f in records["file_name"]]
    if records.empty:
        raise ValueError(f"msp_podcast: no segment of split {split!r} under {root} has a "
                         f"vote in {space}: {dropped}")
    manifest = build_manifest(records, votes, classes, corpus="msp_podcast", label_space=space,
                              dropped={k: v for k, v in dropped.items()
                                       if v or k in ("no_votes", "other_splits")},
                              extras=["label_consensus", "arousal", "valence", "dominance",
                                      "gender"])
    manifest.attrs["splits"] = None if wanted is None else sorted(wanted)
    return manifest


def _wanted_splits(split, consensus: pd.DataFrame, labels: Path) -> set[str] | None:
    """The canonical partition names asked for, checked against the release."""
    if split is None:
        return None
    names = [split] if isinstance(split, str) else list(split)
    present = sorted(set(consensus["split"]))
    if not names:
        raise ValueError(f"msp_podcast: split is an empty list; give a partition name, a "
                         f"list of them, or None for all (present: {present})")
    wanted = set()
    for name in names:
        canonical = _split_name(str(name))
        if canonical is None or canonical not in present:
            raise ValueError(f"msp_podcast: unknown split {name!r}; the release in "
                             f"{labels} has: {present}")
        wanted.add(canonical)
    return wanted


def primary_class(name: str) -> str | None:
    """Canonical class of a primary-emotion answer ("Other-…" -> "other"), None if unknown."""
    key = str(name).strip().lower()
    if key == "other" or key.startswith("other-") or key.startswith("other "):
        return "other"
    return PRIMARY.get(key)


def _stem(name: str) -> str:
    return name[:-4] if name.lower().endswith(".wav") else name


def _read_consensus(labels: Path) -> pd.DataFrame:
    path = next((p for p in (labels / "labels_consensus.csv", labels / "labels_concensus.csv")
                 if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"msp_podcast: no labels_consensus.csv (or the older "
                                f"labels_concensus.csv) in {labels}")
    table = read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in CONSENSUS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}:1: missing column(s) {missing}")
    checks = (("EmoClass", ~table["EmoClass"].isin(list(CONSENSUS)), ", ".join(CONSENSUS)),
              ("Split_Set", table["Split_Set"].map(_split_name).isna(),
               "Train, Development, Validation, Test<k>"))
    for col, bad, valid in checks:
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}:{r + 2}: unknown {col} {table[col].iloc[r]!r} "
                             f"(valid: {valid})")
    attrs = {}
    for col, name in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
        attrs[name] = pd.to_numeric(table[col], errors="coerce")
        bad = attrs[name].isna() & (table[col] != "")
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}:{r + 2}: {col} is not a number: {table[col].iloc[r]!r}")
    utt = table["FileName"].map(_stem)
    if utt.duplicated().any():
        r = int(np.flatnonzero(utt.duplicated().to_numpy())[0])
        raise ValueError(f"{path}:{r + 2}: {table['FileName'].iloc[r]} is listed twice")
    speaker = table["SpkrID"].str.strip()
    unknown = speaker.str.lower().isin(["unknown", ""])
    return pd.DataFrame({
        "utt_id": utt, "file_name": table["FileName"],
        "split": table["Split_Set"].map(_split_name),
        "speaker": speaker.where(~unknown, None).astype(object),
        "label_consensus": table["EmoClass"].map(CONSENSUS).astype(object),
        **attrs, "gender": table["Gender"].str.strip().str.lower()})


def _split_name(value: str) -> str | None:
    key = value.strip().lower()
    return SPLITS.get(key) or (key if re.fullmatch(r"test\d+", key) else None)


def _read_detailed(labels: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per (utterance, worker): `utt_id, worker, primary` (canonical class)."""
    csv_path, json_path = labels / "labels_detailed.csv", labels / "labels_detailed.json"
    if csv_path.is_file():
        table = read_csv(csv_path, dtype=str, keep_default_na=False)
        line = np.arange(len(table)) + 2  # header on line 1
        if "FileName" not in table.columns:
            raise ValueError(f"{csv_path}:1: missing column 'FileName'")
        if "EmoDetail" in table.columns:
            parts = table["EmoDetail"].str.extract(_DETAIL)
            bad = parts[0].isna() | (parts[1] == "")
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(f"{csv_path}:{line[r]}: malformed EmoDetail "
                                 f"{table['EmoDetail'].iloc[r]!r} (expected 'WORKER…; Primary;"
                                 f" Secondary,…; A:…; V:…; D:…;')")
            worker, primary = parts[0], parts[1]
        else:
            wcol = next((c for c in WORKER_COLUMNS if c in table.columns), None)
            pcol = next((c for c in PRIMARY_COLUMNS if c in table.columns), None)
            if wcol is None or pcol is None:
                raise ValueError(f"{csv_path}:1: missing column: need 'EmoDetail' or a worker "
                                 f"column {WORKER_COLUMNS} and a primary-emotion column "
                                 f"{PRIMARY_COLUMNS}")
            worker, primary = table[wcol].str.strip(), table[pcol].str.strip()
        rows = pd.DataFrame({"utt_id": table["FileName"].map(_stem), "worker": worker,
                             "raw": primary})
        def where(r: int) -> str:
            return f"{csv_path}:{line[r]}"
        dropped = {}
    elif json_path.is_file():
        rows, where, dropped = _read_json(json_path)
    else:
        raise FileNotFoundError(f"msp_podcast: no labels_detailed.csv or labels_detailed.json "
                                f"in {labels}")
    # Map each distinct answer once: a million rows share a few hundred spellings.
    mapping = {v: primary_class(v) for v in rows["raw"].unique()}
    rows["primary"] = rows["raw"].map(mapping)
    bad = rows["primary"].isna().to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where(r)}: unknown emotion {rows['raw'].iloc[r]!r} (valid: "
                         f"{', '.join(k.title() for k in PRIMARY)}, Other-<text>)")
    dup = rows.duplicated(["utt_id", "worker"], keep="first")
    dropped["duplicate_worker_rows"] = dropped.get("duplicate_worker_rows", 0) + int(dup.sum())
    return rows[~dup].drop(columns="raw"), dropped


def _read_json(path: Path):
    duplicates = 0

    def keep_first(pairs):  # a worker listed twice counts once; json.loads would keep the last
        nonlocal duplicates
        out: dict = {}
        for k, v in pairs:
            duplicates += k in out
            out.setdefault(k, v)
        return out

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh, object_pairs_hook=keep_first)
    rows, where = [], []
    for file_name, per_worker in data.items():
        for worker, fields in per_worker.items():
            if not isinstance(fields, dict) or "EmoClass_Major" not in fields:
                raise ValueError(f"{path}: entry {file_name!r} / {worker!r} has no "
                                 f"'EmoClass_Major'")
            rows.append((_stem(file_name), worker, str(fields["EmoClass_Major"]).strip()))
            where.append(f"{path}: entry {file_name!r} / {worker!r}")
    # JSON has no useful line numbers; errors name the entry instead.
    return (pd.DataFrame(rows, columns=["utt_id", "worker", "raw"]), where.__getitem__,
            {"duplicate_worker_rows": duplicates})
