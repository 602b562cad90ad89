"""Sampling a corpus with one model into the sample store, resumably.

This is the `Manifest -> Samples` arrow of the study (Jia et al., 2026): per clip one
greedy answer (the baseline), N sampled answers (what the test-time-scaling strategies
combine), optionally B beam candidates, a chain-of-thought answer and the class-name
scores (a verifier's scores of the candidates: alm/verify_runner.py). Clips are
sorted by duration and cut into fixed batches, and each batch's seed is derived from the run
seed, the kind and the batch's first clip, so a run that was killed and resumed produces the
same samples as one that was not.

Bad input is counted, never fatal and never an answer: a clip whose file is empty gets a
failure row per expected answer; silent clips and clips longer than the model's audio window
(truncated by its processor) are counted; a CUDA out-of-memory error halves the batch and
retries (a single clip that still does not fit is recorded as a failure).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from ambiemo.alm.audio import TARGET_SR, AudioError, is_silent, load_audio
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
    batch_size: int = 8         # clips per model call
    label_scores: bool = False  # also one `label_score` row per clip (adapter.label_scores)
    beams: int = 0              # also B beam-search candidates per clip (kind `beam`)
    cot_prompt: PromptTemplate | None = None   # also one greedy chain-of-thought answer
    cot_max_new_tokens: int = 256               # (kind `cot`, unconstrained)

    def __post_init__(self):
        if self.n_samples < 0 or self.batch_size < 1 or self.beams < 0:
            raise ValueError("n_samples and beams must be >= 0 and batch_size >= 1")
        if not (self.n_samples or self.greedy or self.label_scores or self.beams or self.cot_prompt):
            raise ValueError("nothing to generate: n_samples and beams are 0, greedy, "
                             "label_scores and cot are off")
        if self.cot_prompt is not None and self.cot_prompt.answer != "cot":
            raise ValueError(f"cot_prompt {self.cot_prompt.id!r} is a {self.cot_prompt.answer!r} "
                             "prompt, not a chain-of-thought one (answer: cot)")


@dataclass(frozen=True)
class Job:
    """One kind of answer asked of the model for every clip."""
    kind: str       # store kind: greedy | sample | beam | cot | label_score
    n: int          # rows per clip
    capability: str  # what the adapter must offer (base.CAPABILITIES)


@dataclass(frozen=True)
class GenerationReport:
    run_key: str
    n_clips: int
    rows_written: int
    batches_cached: int         # batches already in the store from an earlier run
    batches_run: int
    parse_failures: int         # among the rows written now (API and audio failures included)
    silent_clips: int
    truncated_clips: int        # longer than the model's audio window
    unreadable_clips: int = 0   # empty audio files: failure rows, not answers
    oom_splits: int = 0         # batches halved after a CUDA out-of-memory error
    unavailable: tuple[str, ...] = ()   # kinds this adapter cannot produce, with the reason
    seconds: float = 0.0


def jobs_for(settings: GenerationSettings) -> list[Job]:
    jobs = []
    if settings.greedy:
        jobs.append(Job("greedy", 1, "greedy"))
    if settings.n_samples:
        jobs.append(Job("sample", settings.n_samples, "sample"))
    if settings.beams:
        jobs.append(Job("beam", settings.beams, "beam"))
    if settings.label_scores:
        jobs.append(Job("label_score", 1, "label_scores"))
    # Last: every kind above has the same prompt, so an adapter can reuse one prefill of the
    # batch for all of them (TransformersAdapter._prefill); CoT's prompt differs. Seeds are
    # per kind and batch, so the order changes no sample.
    if settings.cot_prompt is not None:
        jobs.append(Job("cot", 1, "greedy"))
    return jobs


def run_key(adapter: ALMAdapter, prompt: PromptTemplate, settings: GenerationSettings,
            classes: Sequence[str]) -> tuple[str, dict]:
    """Hash of everything that changes the samples; returns (key, what was hashed)."""
    content = {"adapter": adapter.identity(), "prompt": {"id": prompt.id, "version": prompt.version},
               "decoding": settings.decoding.as_dict(), "seed": settings.seed,
               "n_samples": settings.n_samples, "greedy": settings.greedy,
               "classes": list(classes)}
    # Added only when on, so the keys of runs without them do not change.
    if settings.label_scores:
        content["label_scores"] = True
    if settings.beams:
        content["beams"] = settings.beams
    if settings.cot_prompt is not None:
        content["cot"] = {"id": settings.cot_prompt.id, "version": settings.cot_prompt.version,
                          "max_new_tokens": settings.cot_max_new_tokens}
    return content_digest(content), content


def content_digest(content: dict) -> str:
    """A run key: the first 16 hex digits of the SHA-256 of everything that entered it."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def generate_samples(adapter: ALMAdapter, manifest: pd.DataFrame, store: SampleStore,
                     prompt: PromptTemplate, settings: GenerationSettings, *,
                     progress: bool = True) -> GenerationReport:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    classes = list(manifest.attrs["classes"])
    if prompt.is_verifier:
        raise ValueError(f"prompt {prompt.id!r} is a verifier prompt; use verify_samples")
    require_audio(manifest, allow_empty=True)
    key, content = run_key(adapter, prompt, settings, classes)
    store.register_run(key, adapter.name, content, classes)
    jobs, unavailable = runnable_jobs(adapter, settings)
    for why in unavailable:
        log.warning("unavailable for this model, not generated: %s", why)
    batches = plan_batches(manifest, settings.batch_size)
    paths = dict(zip(manifest["utt_id"], manifest["audio_path"]))
    n_clips = sum(map(len, batches))
    bar = tqdm(total=n_clips * len(jobs), desc=f"{adapter.name} clips", unit="clip",
               disable=not progress)
    done = {j.kind: store.done_clips(key, j.kind, j.n) for j in jobs}
    tally = sample_batches(adapter, batches, paths, prompt, settings, classes, jobs, done,
                           emit=lambda rows: store.write(key, rows), advance=bar.update)
    bar.close()
    tally.log_warnings(getattr(adapter, "max_audio_s", None))
    return tally.report(key, n_clips, tuple(unavailable), time.perf_counter() - start)


