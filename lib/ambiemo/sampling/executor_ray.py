"""The Ray executor: a generation run's shards on Ray actors across GPUs and nodes, resumable.

The `Manifest -> Samples` arrow of Jia et al. (2026) is the cost of the study (13+ models x
3 corpora x N = 16 samples, beams, class-name scores). With `executor: {kind: ray}` a
(model, corpus) run is cut into shards of whole batches (ambiemo.sampling.shards) and each shard runs
on a Ray actor that loads the model once and keeps it: one actor per GPU (several GPUs when
the model's weights exceed one; `num_gpus` from its parameter count), CPU actors where the
cluster has no GPU, one CPU actor for a hosted API model (its request concurrency and budget
live in that one process). Scheduling, retries and transport are Ray's: an actor that dies
(SIGKILL, a lost node) is restarted and its shard retried up to `max_retries` times
(`max_restarts`, `max_task_retries`, `retry_exceptions`); a shard that still fails becomes
counted failure rows naming it, as a failing batch would on one machine.

Each shard's rows go to one Parquet file, written atomically; only this driver merges them
into the local SQLite store. A rerun skips shards already stored and merges shard files an
earlier (killed) driver left behind, so killing the driver loses at most the shards in
flight. Seeds are per batch and shards are whole batches, so the store ends with exactly the
rows the local executor (`runner.generate_samples`) writes.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ambiemo.alm.prompts import PromptTemplate
from ambiemo.config import ExecutorConfig, GenerationSettings
from ambiemo.corpora.manifest import require_audio
from ambiemo.sampling.generate import (AudioChecks, BatchTally, GenerationReport, _failure_row,
                                       plan_batches, resample_partial_batches, run_key,
                                       runnable_jobs, sample_batches, settings_from_config)
from ambiemo.sampling.kinds import jobs_for  # noqa: F401
from ambiemo.sampling.shards import (Shard, merge_shard, plan_shards, shard_exists, shard_uri,
                                     write_shard)
from ambiemo.sampling.store import SHARD_ERROR, SampleStore

log = logging.getLogger("ambiemo.sampling.executor_ray")

BYTES_PER_PARAM = {"bfloat16": 2, "float16": 2, "float32": 4}
WEIGHT_OVERHEAD = 1.3   # activations, KV cache of a batch, CUDA context: on top of the weights


@dataclass(frozen=True)
class ShardFailure:
    shard: str          # Shard.id
    n_clips: int
    error: str


@dataclass(frozen=True)
class RayGenerationReport:
    generation: GenerationReport    # the same report the local executor gives
    shards: int
    shards_cached: int              # every row already in the store
    shards_merged: int              # shard files left by an earlier run, merged now
    shards_run: int
    failed: tuple[ShardFailure, ...]
    actors: int
    gpus_per_actor: float

    @property
    def note(self) -> str:
        """One line for the run summary; names every shard that failed."""
        text = (f"ray: {self.shards} shards ({self.shards_run} run on {self.actors} actor(s) "
                f"x {self.gpus_per_actor:g} GPU, {self.shards_cached} cached, "
                f"{self.shards_merged} merged from an earlier run)")
        if self.failed:
            text += "; FAILED shards stored as failure rows: " + "; ".join(
                f"{f.shard} ({f.n_clips} clips): {f.error}" for f in self.failed)
        return text


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray at `address` ("auto", "host:port", "ray://..."), or start a local one
    (this machine's GPUs and CPUs) when None. Returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"num_cpus": num_cpus} if address is None and num_cpus else {}
    # Workers of a local Ray inherit this process's environment (PYTHONPATH included); the
    # nodes of an existing cluster need the project installed at the same path (README).
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, **kwargs)
    return True


def gpus_per_actor(model: str, load_options: dict, gpu_memory_gb: float,
                   cluster_gpus: float) -> float:
    """GPUs one actor of `model` needs: 0 for a hosted model, a CPU device or a cluster
    without GPUs; else its weights (parameters x bytes of its dtype, plus WEIGHT_OVERHEAD)
    over one GPU's memory, rounded up (1 when the size is not published)."""
    from ambiemo.alm import MODELS

    if _is_hosted(model):
        return 0.0
    spec = MODELS.get(model)
    if cluster_gpus <= 0 or str(load_options.get("device", "auto")).startswith("cpu"):
        return 0.0
    if spec is None or spec.n_params is None:
        return 1.0
    width = BYTES_PER_PARAM.get(str(load_options.get("dtype", "bfloat16")), 2)
    need = spec.n_params * width * WEIGHT_OVERHEAD / (gpu_memory_gb * 1e9)
    return float(max(1, math.ceil(need)))


