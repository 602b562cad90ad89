"""Clips as the bytes a hosted API accepts: 16-bit PCM WAV, raw or base64.

Jia et al. (2026) give every ALM the same 16 kHz mono speech; hosted models receive it as a
WAV file inside the request (OpenAI: a base64 `input_audio` part; Gemini: inline bytes with
mime type audio/wav). 16-bit PCM is the format both APIs document for WAV input.
"""
from __future__ import annotations

import base64
import io
import wave

import numpy as np

from ambiemo.alm.audio import TARGET_SR


def wav_bytes(audio: np.ndarray, sample_rate: int = TARGET_SR) -> bytes:
    """`audio` (mono float in [-1, 1]) as a 16-bit PCM WAV file."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected a non-empty mono clip (1-D array), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("the clip contains NaN or infinite samples")
    # Clipping, not rescaling: a peak above full scale is clipped as a sound card would.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def wav_base64(audio: np.ndarray, sample_rate: int = TARGET_SR) -> str:
    return base64.b64encode(wav_bytes(audio, sample_rate)).decode("ascii")
