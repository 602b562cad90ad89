"""Probing every clip's audio file when a corpus is prepared, so bad audio is named early.

Jia et al. (2026) score ALMs on clips of IEMOCAP, MSP-Podcast and CREMA-D; real releases
hold 0-byte files, text saved as `.wav`, files cut short in a copy, float WAVs with NaN.
Found only during generation, such a file used to refuse a whole model x corpus job hours in;
a 2 ms fragment was answered like a normal clip. `probe_audio` reads each file once with
soundfile (header, frames actually decoded, duration, finite samples) and gives it one
`audio_status`:

    ok          usable
    missing     no file at the path (annotation-only work still runs; generation refuses)
    unreadable  not an audio file soundfile can decode (the reason says why)
    empty       a valid header with 0 frames
    too_short   shorter than `min_duration_s` (default 0.1 s: no emotion is audible in less)
    non_finite  NaN or inf samples (a model would turn them into NaN logits)

`probe_manifest` writes `audio_status` and `audio_reason` into a Manifest; generation turns
every clip not `ok` (other than `missing`) into counted, named `audio_error` failure rows.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MIN_DURATION_S = 0.1
AUDIO_STATUSES = ("ok", "missing", "unreadable", "empty", "too_short", "non_finite")
BLOCK_FRAMES = 1 << 16      # decoded in blocks: a long podcast clip never sits in memory twice


@dataclass(frozen=True)
class AudioProbe:
    status: str                 # one of AUDIO_STATUSES
    reason: str = ""            # what is wrong, naming the file ("" when ok)
    duration_s: float = float("nan")   # decoded frames / sample rate (NaN when unknown)


def probe_audio(path: str | Path, min_duration_s: float = MIN_DURATION_S) -> AudioProbe:
    """Read `path` once and say whether a model can be given it (see the module docstring)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return AudioProbe("missing", f"{path}: no audio file")
    frames, bad = 0, 0
    try:
        with sf.SoundFile(path) as f:
            sr, declared = f.samplerate, f.frames
            # Counting the frames that decode, not the header's claim: a file cut short by a
            # copy can carry a header for more frames than it holds.
            for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
                frames += block.shape[0]
                bad += int(np.count_nonzero(~np.isfinite(block)))
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        return AudioProbe("unreadable", f"{path}: not a readable audio file ({e})")
    duration = frames / sr if sr else float("nan")
    if frames == 0:
        return AudioProbe("empty", f"{path}: audio file is empty (0 samples)", 0.0)
    if bad:
        return AudioProbe("non_finite", f"{path}: {bad} non-finite samples (NaN or inf)", duration)
    if duration < min_duration_s:
        return AudioProbe("too_short", f"{path}: {duration * 1000:.2f} ms of audio, shorter than "
                          f"the minimum {min_duration_s:g} s", duration)
    if frames < declared:
        return AudioProbe("unreadable", f"{path}: header declares {declared} frames, only "
                          f"{frames} decode (truncated file)", duration)
    return AudioProbe("ok", "", duration)


def probe_manifest(manifest: pd.DataFrame, min_duration_s: float = MIN_DURATION_S,
                   workers: int | None = None) -> pd.DataFrame:
    """`manifest` with `audio_status` and `audio_reason` per clip and `duration_s` from the
    decoded frames where the file decodes; counts per status go to
    `attrs["audio_status_counts"]` and the threshold to `attrs["min_audio_s"]`.

    Files are probed in a thread pool (libsndfile releases the GIL while decoding)."""
    if not min_duration_s >= 0:
        raise ValueError(f"min_duration_s must be >= 0 seconds, got {min_duration_s!r}")
    paths = manifest["audio_path"].astype(str).tolist()
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probes = list(pool.map(lambda p: probe_audio(p, min_duration_s), paths))
    attrs = dict(manifest.attrs)
    out = manifest.copy()
    out["audio_status"] = pd.Series([p.status for p in probes], index=out.index, dtype=object)
    out["audio_reason"] = pd.Series([p.reason for p in probes], index=out.index, dtype=object)
    decoded = np.array([p.duration_s for p in probes], dtype=float)
    if "duration_s" in out:
        known = ~np.isnan(decoded)
        out.loc[known, "duration_s"] = decoded[known]
    counts = out["audio_status"].value_counts()
    out.attrs = attrs | {"min_audio_s": float(min_duration_s),
                         "audio_status_counts": {s: int(counts.get(s, 0))
                                                 for s in AUDIO_STATUSES}}
    return out


def unusable_clips(manifest: pd.DataFrame) -> dict[str, str]:
    """utt_id -> reason for every clip whose file exists but cannot be given to a model."""
    if "audio_status" not in manifest:
        return {}
    bad = manifest[~manifest["audio_status"].isin(["ok", "missing"])]
    return dict(zip(bad["utt_id"], bad["audio_status"] + ": " + bad["audio_reason"]))
