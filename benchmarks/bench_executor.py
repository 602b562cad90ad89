"""Executor overhead: clips/s of one generation run with the local executor and on Ray.

The Ray executor (ambiemo.sampling.executor_ray) exists to spread the `Manifest -> Samples` arrow of
Jia et al. (2026) over many GPUs; on one machine it must not cost much. On the demo corpus
(its 32 clips repeated `--copies` times under new utt ids, the same audio) with the tiny
model this times, end to end and each into a fresh store:

- **local**: `load_model` + `runner.generate_samples` in this process (torch's default
  threads, one per core);
- **ray_1x2**: `executor_ray.generate_on_ray`, 1 actor holding 2 CPUs (the same threads);
- **ray_2x1**: 2 actors of 1 CPU each.

Ray's times include starting the actors and loading the model in each (what a run pays);
Ray itself is started before the clock (`--address` or $RAY_ADDRESS joins one, else a local
one with `--cpus`). Prints clips/s and Ray's overhead at 1 actor against local
(`--max-overhead`, default 0.25, makes it exit non-zero above it); `--json OUT` writes them.

    python benchmarks/bench_executor.py                  # 2 CPUs, 128 clips
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")   # loopback only
os.environ.setdefault("RAY_enable_metrics_collection", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]


def demo_manifest(copies: int):
    import pandas as pd

    from ambiemo import corpora

    demo = corpora.load("demo", REPO / "data" / "demo")
    parts = []
    for i in range(copies):
        part = demo.copy()
        part["utt_id"] = [f"{u}__{i}" for u in demo["utt_id"]]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs = dict(demo.attrs)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="demo corpus repeats (32 clips each)")
    ap.add_argument("--n", type=int, default=8, help="sampled answers per clip")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--shard-audio-s", type=float, default=60.0)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of a local Ray")
    ap.add_argument("--address", default=os.environ.get("RAY_ADDRESS"))
    ap.add_argument("--max-overhead", type=float, default=0.25)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import ray
    import torch

    from ambiemo.alm import Decoding, load_model
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.generate import GenerationSettings, generate_samples
    from ambiemo.sampling.store import SampleStore
    from ambiemo.config import ExecutorConfig
    from ambiemo.sampling.executor_ray import generate_on_ray, start_ray

    manifest = demo_manifest(args.copies)
    prompt = load_prompt("direct_label", REPO / "configs" / "prompts")
    settings = GenerationSettings(n_samples=args.n, batch_size=args.batch, seed=0,
                                  decoding=Decoding(max_new_tokens=args.new_tokens,
                                                    constrained=True))
    tmp = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    options = {"cache_dir": str(tmp / "cache"), "device": "cpu"}
    load_model("tiny-qwen2-audio", **options)        # build the checkpoint before any clock
    results = {"clips": len(manifest), "n_samples": args.n, "batch": args.batch,
               "new_tokens": args.new_tokens, "shard_audio_s": args.shard_audio_s,
               "torch_threads": torch.get_num_threads(), "phases": {}}

    t0 = time.perf_counter()
    adapter = load_model("tiny-qwen2-audio", **options)
    with SampleStore(tmp / "local.sqlite") as store:
        local = generate_samples(adapter, manifest, store, prompt, settings, progress=False)
    results["phases"]["local"] = time.perf_counter() - t0
    del adapter

    start_ray(args.address, num_cpus=args.cpus)
    results["ray_cpus"] = ray.cluster_resources().get("CPU")
    for name, actors, cpus in (("ray_1x2", 1, 2.0), ("ray_2x1", 2, 1.0)):
        t0 = time.perf_counter()
        with SampleStore(tmp / f"{name}.sqlite") as store:
            report = generate_on_ray("tiny-qwen2-audio", options, manifest, store, prompt,
                                     settings, shard_root=tmp / name / "shards",
                                     executor=ExecutorConfig("ray", actors=actors,
                                                             shard_audio_s=args.shard_audio_s),
                                     cpus_per_actor=cpus, progress=False)
        results["phases"][name] = time.perf_counter() - t0
        assert report.generation.rows_written == local.rows_written, (name, report)
        results[f"{name}_shards"] = report.shards
    ray.shutdown()

    print(f"{len(manifest)} clips, N={args.n}, batch {args.batch}, {args.new_tokens} tokens")
    for name, seconds in results["phases"].items():
        print(f"{name:<8} {len(manifest) / seconds:7.2f} clips/s  {seconds:7.1f} s")
    overhead = results["phases"]["ray_1x2"] / results["phases"]["local"] - 1
    results["overhead_1_actor"] = overhead
    print(f"Ray overhead at 1 actor: {overhead:+.1%} (target < {args.max_overhead:.0%})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if overhead < args.max_overhead else 1


if __name__ == "__main__":
    sys.exit(main())
