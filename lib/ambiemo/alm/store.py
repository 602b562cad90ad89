"""The sample store: every response a model produced, in SQLite, written in transactions.

Sampling is the cost of the study (Jia et al., 2026, draw N responses per clip for every
model, corpus and prompt), so nothing sampled may be lost or repeated. The store is SQLite
in WAL mode; each batch of clips is one transaction, so a killed run loses at most the batch
in flight; `(run_key, utt_id, kind, idx)` is the primary key, so no row is ever written
twice (a second write of the same row raises instead of being dropped silently), and a
rerun asks `done_clips` what is already there.

A hosted row also records `served_model`, the model the service says answered (added to
older store files by `ALTER TABLE` when missing; NULL for local models and older rows).
`delete_failures` removes the rows of every clip whose failure a rerun should redo
(transient ones by default, every failure for `--retry-failed`; `ambiemo.alm.failure_kinds`).
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ambiemo.labels import columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key  TEXT PRIMARY KEY,
    model    TEXT NOT NULL,
    settings TEXT NOT NULL,        -- JSON: everything that entered the key
    classes  TEXT NOT NULL         -- JSON list: the order of `dist`
);
CREATE TABLE IF NOT EXISTS samples (
    run_key     TEXT NOT NULL REFERENCES runs(run_key),
    utt_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- greedy|sample|beam|cot|label_score|verify
    idx         INTEGER NOT NULL,
    text        TEXT NOT NULL,
    logprob     REAL,
    n_tokens    INTEGER,
    dist        TEXT,              -- JSON list over `classes`; NULL when parsing failed
    parse_ok    INTEGER NOT NULL,
    parse_error TEXT NOT NULL,
    seconds     REAL,              -- the batch's wall time shared equally by its rows
    score       REAL,              -- kind verify: the verifier's score in [0, 1]; NULL on failure
    served_model TEXT,             -- hosted: the model the service says answered
    PRIMARY KEY (run_key, utt_id, kind, idx)
);
"""
COLUMNS = ("run_key", "utt_id", "kind", "idx", "text", "logprob", "n_tokens", "dist",
           "parse_ok", "parse_error", "seconds", "score", "served_model")
KINDS = ("greedy", "sample", "beam", "cot", "label_score", "verify")


class SampleStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        _add_missing_columns(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def register_run(self, run_key: str, model: str, settings: dict, classes: Sequence[str]) -> None:
        settings_json = json.dumps(settings, sort_keys=True)
        with self.conn:
            row = self.conn.execute("SELECT settings, classes FROM runs WHERE run_key=?",
                                    (run_key,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?)",
                                  (run_key, model, settings_json, json.dumps(list(classes))))
            elif row != (settings_json, json.dumps(list(classes))):
                raise ValueError(f"{self.path}: run {run_key} exists with other settings")

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs", self.conn)

    def done_clips(self, run_key: str, kind: str, n: int) -> set[str]:
        """Clips of `kind` whose `n` rows are all stored."""
        rows = self.conn.execute(
            "SELECT utt_id FROM samples WHERE run_key=? AND kind=? GROUP BY utt_id "
            "HAVING COUNT(*) >= ?", (run_key, kind, n))
        return {r[0] for r in rows}

    def write(self, run_key: str, rows: Iterable[dict]) -> int:
        """Insert `rows` in one transaction; all or nothing."""
        values = []
        for r in rows:
            if r["kind"] not in KINDS:
                raise ValueError(f"unknown sample kind {r['kind']!r}; valid: {KINDS}")
            dist = r.get("dist")
            values.append((run_key, r["utt_id"], r["kind"], int(r["idx"]), r["text"],
                           _num(r.get("logprob")), r.get("n_tokens"),
                           None if dist is None else json.dumps([float(x) for x in dist]),
                           int(bool(r["parse_ok"])), r.get("parse_error", ""),
                           _num(r.get("seconds")), _num(r.get("score")), r.get("served_model")))
        # Columns named: a store file from before `served_model` has it last, after ALTER.
        sql = (f"INSERT INTO samples ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(COLUMNS))})")
        with self.conn:
            self.conn.executemany(sql, values)
        return len(values)

    def delete_failures(self, run_key: str, *, transient_only: bool = True) -> int:
        """Delete every row of each (clip, kind) of `run_key` that has a failure row to redo:
        transient failures only (what every rerun does), or every failure row
        (`--retry-failed`). Whole (clip, kind) groups go, because a rerun redoes a clip's
        kind as one unit (`done_clips`). Returns the number of rows deleted."""
        from ambiemo.alm.failure_kinds import is_failure, is_transient

        redo = is_transient if transient_only else is_failure
        rows = self.conn.execute("SELECT utt_id, kind, parse_error FROM samples "
                                 "WHERE run_key=? AND parse_ok=0", (run_key,)).fetchall()
        groups = sorted({(u, k) for u, k, why in rows if redo(why)})
        with self.conn:
            n = sum(self.conn.execute("DELETE FROM samples WHERE run_key=? AND utt_id=? AND "
                                      "kind=?", (run_key, u, k)).rowcount for u, k in groups)
        return n

    def read(self, run_key: str) -> pd.DataFrame:
        """The run's samples with one `p_<class>` column per class (NaN where parsing failed)."""
        row = self.conn.execute("SELECT classes FROM runs WHERE run_key=?", (run_key,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no run {run_key}")
        classes = json.loads(row[0])
        df = pd.read_sql_query("SELECT * FROM samples WHERE run_key=? ORDER BY utt_id, kind, idx",
                               self.conn, params=(run_key,))
        dists = np.array([json.loads(d) if isinstance(d, str) else [np.nan] * len(classes)
                          for d in df["dist"]], dtype=float).reshape(len(df), len(classes))
        df = df.drop(columns="dist")
        df[columns("p", classes)] = dists
        df["parse_ok"] = df["parse_ok"].astype(bool)
        df.attrs["classes"] = classes
        return df


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a store file written before a column existed up to SCHEMA (new columns NULL)."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(samples)")}
    if "served_model" not in have:
        with conn:
            conn.execute("ALTER TABLE samples ADD COLUMN served_model TEXT")


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
