"""Which model answered: the served model a hosted service reports, against the one asked for.

A hosted provider may answer a deprecated model id with another model (Gemini 2.5 Pro's
requests are reported to be routed to a newer Flash model from 2026-12-01), and the rows
would then be stored, and reported in the tables of Jia et al. (2026), under the requested
name. Every hosted row records the model the service says it served (OpenAI
`response.model`, Gemini `model_version`); a run's summary, its status file and the report's
run summary count the rows per served model, and the main table marks the rows whose
samples came from another model (`served_note`).
"""
from __future__ import annotations

import re

_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{3})$")   # -2025-12-15 (OpenAI), -001 (Gemini)


def served_matches(requested: str, served: str | None) -> bool:
    """Whether `served` is the requested model: the same id, or a dated snapshot of the
    requested alias (OpenAI answers `gpt-audio-1.5` with e.g. `gpt-audio-1.5-2026-01-20`,
    Gemini `gemini-3.5-flash` with `gemini-3.5-flash-001`). None (not reported) matches:
    there is nothing to flag."""
    if served is None:
        return True
    served = served.removeprefix("models/")
    requested = requested.removeprefix("models/")
    if served == requested:
        return True
    if served.startswith(requested + "-") and _DATED.fullmatch("-" + served[len(requested) + 1:]):
        return True
    # A dated snapshot requested and its alias reported (or the reverse) is the same model.
    return _DATED.sub("", served) == _DATED.sub("", requested) and \
        (_DATED.search(served) is None) != (_DATED.search(requested) is None)


def served_other(store, run_key: str, requested: str) -> tuple[str, ...]:
    """'<served model> (<n> rows)' for each served model of `run_key` that is not
    `requested`, most rows first; () when every row came from the requested model."""
    counts = store.conn.execute(
        "SELECT served_model, COUNT(*) FROM samples WHERE run_key=? AND served_model IS NOT "
        "NULL GROUP BY served_model ORDER BY COUNT(*) DESC, served_model", (run_key,)).fetchall()
    return tuple(f"{m} ({n} rows)" for m, n in counts if not served_matches(requested, m))


def served_counts(store, run_key: str) -> dict[str, int]:
    """{served model: rows} of `run_key`, most rows first; rows with no served model (local
    models, failures before an answer) are not counted."""
    rows = store.conn.execute(
        "SELECT served_model, COUNT(*) FROM samples WHERE run_key=? AND served_model IS NOT "
        "NULL GROUP BY served_model ORDER BY COUNT(*) DESC, served_model", (run_key,)).fetchall()
    return {m: int(n) for m, n in rows}


def served_note(counts: dict[str, int], requested: str) -> str:
    """One line for a job's note: the rows per served model, those of another model marked
    ("served: gemini-3.8-flash 9 rows [NOT gemini-3.5-flash]"); "" when none was reported."""
    if not counts:
        return ""
    return "served: " + ", ".join(
        f"{m} {n} rows" + ("" if served_matches(requested, m) else f" [NOT {requested}]")
        for m, n in counts.items())


def other_model_rows(samples, requested: str) -> dict[str, int]:
    """{served model: rows} of a samples frame (`served_model` column) for the served models
    that are not `requested`; {} when the frame has no such rows."""
    if "served_model" not in samples or not len(samples):
        return {}
    counts = samples["served_model"].dropna().value_counts()
    return {str(m): int(n) for m, n in counts.items() if not served_matches(requested, str(m))}
