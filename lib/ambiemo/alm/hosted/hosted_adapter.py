"""What the hosted adapters share: keys from the environment, retries, the request budget,
candidates split over requests, failures kept as failures, and the 1-10 verifier.

Jia et al. (2026) evaluate hosted ALMs (GPT-4o audio, Gemini) beside open ones and use
GPT-4o as the verifier of ALM-v / W-ALM-v. A hosted model cannot be given a forward pass
over class names (no `label_scores`) or be beam-searched, and it cannot be constrained to
class names; its log-likelihoods exist only where the API returns token log-probabilities.
Each subclass implements one request (`_candidates`) and how its SDK reports errors
(`_classify`); everything else is here.

Requests go out `concurrency` at a time (threads; the SDK clients are thread-safe): at N
samples per clip over thousands of clips, one request at a time would take days. Results
come back in request order and every request carries its own seed, so the samples do not
depend on the concurrency; rate limits are what the retries are for.
"""
from __future__ import annotations

import json
import logging
import os
import random
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from ambiemo.alm.base import ALMAdapter, Clip, Decoding, Generation, Verdict
from ambiemo.alm.hosted.retry import (MAX_WAIT_S, ApiFailure, RequestBudget, RetryPolicy,
                                      call_with_retries)
from ambiemo.alm.registry import RetiredModelError, retired_checkpoint
from ambiemo.parse import parse_score

log = logging.getLogger("ambiemo.alm.hosted")

VERIFY_MAX_TOKENS = 16   # room for "Score: 7" and a little preamble


class MalformedResponse(Exception):
    """A 200 whose body is JSON but not the shape the API documents (no choices, a choice
    without a message, ...): raised by `_candidates`, retried like a server error."""


def malformed(error: Exception) -> ApiFailure | None:
    """An unparseable 200 (cut-off or non-JSON body, a body of the wrong shape) as a
    transient failure: a proxy or an overloaded server sends these, and the same request
    usually succeeds again. Status 200 in the reason marks it (alm/failure_kinds.py)."""
    if isinstance(error, (json.JSONDecodeError, MalformedResponse)):
        what = "not JSON" if isinstance(error, json.JSONDecodeError) else "of the wrong shape"
        return ApiFailure(200, f"malformed response body ({what}: {error})", True)
    return None


@dataclass(frozen=True)
class Candidate:
    """One returned response; `logprob`/`n_tokens` None where the API gave none;
    `served_model` the model the service says answered (`response.model`, Gemini's
    `model_version`)."""
    text: str
    logprob: float | None
    n_tokens: int | None
    error: str = ""
    served_model: str | None = None


@dataclass(frozen=True)
class Request:
    """The sampling settings of one request (temperature 0 is greedy)."""
    count: int
    temperature: float
    top_p: float | None
    top_k: int | None
    max_tokens: int
    seed: int | None


