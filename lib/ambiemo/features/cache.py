"""Per-clip acoustic features, extracted in parallel and cached as Parquet beside the Manifest.

The supervised soft-label reference (soft_reference.py; issue #17, a reference row beside
those of Jia et al., 2026) reads one fixed-length feature vector per clip. Extracting them is
the only costly step, so it runs once per corpus and feature set and is cached: one row per
clip with `utt_id`, `audio_path`, `status` ("ok" | "failed"), `reason` (why a clip failed,
else None) and one column per feature. A clip whose audio cannot be read (missing, empty,
non-finite samples: `alm.audio.load_audio`'s checks) or whose features come out non-finite is
a counted failure row, never silently dropped; the reference then predicts nothing for it.

The extractor's settings (package versions, feature set, checkpoint, layer, sample rate) are
written into the Parquet file's metadata; a cache written with other settings is never
reused. A rerun extracts only the clips not yet cached (or whose audio path changed) and
retries failed ones, so a fixed file is picked up.

Parallelism: `executor="process"` (a `concurrent.futures` process pool, one extractor per
worker) or `executor="ray"` (the same batches as Ray tasks, on whatever cluster `ray.init`
joins). Both go through `_extract_batch`, so they give identical rows.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

META_COLUMNS = ["utt_id", "audio_path", "status", "reason"]
EXECUTORS = ("process", "ray")
METADATA_KEY = b"ambiemo_features"
DEFAULT_BATCH = 16


class Extractor(Protocol):
    """What a feature set provides; it must pickle (it is sent to worker processes)."""

    settings: dict            # everything that changes a number: the cache key

    def columns(self) -> list[str]: ...             # feature names, in output order

    def __call__(self, audio: np.ndarray, sr: int) -> np.ndarray: ...  # (n_features,)


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The feature columns of a features frame (everything but the metadata columns)."""
    return [c for c in features.columns if c not in META_COLUMNS]


def _failure(utt_id: str, path: str, reason: str) -> dict:
    return {"utt_id": utt_id, "audio_path": path, "status": "failed", "reason": reason}


def _extract_batch(extractor: Extractor, clips: Sequence[tuple[str, str]]) -> list[dict]:
    """Features of (utt_id, audio_path) clips; a clip that fails is a failure row."""
    from ambiemo.alm.audio import AudioError, load_audio

    sr = int(extractor.settings["sample_rate"])
    names = extractor.columns()
    rows = []
    for utt_id, path in clips:
        try:
            audio = load_audio(path, sr)
        except AudioError as e:
            rows.append(_failure(utt_id, path, str(e)))
            continue
        try:
            values = np.asarray(extractor(audio, sr), dtype=float)
        except Exception as e:  # noqa: BLE001 -- one broken clip must not stop a corpus
            rows.append(_failure(utt_id, path, f"{path}: feature extraction failed: "
                                               f"{type(e).__name__}: {e}"))
            continue
        if values.shape != (len(names),):
            raise ValueError(f"{path}: extractor returned shape {values.shape}, expected "
                             f"({len(names)},)")
        bad = ~np.isfinite(values)
        if bad.any():
            shown = [names[i] for i in np.flatnonzero(bad)[:5]]
            rows.append(_failure(utt_id, path, f"{path}: {int(bad.sum())} non-finite "
                                               f"features ({', '.join(shown)})"))
            continue
        rows.append({"utt_id": utt_id, "audio_path": path, "status": "ok", "reason": None,
                     **dict(zip(names, values))})
    return rows


def _run_process_pool(extractor, batches, n_jobs, bar) -> list[dict]:
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = {pool.submit(_extract_batch, extractor, b): len(b) for b in batches}
        for fut in as_completed(futures):
            rows.extend(fut.result())
            bar.update(futures[fut])
    return rows


def _run_ray(extractor, batches, bar) -> list[dict]:
    import ray

    if not ray.is_initialized():
        # Joins RAY_ADDRESS's cluster when one is set, else starts a local one.
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    task = ray.remote(_extract_batch)
    ref_extractor = ray.put(extractor)
    pending = {task.remote(ref_extractor, b): len(b) for b in batches}
    rows: list[dict] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            rows.extend(ray.get(ref))
            bar.update(pending.pop(ref))
    return rows


def _read_cache(path: Path, settings: dict) -> pd.DataFrame | None:
    import pyarrow.parquet as pq

    if not path.is_file():
        return None
    meta = pq.read_schema(path).metadata or {}
    stored = json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    if stored != settings:
        log.warning("%s was written with other extractor settings (%s, now %s): "
                    "extracting every clip again", path, stored, settings)
        return None
    return pd.read_parquet(path)


