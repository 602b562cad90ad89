"""Reading clips for a model: 16 kHz mono float32, with clear errors for bad files.

ALMs in Jia et al. (2026) all take 16 kHz mono speech; corpora ship other rates and
channel layouts, and real releases contain missing or broken files. This module is where
such input is made uniform or refused with the file named.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TARGET_SR = 16_000


class AudioError(ValueError):
    """A clip that cannot be given to a model; the message names the file."""


def load_audio(path: str | Path, target_sr: int = TARGET_SR) -> np.ndarray:
    """Read `path` as mono float32 at `target_sr` (stereo is averaged, other rates resampled)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty (0 samples)")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        # A float WAV can hold NaN/inf; a model would turn them into NaN logits (and an
        # adapter that marks padding with NaN would take them for padding).
        raise AudioError(f"{path}: {bad} non-finite samples (NaN or inf) of {audio.size}")
    mono = audio.mean(axis=1)
    if sr != target_sr:
        g = np.gcd(int(sr), target_sr)
        mono = resample_poly(mono, target_sr // g, int(sr) // g).astype("float32")
    return np.ascontiguousarray(mono, dtype=np.float32)


def is_silent(audio: np.ndarray, threshold: float = 1e-4) -> bool:
    """True when the clip's peak amplitude is below `threshold` (reported, not refused)."""
    return float(np.max(np.abs(audio))) < threshold
