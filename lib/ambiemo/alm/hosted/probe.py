"""A preflight probe of a hosted model: does the model exist, and does one tiny request with
the run's exact parameters succeed?

A run of the study of Jia et al. (2026) sends thousands of requests per hosted model; a
retired model id (404), a parameter the model refuses (`logprobs` on OpenAI's audio models,
`candidate_count > 1` on Gemini 3.x: 400), thinking that eats the answer's tokens, or a model
id the service answers with another model would each turn the run into failure rows or
mislabelled rows. `probe` finds these with at most a few requests before anything runs and
says, for a refused parameter, which model option turns it off.
"""
from __future__ import annotations

import datetime as dt
import logging
import random

import numpy as np

from ambiemo.alm.base import Clip, Decoding
from ambiemo.alm.failure_kinds import TRUNCATED, failure_kind
from ambiemo.alm.hosted.hosted_adapter import HostedAdapter, Request
from ambiemo.alm.hosted.retry import (ApiFailure, QuotaExhausted, RequestBudget, RetryPolicy,
                                      call_with_retries)
from ambiemo.alm.served_model import served_matches

log = logging.getLogger("ambiemo.alm.hosted")

PROBE_TEXT = "Answer with one word: which emotion does the speaker express?"

# A refused parameter (as the service's message names it) -> the option that turns it off.
HINTS = (("logprob", "the model does not take log-probabilities: give it the option "
                     "`logprobs: false` (BoN / W-BoN are then reported unavailable)"),
         ("multiple candidates", "the model takes one candidate per request: give it the "
                                 "option `max_candidates_per_request: 1`"),
         ("candidate", "the model takes one candidate per request: give it the option "
                       "`max_candidates_per_request: 1`"),
         ("thinking", "the model's thinking settings are refused: Gemini 2.5 takes "
                      "`thinking_budget`, Gemini 3.x `thinking_level` (with "
                      "`thinking_headroom`)"))


def probe_clip(seconds: float = 0.5) -> Clip:
    """A short, quiet, seeded noise clip: enough audio for a valid request, no content."""
    rng = np.random.default_rng(0)
    return Clip("preflight-probe", (0.01 * rng.standard_normal(int(16_000 * seconds)))
                .astype(np.float32))


def probe_request(adapter: HostedAdapter, n_samples: int, decoding: Decoding) -> Request:
    """The run's sampling request (the one with most parameters), or its greedy one when it
    draws no samples: what the first request of the run will look like."""
    if n_samples < 1:
        return Request(1, 0.0, None, None, decoding.max_new_tokens, 0)
    return Request(count=min(n_samples, adapter.max_candidates_per_request),
                   temperature=decoding.temperature, top_p=decoding.top_p,
                   top_k=decoding.top_k or None, max_tokens=decoding.max_new_tokens, seed=0)


def describe(adapter: HostedAdapter, request: Request) -> str:
    extra = {k: v for k, v in adapter.identity().items()
             if k.startswith("thinking") and v is not None}
    return (f"model={adapter.model_id}, n={request.count}, temperature={request.temperature}, "
            f"top_p={request.top_p}, top_k={request.top_k}, max_tokens={request.max_tokens}, "
            f"logprobs={adapter.logprobs}" + "".join(f", {k}={v}" for k, v in extra.items()))


def probe(adapter: HostedAdapter, *, n_samples: int, decoding: Decoding,
          today: dt.date | None = None) -> list[str]:
    """Problems with running `adapter` at these settings; [] when the model exists and a
    tiny request with the run's parameters comes back with an answer from that model."""
    today = today or dt.date.today()
    # One retry at most: a probe must not sit through a rate limit's backoff schedule.
    policy = RetryPolicy(max_retries=1, backoff_s=adapter.policy.backoff_s,
                         max_backoff_s=adapter.policy.max_backoff_s,
                         max_wait_s=adapter.policy.max_wait_s)
    budget = RequestBudget(None, adapter.name)

    def call(fn):
        return call_with_retries(fn, adapter._safe_classify, policy=policy, budget=budget,
                                 rng=random.Random(0))

    where = f"at {adapter.identity()['base_url_host']}"
    try:
        info = call(adapter._model_info)
    except QuotaExhausted as e:
        return [f"looking up the model: {e}"]
    missing = None
    if isinstance(info, ApiFailure):
        if info.status != 404:
            return [f"model id {adapter.model_id!r} could not be looked up {where}: "
                    f"{info.reason}"]
        # Not found -- or a server without the lookup route (an OpenAI-compatible vLLM
        # server, say): the tiny request below decides.
        missing, info = info, {}
    shutdown = info.get("shutdown_date")
    if shutdown:
        if str(shutdown) <= today.isoformat():
            return [f"model id {adapter.model_id!r}: the service gives its shutdown date as "
                    f"{shutdown}, which has passed"]
        log.warning("%s: the service announces the shutdown of %s on %s", adapter.name,
                    adapter.model_id, shutdown)
    request = probe_request(adapter, n_samples, decoding)
    try:
        result = call(lambda: adapter._candidates(probe_clip(), PROBE_TEXT, request))
    except QuotaExhausted as e:
        return [f"a request with the run's parameters: {e}"]
    if isinstance(result, ApiFailure) and missing is not None and result.status == 404:
        return [f"model id {adapter.model_id!r} does not exist {where} ({missing.reason}); "
                "a retired model? See the registry's hosted entries for the current ids"]
    if isinstance(result, ApiFailure):
        hint = next((h for key, h in HINTS if key in result.message.lower()), None)
        return [f"a request with the run's parameters ({describe(adapter, request)}) failed: "
                f"{result.reason}" + (f"; {hint}" if hint else "")]
    problems = []
    for c in result:
        if failure_kind(c.error) == TRUNCATED:
            problems.append(f"a request with the run's parameters ({describe(adapter, request)}) "
                            f"gave no complete answer: {c.error}; give the thinking more "
                            "headroom (`thinking_headroom` / `thinking_budget`) or raise "
                            "max_new_tokens")
            break
        if c.error:
            problems.append(f"a request with the run's parameters ({describe(adapter, request)}) "
                            f"gave no answer: {c.error}")
            break
    served = {c.served_model for c in result} - {None}
    # What the service says, whatever the registry's data file (retirements.yaml) claims:
    # the sources of dates and replacements disagree, the service's answer is the fact.
    log.info("%s: the service answers: model lookup %s, shutdown date %s, served by %s",
             adapter.name, info.get("id") or "unavailable", shutdown or "none announced",
             ", ".join(sorted(served)) or "not reported")
    other = sorted(m for m in served if not served_matches(adapter.model_id, m))
    if other:
        claims = [f"{name} is reported routed to {m} ({src})" for name, m, src in _routing_claims()
                  if m in other]
        problems.append(f"requested {adapter.model_id!r} but the service answered with "
                        f"{', '.join(other)}: the rows would be another model's under this name"
                        + (f" (retirements.yaml: {'; '.join(claims)})" if claims else ""))
    return problems


def _routing_claims() -> list[tuple[str, str, str]]:
    """(retired name, model it is reported routed to, source) from the registry."""
    from ambiemo.alm.registry import MODELS
    return [(spec.name, m, src) for spec in MODELS.values() if spec.retired is not None
            for m, _, src in spec.retired.reported_routing]
