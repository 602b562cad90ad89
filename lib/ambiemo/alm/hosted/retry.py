"""Retries with exponential backoff, and the request budget of one run.

Hosted models in Jia et al. (2026) are queried N times per clip; rate limits (429) and
server errors (5xx) are routine at that volume. A transient error is retried after an
exponentially growing, jittered delay; an error that persists past the retries becomes a
recorded failure (`ApiFailure`), never an answer. Every attempt, retries included, spends
one request of the run's `RequestBudget`, so a misconfigured run cannot bill without bound.

The wait before a retry is at least what the server asks for: the `retry-after-ms` header
(milliseconds; OpenAI sends it beside Retry-After), the `Retry-After` header as seconds or as
an HTTP date (RFC 9110 10.2.3), or the `google.rpc.RetryInfo.retryDelay` detail of the error
body (Gemini sends its ~36-38 s wait there, not in a header;
https://ai.google.dev/gemini-api/docs/troubleshooting). A server's wait is capped at
`max_wait_s` (default 300 s, above the 60-120 s the services usually ask for), the
exponential backoff of its own at `max_backoff_s`.
A quota that lasts until a reset (Gemini's requests-per-day, OpenAI's `insufficient_quota`)
is not retried at all: it raises `QuotaExhausted`, which stops the model's job with one
message instead of thousands of failure rows.
"""
from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("ambiemo.alm.hosted")

T = TypeVar("T")


class BudgetExhausted(RuntimeError):
    """The run's request budget is spent; rows stored before it stay stored."""


class QuotaExhausted(RuntimeError):
    """A quota that only a reset (or billing) restores; rows stored before it stay stored,
    and a rerun after the reset continues where this one stopped."""


class RequestBudget:
    """Counts requests (retries included) against `max_requests` (None: no limit)."""

    def __init__(self, max_requests: int | None, model: str):
        if max_requests is not None and max_requests < 1:
            raise ValueError(f"model {model!r}: max_requests must be >= 1 or None, got {max_requests}")
        self.max_requests = max_requests
        self.model = model
        self.used = 0
        self._lock = threading.Lock()   # requests run concurrently (HostedAdapter.concurrency)

    def spend(self) -> None:
        with self._lock:
            if self.max_requests is not None and self.used >= self.max_requests:
                raise BudgetExhausted(
                    f"model {self.model!r}: request budget exhausted ({self.used} of "
                    f"max_requests={self.max_requests} used); samples stored so far are kept, "
                    "raise max_requests to continue")
            self.used += 1


@dataclass(frozen=True)
class ApiFailure:
    """Why a request did not give a response. `status` is the HTTP status, None for a
    connection error or timeout; `retry_after` is the server's requested wait, in seconds;
    `quota` names a quota that lasts until a reset (and when it resets): no retry helps."""
    status: int | None
    message: str
    retryable: bool
    retry_after: float | None = None
    quota: str | None = None

    @property
    def reason(self) -> str:
        return f"api: {self.status if self.status is not None else 'connection'} {self.message}"


def is_retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status == 408 or status >= 500


MAX_WAIT_S = 300.0   # the longest server-requested wait honoured (OpenAI / Gemini ask 60-120 s)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 1.0        # delay before the first retry; doubles with each retry
    max_backoff_s: float = 60.0   # cap of the exponential backoff
    max_wait_s: float = MAX_WAIT_S  # cap of a wait the server asks for (Retry-After, RetryInfo)

    def __post_init__(self):
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s \
                or self.max_wait_s < 0:
            raise ValueError("need max_retries >= 0, 0 <= backoff_s <= max_backoff_s and "
                             f"max_wait_s >= 0, got {self.max_retries}, {self.backoff_s}, "
                             f"{self.max_backoff_s}, {self.max_wait_s}")

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (0-based): backoff_s * 2**retry with up to
        +50% jitter (so parallel clients do not retry in lockstep), at most max_backoff_s;
        and at least the server's requested wait, itself at most max_wait_s."""
        d = min(self.backoff_s * 2 ** retry * (1 + 0.5 * rng.random()), self.max_backoff_s)
        return max(d, min(retry_after or 0.0, self.max_wait_s))


