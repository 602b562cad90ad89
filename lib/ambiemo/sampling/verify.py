"""Verifying sampled candidates into the sample store: the verifier of ALM-v / W-ALM-v.

Jia et al. (2026) let a verifier ALM judge each of a clip's N candidates given the audio
(GPT-4o in the study; here any adapter with `verify`). This is the `Samples -> verdicts` arrow:
every parsed candidate of a generation run gets a row of kind `verify` with the verifier's
score in [0, 1], under a run key of its own, so a rerun judges nothing twice. A verdict
without a score is stored as a counted failure with its reason, never as a score.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import pandas as pd

from ambiemo.alm.audio import AudioError, load_audio
from ambiemo.alm.base import ALMAdapter, Clip
from ambiemo.alm.prompts import PromptTemplate
from ambiemo.parse import API_ERROR, AUDIO_ERROR
from ambiemo.sampling.generate import content_digest, delete_failures_to_redo, prompt_identity
from ambiemo.alm.served_model import served_other
from ambiemo.sampling.store import SampleStore
from ambiemo.corpora.manifest import require_audio
from ambiemo.sampling.progress import ProgressFile


@dataclass(frozen=True)
class VerifyReport:
    run_key: str
    n_clips: int
    rows_written: int
    clips_cached: int           # already judged in an earlier run
    clips_without_candidates: int   # every candidate failed to parse: nothing to judge
    failures: int               # verdicts without a score (API error, unparseable score)
    seconds: float
    served_other: tuple[str, ...] = ()  # hosted: "served (n rows)" judged by another model


def verify_key(verifier: ALMAdapter, prompt: PromptTemplate, source_key: str,
               candidates: str, n: int | None) -> tuple[str, dict]:
    content = {"verifier": verifier.identity(), "prompt": prompt_identity(prompt),
               "source_run": source_key, "candidates": candidates, "n": n}
    return content_digest(content), content


def verify_samples(verifier: ALMAdapter, manifest: pd.DataFrame, store: SampleStore,
                   source_key: str, prompt: PromptTemplate, *, candidates: str = "sample",
                   n: int | None = None, batch_size: int = 8,
                   progress: bool = True) -> VerifyReport:
    """Score every parsed candidate of `source_key` (kind `candidates`, the first `n` per
    clip) with `verifier`; rows of kind `verify` with idx = the candidate's idx and `score`.

    Unparseable candidates are not judged (no strategy can use them); a verdict without a
    score is stored as a failure with its reason. The verify run key hashes the verifier,
    the prompt, the source run and the candidate selection, so a rerun judges nothing twice.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if not prompt.is_verifier:
        raise ValueError(f"prompt {prompt.id!r} is not a verifier prompt (answer: verify|score)")
    if "verify" not in verifier.capabilities:
        raise ValueError(f"{verifier.name} cannot act as a verifier")
    classes = list(manifest.attrs["classes"])
    require_audio(manifest, allow_empty=True, allow_unreadable=True)
    verifier.bind_manifest(manifest)   # simulated verifiers judge from it (alm/sim.py)
    key, content = verify_key(verifier, prompt, source_key, candidates, n)
    store.register_run(key, verifier.name, content, classes)
    # Verdicts lost to a transient failure (every failure with --retry-failed) are asked again.
    delete_failures_to_redo(store, key, None)
    source = store.read(source_key)
    rows = source[(source["kind"] == candidates) & source["parse_ok"]]
    if n is not None:
        rows = rows[rows["idx"] < n]
    if rows.empty:
        raise ValueError(f"run {source_key} has no parsed candidates of kind {candidates!r} "
                         "to verify")
    by_clip = {u: list(zip(g["idx"].astype(int), g["text"])) for u, g in rows.groupby("utt_id")}
    order = manifest.sort_values(["duration_s", "utt_id"], na_position="last")
    paths = dict(zip(order["utt_id"], order["audio_path"]))
    judged = store.clips_with(key, "verify")
    todo = [u for u in order["utt_id"] if u in by_clip and u not in judged]
    user_text = prompt.render(classes)
    written = failures = 0
    bar = tqdm(total=len(todo), desc=f"{verifier.name} verify", unit="clip", disable=not progress)
    live = ProgressFile("clips", len(todo))     # the pipeline's terminal shows it (pipeline/progress.py)
    for i in range(0, len(todo), batch_size):
        batch = todo[i:i + batch_size]
        out, clips = [], []
        for u in batch:
            try:
                clips.append(Clip(u, load_audio(paths[u])))
            except AudioError as e:
                out += [{"utt_id": u, "idx": int(idx), "score": None, "text": "",
                         "error": f"audio_error: {e}", "failure": AUDIO_ERROR}
                        for idx, _ in by_clip[u]]
        t0 = time.perf_counter()
        if clips:
            verdicts = verifier.verify(clips, [by_clip[c.utt_id] for c in clips], user_text)
            out += [asdict(v) for v in verdicts]
        per_row = (time.perf_counter() - t0) / max(len(out), 1)
        stored = [{"utt_id": v["utt_id"], "kind": "verify", "idx": int(v["idx"]),
                   "text": v["text"], "logprob": None, "n_tokens": None, "dist": None,
                   "score": v["score"], "parse_ok": v["score"] is not None,
                   "parse_error": v["error"], "seconds": per_row,
                   "failure": v.get("failure") or (API_ERROR if v["error"] and not v["text"]
                                                   else ""),
                   "served_model": v.get("served_model")} for v in out]
        failures += sum(not r["parse_ok"] for r in stored)
        written += store.write(key, stored)
        bar.update(len(batch))
        live.update(min(i + batch_size, len(todo)), failures)
    bar.close()
    live.update(len(todo), failures, force=True)
    return VerifyReport(key, len(manifest), written, len(judged),
                        len(set(manifest["utt_id"]) - set(by_clip)), failures,
                        time.perf_counter() - start,
                        served_other(store, key, getattr(verifier, "model_id", verifier.name)))
