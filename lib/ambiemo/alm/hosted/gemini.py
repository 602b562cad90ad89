"""Gemini through the official `google-genai` SDK.

Jia et al. (2026) include Gemini among the hosted ALMs. The clip goes as inline WAV bytes
(`Part.from_bytes`, mime type audio/wav) followed by the instruction; N candidates come from
`candidate_count`, split over several requests where the model caps it
(`max_candidates_per_request`). Log-probabilities are requested only with `logprobs=True`
(`response_logprobs`; not every Gemini model offers them) and summed from
`logprobs_result.chosen_candidates`; without them logprob is None and the strategies that
need it are unavailable for the model.

Gemini 2.5 and 3.x models think before answering and count the thinking against
`max_output_tokens`; with only the answer's 16 tokens (plus 2.5 Pro's 128-token minimum
budget) they are reported to return empty text with finish reason MAX_TOKENS. So the
thinking gets its own allowance on top of the answer's `max_new_tokens`: `thinking_budget`
(2.5: a token count) or `thinking_level` (3.x, which replaces the budget; sending both is a
400) with `thinking_headroom` tokens for it. An answer cut off at MAX_TOKENS, empty or not,
is a `truncated` failure, never an answer. Gemini 3.x refuses `candidate_count > 1` ("Multiple
candidates is not enabled for this model"): those models are registered with
`max_candidates_per_request: 1`, so N samples are N requests with the usual per-request seeds.

Each candidate records the response's `model_version` (the model that answered: a deprecated
id routed to another model shows here). A 429 carries its wait in the body
(`google.rpc.RetryInfo.retryDelay`), which the retries honour; a 429 that no wait cures --
a per-day quota, a spend cap or project limit (`google.rpc.ErrorInfo` reason,
`google.rpc.QuotaFailure` quota id; `retry.quota_stop`) -- stops the job (`QuotaExhausted`).
"""
from __future__ import annotations

import os

from ambiemo.alm.base import Clip
from ambiemo.alm.hosted.audio_payload import wav_bytes
from ambiemo.alm.hosted.hosted_adapter import (Candidate, HostedAdapter, MalformedResponse,
                                               Request)
from ambiemo.alm.failure_kinds import truncated_reason
from ambiemo.alm.hosted.retry import (MAX_WAIT_S, ApiFailure, is_retryable_status, quota_stop,
                                      retry_after_s, retry_info_delay_s)
from ambiemo.alm.registry import register_adapter

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")  # the SDK's own names, in its order
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"