class ShardSampler:
    """A Ray actor: loads the model once, then samples shard after shard with it."""

    def __init__(self, model: str, load_options: dict,
                 factory: Callable | None = None, manifest: pd.DataFrame | None = None):
        from ambiemo.alm import load_model

        self.adapter = (factory or load_model)(model, **load_options)
        if manifest is not None and hasattr(self.adapter, "bind_manifest"):
            self.adapter.bind_manifest(manifest)   # simulated models answer from it

    def describe(self, prompt: PromptTemplate, settings: GenerationSettings,
                 classes: list[str]) -> dict:
        key, content = run_key(self.adapter, prompt, settings, classes)
        jobs, unavailable = runnable_jobs(self.adapter, settings)
        return {"key": key, "content": content, "name": self.adapter.name,
                "kinds": [j.kind for j in jobs],
                "unavailable": unavailable,
                "window": getattr(self.adapter, "max_audio_s", None)}

    def run_shard(self, expected_key: str, shard: Shard, paths: dict, done: dict,
                  prompt: PromptTemplate, settings: GenerationSettings, classes: list[str],
                  uri: str, checks: AudioChecks | None = None) -> BatchTally:
        key, _ = run_key(self.adapter, prompt, settings, classes)
        if key != expected_key:
            # Another checkpoint, revision or dtype on this node: its rows would be another run.
            raise RuntimeError(f"actor on {os.uname().nodename} has run key {key}, the driver "
                               f"{expected_key}: {self.adapter.identity()}")
        jobs, _ = runnable_jobs(self.adapter, settings)
        rows: list[dict] = []

        def keep(batch_rows):
            rows.extend(batch_rows)
            return len(batch_rows)

        tally = sample_batches(self.adapter, shard.batches, paths, prompt, settings, classes,
                               jobs, done, emit=keep, audio_checks=checks)
        write_shard(uri, rows)
        return tally

    def pid(self) -> int:
        return os.getpid()


def generate_on_ray(model: str, load_options: dict, manifest: pd.DataFrame,
                    store: SampleStore, prompt: PromptTemplate, settings: GenerationSettings,
                    *, shard_root: str | Path, executor: ExecutorConfig = ExecutorConfig("ray"),
                    cpus_per_actor: float = 1.0, progress: bool = True,
                    factory: Callable | None = None) -> RayGenerationReport:
    """`runner.generate_samples` for `model` (loaded by `load_model(model, **load_options)`,
    or `factory`, in each actor) with the shards on Ray actors. Ray must be running
    (`start_ray`). Returns the local report plus what happened to the shards."""
    import ray
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if not ray.is_initialized():
        raise RuntimeError("Ray is not running: call ambiemo.sampling.executor_ray.start_ray first")
    if prompt.is_verifier:
        raise ValueError(f"prompt {prompt.id!r} is a verifier prompt; use verify_samples")
    classes = list(manifest.attrs["classes"])
    require_audio(manifest, allow_empty=True, allow_unreadable=True)
    checks = AudioChecks.of(manifest)
    resources = ray.cluster_resources()
    n_gpu = gpus_per_actor(model, load_options, executor.gpu_memory_gb, resources.get("GPU", 0))
    options = dict(load_options)
    if n_gpu:
        options["device"] = "cuda"
    actor_cls = ray.remote(ShardSampler).options(
        num_cpus=cpus_per_actor, num_gpus=n_gpu, max_restarts=executor.max_retries,
        max_task_retries=executor.max_retries)

    manifest_ref = ray.put(manifest)   # once, for every actor (simulated models read it)

    def new_actor():
        return actor_cls.remote(model, options, factory, manifest_ref)

    first = new_actor()
    info = ray.get(first.describe.remote(prompt, settings, classes))
    key = info["key"]
    store.register_run(key, info["name"], info["content"], classes)
    jobs = [j for j in jobs_for(settings) if j.kind in info["kinds"]]
    unavailable = tuple(info["unavailable"])
    for why in unavailable:
        log.warning("unavailable for this model, not generated: %s", why)
    batches = plan_batches(manifest, settings.batch_size)
    shards = plan_shards(batches, dict(zip(manifest["utt_id"], manifest["duration_s"])),
                         executor.shard_audio_s)
    paths = dict(zip(manifest["utt_id"], manifest["audio_path"]))
    root = str(shard_root)
    tally, cached = BatchTally(), 0

    def missing(done, shard):
        return {j.kind: [u for u in shard.utt_ids if u not in done[j.kind]] for j in jobs}

    resample_partial_batches(store, key, batches, jobs)   # rows lost from a batch: redo it
    done = _done(store, key, jobs)
    resumed = set()
    for shard in shards:      # shard files a killed driver left behind
        if any(missing(done, shard).values()) and shard_exists(shard_uri(root, key, shard)):
            added = merge_shard(store, key, shard_uri(root, key, shard))
            if added:
                resumed.add(shard.id)
                tally.written += added
    done = _done(store, key, jobs) if resumed else done
    todo = []
    for shard in shards:
        if any(missing(done, shard).values()):
            todo.append(shard)
        elif shard.id not in resumed:
            cached += 1
            tally.cached += len(shard.batches) * len(jobs)
    merged = len(resumed - {s.id for s in todo})   # a stale partial file is run again
    n_actors = executor.actors or _default_actors(resources, n_gpu, cpus_per_actor, model)
    actors = [first] + [new_actor() for _ in range(min(n_actors, max(len(todo), 1)) - 1)]
    bar = tqdm(total=sum(s.n_clips for s in shards), initial=sum(s.n_clips for s in shards)
               - sum(s.n_clips for s in todo), desc=f"{model} clips (ray)", unit="clip",
               disable=not progress)
    failed: list[ShardFailure] = []
    pending: dict = {}
    queue, idle = list(todo), list(actors)
    replacements = len(todo)    # a dead actor is replaced, at most once per shard
    while queue or pending:
        while queue and idle:
            shard, actor = queue.pop(0), idle.pop(0)
            need = missing(done, shard)
            shard_done = {k: sorted(set(shard.utt_ids) - set(need[k])) for k in need}
            ref = actor.run_shard.options(retry_exceptions=executor.max_retries > 0).remote(
                key, shard, {u: paths[u] for u in shard.utt_ids}, shard_done, prompt,
                settings, classes, shard_uri(root, key, shard), checks)
            pending[ref] = (shard, actor)
        ready, _ = ray.wait(list(pending), num_returns=1)
        shard, actor = pending.pop(ready[0])
        try:
            part = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            error = _last_line(e)
            log.error("shard %s failed after %d retries: %s", shard.id, executor.max_retries,
                      error)
            failed.append(ShardFailure(shard.id, shard.n_clips, error))
            reason = f"ray shard {shard.id} failed after {executor.max_retries} retries: {error}"
            rows = [_failure_row(u, j, i, reason, SHARD_ERROR) for j in jobs
                    for u in missing(done, shard)[j.kind] for i in range(j.n)]
            tally.written += store.write(key, rows)
            tally.failures += len(rows)
            if isinstance(e, ray.exceptions.RayActorError) and replacements:
                replacements -= 1
                actor = new_actor()
            elif isinstance(e, ray.exceptions.RayActorError):
                actor = None
        else:
            merge_shard(store, key, shard_uri(root, key, shard))
            tally.merge(part)
        if actor is not None:
            idle.append(actor)
        elif not idle and not pending and queue:
            raise RuntimeError(f"every Ray actor of {model} died; {len(queue)} shards not run")
        bar.update(shard.n_clips)
    bar.close()
    for actor in actors + idle:
        ray.kill(actor)         # free the GPUs for the next model
    tally.log_warnings(info["window"])
    report = tally.report(key, sum(s.n_clips for s in shards), unavailable,
                          time.perf_counter() - start)
    return RayGenerationReport(report, len(shards), cached, merged, len(todo), tuple(failed),
                               len(actors), n_gpu)


