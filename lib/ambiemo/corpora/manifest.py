"""The Manifest table: one row per utterance with its human vote distribution.

Every corpus loader funnels through `build_manifest`, so the columns the rest of the
pipeline relies on (docs/design.md, "Tables") are produced in exactly one place. Human soft
labels are the normalised rater votes, as in Jia et al. (2026), whose targets are the
per-clip distributions of IEMOCAP, MSP-Podcast and CREMA-D annotations.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.corpora.input_files import check_file_names
from ambiemo.labels import columns

BASE_COLUMNS = ["utt_id", "corpus", "split", "speaker", "audio_path", "has_audio",
                "duration_s", "n_raters"]


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of `p` (0 log 0 = 0)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=-1)


def majority_labels(votes: np.ndarray, classes: Sequence[str]) -> list[str | None]:
    """The class with the most votes per row, or None where the top count is tied."""
    votes = np.asarray(votes, dtype=float)
    top = votes.max(axis=1, keepdims=True)
    is_top = np.isclose(votes, top) & (top > 0)
    out: list[str | None] = []
    for row in is_top:
        idx = np.flatnonzero(row)
        out.append(classes[idx[0]] if len(idx) == 1 else None)
    return out


def build_manifest(records: pd.DataFrame, votes: np.ndarray, classes: Sequence[str], *,
                   corpus: str, label_space: str, dropped: Mapping[str, int] | None = None,
                   extras: Sequence[str] = ()) -> pd.DataFrame:
    """Assemble a Manifest from per-utterance records and their vote matrix.

    `records` holds `utt_id, split, speaker, audio_path, n_raters` (and optionally
    `duration_s`) plus any corpus extras named in `extras`; `votes` is (n, K) in the order
    of `classes` (fractional votes allowed, e.g. IEMOCAP evaluators naming two classes).
    Rows whose votes sum to zero must be removed by the loader (and counted in `dropped`)
    before calling this; a zero row here is a loader bug and raises.
    """
    classes = list(classes)
    votes = np.asarray(votes, dtype=float)
    if votes.ndim != 2 or votes.shape != (len(records), len(classes)):
        raise ValueError(f"{corpus}: votes have shape {votes.shape}, expected "
                         f"({len(records)}, {len(classes)})")
    totals = votes.sum(axis=1)
    if (totals <= 0).any():
        bad = records["utt_id"].to_numpy()[totals <= 0][:5].tolist()
        raise ValueError(f"{corpus}: utterances with no votes reached the Manifest: {bad}")
    if records["utt_id"].duplicated().any():
        dup = records.loc[records["utt_id"].duplicated(), "utt_id"].head(5).tolist()
        raise ValueError(f"{corpus}: duplicate utt_id {dup}")
    if len(records) == 0:
        raise ValueError(f"{corpus}: the corpus has no utterances left to load")

    for col in ("utt_id", "audio_path"):   # they name files and key the sample store
        check_file_names(records[col].tolist(), col, corpus)
    df = records.reset_index(drop=True).copy()
    df["corpus"] = corpus
    df["audio_path"] = df["audio_path"].astype(str)
    df["has_audio"] = [Path(p).is_file() for p in df["audio_path"]]
    if "duration_s" not in df:
        df["duration_s"] = np.nan
    df["duration_s"] = df["duration_s"].astype(float)
    # Only headers of files that exist are read: an annotation-only Manifest stays instant.
    unknown = df["has_audio"].to_numpy() & df["duration_s"].isna().to_numpy()
    if unknown.any():
        df.loc[unknown, "duration_s"] = [_duration(p) for p in df.loc[unknown, "audio_path"]]
    p = votes / totals[:, None]
    vote_cols, p_cols = columns("votes", classes), columns("p", classes)
    df[vote_cols] = votes
    df[p_cols] = p
    df["entropy_bits"] = entropy_bits(p)
    df["majority"] = pd.Series(majority_labels(votes, classes), dtype=object)
    ordered = BASE_COLUMNS + vote_cols + p_cols + ["entropy_bits", "majority"] + list(extras)
    df = df[ordered]
    df.attrs["corpus"] = corpus
    df.attrs["label_space"] = label_space
    df.attrs["classes"] = classes
    df.attrs["dropped"] = dict(dropped or {})
    return df


def _duration(path: str) -> float:
    import soundfile as sf
    try:
        return float(sf.info(path).duration)
    except (RuntimeError, OSError):  # unreadable audio: NaN here, require_audio still passes
        return float("nan")


AMBIGUITY_LABELS = ("low", "mid", "high")


def _rounded(entropy: np.ndarray) -> np.ndarray:
    # The same vote split in another class order can differ in the last bit of its
    # entropy; rounding keeps such clips equal, hence in one bin.
    return np.round(np.asarray(entropy, dtype=float), 9)


def tertile_edges(entropy: np.ndarray) -> tuple[float, float]:
    """Two cut points that split `entropy` into three groups as equal in size as ties allow.

    Entropy is heavily tied (every unanimous clip has 0 bits, and with a handful of raters
    only a few distinct values occur), so plain quantiles can put equal clips in different
    bins or leave the middle bin empty. Here each cut lies *on* a distinct observed value
    (a bin is `(lower edge, upper edge]`, so clips with equal entropy always share a bin),
    chosen where the number of clips at or below it comes closest to n/3 and 2n/3 (the
    smaller cut on a draw), subject to the second cut lying strictly above the first and
    below the largest value, so that no bin is empty when three or more distinct values
    occur. With fewer, the two cuts coincide and the middle (or also the top) bin is empty.
    """
    e = np.sort(_rounded(entropy))
    e = e[~np.isnan(e)]
    if len(e) == 0:
        raise ValueError("ambiguity tertiles need at least one entropy value")
    values, counts = np.unique(e, return_counts=True)
    cum = np.cumsum(counts)
    n = len(e)
    # The first cut leaves room for a second one below the largest value (so that, with
    # three or more distinct values, no bin is empty); the second lies above the first.
    first = np.arange(max(len(values) - 2, 1))
    i = int(first[np.argmin(np.abs(cum[first] - n / 3))])
    later = np.arange(i + 1, len(values) - 1)
    j = int(later[np.argmin(np.abs(cum[later] - 2 * n / 3))]) if len(later) else i
    return float(values[i]), float(values[j])


def ambiguity_bins(entropy: np.ndarray, edges: Sequence[float] | None = None
                   ) -> tuple[pd.Categorical, tuple[float, ...]]:
    """Ordered ambiguity bins of `entropy` and the edges used.

    `edges=None` gives entropy tertiles (`tertile_edges`) labelled low/mid/high; fixed
    `edges` (increasing, in bits) give bins `(-inf, e1], (e1, e2], ...`, labelled
    low/mid/high when there are two edges and by their interval otherwise.
    """
    entropy = _rounded(entropy)
    if edges is None:
        edges = tertile_edges(entropy)  # may coincide when fewer than 3 distinct values
    else:
        edges = tuple(float(x) for x in edges)
        if len(edges) == 0 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"ambiguity edges must be strictly increasing, got {edges}")
    if len(edges) == 2:
        labels = list(AMBIGUITY_LABELS)
    else:
        bounds = [-np.inf, *edges, np.inf]
        labels = [f"({a:g}, {b:g}]" for a, b in zip(bounds, bounds[1:])]
    idx = np.searchsorted(np.asarray(edges), entropy, side="left")  # right-closed bins
    codes = np.where(np.isnan(entropy), -1, idx)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True), edges


def add_ambiguity_bin(manifest: pd.DataFrame, edges: Sequence[float] | None = None
                      ) -> pd.DataFrame:
    """`manifest` with an `ambiguity_bin` column; the edges go to `attrs["ambiguity_edges"]`."""
    bins, used = ambiguity_bins(manifest["entropy_bits"].to_numpy(), edges)
    attrs = dict(manifest.attrs)
    out = manifest.assign(ambiguity_bin=bins)
    out.attrs = attrs | {"ambiguity_edges": list(used),
                         "ambiguity_rule": "tertiles" if edges is None else "fixed"}
    return out


class AudioUnavailableError(FileNotFoundError):
    """Clips that cannot be sent to a model; the message lists each one and why."""


def require_audio(manifest: pd.DataFrame, shown: int = 20, *, allow_empty: bool = False,
                  allow_unreadable: bool = False) -> None:
    """Raise AudioUnavailableError listing every utterance whose audio is absent, unreadable
    (unless `allow_unreadable`) or (unless `allow_empty`) empty *now* (read from the file
    header, not decoded). Generation allows both: such clips become counted `audio_error`
    failure rows (corpora/audio_check.py), not a refused run; only absent files refuse it.

    Checked against the file system at call time, not the stored `has_audio`, because a
    Manifest built on one machine may be used for generation on another.
    """
    import soundfile as sf

    problems = []
    for u, p in zip(manifest["utt_id"], manifest["audio_path"]):
        if not Path(p).is_file():
            problems.append(f"{u}: no audio file at {p}")
            continue
        if allow_unreadable:
            continue
        try:
            frames = sf.info(p).frames
        except (RuntimeError, OSError) as e:
            problems.append(f"{u}: {p} is not a readable audio file ({e})")
            continue
        if frames == 0 and not allow_empty:
            problems.append(f"{u}: {p} is empty (0 samples)")
    if problems:
        corpus = manifest.attrs.get("corpus", "corpus")
        more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
        raise AudioUnavailableError(
            f"{corpus}: {len(problems)} of {len(manifest)} clips cannot be sent to a model:\n  "
            + "\n  ".join(problems[:shown]) + more)


def probabilities(manifest: pd.DataFrame) -> np.ndarray:
    """The (n, K) human distribution of a Manifest, in `attrs["classes"]` order."""
    return manifest[columns("p", manifest.attrs["classes"])].to_numpy(dtype=float)


def manifest_classes(manifest: pd.DataFrame, classes: Sequence[str] | None = None) -> list[str]:
    """Class order: explicit `classes`, else `attrs["classes"]`, else the p_ columns (Parquet
    round trips can drop attrs)."""
    if classes is not None:
        return list(classes)
    if manifest.attrs.get("classes"):
        return list(manifest.attrs["classes"])
    found = [c[2:] for c in manifest.columns if c.startswith("p_")]
    if not found:
        raise ValueError("cannot tell the classes: pass classes=, or a Manifest with p_ columns")
    return found
