"""Why predictions are missing, counted per model and prompt (issue #20).

A missing prediction is scored at the metric's worst value (Jia et al., 2026, compare models
over every clip), so a table that shows a score must also show how many answers were
missing and why: the parser could not read them (`unparsed`), generation stopped at the
token limit (`truncated`), it put half its stated mass or more on classes outside the
label space (`out_of_space`), a hosted API failed (`api_error`), the clip could not be read
(`audio_error`) or did not fit in memory alone (`out_of_memory`). `failure_kind` classifies
one stored sample; `failure_breakdown` counts them, together with how many parsed answers
needed their sum renormalised or lost mass to classes outside the label space;
`failure_counts` / `failure_note` are the one count every note and report prints, and
`MEANINGS` says what each kind means (a clip longer than the model's audio window is not a
failure: it is `over_window`, counted per clip by the runner).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ambiemo.parse.response import SUM_EXACT
from ambiemo.parse.result import (API_ERROR, AUDIO_ERROR, FAILURE_KINDS, OUT_OF_MEMORY,
                                  OUT_OF_SPACE, OUTSIDE_PREFIX, SHARD_ERROR, TRUNCATED,
                                  UNPARSED)

# What each failure kind means, as every table, note and report says it (issue #25: one
# vocabulary, one count). A new kind (parse.result.FAILURE_KINDS) adds its line here.
MEANINGS = {
    UNPARSED: "the answer arrived but its text could not be read",
    TRUNCATED: "the answer was cut at the token limit (max_new_tokens) and cannot be read",
    OUT_OF_SPACE: "the answer put half its stated mass or more on classes outside the label "
                  "space",
    API_ERROR: "a hosted model's request failed after its retries",
    AUDIO_ERROR: "the clip's audio could not be read or was refused (no answer asked for)",
    OUT_OF_MEMORY: "one clip alone did not fit in the accelerator's memory",
    SHARD_ERROR: "a Ray shard of clips kept failing",
}


def meaning(kind: str) -> str:
    """What failure kind `kind` means, in words (the kind itself where none is recorded)."""
    return MEANINGS.get(kind, kind)


# Stored reasons of the sampling run start with these (sampling/generate.py, alm/hosted/retry.py).
_PREFIXES = (("api:", API_ERROR), ("audio:", AUDIO_ERROR), ("out of memory", OUT_OF_MEMORY))


def failure_kind(parse_ok: bool, parse_error: str, n_tokens: float | None = None,
                 max_new_tokens: int | None = None) -> str:
    """The failure kind of one sample ("" when it parsed). A parse failure whose generation
    used all `max_new_tokens` is `truncated`: the answer was cut, not unreadable."""
    if parse_ok:
        return ""
    reason = (parse_error or "").strip().lower()
    for prefix, kind in _PREFIXES:
        if reason.startswith(prefix):
            return kind
    if (max_new_tokens is not None and n_tokens is not None and not math.isnan(n_tokens)
            and n_tokens >= max_new_tokens):
        return TRUNCATED
    # A parse failure for mass outside the label space starts with OUTSIDE_PREFIX (parse/);
    # cut at the token limit, the missing lines may have held the in-space mass: truncated.
    if reason.startswith(OUTSIDE_PREFIX.lower()):
        return OUT_OF_SPACE
    return UNPARSED


def failure_breakdown(samples: pd.DataFrame,
                      by: Sequence[str] = ("model", "prompt")) -> pd.DataFrame:
    """Counts per group of `by`: `n` samples, `parsed`, one column per FAILURE_KINDS, and,
    where the columns exist, `renormalised` (parsed with raw_sum not 1) and `dropped` (parsed
    with dropped_mass > 0).

    `samples` needs `parse_ok` and either `failure` (the runner's recorded kind) or
    `parse_error` (classified by `failure_kind`, with `n_tokens` and `max_new_tokens` when
    present). Raises ValueError naming a missing column or an unknown failure kind.
    """
    missing = [c for c in (*by, "parse_ok") if c not in samples]
    if missing:
        raise ValueError(f"failure_breakdown: samples lack column(s) {missing}; "
                         f"have {list(samples.columns)}")
    df = samples.copy()
    ok = df["parse_ok"].fillna(False).astype(bool)
    if "failure" in df:
        kind = df["failure"].fillna("").astype(str).where(~ok, "")
    elif "parse_error" in df:
        n_tok = df["n_tokens"] if "n_tokens" in df else pd.Series(np.nan, index=df.index)
        limit = df["max_new_tokens"] if "max_new_tokens" in df else pd.Series(None, index=df.index)
        kind = pd.Series([failure_kind(o, e, None if pd.isna(n) else float(n),
                                       None if pd.isna(m) else int(m))
                          for o, e, n, m in zip(ok, df["parse_error"], n_tok, limit)],
                         index=df.index)
    else:
        raise ValueError("failure_breakdown: samples need a `failure` or a `parse_error` column")
    unknown = sorted(set(kind[~ok]) - set(FAILURE_KINDS))
    if unknown:
        raise ValueError(f"failure_breakdown: unknown failure kind(s) {unknown}; "
                         f"valid: {FAILURE_KINDS}")
    df["n"] = 1
    df["parsed"] = ok.astype(int)
    for k in FAILURE_KINDS:
        df[k] = (kind == k).astype(int)
    counts = ["n", "parsed", *FAILURE_KINDS]
    if "raw_sum" in df:
        raw = pd.to_numeric(df["raw_sum"], errors="coerce")
        df["renormalised"] = (ok & raw.notna() & ((raw - 1).abs() > SUM_EXACT)).astype(int)
        counts.append("renormalised")
    if "dropped_mass" in df:
        df["dropped"] = (ok & (pd.to_numeric(df["dropped_mass"], errors="coerce") > 0)).astype(int)
        counts.append("dropped")
    return df.groupby(list(by), sort=True)[counts].sum().reset_index()


def failure_counts(samples: pd.DataFrame) -> dict[str, int]:
    """`n`, `parsed` and one count per FAILURE_KINDS over the rows of `samples`
    (`SampleStore.read` output, the text answers: what `<corpus>_failures` counts): the one
    count the generate note, the run summary, the report and the failures table give."""
    if samples.empty:
        return {"n": 0, "parsed": 0, **{k: 0 for k in FAILURE_KINDS}}
    table = failure_breakdown(samples.assign(_all=0), by=("_all",))
    return {k: int(table[k].iat[0]) for k in ("n", "parsed", *FAILURE_KINDS)}


def failure_note(counts: dict[str, int]) -> str:
    """'96 answers: 90 parsed, 4 unparsed, 2 audio_error' (kinds with a count only)."""
    kinds = [f"{counts[k]} {k}" for k in FAILURE_KINDS if counts.get(k)]
    return f"{counts['n']} answers: {counts['parsed']} parsed" + "".join(
        f", {k}" for k in kinds)
