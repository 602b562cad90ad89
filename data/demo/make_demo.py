"""Synthesise the ambiemo demo corpus: espeak-ng speech plus simulated rater votes.

Everything here is synthetic. The audio is espeak-ng speech whose prosody (pitch, rate,
amplitude, voice variant) is pushed towards an intended emotion with a per-clip intensity;
the "raters" are draws from the confusion model below, so the corpus spans unanimous to
highly ambiguous clips the way real corpora do (Jia et al., 2026, study exactly this
spread of human vote distributions on IEMOCAP, MSP-Podcast and CREMA-D).

Confusion model (one rater judging a clip of intended emotion i at intensity s in [0, 1]):

    P(label j | i, s) = s * C[i, j] + (1 - s) * B[j]

C is a "clearly expressed" confusion matrix (diagonal 0.85 to 0.92, the rest spread over
acoustically plausible neighbours: happy~angry share high arousal, sad~neutral low
arousal); B is what raters say for a barely expressed clip (mostly neutral). A clip's
rater count is drawn uniformly from 5..10. Low intensity gives both flat prosody and
spread votes, so ambiguity in the votes is tied to the audio.

Run from the repository root (needs the Debian package espeak-ng):
    python data/demo/make_demo.py
It rewrites data/demo/wav/*.wav and data/demo/votes.csv deterministically (seed 20260101).
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
SEED = 20260101
RATE = 16_000
CLASSES = ("neutral", "happy", "sad", "angry")

SENTENCES = (
    "It's eleven o'clock.",
    "I'm on my way to the meeting.",
)
# espeak-ng voices with a variant: two male, two female speakers.
SPEAKERS = {"spk1": "en-us+m3", "spk2": "en-us+f2", "spk3": "en-gb+m1", "spk4": "en-gb+f4"}
# Prosody at full intensity; neutral is the anchor every emotion is interpolated from.
PROSODY = {  # pitch 0-99, words per minute, amplitude 0-200
    "neutral": {"pitch": 50, "speed": 165, "amplitude": 100},
    "happy": {"pitch": 78, "speed": 195, "amplitude": 130},
    "sad": {"pitch": 28, "speed": 115, "amplitude": 65},
    "angry": {"pitch": 58, "speed": 215, "amplitude": 190},
}
# Per-speaker intensities, cycled over (emotion, sentence): each emotion gets clear and
# faint renditions.
INTENSITIES = (1.0, 0.75, 0.45, 0.15)

C = np.array([  # rows: intended; columns: perceived, in CLASSES order
    [0.92, 0.03, 0.04, 0.01],
    [0.06, 0.85, 0.01, 0.08],
    [0.08, 0.01, 0.90, 0.01],
    [0.03, 0.08, 0.01, 0.88],
])
B = np.array([0.55, 0.15, 0.15, 0.15])


def synthesise(text: str, voice: str, emotion: str, intensity: float) -> np.ndarray:
    """espeak-ng speech at 16 kHz mono float32, prosody interpolated by intensity."""
    lo, hi = PROSODY["neutral"], PROSODY[emotion]
    p = {k: round(lo[k] + intensity * (hi[k] - lo[k])) for k in lo}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(p["pitch"]), "-s", str(p["speed"]),
                        "-a", str(p["amplitude"]), "-w", str(out), text], check=True)
        audio, sr = sf.read(out, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = np.gcd(RATE, sr)
    return resample_poly(audio, RATE // g, sr // g).astype("float32")


def rater_votes(rng: np.random.Generator, emotion: str, intensity: float) -> np.ndarray:
    i = CLASSES.index(emotion)
    probs = intensity * C[i] + (1 - intensity) * B
    n_raters = int(rng.integers(5, 11))
    return rng.multinomial(n_raters, probs / probs.sum())


def main() -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (Debian: apt-get install -y espeak-ng)")
    rng = np.random.default_rng(SEED)
    wav_dir = HERE / "wav"
    wav_dir.mkdir(exist_ok=True)
    for old in wav_dir.glob("*.wav"):
        old.unlink()
    rows = []
    for s_idx, (speaker, voice) in enumerate(SPEAKERS.items()):
        for e_idx, emotion in enumerate(CLASSES):
            for t_idx, text in enumerate(SENTENCES):
                intensity = INTENSITIES[(s_idx + e_idx * 2 + t_idx) % len(INTENSITIES)]
                utt_id = f"{speaker}_{emotion}_s{t_idx + 1}"
                audio = synthesise(text, voice, emotion, intensity)
                sf.write(wav_dir / f"{utt_id}.wav", audio, RATE, subtype="PCM_16")
                votes = rater_votes(rng, emotion, intensity)
                rows.append({"utt_id": utt_id, "speaker": speaker, "split": "test",
                             "sentence": text, "intended": emotion, "intensity": intensity,
                             "n_raters": int(votes.sum()),
                             **{f"votes_{c}": int(v) for c, v in zip(CLASSES, votes)}})
    with open(HERE / "votes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} clips to {wav_dir} and votes to {HERE / 'votes.csv'}")


if __name__ == "__main__":
    main()
