"""Speed of the supervised soft-label reference (issue #17): eGeMAPS extraction and cross-fitting.

Two measurements, both on this machine's CPUs:

1. **extraction**: eGeMAPS v02 functionals (features/egemaps.py) over `--clips` clips of
   CREMA-D-like length (1.3-4.0 s, uniform; CREMA-D's mean is about 2.5 s), cut from the demo
   corpus's espeak-ng speech (data/demo/wav, tiled to length), with 1 worker and with
   `--jobs` workers. Reports clips/s of wall time and clips per CPU-second (what one core
   does when it is not shared: on a busy machine wall time measures the other jobs too),
   and the time each implies for CREMA-D's 7,442 clips.
2. **cross-fitting**: `soft_reference_predictions` on a synthetic corpus of `--fit-clips`
   clips x 88 standardised-normal features, K=6 classes, `--speakers` speakers, vote
   distributions of 8 raters drawn from a linear-softmax rule, 5 outer folds, C by inner
   speaker CV over the default grid (on at most 5,000 clips per fold), `--jobs` folds at a time.

    python benchmarks/bench_features.py                     # 200 clips, 100k-clip fit
    python benchmarks/bench_features.py --min-clips-per-s-per-core 15 --max-fit-s 60

`--json OUT` writes the numbers; the --min/--max options make it exit non-zero when missed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ambiemo.corpora.manifest import build_manifest
from ambiemo.features.egemaps import extract_egemaps
from ambiemo.tts.soft_reference import soft_reference_predictions

REPO = Path(__file__).resolve().parents[1]
CREMA_D_CLIPS = 7442
SR = 16_000


def make_clips(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """`n` clips of 1.3-4.0 s cut from the demo corpus's speech (tiled), as a tiny Manifest."""
    rng = np.random.default_rng(seed)
    sources = sorted((REPO / "data" / "demo" / "wav").glob("*.wav"))
    rows = []
    for i in range(n):
        audio, sr = sf.read(sources[i % len(sources)], dtype="float32")
        length = int(rng.uniform(1.3, 4.0) * sr)
        clip = np.tile(audio, length // len(audio) + 1)[:length]
        path = folder / f"clip{i:05d}.wav"
        sf.write(path, clip, sr)
        rows.append({"utt_id": f"clip{i:05d}", "audio_path": str(path), "duration_s": length / sr})
    return pd.DataFrame(rows)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers, once joined)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_extraction(n: int, jobs: int, seed: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), n, seed)
        # Warm-up: opensmile's first import and Smile construction take seconds, once.
        extract_egemaps(clips.iloc[:2], None, progress=False)
        for workers in sorted({1, jobs}):
            t0, c0 = time.perf_counter(), cpu_seconds()
            feats = extract_egemaps(clips, None, n_jobs=workers, progress=False)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            assert (feats["status"] == "ok").all(), feats["reason"].dropna().head()
            rate = n / dt
            out[f"jobs{workers}"] = {"seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
                                     "clips_per_s": round(rate, 2),
                                     "clips_per_cpu_s": round(n / cpu, 2),
                                     "crema_d_minutes": round(CREMA_D_CLIPS / rate / 60, 2),
                                     "crema_d_cpu_minutes": round(CREMA_D_CLIPS / (n / cpu) / 60,
                                                                  2)}
        out["mean_clip_s"] = round(float(clips["duration_s"].mean()), 3)
    return out


def synthetic_corpus(n: int, speakers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    classes = ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    X = rng.standard_normal((n, 88))
    logits = X @ (0.3 * rng.standard_normal((88, len(classes))))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    votes = rng.multinomial(8, p)
    ids = [f"u{i:06d}" for i in range(n)]
    records = pd.DataFrame({"utt_id": ids, "split": "test",
                            "speaker": [f"spk{i % speakers}" for i in range(n)],
                            "audio_path": "", "n_raters": 8, "duration_s": 2.5})
    manifest = build_manifest(records, votes, classes, corpus="synthetic", label_space="6class")
    features = pd.DataFrame(X, columns=[f"f{j}" for j in range(88)])
    features.insert(0, "utt_id", ids)
    features.insert(1, "audio_path", "")
    features.insert(2, "status", "ok")
    features.insert(3, "reason", None)
    return manifest, features


def bench_fit(n: int, speakers: int, jobs: int, seed: int) -> dict:
    manifest, features = synthetic_corpus(n, speakers, seed)
    t0, c0 = time.perf_counter(), cpu_seconds()
    pred = soft_reference_predictions(manifest, features, seed=seed, n_jobs=jobs)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    assert not pred["missing"].any()
    # With jobs > 1 the folds run in joblib's reusable workers, which outlive this call:
    # their CPU time is not in cpu_seconds (only with --jobs 1 is it the whole cost).
    return {"clips": n, "speakers": speakers, "jobs": jobs, "seconds": round(dt, 2),
            "cpu_seconds_this_process": round(cpu, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--fit-clips", type=int, default=100_000)
    ap.add_argument("--speakers", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-fit", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--min-clips-per-s-per-core", type=float)
    ap.add_argument("--max-fit-s", type=float)
    args = ap.parse_args(argv)

    result = {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)}
    result["extraction"] = bench_extraction(args.clips, args.jobs, args.seed)
    print(json.dumps({"extraction": result["extraction"]}, indent=1), flush=True)
    if not args.skip_fit:
        result["fit"] = bench_fit(args.fit_clips, args.speakers, args.jobs, args.seed)
        print(json.dumps({"fit": result["fit"]}, indent=1), flush=True)
    result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    failed = []
    per_core = result["extraction"]["jobs1"]["clips_per_cpu_s"]
    if args.min_clips_per_s_per_core and per_core < args.min_clips_per_s_per_core:
        failed.append(f"extraction {per_core} clips/s per core < {args.min_clips_per_s_per_core}")
    if args.max_fit_s and "fit" in result and result["fit"]["seconds"] > args.max_fit_s:
        failed.append(f"fit {result['fit']['seconds']} s > {args.max_fit_s} s")
    for f in failed:
        print("MISSED:", f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
