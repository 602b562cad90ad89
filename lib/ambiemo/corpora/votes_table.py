"""Any rated corpus without code: a table of human votes (CSV or Parquet) and its audio.

A lab brings its own corpus by writing one config entry (README, "Bring your own corpus"):

    corpora:
      mylab:
        loader: votes_table
        root: /data/mylab                    # audio paths in the table are relative to it
        label_space: {classes: [neutral, happy, sad, angry], merges: {excited: happy}}
        options: {votes: votes.csv}          # CSV or Parquet, relative to root

The table comes in one of two layouts:
- one row per vote: `file, rater, label` (a rater naming several labels for a clip gives
  each 1/k of a vote, so every rater weighs the same, as IEMOCAP's evaluators do);
- one row per clip: `file, votes_<label>...` (counts; several columns merging into one class
  are added up).
Optional columns: `utt_id` (default: the file's stem), `speaker` (default: each clip its own
speaker, so intervals treat clips as independent), `split` (default "test"), `sentence`
(the text spoken, kept in the Manifest).

Labels (and `votes_<label>` names) are read through the label space: a class name or a
synonym of one (`labels.SYNONYMS`: "Happiness" is happy), a label the space merges into a
class, or an emotion outside the space (its votes dropped and counted in `attrs["dropped"]`).
A label that names no emotion is an error. Every problem of the table is found before the
Manifest is built and reported at once, each with the file, line (CSV: the header is line 1)
or row (Parquet), column and value. The Manifest is the normalised vote distribution per clip,
as for every corpus of Jia et al. (2026). `manifest_from_votes` is the shared path: the
MSP-IMPROV loader (corpora/msp_improv.py) reads its release into the same long table.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.manifest import build_manifest
from ambiemo.corpora.registry import register_corpus
from ambiemo.labels import LabelSpace, canonical, get_label_space

OPTIONS = {
    "votes": "the votes table, CSV or Parquet, relative to root (default votes.csv)",
    "codes": "read single-letter labels as corpus codes (A = angry, ...; default false)",
}
OPTIONAL = ("utt_id", "speaker", "split", "sentence")
SHOWN = 10     # problems listed in one error


class VotesTableError(ValueError):
    """A votes table that cannot be read; `problems` lists every one found."""

    def __init__(self, path, problems: list[str]):
        self.problems = problems
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        super().__init__(f"{path}: {len(problems)} problem(s):\n  "
                         + "\n  ".join(problems[:SHOWN]) + more)


def _space(label_space) -> LabelSpace:
    if label_space is None:
        raise VotesTableError("votes_table", [
            "label_space is required: a mapping {classes: [...], merges: {label: class}} or "
            "a registered one such as crema_d:6class"])
    try:
        return get_label_space(None, label_space)
    except (KeyError, ValueError) as e:
        why = str(e.args[0])
        raise VotesTableError("votes_table", [why if why.startswith("label_space")
                                              else f"label_space: {why}"]) from None


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"votes_table: {path} not found (options.votes names the table, "
                                "relative to the corpus root)")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        # Every column as text: a speaker "007" stays "007", and a vote count is checked here.
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                           dtype=str, keep_default_na=False)
    raise VotesTableError(path, [f"{path.suffix!r} is not a table this loader reads "
                                 "(.csv, .tsv, .parquet)"])


def _where(path: Path, i: int) -> str:
    """A data row's place: its line in a CSV (header on line 1), its row in a Parquet."""
    return f"line {i + 2}" if path.suffix.lower() != ".parquet" else f"row {i}"


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def long_votes(table: pd.DataFrame, path: Path, space: LabelSpace, *, codes: bool = False
               ) -> tuple[pd.DataFrame, list[str]]:
    """`file, rater, label` rows -> (`utt_id, rater, cls, weight` rows, problems); votes
    outside the space come back with cls None."""
    problems, rows = [], []
    for i, (f, rater, label) in enumerate(zip(table["file"], table["rater"], table["label"])):
        f, rater, label = _text(f).strip(), _text(rater).strip(), _text(label).strip()
        for col, v in (("file", f), ("rater", rater), ("label", label)):
            if not v:
                problems.append(f"{_where(path, i)}, column {col}: empty")
        if not (f and rater and label):
            continue
        cls = space.class_of(label, allow_codes=codes)
        if cls is None and canonical(label, allow_codes=codes) is None:
            problems.append(f"{_where(path, i)}, column label: {label!r} names no emotion "
                            f"ambiemo knows; classes {list(space.classes)}"
                            + (f", merges {space.merges}" if space.merges else "")
                            + " (a synonym of a class, or a merge in the label space)")
            continue
        rows.append((i, f, rater, cls, label))
    frame = pd.DataFrame(rows, columns=["row", "file", "rater", "cls", "label"])
    return frame, problems


