"""A local HTTP server on 127.0.0.1 that speaks enough of two hosted-model protocols for the
hosted adapters' tests: OpenAI `POST /v1/chat/completions` and Gemini
`POST /<version>/models/<model>:generateContent` (the path google-genai builds from
`HttpOptions(base_url=...)`).

It serves a scripted sequence of errors first (`fail(429, 500)`, or `fail_always(500)`),
then answers built by `reply(api, body, count) -> list[str]`, and records every request
(path, headers, JSON body) and every answer it sent, so a test can check what arrived.
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

    def fail(self, *statuses: int) -> None:
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
                    return self._send(rec, status, _error(api, status, key))
                if api == "openai":
                    return self._send(rec, 200, server._openai(body, rec))
                return self._send(rec, 200, server._gemini(body, rec, GEMINI_PATH.match(path)))

            def _send(self, rec, status, payload):
                rec.status = status
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _openai(self, body: dict, rec: Recorded) -> dict:
        count = int(body.get("n") or 1)
        texts = self.reply("openai", body, count)
        want = bool(body.get("logprobs")) and self.logprobs
        choices = []
        for i, text in enumerate(texts):
            toks, lps = token_logprobs(text)
            rec.answers.append((text, lps if want else None))
            choices.append({
                "index": i, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": [{"token": t, "logprob": lp, "bytes": None,
                                          "top_logprobs": []} for t, lp in zip(toks, lps)]}
                if want else None})
        n_tok = sum(len(token_logprobs(t)[0]) for t in texts)
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": 0, "model": body.get("model"), "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": n_tok,
                          "total_tokens": 10 + n_tok}}

    def _gemini(self, body: dict, rec: Recorded, match) -> dict:
        cfg = body.get("generationConfig", {})
        count = int(cfg.get("candidateCount") or 1)
        texts = self.reply("gemini", body, count)
        want = bool(cfg.get("responseLogprobs")) and self.logprobs
        cands = []
        for i, text in enumerate(texts):
            toks, lps = token_logprobs(text)
            rec.answers.append((text, lps if want else None))
            cand = {"content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP"}
            if i:  # like the real API, index 0 is left out
                cand["index"] = i
            if want:
                cand["logprobsResult"] = {"chosenCandidates": [
                    {"token": t, "logProbability": lp} for t, lp in zip(toks, lps)]}
            cands.append(cand)
        return {"candidates": cands, "modelVersion": match.group(2),
                "usageMetadata": {"promptTokenCount": 10}}


def _error(api: str, status: int, key: str) -> dict:
    # A 401 echoes the key it was given, as real servers partly do: the adapter must not
    # let it through into errors, logs or the store.
    message = f"Incorrect API key provided: {key}" if status == 401 else f"scripted failure {status}"
    if api == "gemini":
        return {"error": {"code": status, "message": message,
                          "status": GEMINI_STATUS.get(status, "UNKNOWN")}}
    return {"error": {"message": message, "type": "server_error", "code": None}}


def request_text(api: str, body: dict) -> str:
    """The text part of a recorded request (the instruction or the verifier prompt)."""
    if api == "openai":
        parts = body["messages"][0]["content"]
        return "".join(p["text"] for p in parts if p.get("type") == "text")
    parts = body["contents"][0]["parts"]
    return "".join(p["text"] for p in parts if "text" in p)