def _done(store: SampleStore, key: str, jobs) -> dict[str, set[str]]:
    return {j.kind: store.done_clips(key, j.kind, j.n) for j in jobs}


def _default_actors(resources: dict, n_gpu: float, cpus_per_actor: float, model: str) -> int:
    if n_gpu:
        return max(1, int(resources.get("GPU", 0) // n_gpu))
    if _is_hosted(model):
        return 1    # one process holds the API's request concurrency and budget
    return max(1, int(resources.get("CPU", 1) // cpus_per_actor))


def _is_hosted(model: str) -> bool:
    from ambiemo.alm import MODELS
    from ambiemo.alm.hosted.hosted_adapter import HostedAdapter
    from ambiemo.alm.registry import ADAPTERS

    spec = MODELS.get(model)
    cls = ADAPTERS.get(spec.adapter) if spec else None
    return isinstance(cls, type) and issubclass(cls, HostedAdapter)


def _last_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def shard_root(cfg) -> str:
    """`executor.shard_dir` (a path or fsspec URI), else runs/<config>/shards."""
    return cfg.executor.shard_dir or str(cfg.run_dir / "shards")


def run_generate_job(cfg, model: str, corpus: str, *,
                     progress: bool = True) -> dict[str, RayGenerationReport]:
    """The generate stage of one (model, corpus) of a study config on Ray, a report per
    prompt arm (arm -> report): samples every clip of the corpus's Manifest into the config's store. The
    02_generate notebook run afterwards finds every batch stored (cached) and only writes
    its pointers and summary. Each arm starts its own actors (the model is loaded again)."""
    from ambiemo.alm.prompts import load_prompt

    manifest = pd.read_parquet(cfg.manifest_path(corpus))
    options = {"device": cfg.generation.device, **cfg.model_options(model)}
    reports = {}
    with SampleStore(cfg.store_path) as store:
        for arm in cfg.generation.prompts:
            reports[arm] = generate_on_ray(model, options, manifest, store,
                                           load_prompt(arm, cfg.prompt_dir),
                                           settings_from_config(cfg, arm),
                                           shard_root=shard_root(cfg), executor=cfg.executor,
                                           progress=progress)
    return reports
