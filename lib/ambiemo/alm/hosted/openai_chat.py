"""OpenAI chat completions with audio input: the GPT-4o audio models, or any
OpenAI-compatible server (a vLLM server serving an open ALM) reached through `base_url`.

Jia et al. (2026) query GPT-4o audio N times per clip and use GPT-4o as the verifier. The
clip goes as a base64 WAV `input_audio` part, the answer comes back as text
(`modalities=["text"]`), and N candidates come from one request (`n=`). Token
log-probabilities are requested (`logprobs=True`, option `logprobs`) and summed into
`Generation.logprob`; a server that returns none gives logprob None, and the strategies that
need it are then unavailable for the model, never filled in. `n_tokens` counts the returned
tokens (no end-of-turn token: the API does not report it).

Every candidate records `resp.model`, the model that answered (an alias such as
`gpt-audio-1.5` is answered by a dated snapshot). An answer that stopped at the token limit
(finish_reason "length") is a `truncated` failure, never an answer. OpenAI's audio models are
reported not to accept `logprobs` (the registry turns it off for them; the preflight probe
names the parameter if a server refuses it). A 429 `insufficient_quota` is a billing quota
that no retry restores: the job stops with one message (`QuotaExhausted`).
"""
from __future__ import annotations

import os

from ambiemo.alm.base import Clip
from ambiemo.alm.hosted.audio_payload import wav_base64
from ambiemo.alm.hosted.hosted_adapter import (Candidate, HostedAdapter, MalformedResponse,
                                               Request)
from ambiemo.alm.failure_kinds import truncated_reason
from ambiemo.alm.hosted.retry import (MAX_WAIT_S, ApiFailure, is_retryable_status,
                                      retry_after_s)
from ambiemo.alm.registry import register_adapter

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@register_adapter()
class OpenAIChatAdapter(HostedAdapter):
    api = "openai-chat"
    prefix = "openai"

    def __init__(self, checkpoint: str, *, name: str, revision: str | None = None,
                 base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_requests: int | None = None, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, max_wait_s: float = MAX_WAIT_S,
                 timeout_s: float = 120.0, logprobs: bool = True,
                 max_candidates_per_request: int = 8, concurrency: int = 4,
                 device: str | None = None, dtype: str | None = None):
        from openai import OpenAI

        if max_candidates_per_request < 1:
            raise ValueError(f"model {name!r}: max_candidates_per_request must be >= 1")
        # Resolved here, as the SDK would (OPENAI_BASE_URL, then OpenAI's), so that
        # identity() names the server the requests really go to.
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        super().__init__(checkpoint, name=name, revision=revision, key_envs=[api_key_env],
                         base_url=base_url, max_requests=max_requests, max_retries=max_retries,
                         backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                         max_wait_s=max_wait_s, timeout_s=timeout_s,
                         logprobs=logprobs, concurrency=concurrency, device=device, dtype=dtype)
        self.max_candidates_per_request = max_candidates_per_request
        # max_retries=0: every attempt goes through our retry loop, so the budget counts it.
        self.client = OpenAI(api_key=self._key, base_url=base_url, max_retries=0,
                             timeout=self.timeout_s)

    def _candidates(self, clip: Clip, text: str, request: Request) -> list[Candidate]:
        content = [{"type": "input_audio",
                    "input_audio": {"data": wav_base64(clip.audio), "format": "wav"}},
                   {"type": "text", "text": text}]
        kwargs = dict(model=self.model_id, messages=[{"role": "user", "content": content}],
                      modalities=["text"], n=request.count, temperature=request.temperature,
                      max_completion_tokens=request.max_tokens, seed=request.seed)
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.top_k is not None:
            # Not an OpenAI parameter; OpenAI-compatible servers (vLLM) take it in the body.
            # OpenAI itself refuses it, which is recorded as a failure rather than dropped.
            kwargs["extra_body"] = {"top_k": request.top_k}
        if self.logprobs:
            kwargs["logprobs"] = True
        resp = self.client.chat.completions.create(**kwargs)
        try:
            return self._read(resp)
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            raise MalformedResponse(f"{type(e).__name__}: {e}") from e

    def _read(self, resp) -> list[Candidate]:
        """The candidates of a chat completion (raises on a body of the wrong shape)."""
        completion_tokens = resp.usage.completion_tokens if resp.usage else None
        served = resp.model or None
        out = []
        for choice in sorted(resp.choices, key=lambda c: c.index):
            msg = choice.message
            if choice.finish_reason == "length":
                out.append(Candidate("", None, None, truncated_reason("length", msg.content or ""),
                                     served))
                continue
            if not msg.content:
                why = f"refusal: {msg.refusal}" if getattr(msg, "refusal", None) else "no text"
                out.append(Candidate("", None, None,
                                     f"api: {why} (finish_reason {choice.finish_reason})", served))
                continue
            tokens = choice.logprobs.content if choice.logprobs else None
            if tokens:
                logprob, n_tokens = float(sum(t.logprob for t in tokens)), len(tokens)
            else:
                # usage counts all choices together: per choice only when there is one.
                logprob, n_tokens = None, completion_tokens if len(resp.choices) == 1 else None
            out.append(Candidate(msg.content.strip(), logprob, n_tokens, "", served))
        return out

    def _model_info(self) -> dict:
        """What `models.retrieve` says about the model: its id and announced shutdown date."""
        m = self.client.models.retrieve(self.model_id)
        return {"id": m.id, "shutdown_date": getattr(m, "shutdown_date", None)}

    def _classify(self, error: Exception) -> ApiFailure | None:
        import openai

        if isinstance(error, openai.APIStatusError):
            quota = None
            if error.status_code == 429 and getattr(error, "code", None) == "insufficient_quota":
                # OpenAI's error-code guide: the plan's or billing's quota, not a rate limit;
                # it comes back only when credit is added or the monthly limit renews.
                quota = ("OpenAI insufficient_quota (the account's billing quota); it resets "
                         "when credit is added or the monthly usage limit renews "
                         "(https://platform.openai.com/docs/guides/error-codes)")
            return ApiFailure(error.status_code, error.message,
                              is_retryable_status(error.status_code),
                              retry_after_s(error.response.headers), quota)
        if isinstance(error, openai.APIResponseValidationError):   # a 200 of the wrong shape
            return ApiFailure(200, f"malformed response body: {error.message}", True)
        if isinstance(error, openai.APIConnectionError):  # includes timeouts
            return ApiFailure(None, str(error), True)
        return None

    def _identity_extra(self) -> dict:
        return {"max_candidates_per_request": self.max_candidates_per_request}
