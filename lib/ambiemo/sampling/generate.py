"""Sampling a corpus with one model into the sample store, resumably.

This is the `Manifest -> Samples` arrow of the study (Jia et al., 2026): per clip one
greedy answer (the baseline), N sampled answers (what the test-time-scaling strategies
combine), optionally B beam candidates, a chain-of-thought answer and the class-name
scores (a verifier's scores of the candidates: sampling/verify.py). Clips are
sorted by duration and cut into fixed batches, and each batch's seed is derived from the run
seed, the kind and the batch's first clip, so a run that was killed and resumed produces the
same samples as one that was not.

Bad input is counted, never fatal and never an answer: a clip whose file is empty,
unreadable, non-finite or shorter than the Manifest's minimum duration (corpora/
audio_check.py) gets an `audio_error: ...` failure row per expected answer; silent clips
and clips longer than the model's audio window (cut to it by its processor: `over_window`,
never `truncated`, which is an answer cut at the token limit) are counted; a CUDA
out-of-memory error halves the batch and
retries (a single clip that still does not fit is recorded as a failure).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import pandas as pd

from ambiemo.alm.audio import TARGET_SR, AudioError, is_silent, load_audio
from ambiemo.alm.base import ALMAdapter, Clip, Decoding
from ambiemo.alm.prompts import PromptTemplate
from ambiemo.alm.served_model import served_counts, served_other
from ambiemo.config import GenerationSettings  # noqa: F401  (one definition, in config)
from ambiemo.corpora.audio_check import MIN_DURATION_S, unusable_clips
from ambiemo.corpora.manifest import require_audio
from ambiemo.parse import API_ERROR, AUDIO_ERROR, OUT_OF_MEMORY, TRUNCATED, parse_response
from ambiemo.sampling.kinds import AnswerJob, jobs_for
from ambiemo.sampling.progress import ProgressFile
from ambiemo.sampling.store import SampleStore

log = logging.getLogger("ambiemo.alm")


@dataclass(frozen=True)
class GenerationReport:
    run_key: str
    n_clips: int
    rows_written: int
    batches_cached: int         # batches already in the store from an earlier run
    batches_run: int
    parse_failures: int         # rows written now that hold no answer, of any failure kind
                                # (its kinds: parse.failure_counts of the stored rows)
    silent_clips: int
    over_window_clips: int      # longer than the model's audio window, cut to it (not a
                                # failure kind: `truncated` is an answer cut at the token limit)
    unreadable_clips: int = 0   # unusable audio (audio_error failure rows), not answers
    oom_splits: int = 0         # batches halved after a CUDA out-of-memory error
    unavailable: tuple[str, ...] = ()   # kinds this adapter cannot produce, with the reason
    seconds: float = 0.0
    redone_failures: int = 0    # failure rows deleted to be asked again (transient, or all)
    served_other: tuple[str, ...] = ()  # hosted: "served (n rows)" for rows answered by a
                                        # model other than the one requested
    audio_errors: tuple[str, ...] = ()  # "utt_id: reason" per unusable clip, sorted
    served: tuple[tuple[str, int], ...] = ()  # hosted: (served model, rows) of the run, all
    requested: str = ""                 # the model id the requests named (hosted)


def run_key(adapter: ALMAdapter, prompt: PromptTemplate, settings: GenerationSettings,
            classes: Sequence[str]) -> tuple[str, dict]:
    """Hash of everything that changes the samples; returns (key, what was hashed)."""
    content = {"adapter": adapter.identity(), "prompt": prompt_identity(prompt),
               "decoding": settings.decoding.as_dict(), "seed": settings.seed,
               "n_samples": settings.n_samples, "greedy": settings.greedy,
               "classes": list(classes),
               # How each kind's text is read (SampleStore.read parses it with this).
               "answers": answer_formats(prompt, settings)}
    # Added only when on, so the keys of runs without them do not change.
    if settings.label_scores:
        content["label_scores"] = True
    if settings.beams:
        content["beams"] = settings.beams
    if settings.cot_prompt is not None:
        content["cot"] = {**prompt_identity(settings.cot_prompt),
                          "max_new_tokens": settings.cot_max_new_tokens}
    return content_digest(content), content


def prompt_identity(prompt: PromptTemplate) -> dict:
    """What of a prompt enters a run key: its id, its version and a digest of its text, so
    a prompt edited without a new version still samples afresh (the answer format enters
    through `answer_formats`). Left out of the key, `batch_size` (the batch boundaries move
    the batch seeds, but any boundaries give valid samples, as out-of-memory halving does)
    and what only steers the run (progress, retries, Ray shards and workers, a hosted
    model's concurrency, timeouts and retry policy): tests/test_run_key.py lists them."""
    text = hashlib.sha256(prompt.user.encode()).hexdigest()[:16]
    return {"id": prompt.id, "version": prompt.version, "text_sha256": text}


def settings_from_config(cfg, arm: str | None = None) -> GenerationSettings:
    """The runner's settings from a study config's `generation:` section, the CoT prompt
    loaded (what the generate stage and the Ray executor both sample with). In a prompt arm
    whose prompt asks for a distribution, CoT ends in a distribution too
    (`generation.cot.distribution_prompt`): the answer's form must not decide CoT vs greedy."""
    from ambiemo.alm.prompts import load_prompt

    gen = cfg.generation
    cot = None
    if gen.cot:
        name = gen.cot.prompt
        if arm is not None and load_prompt(arm, cfg.prompt_dir).answer == "distribution":
            name = gen.cot.distribution_prompt
        cot = load_prompt(name, cfg.prompt_dir)
    return gen.settings(cot_prompt=cot)


def answer_formats(prompt: PromptTemplate, settings: GenerationSettings) -> dict[str, str]:
    """The answer format ("label", "distribution", "cot") of each text kind the run asks for."""
    formats = {k: prompt.answer for k in ("greedy", "sample", "beam")}
    if settings.cot_prompt is not None:
        formats["cot"] = "cot"
    return formats


def content_digest(content: dict) -> str:
    """A run key: the first 16 hex digits of the SHA-256 of everything that entered it."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def generate_samples(adapter: ALMAdapter, manifest: pd.DataFrame, store: SampleStore,
                     prompt: PromptTemplate, settings: GenerationSettings, *,
                     progress: bool = True, retry_failed: bool | None = None) -> GenerationReport:
    """Sample `manifest` with `adapter` into `store`, resumably. Rows of transient failures
    (5xx, timeouts, 429 after retries, a quota) from an earlier run are redone;
    `retry_failed` (default: the environment variable AMBIEMO_RETRY_FAILED=1, which
    `python -m ambiemo.pipeline --retry-failed` sets) redoes every failure row."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    classes = list(manifest.attrs["classes"])
    if prompt.is_verifier:
        raise ValueError(f"prompt {prompt.id!r} is a verifier prompt; use verify_samples")
    # Only absent files refuse the job (a wrong corpus root); a bad file is a failure row.
    require_audio(manifest, allow_empty=True, allow_unreadable=True)
    adapter.bind_manifest(manifest)   # simulated models answer from it (alm/sim.py)
    key, content = run_key(adapter, prompt, settings, classes)
    store.register_run(key, adapter.name, content, classes)
    jobs, unavailable = runnable_jobs(adapter, settings)
    batches = plan_batches(manifest, settings.batch_size)
    # Before failures are deleted to be asked again: a batch is partly stored only when rows
    # were lost (a recovered store), never by a failure retry.
    resample_partial_batches(store, key, batches, jobs)
    redone = delete_failures_to_redo(store, key, retry_failed)
    for why in unavailable:
        log.warning("unavailable for this model, not generated: %s", why)
    paths = dict(zip(manifest["utt_id"], manifest["audio_path"]))
    n_clips = sum(map(len, batches))
    bar = tqdm(total=n_clips * len(jobs), desc=f"{adapter.name} clips", unit="clip",
               disable=not progress)
    live = ProgressFile("clips", n_clips)   # the pipeline's terminal shows it (pipeline/progress.py)
    done = {j.kind: store.done_clips(key, j.kind, j.n) for j in jobs}
    tally = sample_batches(adapter, batches, paths, prompt, settings, classes, jobs, done,
                           emit=lambda rows: store.write(key, rows), advance=bar.update,
                           audio_checks=AudioChecks.of(manifest), live=live)
    bar.close()
    tally.log_warnings(getattr(adapter, "max_audio_s", None))
    other = served_other(store, key, getattr(adapter, "model_id", adapter.name))
    if other:
        log.warning("%s: rows answered by another model than the one requested (%s): %s",
                    adapter.name, getattr(adapter, "model_id", adapter.name), ", ".join(other))
    report = tally.report(key, n_clips, tuple(unavailable), time.perf_counter() - start,
                          redone=redone, served_other=other)
    return replace(report, served=tuple(served_counts(store, key).items()),
                   requested=getattr(adapter, "model_id", adapter.name))


# The pieces of `generate_samples`, also called shard by shard by the Ray executor
# (ambiemo.sampling.executor_ray), which must store exactly what this process would.

def plan_batches(manifest: pd.DataFrame, batch_size: int) -> list[list[str]]:
    """The run's batches of utt ids: clips sorted by duration, cut every `batch_size`.
    A batch's seed comes from its first clip, so these boundaries fix every sample."""
    order = manifest.sort_values(["duration_s", "utt_id"], na_position="last")
    ids = list(order["utt_id"])
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def resample_partial_batches(store: SampleStore, key: str, batches: Sequence[Sequence[str]],
                             jobs: Sequence[AnswerJob]) -> int:
    """Delete the stored rows of every (batch, kind) found partly stored, so the run samples
    that batch again whole; returns rows deleted.

    Each (batch, kind) is written in one transaction, so a run never leaves one partly
    stored; rows lost afterwards (`sqlite3 .recover` of a damaged store, rows deleted by
    hand) do. Asking again only for the lost rows would either write a row twice (the
    primary key refuses it) or draw them in another batch, with another seed and other
    neighbours; sampling the batch again whole stores exactly what an uninterrupted run
    stores."""
    deleted = 0
    for job in jobs:
        stored = store.rows_per_clip(key, job.kind)
        for batch in batches:
            counts = [stored.get(u, 0) for u in batch]
            if any(counts) and not all(c >= job.n for c in counts):
                deleted += store.delete_clips(key, job.kind, batch)
                log.warning("run %s: batch of %s (%d clips) was partly stored for %r: "
                            "sampling it again whole", key, batch[0], len(batch), job.kind)
    return deleted


def runnable_jobs(adapter: ALMAdapter,
                  settings: GenerationSettings) -> tuple[list[AnswerJob], list[str]]:
    """(the jobs the adapter can do, a reason for each kind it cannot)."""
    jobs, unavailable = [], []
    for job in jobs_for(settings):
        if job.capability in adapter.capabilities:
            jobs.append(job)
        else:
            unavailable.append(f"{job.kind}: {adapter.name} has no {job.capability!r}")
    return jobs, unavailable


@dataclass(frozen=True)
class AudioChecks:
    """What prepare found wrong with clips (`known_bad`: utt_id -> reason) and the shortest
    audio a model is given; a file that changed since is caught again when read."""
    known_bad: dict = field(default_factory=dict)
    min_frames: float = MIN_DURATION_S * TARGET_SR

    @classmethod
    def of(cls, manifest: pd.DataFrame) -> AudioChecks:
        return cls(unusable_clips(manifest),
                   manifest.attrs.get("min_audio_s", MIN_DURATION_S) * TARGET_SR)


@dataclass
class BatchTally:
    """What `sample_batches` did; tallies of several shards add up with `merge`."""
    written: int = 0
    cached: int = 0             # (batch, kind) pairs already stored
    ran: int = 0                # (batch, kind) pairs run now
    failures: int = 0
    oom: int = 0
    silent: set = field(default_factory=set)
    over_window: set = field(default_factory=set)   # clips cut to the model's audio window
    unreadable: dict = field(default_factory=dict)

    def merge(self, other: BatchTally) -> None:
        for k in ("written", "cached", "ran", "failures", "oom"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.silent |= other.silent
        self.over_window |= other.over_window
        self.unreadable.update(other.unreadable)

    def log_warnings(self, window: float | None) -> None:
        if self.silent:
            log.warning("%d silent clip(s) were given to the model: %s", len(self.silent),
                        sorted(self.silent)[:10])
        if self.over_window:
            log.warning("%d clip(s) exceed the model's %.0f s audio window and were cut to it "
                        "(over_window)", len(self.over_window), window)
        if self.unreadable:
            log.warning("%d clip(s) could not be read and are stored as failures: %s",
                        len(self.unreadable), sorted(self.unreadable.items())[:5])

    def report(self, key: str, n_clips: int, unavailable: tuple[str, ...], seconds: float, *,
               redone: int = 0, served_other: tuple[str, ...] = ()) -> GenerationReport:
        return GenerationReport(key, n_clips, self.written, self.cached, self.ran,
                                self.failures, len(self.silent), len(self.over_window),
                                len(self.unreadable), self.oom, unavailable, seconds, redone,
                                served_other,
                                tuple(f"{u}: {why}" for u, why in sorted(self.unreadable.items())))


def sample_batches(adapter: ALMAdapter, batches: Sequence[Sequence[str]], paths: dict,
                   prompt: PromptTemplate, settings: GenerationSettings, classes: Sequence[str],
                   jobs: Sequence[AnswerJob], done: dict[str, set[str]], *,
                   emit: Callable[[list[dict]], int],
                   advance: Callable[[int], object] = lambda n: None,
                   audio_checks: AudioChecks | None = None,
                   live: ProgressFile | None = None) -> BatchTally:
    """Run `jobs` on `batches` (from `plan_batches`), skipping clips in `done[kind]`; each
    (batch, kind)'s rows go to `emit(rows) -> rows stored` (the store, or a shard's buffer)
    and `advance(clips)` after each. Seeds are per (kind, batch's first clip). A clip whose
    audio is unusable (`audio_checks`, or unreadable now) gets `audio_error` failure rows."""
    classes = list(classes)
    checks = audio_checks or AudioChecks()
    texts = {"greedy": prompt.render(classes), "sample": prompt.render(classes),
             "beam": prompt.render(classes), "label_score": prompt.render(classes)}
    answers = answer_formats(prompt, settings)
    if settings.cot_prompt is not None:
        texts["cot"] = settings.cot_prompt.render(classes)
    window = getattr(adapter, "max_audio_s", None)
    tally = BatchTally()
    counts = dict(oom=0)
    clips_done = 0
    # Batches outside, kinds inside: each clip's audio is read once for all kinds. Seeds
    # depend on (kind, first clip of the batch) only, so the order changes no sample.
    for batch in batches:
        batch = list(batch)
        todo = {j.kind: [u for u in batch if u not in done[j.kind]] for j in jobs}
        needed = sorted({u for us in todo.values() for u in us}, key=batch.index)
        audio = {}
        for u in needed:
            if u in checks.known_bad:
                tally.unreadable[u] = f"audio_error: {checks.known_bad[u]}"
                continue
            try:
                audio[u] = load_audio(paths[u])
            except AudioError as e:
                tally.unreadable[u] = f"audio_error: {e}"
                continue
            if len(audio[u]) < checks.min_frames:    # the file changed since it was probed
                tally.unreadable[u] = (f"audio_error: too_short: {paths[u]}: "
                                       f"{len(audio.pop(u))} samples, shorter than the "
                                       f"minimum {checks.min_frames / TARGET_SR:g} s")
                continue
            if is_silent(audio[u]):
                tally.silent.add(u)
            if window and len(audio[u]) > window * TARGET_SR:
                tally.over_window.add(u)
        for job in jobs:
            if not todo[job.kind]:
                tally.cached += 1
                advance(len(batch))
                continue
            rows = [_failure_row(u, job, i, tally.unreadable[u], AUDIO_ERROR)
                    for u in todo[job.kind] if u in tally.unreadable for i in range(job.n)]
            clips = [Clip(u, audio[u]) for u in todo[job.kind] if u in audio]
            if clips:
                call = _caller(adapter, job, settings, texts[job.kind], classes)
                rows += _with_oom_halving(call, clips, job, settings.seed, counts)
            for r in rows:
                if r["kind"] != "label_score" and not r.get("failure"):
                    # Parsed now only to report the parse rate as it runs; the store keeps
                    # the text, and reading it parses again with the parser of that day.
                    parsed = parse_response(r["text"], classes, answer=answers[job.kind])
                    r.update(parse_ok=parsed.ok, parse_error=parsed.reason)
                tally.failures += not r["parse_ok"]
            tally.written += emit(rows)
            tally.ran += 1
            advance(len(batch))
        clips_done += len(batch)
        if live is not None:
            live.update(clips_done, tally.failures)
    if live is not None:
        live.update(clips_done, tally.failures, force=True)
    tally.oom = counts["oom"]
    return tally


def retry_failed_from_env() -> bool:
    """Whether this run redoes every failure row: AMBIEMO_RETRY_FAILED=1, which the pipeline's
    --retry-failed sets for the notebooks it runs."""
    return os.environ.get("AMBIEMO_RETRY_FAILED", "") == "1"


def delete_failures_to_redo(store: SampleStore, key: str, retry_failed: bool | None) -> int:
    """Delete the failure rows this run asks again for (transient ones; every one with
    `retry_failed`); returns how many rows went."""
    retry_failed = retry_failed_from_env() if retry_failed is None else retry_failed
    n = store.delete_failures(key, transient_only=not retry_failed)
    if n:
        log.info("run %s: %d row(s) of clips with %s failures deleted, to be asked again",
                 key, n, "any" if retry_failed else "transient")
    return n


def _caller(adapter, job: AnswerJob, settings: GenerationSettings, user_text: str,
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
                         "parse_ok": False, "parse_error": error,
                         "failure": _generation_failure(error)})
        return rows
    return call


def _with_oom_halving(call, clips: list[Clip], job: AnswerJob, seed: int, counts: dict) -> list[dict]:
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
            return [_failure_row(clips[0].utt_id, job, i, f"out of memory on one clip: {e}", OUT_OF_MEMORY)
                    for i in range(job.n)]
        counts["oom"] += 1
        half = len(clips) // 2
        log.warning("out of memory on %d clips: retrying as %d + %d", len(clips), half,
                    len(clips) - half)
        return (_with_oom_halving(call, clips[:half], job, seed, counts)
                + _with_oom_halving(call, clips[half:], job, seed, counts))


def _generation_failure(error: str) -> str:
    """The failure kind of a response that did not arrive whole: an answer cut off by the
    token limit (a hosted model's finish reason) is `truncated`, never an answer; any other
    error is an API failure; no error, no failure."""
    if not error:
        return ""
    return TRUNCATED if error.startswith("truncated") else API_ERROR


def _failure_row(utt_id: str, job: AnswerJob, idx: int, reason: str, failure: str) -> dict:
    return {"utt_id": utt_id, "kind": job.kind, "idx": idx, "text": "", "logprob": None,
            "n_tokens": None, "seconds": None, "dist": None, "parse_ok": False,
            "parse_error": reason, "failure": failure}


def _batch_seed(seed: int, kind: str, first_utt: str) -> int:
    h = hashlib.sha256(f"{seed}:{kind}:{first_utt}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