def api_key_from_env(names: Sequence[str], model: str) -> tuple[str, str]:
    """(variable, key): the first of the environment variables `names` set and non-empty."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    raise KeyError(f"model {model!r}: no API key; set the environment variable "
                   f"{' or '.join(names)}")


CHECKPOINT_PREFIXES = ("openai", "gemini", "tiny")


def model_id(checkpoint: str, prefix: str) -> str:
    """'openai:gpt-4o-audio-preview' -> 'gpt-4o-audio-preview'. A bare id is accepted (an
    OpenAI-compatible server's model may contain ':'), one meant for another API is not."""
    checkpoint = str(checkpoint)
    mid = checkpoint.removeprefix(prefix + ":")
    other = [p for p in CHECKPOINT_PREFIXES if p != prefix and mid.startswith(p + ":")]
    if not mid or other:
        raise ValueError(f"checkpoint {checkpoint!r}: expected '{prefix}:<model id>'")
    return mid


class HostedAdapter(ALMAdapter):
    api: str = ""                        # "openai-chat" | "gemini": enters identity()
    prefix: str = ""                     # checkpoint prefix: "openai" | "gemini"
    max_candidates_per_request: int = 1  # subclasses: what one request may ask for

    def __init__(self, checkpoint: str, *, name: str, revision: str | None, key_envs: Sequence[str],
                 base_url: str, max_requests: int | None, max_retries: int,
                 backoff_s: float, max_backoff_s: float, timeout_s: float, logprobs: bool,
                 max_wait_s: float = MAX_WAIT_S,
                 concurrency: int = 4, device: str | None = None, dtype: str | None = None):
        # device/dtype are what the pipeline passes to every model; a hosted model runs on
        # the provider's hardware, so they have no meaning here and are ignored.
        del device, dtype
        if revision is not None:
            raise ValueError(f"model {name!r}: hosted APIs have no revision; name a dated "
                             f"model id as the checkpoint instead (got revision={revision!r})")
        if timeout_s <= 0:
            raise ValueError(f"model {name!r}: timeout_s must be > 0, got {timeout_s}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"model {name!r}: concurrency must be an integer >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.name = name
        self.checkpoint = str(checkpoint)
        self.model_id = model_id(checkpoint, self.prefix)
        retired = retired_checkpoint(self.model_id)
        if retired is not None:
            # The registry name may be a current model's with a `checkpoint:` naming a
            # retired id: what the requests would ask for decides.
            raise RetiredModelError(f"model {name!r}: checkpoint {self.checkpoint!r} is a "
                                    f"retired model: {retired[1].message(retired[0])}")
        self.base_url = base_url
        self.timeout_s = float(timeout_s)
        self.logprobs = bool(logprobs)
        self.key_env, self._key = api_key_from_env(key_envs, name)   # the key: never logged
        self.policy = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s,
                                  max_backoff_s=max(max_backoff_s, backoff_s),
                                  max_wait_s=max_wait_s)
        self.budget = RequestBudget(max_requests, name)
        self._rng = random.Random(0)  # jitter only; seeded so a test run is repeatable
        caps = {"sample", "greedy", "verify"} | ({"logprob"} if self.logprobs else set())
        self.capabilities = frozenset(caps)
        self._warned_constrained = False

    # --- what a subclass provides -------------------------------------------------------

    @abstractmethod
    def _candidates(self, clip: Clip, text: str, request: Request) -> list[Candidate]:
        """One API call: `request.count` responses to (audio, text). Raises the SDK's error."""

    @abstractmethod
    def _classify(self, error: Exception) -> ApiFailure | None:
        """The SDK's exception as an ApiFailure, or None when it is not an API error."""

    def _identity_extra(self) -> dict:
        return {}

    # --- the adapter interface ----------------------------------------------------------

    def identity(self) -> dict:
        # The host, not the URL: a path or port change on one server changes no sample, but
        # a vLLM server's model is not OpenAI's, so the host enters every run key.
        return {"model": self.name, "checkpoint": self.model_id, "api": self.api,
                "base_url_host": urlparse(self.base_url).netloc, "logprobs": self.logprobs,
                # Hosted APIs cannot restrict tokens to class names: Decoding.constrained is
                # ignored for these models, and the run says so.
                "constrained_decoding": "unsupported", **self._identity_extra()}

    def build_prompt(self, user_text: str) -> str:
        """The instruction as sent: the provider applies its own chat template server-side."""
        return user_text

    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int) -> list[Generation]:
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one response per clip; n must be 1")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if decoding.constrained and not self._warned_constrained:
            log.warning("%s: hosted APIs cannot constrain decoding to class names; "
                        "Decoding.constrained is ignored", self.name)
            self._warned_constrained = True
        tasks = []
        for clip in clips:
            for chunk, start in enumerate(range(0, n, self.max_candidates_per_request)):
                count = min(self.max_candidates_per_request, n - start)
                # A different seed per request of one clip, or the requests would repeat.
                request = Request(count=count, temperature=0.0 if greedy else decoding.temperature,
                                  top_p=None if greedy else decoding.top_p,
                                  top_k=None if greedy or not decoding.top_k else decoding.top_k,
                                  max_tokens=decoding.max_new_tokens,
                                  seed=(seed + chunk) & 0x7FFFFFFF)
                tasks.append((clip, user_text, request))
        results = iter(self._call_all(tasks))
        out = []
        for clip in clips:
            cands = [c for _ in range(0, n, self.max_candidates_per_request) for c in next(results)]
            out += [Generation(clip.utt_id, i, c.text, c.logprob, c.n_tokens, c.error,
                               c.served_model) for i, c in enumerate(cands)]
        return out

    def verify(self, clips: Sequence[Clip], candidates: Sequence[Sequence[tuple[int, str]]],
               verifier_text: str) -> list[Verdict]:
        """One greedy request per (clip, candidate) asking for a 1-10 score; score = s/10."""
        if "{answer}" not in verifier_text:
            raise ValueError("the verifier prompt has no {answer} slot")
        if len(candidates) != len(clips):
            raise ValueError(f"{len(clips)} clips but {len(candidates)} candidate lists")
        request = Request(count=1, temperature=0.0, top_p=None, top_k=None,
                          max_tokens=VERIFY_MAX_TOKENS, seed=0)
        judged = [(clip, idx, answer) for clip, cands in zip(clips, candidates)
                  for idx, answer in cands]
        replies = self._call_all([(clip, verifier_text.replace("{answer}", answer), request)
                                  for clip, _, answer in judged])
        out = []
        for (clip, idx, _), (c,) in zip(judged, replies):
            if c.error:
                out.append(Verdict(clip.utt_id, idx, None, c.text, c.error, c.served_model))
                continue
            score, why = parse_score(c.text)
            out.append(Verdict(clip.utt_id, idx, score, c.text, why, c.served_model))
        return out

    def label_scores(self, clips, user_text, classes) -> list[tuple[str, np.ndarray]]:
        raise NotImplementedError(
            f"{self.name} is a hosted API model: it gives no probabilities over class names "
            "(no forward pass), so label_logits is unavailable for it")

    def beam(self, clips, user_text, *, beams, decoding, classes) -> list[Generation]:
        raise NotImplementedError(f"{self.name} is a hosted API model: the API has no beam search")

    # --- requests, retried --------------------------------------------------------------

    def _call_all(self, tasks: Sequence[tuple[Clip, str, Request]]) -> list[list[Candidate]]:
        """`_call` for each (clip, text, request), `concurrency` at a time, in task order.
        BudgetExhausted (or a bug) from any request propagates once the running ones end."""
        if self.concurrency == 1 or len(tasks) <= 1:
            return [self._call(*t) for t in tasks]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(tasks))) as pool:
            futures = [pool.submit(self._call, *t) for t in tasks]
            try:
                return [f.result() for f in futures]
            finally:
                for f in futures:   # after a failure, requests not yet sent are not sent
                    f.cancel()

    def _call(self, clip: Clip, text: str, request: Request) -> list[Candidate]:
        """`request.count` candidates; failures (after retries) fill every slot, so the
        runner always gets n rows per clip and never mistakes a missing one for a gap."""
        result = call_with_retries(lambda: self._candidates(clip, text, request),
                                   self._safe_classify, policy=self.policy, budget=self.budget,
                                   rng=self._rng)
        if isinstance(result, ApiFailure):
            return [Candidate("", None, None, result.reason)] * request.count
        if len(result) < request.count:
            missing = f"api: {len(result)} of {request.count} candidates returned"
            result = result + [Candidate("", None, None, missing)] * (request.count - len(result))
        return result[:request.count]

    def _safe_classify(self, error: Exception) -> ApiFailure | None:
        f = malformed(error) or self._classify(error)
        if f is None:
            return None
        # Keys never enter logs, errors or the store, even when a server echoes them.
        msg = " ".join(f.message.replace(self._key, "[redacted]").split())[:300]
        return ApiFailure(f.status, msg, f.retryable, f.retry_after, f.quota)