def wide_votes(table: pd.DataFrame, path: Path, space: LabelSpace, *, codes: bool = False
               ) -> tuple[np.ndarray, dict, list[str]]:
    """`votes_<label>` columns -> ((n, K) counts in the space's class order, dropped counts
    per label outside the space, problems)."""
    problems, dropped = [], Counter()
    votes = np.zeros((len(table), len(space.classes)))
    index = {c: k for k, c in enumerate(space.classes)}
    for col in [c for c in table.columns if c.startswith("votes_")]:
        label = col.removeprefix("votes_")
        cls = space.class_of(label, allow_codes=codes)
        if cls is None and canonical(label, allow_codes=codes) is None:
            problems.append(f"column {col}: {label!r} names no emotion ambiemo knows; classes "
                            f"{list(space.classes)} (rename it, or merge it in the label space)")
            continue
        values = pd.to_numeric(table[col].map(_text).replace("", "0"), errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values < 0)
        for i in np.flatnonzero(bad.to_numpy())[:SHOWN]:
            problems.append(f"{_where(path, i)}, column {col}: {table[col].iloc[i]!r} is not a "
                            "vote count (a number >= 0)")
        values = values.fillna(0).to_numpy(dtype=float)
        if cls is None:
            dropped[f"votes_outside_{space.name}:{canonical(label, allow_codes=codes)}"] += \
                float(values.sum())
        else:
            votes[:, index[cls]] += values
    return votes, dict(dropped), problems


def _check_columns(table: pd.DataFrame, path: Path) -> tuple[str | None, list[str]]:
    cols = list(table.columns)
    if "file" not in cols:
        return None, [f"no column 'file' (the audio file of each clip, relative to the corpus "
                      f"root); columns: {cols}"]
    if "label" in cols or "rater" in cols:
        missing = [c for c in ("rater", "label") if c not in cols]
        if missing:
            return None, [f"one row per vote needs columns file, rater, label; missing "
                          f"{missing}; columns: {cols}"]
        return "long", []
    if any(c.startswith("votes_") for c in cols):
        return "wide", []
    return None, [f"neither layout: give columns file, rater, label (one row per vote) or "
                  f"file, votes_<class>... (one row per clip); columns: {cols}"]