def _write_cache(frame: pd.DataFrame, path: Path, settings: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(settings).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    tmp.replace(path)  # a killed run never leaves half a cache


def extract_features(manifest: pd.DataFrame, cache_path: str | Path | None,
                     extractor: Extractor, *, n_jobs: int = 1, executor: str = "process",
                     batch_size: int = DEFAULT_BATCH, progress: bool = True,
                     desc: str = "features") -> pd.DataFrame:
    """One row per Manifest clip (Manifest order): META_COLUMNS + the extractor's features.

    `cache_path` (None: no cache) is read first and written back with every clip. `n_jobs`
    worker processes (1: in this process) or, with `executor="ray"`, Ray tasks of
    `batch_size` clips. `attrs["settings"]` holds the extractor settings and
    `attrs["n_failed"]` the number of failure rows (also logged with the first reasons).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}; valid: {EXECUTORS}")
    lacking = {"utt_id", "audio_path"} - set(manifest.columns)
    if lacking:
        raise ValueError(f"the Manifest lacks columns {sorted(lacking)}")
    if manifest["utt_id"].duplicated().any():
        dup = manifest.loc[manifest["utt_id"].duplicated(), "utt_id"].iloc[0]
        raise ValueError(f"the Manifest has utt_id {dup!r} more than once")
    from tqdm.auto import tqdm

    settings = dict(extractor.settings)
    names = extractor.columns()
    cache_path = Path(cache_path) if cache_path is not None else None
    cached = _read_cache(cache_path, settings) if cache_path else None
    wanted = pd.DataFrame({"utt_id": manifest["utt_id"].astype(str).to_numpy(),
                           "audio_path": manifest["audio_path"].astype(str).to_numpy()})
    keep = pd.DataFrame(columns=[*META_COLUMNS, *names])
    if cached is not None:
        same = cached.merge(wanted, on=["utt_id", "audio_path"], how="inner")
        keep = same[same["status"] == "ok"]
    todo = wanted[~wanted["utt_id"].isin(keep["utt_id"])]
    clips = list(todo.itertuples(index=False, name=None))
    batches = [clips[i:i + batch_size] for i in range(0, len(clips), batch_size)]
    bar = tqdm(total=len(clips), desc=desc, unit="clip", disable=not progress or not clips)
    if not clips:
        rows = []
    elif executor == "ray":
        rows = _run_ray(extractor, batches, bar)
    elif n_jobs <= 1:
        rows = []
        for b in batches:
            rows.extend(_extract_batch(extractor, b))
            bar.update(len(b))
    else:
        rows = _run_process_pool(extractor, batches, n_jobs, bar)
    bar.close()
    new = pd.DataFrame(rows, columns=[*META_COLUMNS, *names])
    parts = [f for f in (keep, new) if len(f)]
    frame = pd.concat(parts, ignore_index=True) if parts else new
    frame = frame.set_index("utt_id").loc[wanted["utt_id"]].reset_index()
    frame[names] = frame[names].astype(float)
    frame["reason"] = frame["reason"].astype(object).where(frame["status"] == "failed", None)
    if cache_path is not None and len(rows):
        # Clips cached for another Manifest of the corpus (a subset run) are kept.
        others = (cached[~cached["utt_id"].isin(wanted["utt_id"])] if cached is not None
                  else frame.iloc[:0])
        _write_cache(pd.concat([frame, others], ignore_index=True) if len(others) else frame,
                     cache_path, settings)
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        log.warning("%d of %d clips have no features (failure rows); first: %s", len(failed),
                    len(frame), "; ".join(failed["reason"].head(3)))
    frame.attrs["settings"] = settings
    frame.attrs["n_failed"] = int(len(failed))
    return frame


def feature_matrix(manifest: pd.DataFrame, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(X, ok): the feature rows aligned to the Manifest's utt_id order, and which are usable.

    Rows of failed clips are NaN with ok False; a Manifest clip absent from `features` raises.
    """
    feats = features.set_index(features["utt_id"].astype(str))
    ids = manifest["utt_id"].astype(str)
    absent = pd.Index(ids).difference(feats.index)
    if len(absent):
        raise ValueError(f"{len(absent)} Manifest clips have no feature row (extract features "
                         f"for this Manifest first): {list(absent[:5])}")
    feats = feats.loc[ids]
    X = feats[feature_columns(features)].to_numpy(dtype=float, copy=True)
    ok = (feats["status"] == "ok").to_numpy() & np.isfinite(X).all(axis=1)
    X[~ok] = np.nan
    return X, ok
