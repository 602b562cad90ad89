"""A local HTTP server on 127.0.0.1 that speaks enough of two hosted-model protocols for the
hosted adapters' tests: OpenAI `POST /v1/chat/completions` and Gemini
`POST /<version>/models/<model>:generateContent` (the path google-genai builds from
`HttpOptions(base_url=...)`).

It serves a scripted sequence of errors first (`fail(429, 500)`, or `fail_always(500)`;
the status "quota_day" is a per-day quota 429, "spend_cap" a Gemini spend-cap 429,
"malformed" a 200 whose body is cut-off JSON, "retry_after" a 429 with the headers in
`retry_after_headers`), then answers built by
`reply(api, body, count) -> list[str]`, and records every request (path, headers, JSON body)
and every answer it sent, so a test can check what arrived. `GET /v1/models/<id>` (OpenAI
`models.retrieve`) and `GET /<version>/models/<id>` (genai `models.get`) describe a model.

It reproduces what the providers document, or are reported to do, per model id:
- `retired`: 404 for every request naming the model (a shut-down model);
- `refuse_logprobs`: 400 when log-probabilities are asked for (OpenAI's audio models,
  Gemini 2.5 Pro);
- `single_candidate`: 400 "Multiple candidates is not enabled for this model" for n > 1
  (Gemini 3.x);
- `thinking_tokens`: the model thinks this many tokens out of the output limit first; what
  is left is too little -> the answer is cut (empty, or partial) with MAX_TOKENS / length;
- `served`: the model the response says answered (a deprecated id routed elsewhere);
- `shutdown_dates`: the `shutdown_date` models.retrieve reports (`model_lookup=False`: a
  server without that route);
- a 429 carries `google.rpc.RetryInfo` with `retry_delay` in its Gemini body (the real wait
  is ~36-38 s; tests set a short one).
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GEMINI_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$")
GEMINI_MODEL = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+)$")
OPENAI_MODEL = re.compile(r"^/v1/models/(.+)$")
QUOTA_DAY = "quota_day"
MALFORMED = "malformed"          # a 200 whose body is not JSON (a proxy's truncated body)
WRONG_SHAPE = "wrong_shape"      # a 200 whose JSON is not the API's response shape
SPEND_CAP = "spend_cap"          # Gemini: a 429 for a project's spend cap (no retry helps)
RETRY_AFTER = "retry_after"      # a 429 with the Retry-After headers of `retry_after_headers`
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE"}


@dataclass
class Recorded:
    api: str            # "openai" | "gemini" | "unknown"
    path: str
    headers: dict
    body: dict
    time: float
    status: int = 200
    answers: list = field(default_factory=list)   # [(text, [token logprobs] or None)]


def token_logprobs(text: str) -> tuple[list[str], list[float]]:
    """The server's deterministic tokenisation of an answer and a log-probability per token:
    chunks of 3 characters, the i-th at -0.1 * (i + 1)."""
    tokens = [text[i:i + 3] for i in range(0, len(text), 3)] or [""]
    return tokens, [-0.1 * (i + 1) for i in range(len(tokens))]


def default_reply(api: str, body: dict, count: int) -> list[str]:
    return ["happy"] * count


class ProtocolServer:
    def __init__(self, reply=default_reply, *, logprobs: bool = True):
        self.reply = reply
        self.logprobs = logprobs            # answer logprobs when the request asks for them
        self.retired: set[str] = set()
        self.refuse_logprobs: set[str] = set()
        self.single_candidate: set[str] = set()
        self.thinking_tokens: dict[str, int] = {}
        self.served: dict[str, str] = {}
        self.shutdown_dates: dict[str, str] = {}
        self.retry_delay = "0.2s"
        self.retry_after_headers: dict[str, str] = {}   # sent with a RETRY_AFTER 429
        self.model_lookup = True            # False: no GET models route (some vLLM servers)
        self.requests: list[Recorded] = []
        self._script: deque[int] = deque()
        self._always: int | None = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail(self, *statuses: int | str) -> None:
        """The next requests get these statuses, one each, in order."""
        self._script.extend(statuses)

    def fail_always(self, status: int | None) -> None:
        self._always = status

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _refusal(self, api: str, model: str, body: dict) -> tuple[int, str] | None:
        """The documented refusal of this request by this model, if any."""
        if model in self.retired:
            return 404, (f"The model `{model}` does not exist or you do not have access to it."
                         if api == "openai" else
                         f"models/{model} is not found for API version v1beta, or is not "
                         "supported for generateContent.")
        cfg = body.get("generationConfig", {}) if api == "gemini" else body
        wants_lp = cfg.get("logprobs") if api == "openai" else cfg.get("responseLogprobs")
        if model in self.refuse_logprobs and wants_lp:
            return 400, ("This model does not support the 'logprobs' parameter."
                         if api == "openai" else "Logprobs is not enabled for " + model)
        count = int((cfg.get("n") if api == "openai" else cfg.get("candidateCount")) or 1)
        if model in self.single_candidate and count > 1:
            return 400, "Multiple candidates is not enabled for this model"
        return None

    def _cut(self, model: str, text: str, limit) -> tuple[str, bool]:
        """The answer as the output limit lets it out: (text, cut off?)."""
        if limit is None:
            return text, False
        toks = token_logprobs(text)[0]
        room = int(limit) - self.thinking_tokens.get(model, 0)
        if room >= len(toks):
            return text, False
        return "".join(toks[:max(room, 0)]), True

    def _next_failure(self) -> int | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            return self._always

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                m_openai, m_gemini = OPENAI_MODEL.match(path), GEMINI_MODEL.match(path)
                if m_gemini and self.headers.get("x-goog-api-key"):
                    m_openai = None     # genai's /v1/models/<id> looks like OpenAI's route
                api = "openai" if m_openai else "gemini" if m_gemini else "unknown"
                rec = Recorded(api, path, {k.lower(): v for k, v in self.headers.items()}, {},
                               time.monotonic())
                with server._lock:
                    server.requests.append(rec)
                model = m_openai.group(1) if m_openai else m_gemini.group(2) if m_gemini else ""
                if api == "unknown" or model in server.retired or not server.model_lookup:
                    return self._send(rec, 404, _error(api, 404, "", f"model {model} not found"))
                if api == "openai":
                    return self._send(rec, 200, {"id": model, "object": "model", "created": 0,
                                                 "owned_by": "system",
                                                 "shutdown_date": server.shutdown_dates.get(model)})
                return self._send(rec, 200, {"name": f"models/{model}", "displayName": model,
                                             "supportedGenerationMethods": ["generateContent"]})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                path = self.path.split("?")[0]
                api = ("openai" if path == "/v1/chat/completions" else
                       "gemini" if GEMINI_PATH.match(path) else "unknown")
                rec = Recorded(api, path, {k.lower(): v for k, v in self.headers.items()}, body,
                               time.monotonic())
                with server._lock:
                    server.requests.append(rec)
                if api == "unknown":
                    return self._send(rec, 404, {"error": {"message": f"no route {path}"}})
                status = server._next_failure()
                if status is not None:
                    key = (self.headers.get("x-goog-api-key")
                           or self.headers.get("Authorization", "").removeprefix("Bearer "))
                    if status == QUOTA_DAY:
                        return self._send(rec, 429, _quota_day(api))
                    if status == SPEND_CAP:
                        return self._send(rec, 429, _spend_cap(api))
                    if status == MALFORMED:
                        return self._send(rec, 200, None, raw=b'{"id": "chatcmpl-1", "choi')
                    if status == WRONG_SHAPE:
                        return self._send(rec, 200, {"choices": 7} if api == "openai"
                                          else {"candidates": 7})
                    if status == RETRY_AFTER:
                        return self._send(rec, 429, _error(api, 429, key),
                                          headers=server.retry_after_headers)
                    return self._send(rec, status, _error(api, status, key,
                                                          retry_delay=server.retry_delay))
                model = body.get("model") if api == "openai" else GEMINI_PATH.match(path).group(2)
                refusal = server._refusal(api, model, body)
                if refusal is not None:
                    return self._send(rec, refusal[0], _error(api, refusal[0], "", refusal[1]))
                if api == "openai":
                    return self._send(rec, 200, server._openai(body, rec))
                return self._send(rec, 200, server._gemini(body, rec, GEMINI_PATH.match(path)))

            def _send(self, rec, status, payload, *, raw: bytes | None = None,
                      headers: dict | None = None):
                rec.status = status
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _openai(self, body: dict, rec: Recorded) -> dict:
        count = int(body.get("n") or 1)
        texts = self.reply("openai", body, count)
        want = bool(body.get("logprobs")) and self.logprobs
        model = body.get("model")
        choices = []
        for i, text in enumerate(texts):
            text, cut = self._cut(model, text, body.get("max_completion_tokens"))
            toks, lps = token_logprobs(text)
            rec.answers.append((text, lps if want else None))
            choices.append({
                "index": i, "finish_reason": "length" if cut else "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": [{"token": t, "logprob": lp, "bytes": None,
                                          "top_logprobs": []} for t, lp in zip(toks, lps)]}
                if want else None})
        n_tok = sum(len(token_logprobs(t)[0]) for t in texts)
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": 0, "model": self.served.get(model, model), "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": n_tok,
                          "total_tokens": 10 + n_tok}}

    def _gemini(self, body: dict, rec: Recorded, match) -> dict:
        cfg = body.get("generationConfig", {})
        count = int(cfg.get("candidateCount") or 1)
        texts = self.reply("gemini", body, count)
        want = bool(cfg.get("responseLogprobs")) and self.logprobs
        model = match.group(2)
        cands = []
        for i, text in enumerate(texts):
            text, cut = self._cut(model, text, cfg.get("maxOutputTokens"))
            toks, lps = token_logprobs(text)
            rec.answers.append((text, lps if want else None))
            # A thinking model cut off before answering sends a candidate without parts.
            cand = {"content": {"role": "model", "parts": [{"text": text}] if text else []},
                    "finishReason": "MAX_TOKENS" if cut else "STOP"}
            if i:  # like the real API, index 0 is left out
                cand["index"] = i
            if want:
                cand["logprobsResult"] = {"chosenCandidates": [
                    {"token": t, "logProbability": lp} for t, lp in zip(toks, lps)]}
            cands.append(cand)
        return {"candidates": cands, "modelVersion": self.served.get(model, model),
                "usageMetadata": {"promptTokenCount": 10}}


def _error(api: str, status: int, key: str, message: str | None = None, *,
           retry_delay: str | None = None) -> dict:
    # A 401 echoes the key it was given, as real servers partly do: the adapter must not
    # let it through into errors, logs or the store.
    message = message or (f"Incorrect API key provided: {key}" if status == 401
                          else f"scripted failure {status}")
    if api == "gemini":
        error = {"code": status, "message": message,
                 "status": GEMINI_STATUS.get(status, "NOT_FOUND" if status == 404 else "UNKNOWN")}
        if status == 429 and retry_delay:
            # Gemini's rate limit: the wait is in the body, not in a Retry-After header.
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
                     "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                     "quotaValue": "1000000"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
        return {"error": error}
    return {"error": {"message": message, "type": "invalid_request_error" if status < 500
                      else "server_error", "code": None}}


def _quota_day(api: str) -> dict:
    """A quota that lasts until its reset: Gemini's requests-per-day 429, OpenAI's
    insufficient_quota 429 (as their documentation shows them)."""
    if api == "gemini":
        return {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message":
                          "You exceeded your current quota, please check your plan and billing "
                          "details.", "details": [
                              {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                               "violations": [{
                                   "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                   "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                   "quotaDimensions": {"location": "global", "model": "gemini"},
                                   "quotaValue": "250"}]},
                              {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                               "retryDelay": "0.2s"}]}}
    return {"error": {"message": "You exceeded your current quota, please check your plan and "
                      "billing details.", "type": "insufficient_quota",
                      "code": "insufficient_quota"}}


def _spend_cap(api: str) -> dict:
    """A 429 that no wait cures: the project's spend cap (Gemini's ErrorInfo reason and a
    QuotaFailure without a per-minute or per-day quota). OpenAI has no such 429; its billing
    limit is `insufficient_quota` (QUOTA_DAY)."""
    if api != "gemini":
        return _quota_day(api)
    return {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message":
                      "Your project has exceeded its monthly spending cap. Raise the cap in "
                      "AI Studio to continue.", "details": [
                          {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": "SPEND_CAP_EXCEEDED",
                           "domain": "generativelanguage.googleapis.com",
                           "metadata": {"service": "generativelanguage.googleapis.com"}},
                          {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                           "violations": [{
                               "quotaMetric": "generativelanguage.googleapis.com/project_spend",
                               "quotaId": "ProjectSpendCap", "quotaValue": "100"}]}]}}


def request_text(api: str, body: dict) -> str:
    """The text part of a recorded request (the instruction or the verifier prompt)."""
    if api == "openai":
        parts = body["messages"][0]["content"]
        return "".join(p["text"] for p in parts if p.get("type") == "text")
    parts = body["contents"][0]["parts"]
    return "".join(p["text"] for p in parts if "text" in p)
