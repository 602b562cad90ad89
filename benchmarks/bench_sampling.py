"""Sampling speed: the shared-prefix engine against one generate() call per sample.

Jia et al. (2026) draw N responses per clip for every model, corpus, prompt and strategy;
this measures what that costs. On the same model and the same synthetic clips it times
(1) the naive loop, one `generate()` per sample; (2) the engine as the adapter runs it
(alm/hf/engine/decode.py: one prefill per batch of clips, N samples decoded from it, the prompt's KV
cache shared by the N rows); (3) `engine_repeat`, the same with the prompt cache repeated
N times (the memory comparison); (4) with `--compile`, the shared path with a static
suffix cache and a torch.compile'd step; (5) class-name scoring (`label_scores`: one
prefill, K names teacher-forced); (6) beam search from the shared prefill (`--beams`).
Beside each engine path it reports the KV-cache bytes held at the end of decoding. Every
response has exactly
`--new-tokens` tokens (stop tokens are masked until then, `min_new_tokens`), so both paths
do the same work. Prints clips/s, the ratio and peak memory; `--json OUT` writes them.

    python benchmarks/bench_sampling.py                      # CPU, tiny model
    python benchmarks/bench_sampling.py --model 7b-shaped --device cuda --clips 16 --n 8

`7b-shaped` is Qwen2-Audio-7B's architecture at full size with random bf16 weights, built
on the device from the config (nothing downloaded); its tokenizer is the tiny model's (the
vocabulary size, and so the LM head's cost, is the 7B one). Peak memory is
`torch.cuda.max_memory_allocated` per phase on a GPU; on a CPU it is the process's peak
resident set so far (`ru_maxrss`), which only grows across phases.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from ambiemo.alm import Clip, Decoding, load_model
from ambiemo.alm.hf import engine
from ambiemo.alm.hf.engine.continuations import Continuations
from ambiemo.alm.archs.qwen2_audio import Qwen2AudioAdapter
from ambiemo.labels import classes_for

PROMPT = "Which emotion does the speaker express? Answer with one word."
GIB = 2 ** 30


def qwen2_audio_7b_config(tokenizer):
    """Qwen2-Audio-7B's sizes (audio encoder of Whisper-large-v3, Qwen2-7B text model)."""
    from transformers import Qwen2AudioConfig
    return Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "d_model": 1280, "encoder_layers": 32,
                      "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                      "num_mel_bins": 128, "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": 156032, "hidden_size": 4096,
                     "intermediate_size": 11008, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 32,
                     "max_position_embeddings": 8192, "rope_theta": 10000.0},
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))


def build_adapter(model: str, device: str, cache_dir: str) -> Qwen2AudioAdapter:
    tiny = load_model("tiny-qwen2-audio", cache_dir=cache_dir, device=device if model == "tiny" else "cpu")
    if model == "tiny":
        return tiny
    from transformers import (Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)
    tok = tiny.processor.tokenizer
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000, chunk_length=30,
                                 hop_length=160)  # the real model's 30 s window
    processor = Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok,
                                    chat_template=tiny.processor.chat_template)
    torch.manual_seed(0)
    with torch.device(device):
        net = Qwen2AudioForConditionalGeneration._from_config(qwen2_audio_7b_config(tok),
                                                              dtype=torch.bfloat16)
    net.generation_config.eos_token_id = tiny.eos_id
    net.generation_config.pad_token_id = tiny.pad_id
    return Qwen2AudioAdapter.from_parts(net, processor, name="qwen2-audio-7b-shaped", device=device)


