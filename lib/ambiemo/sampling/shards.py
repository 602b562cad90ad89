"""Shards of a generation run: groups of whole batches, written as Parquet, merged into the store.

Scaling the `Manifest -> Samples` arrow of Jia et al. (2026) out to many GPUs (the Ray
executor, ambiemo.sampling.executor_ray) cuts a (model, corpus) run into shards. A shard is a run of
consecutive *whole* batches of `runner.plan_batches` (clips sorted by duration, seeds per
batch), cut when its audio reaches `shard_audio_s` seconds, so a sharded run computes every
batch with the seed the one-process run uses and stores exactly the same rows.

A worker writes its shard's rows as one Parquet file, atomically (a temporary name, then a
rename), under `<shard_root>/<run_key>/`; the root may be a local or shared path or any fsspec
URI (s3://, gs://, ...). Only the driver opens the SQLite sample store (never over a network
filesystem): `merge_shard` inserts a shard's rows in one transaction, so a shard is either
wholly in the store or not at all, and the store's primary key still refuses a duplicate.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ambiemo.sampling.store import SampleStore

# The columns of a stored row (SampleStore.write), with Parquet types that keep None as null
# and floats bit for bit.
ROW_SCHEMA = pa.schema([
    ("utt_id", pa.string()), ("kind", pa.string()), ("idx", pa.int64()),
    ("text", pa.string()), ("logprob", pa.float64()), ("n_tokens", pa.int64()),
    ("dist", pa.list_(pa.float64())), ("parse_ok", pa.bool_()), ("parse_error", pa.string()),
    ("seconds", pa.float64()), ("score", pa.float64()), ("failure", pa.string()),
    ("served_model", pa.string()),
])


@dataclass(frozen=True)
class Shard:
    index: int
    batches: tuple[tuple[str, ...], ...]

    @property
    def utt_ids(self) -> list[str]:
        return [u for b in self.batches for u in b]

    @property
    def n_clips(self) -> int:
        return sum(map(len, self.batches))

    @property
    def id(self) -> str:
        """Index plus a digest of its clips: a shard file of another cut is never reused."""
        digest = hashlib.sha256("\n".join(self.utt_ids).encode()).hexdigest()[:10]
        return f"{self.index:05d}-{digest}"


def plan_shards(batches: Sequence[Sequence[str]], durations: Mapping[str, float],
                shard_audio_s: float) -> list[Shard]:
    """Consecutive whole batches, each shard closed once its audio reaches `shard_audio_s`
    seconds (clips without a known duration count as 0 s). Depends only on the batches and
    durations, so every rerun of the run cuts the same shards."""
    if shard_audio_s <= 0:
        raise ValueError(f"shard_audio_s must be positive, got {shard_audio_s}")
    shards, current, seconds = [], [], 0.0
    for batch in batches:
        current.append(tuple(batch))
        seconds += sum(float(durations.get(u) or 0.0) for u in batch)
        if seconds >= shard_audio_s:
            shards.append(Shard(len(shards), tuple(current)))
            current, seconds = [], 0.0
    if current:
        shards.append(Shard(len(shards), tuple(current)))
    return shards


def shard_uri(shard_root: str, run_key: str, shard: Shard) -> str:
    return f"{str(shard_root).rstrip('/')}/{run_key}/{shard.id}.parquet"


def _fs(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri)


def shard_exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return fs.exists(path)


def write_shard(uri: str, rows: Sequence[dict]) -> None:
    """Write `rows` to `uri` as Parquet: to a temporary name next to it, then renamed, so a
    reader sees the whole shard or none of it (a killed writer leaves only a `.tmp-` file)."""
    table = pa.Table.from_pylist([_clean(r) for r in rows], schema=ROW_SCHEMA)
    fs, path = _fs(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f)
    fs.mv(tmp, path)


def read_shard(uri: str) -> list[dict]:
    fs, path = _fs(uri)
    try:
        with fs.open(path, "rb") as f:
            table = pq.read_table(f)
    except (OSError, pa.ArrowInvalid) as e:
        raise ValueError(f"{uri}: not a readable shard file ({e})") from None
    missing = sorted(set(ROW_SCHEMA.names) - set(table.column_names))
    if missing:
        raise ValueError(f"{uri}: shard file lacks column(s) {missing}")
    return table.select(ROW_SCHEMA.names).to_pylist()


def merge_shard(store: SampleStore, run_key: str, uri: str) -> int:
    """Insert the shard's rows into the store in one transaction; returns the rows added,
    0 when the shard was merged before (its rows are all or none in the store). A shard that
    is partly stored means two writers wrote the same rows: refused, naming the file."""
    rows = read_shard(uri)
    if not rows:
        return 0
    keys = [(r["utt_id"], r["kind"], r["idx"]) for r in rows]
    stored = _stored(store, run_key, keys)
    if len(stored) == len(keys):
        return 0
    if stored:
        raise ValueError(f"{uri}: {len(stored)} of its {len(keys)} rows are already in the "
                         f"store (run {run_key}), e.g. {sorted(stored)[0]}; a shard is merged "
                         "whole or not at all, so another run wrote them")
    return store.write(run_key, rows)


def _stored(store: SampleStore, run_key: str, keys: list[tuple]) -> set[tuple]:
    utts = sorted({k[0] for k in keys})
    found = set()
    for i in range(0, len(utts), 500):   # SQLite's bound-parameter limit
        part = utts[i:i + 500]
        found |= set(store.conn.execute(
            f"SELECT utt_id, kind, idx FROM samples WHERE run_key=? AND utt_id IN "
            f"({','.join('?' * len(part))})", (run_key, *part)).fetchall())
    return found & set(keys)


def _clean(row: dict) -> dict:
    """A runner row as plain Python values (numpy scalars and arrays do not go to Arrow)."""
    out = {k: row.get(k) for k in ROW_SCHEMA.names}
    out["failure"] = out["failure"] or ""      # the store's column is never NULL
    if out["dist"] is not None:
        out["dist"] = [float(x) for x in out["dist"]]
    for k in ("logprob", "seconds", "score"):
        if out[k] is not None:
            out[k] = float(out[k])
    for k in ("idx", "n_tokens"):
        if out[k] is not None:
            out[k] = int(out[k])
    out["parse_ok"] = bool(out["parse_ok"])
    out["parse_error"] = out["parse_error"] or ""
    return out