def call_with_retries(call: Callable[[], T], classify: Callable[[Exception], ApiFailure | None],
                      *, policy: RetryPolicy, budget: RequestBudget, rng: random.Random,
                      sleep: Callable[[float], None] = time.sleep) -> T | ApiFailure:
    """`call()`'s result, or the last `ApiFailure` once retries are used up or the error is
    not transient. `classify` maps an SDK exception to an ApiFailure, or None for an
    exception that is not an API error (a bug), which propagates. Raises BudgetExhausted
    before an attempt the budget does not cover."""
    retry = 0
    while True:
        budget.spend()
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - classified below; non-API errors re-raised
            failure = classify(e)
            if failure is None:
                raise
        if failure.quota:
            raise QuotaExhausted(
                f"model {budget.model!r}: quota exhausted: {failure.quota}; the job stops "
                f"here (rows stored so far are kept; rerun after the reset to continue). "
                f"Server: {failure.message}")
        if not failure.retryable or retry >= policy.max_retries:
            if failure.retryable:
                failure = ApiFailure(failure.status, f"{failure.message} (after {retry} retries)",
                                     False)
            log.warning("%s: request failed: %s", budget.model, failure.reason)
            return failure
        wait = policy.delay(retry, rng, failure.retry_after)
        log.info("%s: %s; retry %d of %d in %.2f s", budget.model, failure.reason, retry + 1,
                 policy.max_retries, wait)
        sleep(wait)
        retry += 1


def retry_after_s(headers, now: float | None = None) -> float | None:
    """The wait a response's headers ask for, in seconds, or None: `retry-after-ms`
    (milliseconds) first, then `Retry-After` as delta-seconds or as an HTTP date (the wait
    until it, from `now`, default the clock). Garbage is None (the exponential delay)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(float(ms) / 1000.0, 0.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def retry_info_delay_s(body) -> float | None:
    """The `google.rpc.RetryInfo.retryDelay` of an error body ({"error": {"details": [...]}})
    in seconds ("36s", "0.5s"), or None where there is none."""
    for detail in _details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                return max(float(delay.removesuffix("s")), 0.0)
            except ValueError:
                return None
    return None


def per_day_quota(body) -> str | None:
    """What per-day quota a Gemini 429 reports (`google.rpc.QuotaFailure` violations whose
    quota id says PerDay), with when it resets, or None for a per-minute rate limit."""
    for detail in _details(body):
        if not str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            continue
        for v in detail.get("violations") or []:
            quota_id = str(v.get("quotaId", ""))
            if "PerDay" in quota_id:
                limit = f" (limit {v['quotaValue']})" if v.get("quotaValue") else ""
                # Google's rate-limit page: requests-per-day quotas reset at midnight Pacific.
                return (f"{quota_id}{limit} of {v.get('quotaMetric', 'the project')}; it "
                        "resets at midnight Pacific time (https://ai.google.dev/gemini-api/"
                        "docs/rate-limits)")
    return None


# 429 kinds that a wait cures: a per-minute / per-second rate (the ErrorInfo reason Google
# sends with it, and the quota ids' windows).
_TRANSIENT_REASONS = {"RATE_LIMIT_EXCEEDED"}
_SHORT_WINDOWS = ("PerMinute", "PerSecond", "PerHour")


def quota_stop(body) -> str | None:
    """Why a Gemini 429 cannot be cured by retrying, or None for a rate limit that a wait
    cures. Read from the error's details (https://ai.google.dev/gemini-api/docs/rate-limits,
    google.rpc error model): a per-day quota (`per_day_quota`); a `google.rpc.ErrorInfo`
    whose reason is not a rate limit (a spend cap, billing, a suspended project); a
    `google.rpc.QuotaFailure` violation of a quota that is neither per-minute nor per-day (a
    monthly or project spend cap) or whose limit is 0 (the project's tier has no quota for
    the model). A 429 without details is a rate limit."""
    day = per_day_quota(body)
    if day:
        return day
    for detail in _details(body):
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = str(detail.get("reason", ""))
            if reason and reason not in _TRANSIENT_REASONS:
                return (f"ErrorInfo reason {reason} (a limit of the project or its billing, "
                        "not a rate: waiting does not lift it; raise the limit or the spend "
                        "cap in Google AI Studio)")
        if kind.endswith("google.rpc.QuotaFailure"):
            for v in detail.get("violations") or []:
                quota_id = str(v.get("quotaId", ""))
                limit = str(v.get("quotaValue", ""))
                if limit == "0":
                    return (f"quota {quota_id or v.get('quotaMetric', '?')} has limit 0: the "
                            "project's tier has no quota for this model")
                if quota_id and not any(w in quota_id for w in _SHORT_WINDOWS):
                    return (f"quota {quota_id}" + (f" (limit {limit})" if limit else "")
                            + " is not a per-minute rate: waiting does not lift it")
    return None


def _details(body) -> list[dict]:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