def synthetic_clips(count: int, seconds: float) -> list[Clip]:
    """Sines at different pitches plus noise, seeded: the content does not matter to speed."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16_000)) / 16_000
    return [Clip(f"clip{i:03d}", (0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t)
                                   + 0.05 * rng.standard_normal(len(t))).astype(np.float32))
            for i in range(count)]


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux


def timed(device: str, fn, clips: int) -> dict:
    """Run `fn` once to warm up, then once timed."""
    fn()
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    _sync(device)
    s = time.perf_counter() - t0
    return {"seconds": s, "clips": clips, "clips_per_s": clips / s, "peak_gib": _peak_gib(device)}


def kv_cache_gib(adapter, clips, n: int, new_tokens: int, sharing: str) -> float:
    """KV-cache GiB one batch holds after `new_tokens` tokens per row with this sharing:
    the prefill, then the decoding steps (fixed token ids: only sizes matter here)."""
    prefix = engine.prefill(adapter.model, _inputs(adapter, clips))
    rows = Continuations(adapter.model, prefix, n, sharing=sharing)
    ids = torch.full((rows.rows, 1), adapter.pad_id, device=prefix.last_logits.device)
    for _ in range(new_tokens - 1):
        rows.forward(ids)
    return rows.cache_bytes() / GIB


def _inputs(adapter, clips):
    return adapter.processor_inputs([adapter.build_prompt(PROMPT)] * len(clips),
                                    [c.audio for c in clips]).to(adapter.device)


def run(args) -> dict:
    adapter = build_adapter(args.model, args.device, args.cache_dir)
    clips = synthetic_clips(args.clips, args.seconds_per_clip)
    classes = list(classes_for("crema_d"))                     # K = 6
    dec = Decoding(max_new_tokens=args.new_tokens)
    kw = dict(n=args.n, greedy=False, decoding=dec, classes=classes, min_new_tokens=args.new_tokens)
    result = {"model": args.model, "device": args.device, "torch": torch.__version__,
              "transformers": transformers.__version__, "clips": args.clips, "n": args.n,
              "new_tokens": args.new_tokens, "seconds_per_clip": args.seconds_per_clip,
              "batch": args.batch, "classes": len(classes)}
    batches = [clips[i:i + args.batch] for i in range(0, len(clips), args.batch)]
    # Each method is timed cold: no prefill carried over from the previous call.
    adapter.reuse_prefill = False

    def engine_adapter():
        adapter.engine = "prefix"
        for i, b in enumerate(batches):
            gens = adapter.generate(b, PROMPT, seed=i, **kw)
            assert len(gens) == len(b) * args.n and all(g.n_tokens == args.new_tokens for g in gens)

    def engine_direct(**options):
        def fn():
            for i, b in enumerate(batches):
                torch.manual_seed(i)
                tokens, _ = engine.decode(adapter.model, engine.prefill(adapter.model, _inputs(adapter, b)),
                                          n=args.n, greedy=False, max_new_tokens=args.new_tokens,
                                          min_new_tokens=args.new_tokens, stop_ids=adapter.stop_ids,
                                          pad_id=adapter.pad_id, **options)
                assert tokens.shape == (len(b) * args.n, args.new_tokens)
        return fn

    def beams():
        for b in batches:
            out = engine.beam_search(adapter.model, engine.prefill(adapter.model, _inputs(adapter, b)),
                                     beams=args.beams, max_new_tokens=args.new_tokens,
                                     stop_ids=adapter.stop_ids, pad_id=adapter.pad_id)
            assert out.tokens.shape[0] == len(b) * args.beams

    def naive():
        adapter.engine = "generate"
        for c in naive_clips:
            for s in range(args.n):
                adapter.generate([c], PROMPT, seed=s, **{**kw, "n": 1})

    def scores():
        for b in batches:
            for _, p in adapter.label_scores(b, PROMPT, classes):
                assert abs(p.sum() - 1) < 1e-6

    def runner_batch(reuse: bool):
        """What the runner asks of one batch with every kind on: greedy, N samples, beams
        and class-name scores, all under one prompt; `reuse` shares their prefill."""
        def fn():
            adapter.reuse_prefill = reuse
            for i, b in enumerate(batches):
                adapter.forget_prefill()         # a new batch starts cold
                adapter.generate(b, PROMPT, seed=i, **{**kw, "n": 1, "greedy": True})
                adapter.generate(b, PROMPT, seed=i, **kw)
                if args.beams:
                    adapter.beam(b, PROMPT, beams=args.beams, decoding=dec, classes=classes)
                adapter.label_scores(b, PROMPT, classes)
            adapter.reuse_prefill = False
        return fn

    result["engine"] = timed(args.device, engine_adapter, len(clips))
    result["engine"]["kv_cache_gib"] = kv_cache_gib(adapter, batches[0], args.n, args.new_tokens, "shared")
    result["engine_repeat"] = timed(args.device, engine_direct(prefix_sharing="repeat"), len(clips))
    result["engine_repeat"]["kv_cache_gib"] = kv_cache_gib(adapter, batches[0], args.n,
                                                           args.new_tokens, "repeat")
    result["kv_cache_repeat / shared"] = (result["engine_repeat"]["kv_cache_gib"]
                                          / result["engine"]["kv_cache_gib"])
    if args.compile:
        result["engine_compiled"] = timed(args.device, engine_direct(static_cache=True, compile=True),
                                          len(clips))
    result["label_scores"] = timed(args.device, scores, len(clips))
    if args.beams:
        result["beam_search"] = timed(args.device, beams, len(clips))
        result["beam_search"]["beams"] = args.beams
    result["all_kinds"] = timed(args.device, runner_batch(False), len(clips))
    result["all_kinds_reused"] = timed(args.device, runner_batch(True), len(clips))
    result["all_kinds reused / not"] = (result["all_kinds_reused"]["clips_per_s"]
                                        / result["all_kinds"]["clips_per_s"])
    if args.naive:
        naive_clips = clips[:args.naive_clips or len(clips)]
        result["naive"] = timed(args.device, naive, len(naive_clips))
        result["ratio"] = result["engine"]["clips_per_s"] / result["naive"]["clips_per_s"]
    adapter.engine = "prefix"
    return result


PHASES = ("naive", "engine", "engine_repeat", "engine_compiled", "label_scores", "beam_search",
          "all_kinds", "all_kinds_reused")


def report(r: dict) -> str:
    lines = [f"{r['model']} on {r['device']} (torch {r['torch']}, transformers {r['transformers']}): "
             f"{r['clips']} clips of {r['seconds_per_clip']} s, N = {r['n']}, "
             f"{r['new_tokens']} new tokens, batch {r['batch']}, K = {r['classes']}"]
    for name in PHASES:
        if name in r:
            p = r[name]
            kv = f"  KV cache {p['kv_cache_gib']:.4f} GiB" if "kv_cache_gib" in p else ""
            lines.append(f"  {name:<15} {p['clips_per_s']:9.2f} clips/s  ({p['seconds']:.2f} s for "
                         f"{p['clips']} clips)  peak {p['peak_gib']:.2f} GiB{kv}")
    if "ratio" in r:
        lines.append(f"  engine / naive  {r['ratio']:.1f}x")
    lines.append(f"  KV cache repeat / shared  {r['kv_cache_repeat / shared']:.2f}x")
    lines.append(f"  all kinds, prefill reused / not  {r['all_kinds reused / not']:.2f}x")
    return "\n".join(lines)


def check(r: dict, args) -> list[str]:
    """Targets given on the command line that were missed."""
    missed = []
    if args.min_ratio and r.get("ratio", float("inf")) < args.min_ratio:
        missed.append(f"ratio {r['ratio']:.1f} < {args.min_ratio}")
    if args.min_clips_per_s and r["engine"]["clips_per_s"] < args.min_clips_per_s:
        missed.append(f"engine {r['engine']['clips_per_s']:.1f} clips/s < {args.min_clips_per_s}")
    if args.min_score_clips_per_s and r["label_scores"]["clips_per_s"] < args.min_score_clips_per_s:
        missed.append(f"label_scores {r['label_scores']['clips_per_s']:.1f} clips/s "
                      f"< {args.min_score_clips_per_s}")
    if args.max_peak_gib and r["engine"]["peak_gib"] > args.max_peak_gib:
        # On a GPU `peak_gib` is torch.cuda.max_memory_allocated of the engine phase.
        missed.append(f"engine peak {r['engine']['peak_gib']:.1f} GiB > {args.max_peak_gib}")
    return missed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["tiny", "7b-shaped"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--n", type=int, default=8, help="samples per clip")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--seconds-per-clip", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=16, help="clips per engine call")
    ap.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--beams", type=int, default=4, help="beam-search beams per clip (0: skip)")
    ap.add_argument("--compile", action="store_true",
                    help="also time the static-cache, torch.compile'd decoding step")
    ap.add_argument("--naive-clips", type=int, default=0,
                    help="time the naive loop on this many clips only (0: all)")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "ambiemo-bench"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--min-ratio", type=float, default=0)
    ap.add_argument("--min-clips-per-s", type=float, default=0)
    ap.add_argument("--min-score-clips-per-s", type=float, default=0)
    ap.add_argument("--max-peak-gib", type=float, default=0)
    args = ap.parse_args(argv)
    r = run(args)
    print(report(r))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2))
    missed = check(r, args)
    for m in missed:
        print("TARGET MISSED:", m)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
