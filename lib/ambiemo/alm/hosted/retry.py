"""Retries with exponential backoff, and the request budget of one run.

Hosted models in Jia et al. (2026) are queried N times per clip; rate limits (429) and
server errors (5xx) are routine at that volume. A transient error is retried after an
exponentially growing, jittered delay; an error that persists past the retries becomes a
recorded failure (`ApiFailure`), never an answer. Every attempt, retries included, spends
one request of the run's `RequestBudget`, so a misconfigured run cannot bill without bound.

The wait before a retry is at least what the server asks for: the `Retry-After` header
(OpenAI) or the `google.rpc.RetryInfo.retryDelay` detail of the error body (Gemini sends its
~36-38 s wait there, not in a header; https://ai.google.dev/gemini-api/docs/troubleshooting).
A quota that lasts until a reset (Gemini's requests-per-day, OpenAI's `insufficient_quota`)
is not retried at all: it raises `QuotaExhausted`, which stops the model's job with one
message instead of thousands of failure rows.
"""
from __future__ import annotations

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


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 1.0        # delay before the first retry; doubles with each retry
    max_backoff_s: float = 60.0

    def __post_init__(self):
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError("need max_retries >= 0 and 0 <= backoff_s <= max_backoff_s, got "
                             f"{self.max_retries}, {self.backoff_s}, {self.max_backoff_s}")

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (0-based): backoff_s * 2**retry with up to
        +50% jitter (so parallel clients do not retry in lockstep), at least the server's
        Retry-After, at most max_backoff_s."""
        d = self.backoff_s * 2 ** retry * (1 + 0.5 * rng.random())
        return min(max(d, retry_after or 0.0), self.max_backoff_s)


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


def retry_after_s(headers) -> float | None:
    """The Retry-After header in seconds (the delta-seconds form), or None."""
    try:
        value = headers.get("retry-after") if headers is not None else None
        return max(float(value), 0.0) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP-date or garbage: fall back to the exponential delay


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


def _details(body) -> list[dict]:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
