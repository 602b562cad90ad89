"""Which model answered: the served model a hosted service reports, against the one asked for.

A hosted provider may answer a deprecated model id with another model (Gemini 2.5 Pro's
requests are reported to be routed to a newer Flash model from 2026-12-01), and the rows
would then be stored, and reported in the tables of Jia et al. (2026), under the requested
name. Every hosted row records the model the service says it served (OpenAI
`response.model`, Gemini `model_version`); a run's summary names every served model that is
not the requested one.
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
