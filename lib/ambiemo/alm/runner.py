"""Sampling a corpus with one model into the sample store, resumably.

This is the `Manifest -> Samples` arrow of the study (Jia et al., 2026): per clip one
greedy answer (the baseline) and N sampled answers (what the test-time-scaling strategies
combine). Clips are sorted by duration and cut into fixed batches, and each batch's seed is
derived from the run seed and the batch's first clip, so a run that was killed and resumed
produces the same samples as one that was not.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from ambiemo.alm.audio import TARGET_SR, is_silent, load_audio
from ambiemo.alm.base import ALMAdapter, Clip, Decoding
from ambiemo.alm.prompts import PromptTemplate
from ambiemo.alm.store import SampleStore
from ambiemo.corpora.manifest import require_audio
from ambiemo.parse import parse_response

log = logging.getLogger("ambiemo.alm")


@dataclass(frozen=True)
class GenerationSettings:
    n_samples: int = 8          # N sampled responses per clip
    greedy: bool = True         # also one greedy response per clip (the baseline)
    decoding: Decoding = field(default_factory=Decoding)
    seed: int = 0
    batch_size: int = 8         # clips per generate() call
    label_scores: bool = False  # also one `label_score` row per clip (adapter.label_scores)

    def __post_init__(self):
        if self.n_samples < 0 or self.batch_size < 1:
            raise ValueError("n_samples must be >= 0 and batch_size >= 1")
        if self.n_samples == 0 and not self.greedy and not self.label_scores:
            raise ValueError("nothing to generate: n_samples is 0, greedy and label_scores are off")


@dataclass(frozen=True)
class GenerationReport:
    run_key: str
    n_clips: int
    rows_written: int
    batches_cached: int         # batches already in the store from an earlier run
    batches_run: int
    parse_failures: int         # among the rows written now
    silent_clips: int
    truncated_clips: int        # longer than the model's audio window
    seconds: float


def run_key(adapter: ALMAdapter, prompt: PromptTemplate, settings: GenerationSettings,
            classes: Sequence[str]) -> tuple[str, dict]:
    """Hash of everything that changes the samples; returns (key, what was hashed)."""
    content = {"adapter": adapter.identity(), "prompt": {"id": prompt.id, "version": prompt.version},
               "decoding": settings.decoding.as_dict(), "seed": settings.seed,
               "n_samples": settings.n_samples, "greedy": settings.greedy,
               "classes": list(classes)}
    if settings.label_scores:  # only when on, so keys of runs without it do not change
        content["label_scores"] = True
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return digest, content


def generate_samples(adapter: ALMAdapter, manifest: pd.DataFrame, store: SampleStore,
                     prompt: PromptTemplate, settings: GenerationSettings, *,
                     progress: bool = True) -> GenerationReport:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    classes = list(manifest.attrs["classes"])
    require_audio(manifest)
    key, content = run_key(adapter, prompt, settings, classes)
    store.register_run(key, adapter.name, content, classes)
    user_text = prompt.render(classes)
    order = manifest.sort_values(["duration_s", "utt_id"], na_position="last")
    paths = dict(zip(order["utt_id"], order["audio_path"]))
    ids = list(order["utt_id"])
    batches = [ids[i:i + settings.batch_size] for i in range(0, len(ids), settings.batch_size)]
    jobs = ([("greedy", 1, True)] if settings.greedy else []) + \
           ([("sample", settings.n_samples, False)] if settings.n_samples else []) + \
           ([("label_score", 1, False)] if settings.label_scores else [])
    window = getattr(adapter, "max_audio_s", None)
    written = cached = ran = failures = 0
    silent, truncated = set(), set()
    bar = tqdm(total=len(ids) * len(jobs), desc=f"{adapter.name} clips", unit="clip",
               disable=not progress)
    done = {kind: store.done_clips(key, kind, n) for kind, n, _ in jobs}
    # Batches outside, kinds inside: each clip's audio is read once for all kinds. Seeds
    # depend on (kind, first clip of the batch) only, so the order changes no sample.
    for batch in batches:
        todo = {kind: [u for u in batch if u not in done[kind]] for kind, _, _ in jobs}
        needed = sorted({u for us in todo.values() for u in us}, key=batch.index)
        audio = {u: load_audio(paths[u]) for u in needed}
        for u, a in audio.items():
            if is_silent(a):
                silent.add(u)
            if window and len(a) > window * TARGET_SR:
                truncated.add(u)
        for kind, n, greedy in jobs:
            if not todo[kind]:
                cached += 1
                bar.update(len(batch))
                continue
            clips = [Clip(u, audio[u]) for u in todo[kind]]
            t0 = time.perf_counter()
            if kind == "label_score":
                rows = _label_score_rows(adapter, clips, user_text, classes, t0)
            else:
                gens = adapter.generate(clips, user_text, n=n, greedy=greedy,
                                        decoding=settings.decoding, classes=classes,
                                        seed=_batch_seed(settings.seed, kind, batch[0]))
                per_row = (time.perf_counter() - t0) / max(len(gens), 1)
                rows = []
                for g in gens:
                    parsed = parse_response(g.text, classes)
                    failures += not parsed.ok
                    rows.append({**asdict(g), "kind": kind, "seconds": per_row,
                                 "dist": parsed.dist if parsed.ok else None,
                                 "parse_ok": parsed.ok, "parse_error": parsed.reason})
            written += store.write(key, rows)
            ran += 1
            bar.update(len(batch))
    bar.close()
    if silent:
        log.warning("%d silent clip(s) were given to the model: %s", len(silent), sorted(silent)[:10])
    if truncated:
        log.warning("%d clip(s) exceed the model's %.0f s audio window and were truncated",
                    len(truncated), window)
    return GenerationReport(key, len(ids), written, cached, ran, failures, len(silent),
                            len(truncated), time.perf_counter() - start)


def _label_score_rows(adapter, clips, user_text, classes, t0) -> list[dict]:
    """One row per clip: no text, the class-name probabilities as the distribution."""
    scores = adapter.label_scores(clips, user_text, classes)
    per_row = (time.perf_counter() - t0) / max(len(scores), 1)
    return [{"utt_id": u, "kind": "label_score", "idx": 0, "text": "", "logprob": None,
             "n_tokens": 0, "seconds": per_row, "dist": p, "parse_ok": True,
             "parse_error": ""} for u, p in scores]


def _batch_seed(seed: int, kind: str, first_utt: str) -> int:
    h = hashlib.sha256(f"{seed}:{kind}:{first_utt}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