def clip_columns(table: pd.DataFrame, path: Path, layout: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per clip: `file` and the optional columns, checked to agree between the rows
    of one clip (long layout)."""
    keep = ["file"] + [c for c in OPTIONAL if c in table.columns]
    clips = table[keep].map(_text).map(str.strip)
    problems = []
    if layout == "long":
        for col in keep[1:]:
            n = clips.groupby("file")[col].nunique()
            for f in n[n > 1].index[:SHOWN]:
                values = sorted(set(clips.loc[clips["file"] == f, col]))
                problems.append(f"column {col}: clip {f!r} has several values {values} (one "
                                "per clip)")
        clips = clips.drop_duplicates("file")
    else:
        dup = clips["file"].duplicated()
        for i in np.flatnonzero(dup.to_numpy())[:SHOWN]:
            problems.append(f"{_where(path, i)}, column file: {clips['file'].iloc[i]!r} is "
                            "listed again (one row per clip in this layout)")
    return clips.reset_index(drop=True), problems


def read_votes(root: Path, label_space, *, votes: str = "votes.csv", codes: bool = False):
    """Read and check the votes table: (clips, (n, K) votes, n_raters, dropped, space);
    VotesTableError listing every problem."""
    space = _space(label_space)
    path = Path(root) / votes
    table = read_table(path)
    layout, problems = _check_columns(table, path)
    if problems:
        raise VotesTableError(path, problems)
    clips, problems = clip_columns(table, path, layout)
    dropped: Counter = Counter()
    if layout == "long":
        rows, more = long_votes(table, path, space, codes=codes)
        problems += more
        # A rater naming the same label twice for a clip counts once; one naming k labels
        # gives each 1/k (every rater weighs the same).
        dup = rows.duplicated(["file", "rater", "label"])
        if dup.any():
            dropped["duplicate_votes"] = int(dup.sum())
        rows = rows[~dup]
        rows["weight"] = 1.0 / rows.groupby(["file", "rater"])["file"].transform("size")
        outside = rows[rows["cls"].isna()]
        for label, w in outside.groupby(outside["label"].map(
                lambda x: canonical(x, allow_codes=codes)))["weight"].sum().items():
            dropped[f"votes_outside_{space.name}:{label}"] += float(w)
        inside = rows[rows["cls"].notna()]
        counts = (inside.pivot_table(index="file", columns="cls", values="weight",
                                     aggfunc="sum", fill_value=0.0)
                  .reindex(index=clips["file"], columns=list(space.classes), fill_value=0.0))
        matrix = counts.to_numpy(dtype=float)
        raters = inside.groupby("file")["rater"].nunique().reindex(clips["file"], fill_value=0)
        n_raters = raters.to_numpy(dtype=float)
    else:
        matrix, outside, more = wide_votes(table, path, space, codes=codes)
        problems += more
        dropped.update(outside)
        n_raters = matrix.sum(axis=1)
    if problems:
        raise VotesTableError(path, problems)
    return clips, matrix, n_raters, dict(dropped), space


def manifest_from_votes(clips: pd.DataFrame, votes: np.ndarray, n_raters: np.ndarray,
                        space: LabelSpace, *, root: Path, corpus: str, dropped: dict,
                        extras=()) -> pd.DataFrame:
    """The Manifest of clips with their vote counts (the path every rated table shares):
    clips without a vote inside the space are left out and counted."""
    root = Path(root)
    ids = clips["utt_id"] if "utt_id" in clips and clips["utt_id"].ne("").all() else \
        clips["file"].map(lambda f: Path(f).stem)
    if ids.duplicated().any():
        dup = sorted(set(ids[ids.duplicated()]))[:5]
        raise ValueError(f"{corpus}: clip ids {dup} repeat (two files with one stem): give "
                         "a utt_id column")
    keep = votes.sum(axis=1) > 0
    speaker = clips["speaker"] if "speaker" in clips else ids   # no speaker: each its own
    records = pd.DataFrame({
        "utt_id": ids.to_numpy(),
        "split": (clips["split"].replace("", "test") if "split" in clips else "test"),
        "speaker": speaker.to_numpy(),
        "audio_path": [str(Path(f) if Path(f).is_absolute() else root / f)
                       for f in clips["file"]],
        "n_raters": n_raters,
    })
    extra = [c for c in ("sentence", *extras) if c in clips]
    for c in extra:
        records[c] = clips[c].to_numpy()
    dropped = {**dropped, "no_votes": int((~keep).sum())}
    manifest = build_manifest(records[keep].reset_index(drop=True), votes[keep], space.classes,
                              corpus=corpus, label_space=space.name, dropped=dropped,
                              extras=extra)
    manifest.attrs["merges"] = dict(space.merges)
    if "speaker" not in clips:
        manifest.attrs["speaker_note"] = "no speaker column: each clip is its own speaker"
    return manifest


@register_corpus("votes_table")
def load_votes_table(root: Path, label_space=None, *, votes: str = "votes.csv",
                     codes: bool = False) -> pd.DataFrame:
    """A corpus given as a table of human votes (module docstring)."""
    clips, matrix, n_raters, dropped, space = read_votes(root, label_space, votes=votes,
                                                         codes=codes)
    return manifest_from_votes(clips, matrix, n_raters, space, root=Path(root),
                               corpus="votes_table", dropped=dropped)


def check_votes_table(root: Path, label_space=None, **options) -> list[str]:
    """Every problem of the table (schema, labels, counts), for the preflight checks: the
    same reading as the loader's, without building the Manifest or touching audio."""
    try:
        read_votes(root, label_space, **{k: v for k, v in options.items() if k in OPTIONS})
    except VotesTableError as e:
        return [str(e)]
    except (FileNotFoundError, OSError, ValueError) as e:
        return [f"{type(e).__name__}: {e}"]
    return []


load_votes_table.check = check_votes_table   # what preflight calls before any work