# The pieces of `generate_samples`, also called shard by shard by the Ray executor
# (ambiemo.executor_ray), which must store exactly what this process would.

def plan_batches(manifest: pd.DataFrame, batch_size: int) -> list[list[str]]:
    """The run's batches of utt ids: clips sorted by duration, cut every `batch_size`.
    A batch's seed comes from its first clip, so these boundaries fix every sample."""
    order = manifest.sort_values(["duration_s", "utt_id"], na_position="last")
    ids = list(order["utt_id"])
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def runnable_jobs(adapter: ALMAdapter, settings: GenerationSettings) -> tuple[list[Job], list[str]]:
    """(the jobs the adapter can do, a reason for each kind it cannot)."""
    jobs, unavailable = [], []
    for job in jobs_for(settings):
        if job.capability in adapter.capabilities:
            jobs.append(job)
        else:
            unavailable.append(f"{job.kind}: {adapter.name} has no {job.capability!r}")
    return jobs, unavailable


@dataclass
class BatchTally:
    """What `sample_batches` did; tallies of several shards add up with `merge`."""
    written: int = 0
    cached: int = 0             # (batch, kind) pairs already stored
    ran: int = 0                # (batch, kind) pairs run now
    failures: int = 0
    oom: int = 0
    silent: set = field(default_factory=set)
    truncated: set = field(default_factory=set)
    unreadable: dict = field(default_factory=dict)

    def merge(self, other: "BatchTally") -> None:
        for k in ("written", "cached", "ran", "failures", "oom"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.silent |= other.silent
        self.truncated |= other.truncated
        self.unreadable.update(other.unreadable)

    def log_warnings(self, window: float | None) -> None:
        if self.silent:
            log.warning("%d silent clip(s) were given to the model: %s", len(self.silent),
                        sorted(self.silent)[:10])
        if self.truncated:
            log.warning("%d clip(s) exceed the model's %.0f s audio window and were truncated",
                        len(self.truncated), window)
        if self.unreadable:
            log.warning("%d clip(s) could not be read and are stored as failures: %s",
                        len(self.unreadable), sorted(self.unreadable.items())[:5])

    def report(self, key: str, n_clips: int, unavailable: tuple[str, ...],
               seconds: float) -> GenerationReport:
        return GenerationReport(key, n_clips, self.written, self.cached, self.ran,
                                self.failures, len(self.silent), len(self.truncated),
                                len(self.unreadable), self.oom, unavailable, seconds)


def sample_batches(adapter: ALMAdapter, batches: Sequence[Sequence[str]], paths: dict,
                   prompt: PromptTemplate, settings: GenerationSettings, classes: Sequence[str],
                   jobs: Sequence[Job], done: dict[str, set[str]], *,
                   emit: Callable[[list[dict]], int],
                   advance: Callable[[int], object] = lambda n: None) -> BatchTally:
    """Run `jobs` on `batches` (from `plan_batches`), skipping clips in `done[kind]`; each
    (batch, kind)'s parsed rows go to `emit(rows) -> rows stored` (the store, or a shard's
    buffer) and `advance(clips)` after each. Seeds are per (kind, batch's first clip)."""
    classes = list(classes)
    texts = {"greedy": prompt.render(classes), "sample": prompt.render(classes),
             "beam": prompt.render(classes), "label_score": prompt.render(classes)}
    answers = {k: prompt.answer for k in texts}
    if settings.cot_prompt is not None:
        texts["cot"], answers["cot"] = settings.cot_prompt.render(classes), "cot"
    window = getattr(adapter, "max_audio_s", None)
    tally = BatchTally()
    counts = dict(oom=0)
    # Batches outside, kinds inside: each clip's audio is read once for all kinds. Seeds
    # depend on (kind, first clip of the batch) only, so the order changes no sample.
    for batch in batches:
        batch = list(batch)
        todo = {j.kind: [u for u in batch if u not in done[j.kind]] for j in jobs}
        needed = sorted({u for us in todo.values() for u in us}, key=batch.index)
        audio = {}
        for u in needed:
            try:
                audio[u] = load_audio(paths[u])
            except AudioError as e:
                tally.unreadable[u] = f"audio: {e}"
                continue
            if is_silent(audio[u]):
                tally.silent.add(u)
            if window and len(audio[u]) > window * TARGET_SR:
                tally.truncated.add(u)
        for job in jobs:
            if not todo[job.kind]:
                tally.cached += 1
                advance(len(batch))
                continue
            rows = [_failure_row(u, job, i, tally.unreadable[u]) for u in todo[job.kind]
                    if u in tally.unreadable for i in range(job.n)]
            clips = [Clip(u, audio[u]) for u in todo[job.kind] if u in audio]
            if clips:
                call = _caller(adapter, job, settings, texts[job.kind], classes)
                rows += _with_oom_halving(call, clips, job, settings.seed, counts)
            for r in rows:
                if r["kind"] != "label_score" and not r.get("parse_error"):
                    parsed = parse_response(r["text"], classes, answer=answers[job.kind])
                    r.update(dist=parsed.dist if parsed.ok else None, parse_ok=parsed.ok,
                             parse_error=parsed.reason)
                tally.failures += not r["parse_ok"]
            tally.written += emit(rows)
            tally.ran += 1
            advance(len(batch))
    tally.oom = counts["oom"]
    return tally


def _caller(adapter, job: Job, settings: GenerationSettings, user_text: str,
            classes) -> Callable[[list[Clip], int], list[dict]]:
    """`call(clips, seed) -> rows` for one job; rows are not yet parsed."""
    d = settings.decoding

    def call(clips, seed):
        t0 = time.perf_counter()
        if job.kind == "label_score":
            scores = adapter.label_scores(clips, user_text, classes)
            per_row = (time.perf_counter() - t0) / max(len(scores), 1)
            return [{"utt_id": u, "kind": "label_score", "idx": 0, "text": "", "logprob": None,
                     "n_tokens": 0, "seconds": per_row, "dist": p, "parse_ok": True,
                     "parse_error": ""} for u, p in scores]
        if job.kind == "beam":
            gens = adapter.beam(clips, user_text, beams=job.n, decoding=d, classes=classes)
        elif job.kind == "cot":
            # Reasoning cannot be spelled through the class-name constraint.
            cot = Decoding(max_new_tokens=settings.cot_max_new_tokens)
            gens = adapter.generate(clips, user_text, n=1, greedy=True, decoding=cot,
                                    classes=classes, seed=seed)
        else:
            gens = adapter.generate(clips, user_text, n=job.n, greedy=job.kind == "greedy",
                                    decoding=d, classes=classes, seed=seed)
        per_row = (time.perf_counter() - t0) / max(len(gens), 1)
        rows = []
        for g in gens:
            row = asdict(g)
            error = row.pop("error")
            # A response that never arrived (API error after retries) is a failure with its
            # reason, never parsed into an answer.
            rows.append({**row, "kind": job.kind, "seconds": per_row, "dist": None,
                         "parse_ok": False, "parse_error": error})
        return rows
    return call


def _with_oom_halving(call, clips: list[Clip], job: Job, seed: int, counts: dict) -> list[dict]:
    """Run `call` on the clips; on CUDA out-of-memory halve the batch and retry each half.
    A half's seed comes from its own first clip, so a split run is reproducible too."""
    import torch

    try:
        return call(clips, _batch_seed(seed, job.kind, clips[0].utt_id))
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(clips) == 1:
            log.warning("out of memory on a single clip %s: stored as a failure", clips[0].utt_id)
            return [_failure_row(clips[0].utt_id, job, i, f"out of memory on one clip: {e}")
                    for i in range(job.n)]
        counts["oom"] += 1
        half = len(clips) // 2
        log.warning("out of memory on %d clips: retrying as %d + %d", len(clips), half,
                    len(clips) - half)
        return (_with_oom_halving(call, clips[:half], job, seed, counts)
                + _with_oom_halving(call, clips[half:], job, seed, counts))


def _failure_row(utt_id: str, job: Job, idx: int, reason: str) -> dict:
    return {"utt_id": utt_id, "kind": job.kind, "idx": idx, "text": "", "logprob": None,
            "n_tokens": None, "seconds": None, "dist": None, "parse_ok": False,
            "parse_error": reason}


def _batch_seed(seed: int, kind: str, first_utt: str) -> int:
    h = hashlib.sha256(f"{seed}:{kind}:{first_utt}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