@register_adapter()
class GeminiAdapter(HostedAdapter):
    api = "gemini"
    prefix = "gemini"

    def __init__(self, checkpoint: str, *, name: str, revision: str | None = None,
                 base_url: str | None = None, api_key_env: str | None = None,
                 max_requests: int | None = None, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, max_wait_s: float = MAX_WAIT_S,
                 timeout_s: float = 120.0, logprobs: bool = False,
                 max_candidates_per_request: int = 8, thinking_budget: int | None = None,
                 thinking_level: str | None = None, thinking_headroom: int | None = None,
                 concurrency: int = 4, device: str | None = None, dtype: str | None = None):
        from google import genai
        from google.genai import types

        if max_candidates_per_request < 1:
            raise ValueError(f"model {name!r}: max_candidates_per_request must be >= 1")
        if thinking_budget is not None and thinking_budget < 0:
            raise ValueError(f"model {name!r}: thinking_budget must be >= 0 or None")
        if thinking_budget is not None and thinking_level is not None:
            raise ValueError(f"model {name!r}: give thinking_budget (Gemini 2.5) or "
                             "thinking_level (Gemini 3.x), not both: the API refuses both")
        if thinking_level is not None and thinking_level.upper() not in types.ThinkingLevel.__members__:
            raise ValueError(f"model {name!r}: thinking_level {thinking_level!r} is not one of "
                             f"{sorted(m.lower() for m in types.ThinkingLevel.__members__)}")
        if thinking_headroom is not None and thinking_headroom < 0:
            raise ValueError(f"model {name!r}: thinking_headroom must be >= 0 or None")
        # Resolved here, as the SDK would (GOOGLE_GEMINI_BASE_URL, then Google's), so that
        # identity() names the server the requests really go to.
        base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL
        super().__init__(checkpoint, name=name, revision=revision,
                         key_envs=[api_key_env] if api_key_env else list(KEY_ENVS),
                         base_url=base_url, max_requests=max_requests, max_retries=max_retries,
                         backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                         max_wait_s=max_wait_s, timeout_s=timeout_s,
                         logprobs=logprobs, concurrency=concurrency, device=device, dtype=dtype)
        self.max_candidates_per_request = max_candidates_per_request
        self.thinking_budget = thinking_budget
        self.thinking_level = thinking_level.lower() if thinking_level else None
        # Tokens added to max_output_tokens for the thinking: the budget itself where it is a
        # number, else the headroom given for a thinking level.
        self.thinking_tokens = (thinking_budget if thinking_budget is not None
                                else thinking_headroom or 0)
        self._types = types
        # retry_options=None: the SDK makes one attempt, our loop retries and counts.
        http = types.HttpOptions(base_url=base_url, timeout=int(self.timeout_s * 1000),
                                 retry_options=None)
        self.client = genai.Client(vertexai=False, api_key=self._key, http_options=http)

    def _candidates(self, clip: Clip, text: str, request: Request) -> list[Candidate]:
        types = self._types
        thinking = None
        if self.thinking_budget is not None:
            thinking = types.ThinkingConfig(thinking_budget=self.thinking_budget)
        elif self.thinking_level is not None:
            thinking = types.ThinkingConfig(thinking_level=self.thinking_level.upper())
        config = types.GenerateContentConfig(
            temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
            # Left out at 1 (the default): a model that refuses several candidates is never
            # sent the parameter.
            candidate_count=request.count if request.count > 1 else None,
            max_output_tokens=request.max_tokens + self.thinking_tokens,
            seed=request.seed, response_logprobs=True if self.logprobs else None,
            thinking_config=thinking)
        contents = [types.Content(role="user", parts=[
            types.Part.from_bytes(data=wav_bytes(clip.audio), mime_type="audio/wav"),
            types.Part.from_text(text=text)])]
        try:
            resp = self.client.models.generate_content(model=self.model_id, contents=contents,
                                                       config=config)
        except (AttributeError, TypeError, KeyError) as e:
            # The SDK reads the body into its types inside this call: a 200 of the wrong
            # shape fails here (the request's own arguments were checked when `config` was
            # built above, and an API error is errors.APIError, neither of these).
            raise MalformedResponse(f"{type(e).__name__}: {e}") from e
        try:
            return self._read(resp, request)
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            raise MalformedResponse(f"{type(e).__name__}: {e}") from e

    def _read(self, resp, request: Request) -> list[Candidate]:
        """The candidates of a generateContent response (raises on a body of the wrong shape)."""
        cands = resp.candidates or []
        served = resp.model_version or None
        if not cands:
            feedback = resp.prompt_feedback
            why = f"prompt blocked ({feedback.block_reason})" if feedback and feedback.block_reason \
                else "no candidates"
            return [Candidate("", None, None, f"api: {why}", served)] * request.count
        out = []
        # The API leaves out index 0 (a protobuf default), so a missing index is 0.
        for c in sorted(cands, key=lambda c: c.index or 0):
            parts = (c.content.parts or []) if c.content else []
            answer = "".join(p.text for p in parts if p.text and not p.thought).strip()
            finish = getattr(c.finish_reason, "value", c.finish_reason)
            if finish == "MAX_TOKENS":
                out.append(Candidate("", None, None, truncated_reason(finish, answer), served))
                continue
            if not answer:
                out.append(Candidate("", None, None,
                                     f"api: empty candidate (finish_reason {finish})", served))
                continue
            logprob = n_tokens = None
            lp = c.logprobs_result
            if lp and lp.chosen_candidates:
                logprob = float(sum(t.log_probability or 0.0 for t in lp.chosen_candidates))
                n_tokens = len(lp.chosen_candidates)
            out.append(Candidate(answer, logprob, n_tokens, "", served))
        return out

    def _model_info(self) -> dict:
        """What `models.get` says about the model (genai has no shutdown date to give)."""
        m = self.client.models.get(model=self.model_id)
        return {"id": (m.name or "").removeprefix("models/"), "shutdown_date": None}

    def _classify(self, error: Exception) -> ApiFailure | None:
        import httpx
        import httpx2
        from google.genai import errors

        if isinstance(error, errors.APIError):
            headers = getattr(getattr(error, "response", None), "headers", None)
            body = error.details
            wait = retry_after_s(headers)
            wait = retry_info_delay_s(body) if wait is None else wait
            quota = quota_stop(body) if error.code == 429 else None
            return ApiFailure(error.code, error.message or str(error),
                              is_retryable_status(error.code), wait, quota)
        if isinstance(error, (httpx.TransportError, httpx2.TransportError)):
            return ApiFailure(None, f"{type(error).__name__}: {error}", True)
        return None

    def _identity_extra(self) -> dict:
        extra = {"max_candidates_per_request": self.max_candidates_per_request,
                 "thinking_budget": self.thinking_budget}
        # Added only when set, so the run keys of earlier runs do not change.
        if self.thinking_level is not None:
            extra.update(thinking_level=self.thinking_level, thinking_headroom=self.thinking_tokens)
        return extra
