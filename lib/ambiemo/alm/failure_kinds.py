"""What a failure row's reason says about retrying it: transient, permanent, or truncated.

Every sample the study of Jia et al. (2026) combines is a row of the sample store; a row that
holds no answer carries its reason in `parse_error`. Whether a rerun should ask again depends
on the reason: a server error, a timeout, a rate limit that outlasted the retries or a quota
that has since reset will likely succeed next time (transient: a rerun deletes and redoes
those rows), while a 400 invalid request or a 404 unknown model will fail the same way
(permanent: kept, with the reason, until `--retry-failed` asks for every failure again). An
answer cut off by the token limit is its own kind (`truncated`), never an answer.

A reason is written by the code that records the failure (`ApiFailure.reason`, the runner's
audio and out-of-memory rows, `truncated_reason`); a parse failure of an answer that did
arrive is not a failure row here: re-drawing until an answer parses would bias the samples.
"""
from __future__ import annotations

import re

TRUNCATED = "truncated"
TRANSIENT = "transient"
PERMANENT = "permanent"

# "api: <status> ..." (hosted adapters), "api: connection ..." (no HTTP answer),
# "quota: ..." (a quota stop), "truncated: ...", "audio: ...", "out of memory ...".
_API = re.compile(r"^api: (\d{3}|connection)\b")
# request timeout, rate limit, an unparseable 200 (hosted_adapter.malformed); and every 5xx
_TRANSIENT_STATUS = {200, 408, 429}


def truncated_reason(finish_reason: object, text: str) -> str:
    """The failure reason of an answer the service cut off at the token limit."""
    return f"{TRUNCATED}: answer cut off by the token limit (finish_reason {finish_reason}); " \
           f"partial text {text[:60]!r}"


def failure_kind(reason: str) -> str | None:
    """`transient`, `permanent` or `truncated` for a failure row's reason; None for a row
    that is not a failure row (no reason, or a parse failure of an answer that arrived)."""
    reason = reason or ""
    if reason.startswith(TRUNCATED + ":"):
        return TRUNCATED
    if reason.startswith("quota:"):
        return TRANSIENT             # a quota resets; the run stopped before asking again
    m = _API.match(reason)
    if m:
        status = m.group(1)
        if status == "connection":
            return TRANSIENT
        code = int(status)
        return TRANSIENT if code in _TRANSIENT_STATUS or code >= 500 else PERMANENT
    if reason.startswith(("audio:", "out of memory", "api:")):
        return PERMANENT             # the same file or clip fails the same way again
    return None


def is_transient(reason: str) -> bool:
    return failure_kind(reason) == TRANSIENT


def is_failure(reason: str) -> bool:
    """Whether the row holds no delivered answer (what `--retry-failed` asks again for)."""
    return failure_kind(reason) is not None
