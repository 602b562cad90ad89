"""The sample store: every response a model produced, in SQLite, written in transactions.

Sampling is the cost of the study (Jia et al., 2026, draw N responses per clip for every
model, corpus and prompt), so nothing sampled may be lost or repeated. The store is SQLite
in WAL mode; each batch of clips is one transaction, so a killed run loses at most the batch
in flight; `(run_key, utt_id, kind, idx)` is the primary key, so no row is ever written
twice (a second write of the same row raises instead of being dropped silently), and a
rerun asks `done_clips` what is already there.

Answers are parsed when they are *read*, not when they are written: `read()` parses each
answer row's stored text with the current parser (`ambiemo.parse`) and the answer format the
run recorded for its kind, so a fix to the parser or to the synonyms reaches every sample
already in the store without generating again (the `dist` column keeps only what is not
text: class-name scores). A row that never produced text (an API error, unreadable audio, an
answer cut off by the token limit, out of memory) carries its `failure` kind and is never
parsed; a row whose text does not parse gets the failure kind `unparsed` on reading.

A hosted row also records `served_model`, the model the service says answered (NULL for
local models). `delete_failures` removes the rows of every clip whose failure a rerun should
redo (transient ones by default, every failure for `--retry-failed`;
`ambiemo.alm.failure_kinds`). Columns added since a store file was written are added to
it when it is opened.
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
from ambiemo.parse import (API_ERROR, AUDIO_ERROR, OUT_OF_MEMORY, PARSER_SETTINGS,
                           PARSER_VERSION, SHARD_ERROR, TRUNCATED, parse_generation)

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
    failure     TEXT NOT NULL DEFAULT '',  -- why no answer was produced (GENERATION_FAILURES)
    served_model TEXT,             -- hosted: the model the service says answered
    PRIMARY KEY (run_key, utt_id, kind, idx)
);
"""
KINDS = ("greedy", "sample", "beam", "cot", "label_score", "verify")
# Kinds whose rows are text answers, parsed on reading with the run's answer format.
ANSWER_KINDS = ("greedy", "sample", "beam", "cot")
# Why a row holds no answer, set when it is written (the parser's failure kinds); "unparsed"
# and "truncated" (an answer cut at the token limit that cannot be read) are added on reading.
GENERATION_FAILURES = (API_ERROR, AUDIO_ERROR, TRUNCATED, OUT_OF_MEMORY, SHARD_ERROR)
COLUMNS = ("run_key", "utt_id", "kind", "idx", "text", "logprob", "n_tokens", "dist",
           "parse_ok", "parse_error", "seconds", "score", "failure", "served_model")
# Added after the first store files were written: (name, SQL type and default).
ADDED_COLUMNS = (("failure", "TEXT NOT NULL DEFAULT ''"), ("served_model", "TEXT"))


class SampleStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a store file written before a column existed up to SCHEMA."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(samples)")}
        with self.conn:
            for name, sql_type in ADDED_COLUMNS:
                if name not in have:
                    self.conn.execute(f"ALTER TABLE samples ADD COLUMN {name} {sql_type}")

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

    def settings(self, run_key: str) -> dict:
        """What entered the run's key (the runner's and the verifier's settings)."""
        row = self.conn.execute("SELECT settings FROM runs WHERE run_key=?", (run_key,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no run {run_key}")
        return json.loads(row[0])

    def clips_with(self, run_key: str, kind: str) -> set[str]:
        """Clips with at least one row of `kind` in the run."""
        rows = self.conn.execute("SELECT DISTINCT utt_id FROM samples WHERE run_key=? AND kind=?",
                                 (run_key, kind))
        return {r[0] for r in rows}

    def done_clips(self, run_key: str, kind: str, n: int) -> set[str]:
        """Clips of `kind` whose `n` rows are all stored."""
        rows = self.conn.execute(
            "SELECT utt_id FROM samples WHERE run_key=? AND kind=? GROUP BY utt_id "
            "HAVING COUNT(*) >= ?", (run_key, kind, n))
        return {r[0] for r in rows}

    def rows_per_clip(self, run_key: str, kind: str) -> dict[str, int]:
        """utt_id -> rows of `kind` stored for it in the run (clips with none absent)."""
        rows = self.conn.execute("SELECT utt_id, COUNT(*) FROM samples WHERE run_key=? AND "
                                 "kind=? GROUP BY utt_id", (run_key, kind))
        return dict(rows.fetchall())

    def delete_clips(self, run_key: str, kind: str, utt_ids: Iterable[str]) -> int:
        """Delete every row of `kind` of these clips in the run; returns rows deleted."""
        with self.conn:
            return sum(self.conn.execute("DELETE FROM samples WHERE run_key=? AND kind=? AND "
                                         "utt_id=?", (run_key, kind, u)).rowcount
                       for u in utt_ids)

    def write(self, run_key: str, rows: Iterable[dict]) -> int:
        """Insert `rows` in one transaction; all or nothing."""
        values = []
        for r in rows:
            if r["kind"] not in KINDS:
                raise ValueError(f"unknown sample kind {r['kind']!r}; valid: {KINDS}")
            failure = r.get("failure", "")
            if failure and failure not in GENERATION_FAILURES:
                raise ValueError(f"unknown failure kind {failure!r}; valid: {GENERATION_FAILURES}")
            dist = r.get("dist")
            values.append((run_key, r["utt_id"], r["kind"], int(r["idx"]), r["text"],
                           _num(r.get("logprob")), r.get("n_tokens"),
                           None if dist is None else json.dumps([float(x) for x in dist]),
                           int(bool(r["parse_ok"])), r.get("parse_error", ""),
                           _num(r.get("seconds")), _num(r.get("score")), failure,
                           r.get("served_model")))
        with self.conn:
            self.conn.executemany(f"INSERT INTO samples ({', '.join(COLUMNS)}) "
                                  f"VALUES ({', '.join('?' * len(COLUMNS))})", values)
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

    def read(self, run_key: str, *, parse: bool = True) -> pd.DataFrame:
        """The run's samples with one `p_<class>` column per class (NaN where there is no
        answer), answer rows parsed from their text now (`parse=False`: as stored)."""
        row = self.conn.execute("SELECT classes, settings FROM runs WHERE run_key=?",
                                (run_key,)).fetchone()
        if row is None:
            raise KeyError(f"{self.path}: no run {run_key} (the store was emptied or "
                           "replaced?): run `--stage generate` for it first; it resumes "
                           "from whatever is stored")
        classes = json.loads(row[0])
        settings = json.loads(row[1])
        answers = settings.get("answers", {})
        df = pd.read_sql_query("SELECT * FROM samples WHERE run_key=? ORDER BY utt_id, kind, idx",
                               self.conn, params=(run_key,))
        dists = np.array([json.loads(d) if isinstance(d, str) else [np.nan] * len(classes)
                          for d in df["dist"]], dtype=float).reshape(len(df), len(classes))
        df = df.drop(columns="dist")
        df[columns("p", classes)] = dists
        df["parse_ok"] = df["parse_ok"].astype(bool)
        if parse and answers:
            df = parse_answers(df, classes, answers, token_limits(settings))
        df.attrs["classes"] = classes
        return df


def token_limits(settings: dict) -> dict[str, int]:
    """Each text kind's token limit from a run's settings (see sampling.generate.run_key)."""
    limit = settings.get("decoding", {}).get("max_new_tokens")
    out = {k: limit for k in ("greedy", "sample", "beam")} if limit else {}
    if isinstance(settings.get("cot"), dict) and settings["cot"].get("max_new_tokens"):
        out["cot"] = settings["cot"]["max_new_tokens"]
    return out


def parse_answers(samples: pd.DataFrame, classes: Sequence[str], answers: dict[str, str],
                  max_new_tokens: dict[str, int] | None = None) -> pd.DataFrame:
    """Parse every answer row's text with the current parser; `answers` maps a kind to the
    answer format its prompt asked for ("label", "distribution", "cot"), `max_new_tokens` a
    kind to its token limit (an answer that used all of it and cannot be read is
    "truncated", not "unparsed"). Rows with a generation failure keep it; rows whose text
    does not parse get the parser's failure kind and reason. Adds `raw_sum` (the stated
    probabilities' sum before renormalising) and `dropped_mass` (mass on classes outside the
    label space, dropped)."""
    limits = max_new_tokens or {}
    df = samples.copy()
    pcols = columns("p", classes)
    todo = df["kind"].isin([k for k in answers if k in ANSWER_KINDS]) & (df["failure"] == "")
    dists = np.array(df[pcols], dtype=float)   # copies: pandas hands out read-only views
    ok = np.array(df["parse_ok"], dtype=bool)
    reason, failure = np.array(df["parse_error"], dtype=object), np.array(df["failure"], dtype=object)
    raw_sum = np.full(len(df), np.nan)
    dropped = np.zeros(len(df))
    # Answers repeat (a label prompt has K answers, give or take spelling): parse each
    # distinct (format, text, cut at the token limit) once per read.
    parsed: dict[tuple, object] = {}
    for i in np.flatnonzero(todo.to_numpy()):
        kind, n, text = df["kind"].iat[i], df["n_tokens"].iat[i], df["text"].iat[i]
        limit = limits.get(kind)
        cut = limit is not None and not pd.isna(n) and int(n) >= limit
        key = (answers[kind], text, cut)
        if key not in parsed:
            parsed[key] = parse_generation(text, classes, answer=answers[kind],
                                           n_tokens=limit if cut else None,
                                           max_new_tokens=limit)
        r = parsed[key]
        dists[i] = r.dist if r.ok else np.nan
        ok[i], reason[i], failure[i] = r.ok, r.reason, r.failure
        raw_sum[i], dropped[i] = r.raw_sum, r.dropped_mass
    df[pcols] = dists
    df["parse_ok"], df["parse_error"], df["failure"] = ok.astype(bool), reason, failure
    df["raw_sum"], df["dropped_mass"] = raw_sum, dropped
    df.attrs["parser_version"] = PARSER_VERSION
    df.attrs["parser_settings"] = dict(PARSER_SETTINGS)   # e.g. the out_of_space threshold
    return df


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
