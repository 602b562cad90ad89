"""Hosted ALMs (OpenAI chat completions with audio, Gemini) against a local server that
speaks both protocols: what arrives, retries, failures kept as failures, the request
budget, log-probabilities, candidates, the verifier, and the store cache on a rerun."""
from __future__ import annotations

import base64
import io
import json
import re
import wave

import numpy as np
import pytest
from protocol_server import ProtocolServer, request_text

from ambiemo.alm import MODELS, Clip, Decoding, load_model
from ambiemo.alm import hosted  # noqa: F401  (registers the hosted models)
from ambiemo.alm.hosted import BudgetExhausted
from ambiemo.alm.hosted.hosted_adapter import parse_score
from ambiemo.alm.prompts import load_prompt
from ambiemo.alm.registry import ADAPTERS
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.sampling.store import SampleStore

OPENAI_KEY, GEMINI_KEY = "sk-test-not-a-real-key-1234", "gm-test-not-a-real-key-5678"
MODEL = {"openai": "gpt-audio-1.5", "gemini": "gemini-3.5-flash"}
APIS = ["openai", "gemini"]


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.fixture()
def server():
    with ProtocolServer() as s:
        yield s


def connect(api: str, url: str, **options):
    """A hosted adapter pointed at `url` (never the internet), with test-sized backoff."""
    options = {"backoff_s": 0.01, "max_retries": 3, "timeout_s": 10, **options}
    if api == "gemini":
        # Several candidates per request, as Gemini 2.x took them: the tests of the splitting
        # logic need it; Gemini 3.x's one per request is tested on its own below.
        options.setdefault("max_candidates_per_request", 8)
    return load_model(MODEL[api], base_url=url + ("/v1" if api == "openai" else ""), **options)


def clip(utt="u1", seconds=0.25, seed=0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(utt, (0.3 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32))


def sample(adapter, clips, n=1, greedy=False, **decoding):
    return adapter.generate(clips, "Which emotion?", n=n, greedy=greedy,
                            decoding=Decoding(**decoding), classes=["happy", "sad"], seed=7)


def audio_of(api: str, body: dict) -> bytes:
    parts = body["messages"][0]["content"] if api == "openai" else body["contents"][0]["parts"]
    if api == "openai":
        (part,) = [p for p in parts if p["type"] == "input_audio"]
        assert part["input_audio"]["format"] == "wav"
        return base64.b64decode(part["input_audio"]["data"], validate=True)
    (part,) = [p for p in parts if "inlineData" in p]
    assert part["inlineData"]["mime_type"] == "audio/wav"
    data = part["inlineData"]["data"]       # google-genai sends the URL-safe alphabet
    assert re.fullmatch(r"[A-Za-z0-9_-]+=*", data)
    return base64.urlsafe_b64decode(data)


@pytest.mark.parametrize("api", APIS)
def test_audio_arrives_as_16khz_mono_16bit_wav_of_the_clip(api, server):
    c = clip(seconds=0.37)
    sample(connect(api, server.url), [c])
    (req,) = server.requests
    with wave.open(io.BytesIO(audio_of(api, req.body))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        assert w.getnframes() == len(c.audio)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    np.testing.assert_allclose(pcm / 32767, np.clip(c.audio, -1, 1), atol=1 / 32767)
    assert request_text(api, req.body) == "Which emotion?"
    key_header = req.headers.get("authorization") if api == "openai" else req.headers.get("x-goog-api-key")
    assert key_header == (f"Bearer {OPENAI_KEY}" if api == "openai" else GEMINI_KEY)


@pytest.mark.parametrize("api", APIS)
def test_429_then_500_are_retried_with_growing_backoff(api, server):
    server.fail(429, 500)
    gens = sample(connect(api, server.url, backoff_s=0.05), [clip()])
    assert [r.status for r in server.requests] == [429, 500, 200]
    t = [r.time for r in server.requests]
    assert t[1] - t[0] >= 0.05 and t[2] - t[1] >= 0.10   # backoff_s, then doubled
    assert [(g.text, g.error) for g in gens] == [("happy", "")]


@pytest.mark.parametrize("api", APIS)
def test_a_persistent_500_is_stored_as_a_failure_never_an_answer(api, server, demo_manifest,
                                                                 repo, tmp_path):
    server.fail_always(500)
    adapter = connect(api, server.url, max_retries=2)
    manifest = demo_manifest.head(2)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(adapter, manifest, store, prompt,
                                  GenerationSettings(n_samples=2, batch_size=2), progress=False)
        rows = store.read(report.run_key)
    assert len(server.requests) == 2 * 2 * 3          # 2 clips x (greedy, sample) x 3 attempts
    assert len(rows) == 2 * 3 and not rows["parse_ok"].any()
    assert rows["parse_error"].str.startswith("api: 500 ").all()
    assert rows["parse_error"].str.contains("after 2 retries").all()
    assert (rows["text"] == "").all() and rows[["p_happy", "p_sad"]].isna().all().all()
    assert report.parse_failures == 6


@pytest.mark.parametrize("api", APIS)
def test_a_client_error_is_not_retried_and_the_echoed_key_is_redacted(api, server):
    server.fail(401)
    adapter = connect(api, server.url)
    (g,) = sample(adapter, [clip()])
    assert len(server.requests) == 1
    assert g.error.startswith("api: 401 ") and "[redacted]" in g.error
    assert OPENAI_KEY not in g.error and GEMINI_KEY not in g.error
    assert OPENAI_KEY not in json.dumps(adapter.identity()) and GEMINI_KEY not in json.dumps(adapter.identity())


@pytest.mark.parametrize("api", APIS)
def test_a_connection_error_is_retried_then_recorded(api):
    with ProtocolServer() as s:
        url = s.url                                   # a port nobody listens on afterwards
    (g,) = sample(connect(api, url, max_retries=1), [clip()])
    assert g.error.startswith("api: connection ") and "after 1 retries" in g.error
    assert g.text == "" and g.logprob is None


@pytest.mark.parametrize("api", APIS)
def test_the_budget_stops_a_run_with_a_clear_error_and_stored_rows_stay(
        api, server, demo_manifest, repo, tmp_path):
    server.fail(429)                                   # a retry spends the budget too
    adapter = connect(api, server.url, max_requests=7)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = GenerationSettings(n_samples=0, greedy=True, batch_size=4)
    with SampleStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(BudgetExhausted, match=rf"'{MODEL[api]}'.*7 of max_requests=7 used"):
            generate_samples(adapter, demo_manifest, store, prompt, settings, progress=False)
        stored = store.conn.execute("SELECT COUNT(*), SUM(parse_ok) FROM samples").fetchone()
    assert len(server.requests) == 7
    assert stored == (4, 4)                            # the first batch; the second was cut off


def test_openai_logprobs_are_summed_and_absent_ones_give_none(server):
    # logprobs on: an OpenAI-compatible server (vLLM) gives them; gpt-audio-1.5 does not.
    gens = sample(connect("openai", server.url, logprobs=True), [clip()], n=2)
    (req,) = server.requests
    assert req.body["logprobs"] is True and req.body["n"] == 2
    for g, (text, lps) in zip(gens, req.answers):
        assert g.text == text and g.logprob == pytest.approx(sum(lps)) and g.n_tokens == len(lps)

    server.logprobs = False                            # a server that returns none
    gens = sample(connect("openai", server.url, logprobs=True), [clip()], n=2)
    assert [(g.text, g.logprob, g.n_tokens) for g in gens] == [("happy", None, None)] * 2

    off = connect("openai", server.url, logprobs=False)
    sample(off, [clip()])
    assert "logprobs" not in server.requests[-1].body
    assert "logprob" not in off.capabilities and off.identity()["logprobs"] is False


def test_gemini_candidates_arrive_as_n_generations_over_capped_requests(server):
    server.reply = lambda api, body, count: [f"{'happy' if i % 2 else 'sad'} #{i}"
                                             for i in range(count)]
    # one request at a time, so server.requests is in the adapter's request order
    adapter = connect("gemini", server.url, max_candidates_per_request=2, logprobs=True,
                      concurrency=1)
    gens = sample(adapter, [clip("a"), clip("b", seed=1)], n=5, top_k=20, top_p=0.9,
                  temperature=0.7, max_new_tokens=5)
    cfgs = [r.body["generationConfig"] for r in server.requests]
    assert [c.get("candidateCount", 1) for c in cfgs] == [2, 2, 1, 2, 2, 1]
    assert len({c["seed"] for c in cfgs[:3]}) == 3     # no repeated request within a clip
    # the answer's 5 tokens plus the registry's thinking headroom for gemini-3.5-flash
    assert {(c["temperature"], c["topP"], c["topK"], c["maxOutputTokens"]) for c in cfgs} == \
        {(0.7, 0.9, 20, 5 + 1024)}
    assert [(g.utt_id, g.idx) for g in gens] == [(u, i) for u in "ab" for i in range(5)]
    answers = [a for r in server.requests for a in r.answers]
    assert [g.text for g in gens] == [t for t, _ in answers]
    assert [g.logprob for g in gens] == pytest.approx([sum(lps) for _, lps in answers])


@pytest.mark.parametrize("api", APIS)
def test_concurrent_requests_overlap_and_give_the_same_samples_in_order(api, server):
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow_reply(api_, body, count):
        # The answer depends on the request (its seed and text), not on arrival order.
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        seed = body["seed"] if api_ == "openai" else body["generationConfig"]["seed"]
        return [f"happy {seed} {i}" for i in range(count)]

    server.reply = slow_reply
    clips = [clip(u, seed=i) for i, u in enumerate("abcd")]
    runs = {}
    for concurrency in (1, 6):
        state["peak"] = 0
        adapter = connect(api, server.url, max_candidates_per_request=2, concurrency=concurrency)
        runs[concurrency] = (sample(adapter, clips, n=5, temperature=0.7), state["peak"])
        verdicts = adapter.verify(clips[:2], [[(0, "happy"), (1, "sad")]] * 2, "{answer}? Score 1-10")
        assert [(v.utt_id, v.idx) for v in verdicts] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    (serial, peak1), (parallel, peak6) = runs[1], runs[6]
    assert peak1 == 1 and peak6 > 1
    assert parallel == serial
    assert [(g.utt_id, g.idx) for g in serial] == [(u, i) for u in "abcd" for i in range(5)]
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        connect(api, server.url, concurrency=0)


@pytest.mark.parametrize("api", APIS)
def test_greedy_asks_for_temperature_zero_and_one_answer(api, server):
    (g,) = sample(connect(api, server.url), [clip()], greedy=True, temperature=0.7, top_p=0.5)
    body = server.requests[0].body
    cfg = body if api == "openai" else body["generationConfig"]
    assert cfg["temperature"] == 0
    assert ("top_p" not in cfg) if api == "openai" else ("topP" not in cfg)
    assert (cfg.get("n") if api == "openai" else cfg.get("candidateCount", 1)) == 1
    with pytest.raises(ValueError, match="n must be 1"):
        sample(connect(api, server.url), [clip()], n=2, greedy=True)


@pytest.mark.parametrize("api", APIS)
def test_verify_parses_a_1_to_10_score_and_keeps_failures(api, server):
    replies = {"happy": "Score: 8/10", "sad": "I cannot tell.", "angry": "0", "fail": "10"}

    def reply(api_, body, count):
        text = request_text(api_, body)
        return [next(r for a, r in replies.items() if f"answer: {a}" in text)] * count

    server.reply = reply
    adapter = connect(api, server.url, max_retries=0)
    cands = [[(0, "happy"), (3, "sad")], [(1, "angry")]]
    verdicts = adapter.verify([clip("a"), clip("b")], cands, "Rate 1-10 the answer: {answer}")
    assert [(v.utt_id, v.idx, v.score) for v in verdicts] == [("a", 0, 0.8), ("a", 3, None),
                                                             ("b", 1, None)]
    assert "no score" in verdicts[1].error and "not an integer from 1 to 10" in verdicts[2].error
    assert sorted(request_text(api, r.body) for r in server.requests) == [   # sent concurrently
        "Rate 1-10 the answer: angry", "Rate 1-10 the answer: happy", "Rate 1-10 the answer: sad"]
    server.fail(503)
    (v,) = adapter.verify([clip()], [[(2, "fail")]], "answer: {answer}")
    assert v.score is None and v.error.startswith("api: 503 ")


@pytest.mark.parametrize("reply, score", [("7", 0.7), ("Score: 10.", 1.0), ("1 of 10", 0.1),
                                          ("7.5", None), ("11", None), ("none", None),
                                          ("-3", None)])
def test_parse_score(reply, score):
    assert parse_score(reply)[0] == score


@pytest.mark.parametrize("api", APIS)
def test_a_rerun_sends_no_request(api, server, demo_manifest, repo, tmp_path):
    """End to end over the demo corpus: the store holds every row; a second run of the same
    settings, with a fresh adapter, is answered from the store."""
    server.reply = lambda api_, body, count: ["sad", "happy", "neutral", "angry"][:count]
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = GenerationSettings(n_samples=2, batch_size=8)
    with SampleStore(tmp_path / "s.sqlite") as store:
        first = generate_samples(connect(api, server.url, logprobs=True), demo_manifest, store,
                                 prompt, settings, progress=False)
        sent = len(server.requests)
        again = generate_samples(connect(api, server.url, logprobs=True), demo_manifest, store,
                                 prompt, settings, progress=False)
        rows = store.read(first.run_key)
    assert sent == 32 * 2 and len(server.requests) == sent
    assert first.rows_written == 32 * 3 and first.parse_failures == 0
    assert again.run_key == first.run_key and again.rows_written == 0 and again.batches_run == 0
    greedy = rows[rows["kind"] == "greedy"]
    assert (greedy["p_sad"] == 1).all() and greedy["logprob"].notna().all()
    samples = rows[rows["kind"] == "sample"].sort_values(["utt_id", "idx"])
    assert list(samples["text"][:2]) == ["sad", "happy"]


def test_missing_key_is_an_error_naming_the_variable(monkeypatch, server):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(KeyError, match="gpt-audio-1.5.*OPENAI_API_KEY"):
        connect("openai", server.url)
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(KeyError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        connect("gemini", server.url)
    monkeypatch.setenv("GOOGLE_API_KEY", GEMINI_KEY)
    assert connect("gemini", server.url).key_env == "GOOGLE_API_KEY"
    monkeypatch.setenv("MY_VLLM_KEY", "x")
    assert connect("openai", server.url, api_key_env="MY_VLLM_KEY").key_env == "MY_VLLM_KEY"


@pytest.mark.parametrize("api", APIS)
def test_what_a_hosted_model_cannot_do_is_declared_and_refused(api, server):
    adapter = connect(api, server.url, logprobs=api == "openai")
    assert adapter.capabilities == ({"sample", "greedy", "verify", "logprob"} if api == "openai"
                                    else {"sample", "greedy", "verify"})
    with pytest.raises(NotImplementedError, match="label_logits is unavailable"):
        adapter.label_scores([clip()], "x", ["happy"])
    with pytest.raises(NotImplementedError, match="no beam search"):
        adapter.beam([clip()], "x", beams=2, decoding=Decoding(), classes=["happy"])
    ident = adapter.identity()
    assert ident["checkpoint"] == MODEL[api] and ident["base_url_host"] == server.url[7:]
    assert ident["constrained_decoding"] == "unsupported"
    (g,) = sample(adapter, [clip()], constrained=True)   # ignored, not faked
    assert g.text == "happy"
    with pytest.raises(ValueError, match="no revision"):
        connect(api, server.url, revision="abc")


def test_hosted_models_are_registered_without_a_parameter_count():
    from ambiemo.alm.hosted import HOSTED_MODELS, RETIRED_HOSTED_MODELS

    for spec in HOSTED_MODELS + RETIRED_HOSTED_MODELS:
        assert MODELS[spec.name] is spec
        assert spec.hf_class == "hosted" and spec.n_params is None
        assert spec.adapter in ADAPTERS
        api = "openai" if spec.name.startswith("gpt") else "gemini"
        assert spec.checkpoint.startswith(f"{api}:{spec.name}")   # the id, or a dated snapshot
    assert MODELS["gpt-audio-mini"].checkpoint == "openai:gpt-audio-mini-2025-12-15"
    # OpenAI's audio models are reported not to take logprobs; Gemini 3.x one candidate.
    assert not MODELS["gpt-audio-1.5"].options["logprobs"]
    for name in ("gemini-3.5-flash", "gemini-3.1-pro-preview"):
        assert MODELS[name].options["max_candidates_per_request"] == 1


def test_a_hosted_verifier_scores_stored_candidates_once(server, demo_manifest, repo, tmp_path):
    """generate_samples with GPT-4o audio, then verify_samples with Gemini as the verifier
    (the verifier_score prompt): one scored row per candidate, and a rerun judges nothing."""
    from ambiemo.sampling.verify import verify_samples

    def reply(api, body, count):
        if "A listener answered" in request_text(api, body):
            return ["6" if "answered that the speaker expresses: sad" in request_text(api, body)
                    else "I'd say 9"]
        return ["sad", "happy"][:count]

    server.reply = reply
    manifest = demo_manifest.head(3)
    prompts = repo / "configs" / "prompts"
    with SampleStore(tmp_path / "s.sqlite") as store:
        gen = generate_samples(connect("openai", server.url), manifest, store,
                               load_prompt("direct_label", prompts),
                               GenerationSettings(n_samples=2, greedy=False), progress=False)
        judge = load_prompt("verifier_score", prompts)
        first = verify_samples(connect("gemini", server.url), manifest, store, gen.run_key, judge,
                               progress=False)
        sent = len(server.requests)
        again = verify_samples(connect("gemini", server.url), manifest, store, gen.run_key, judge,
                               progress=False)
        rows = store.read(first.run_key).sort_values(["utt_id", "idx"])
    assert sent == 3 + 3 * 2 and len(server.requests) == sent
    assert first.rows_written == 6 and first.failures == 0 and again.rows_written == 0
    assert list(rows["score"]) == [0.6, 0.9] * 3 and rows["parse_ok"].all()


def test_identity_names_the_server_the_sdk_would_use(monkeypatch, server):
    from ambiemo.alm.hosted import GeminiAdapter, OpenAIChatAdapter

    assert OpenAIChatAdapter("openai:gpt-audio-1.5", name="x").identity()[
        "base_url_host"] == "api.openai.com"
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")   # a vLLM server, say
    a = OpenAIChatAdapter("openai:Qwen/Qwen2-Audio-7B-Instruct", name="vllm-qwen")
    assert a.identity()["base_url_host"] == server.url[7:]
    assert a.identity()["checkpoint"] == "Qwen/Qwen2-Audio-7B-Instruct"
    sample(a, [clip()])
    assert server.requests[-1].body["model"] == "Qwen/Qwen2-Audio-7B-Instruct"
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    assert GeminiAdapter("gemini:gemini-3.5-flash", name="g").identity()["base_url_host"] == \
        server.url[7:]
    with pytest.raises(ValueError, match="expected 'openai:<model id>'"):
        OpenAIChatAdapter("gemini:gemini-2.5-pro", name="wrong")


def test_gemini_thinking_budget_is_added_to_the_answer_tokens(server):
    from ambiemo.alm.hosted import GeminiAdapter

    # A Gemini 2.5 id that is not retired (gemini-2.5-pro is: a retired id is refused)
    a = GeminiAdapter("gemini:gemini-2.5-flash", name="gemini-2.5-flash", base_url=server.url,
                      thinking_budget=128)
    sample(a, [clip()], max_new_tokens=16)
    cfg = server.requests[-1].body["generationConfig"]
    thinking = cfg["thinkingConfig"]     # the SDK writes this one field in snake case
    assert cfg["maxOutputTokens"] == 16 + 128
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 128
    assert a.identity()["thinking_budget"] == 128


@pytest.mark.parametrize("audio, why", [(np.zeros((2, 100), np.float32), "mono clip"),
                                        (np.array([0.1, np.nan], np.float32), "NaN"),
                                        (np.zeros(0, np.float32), "non-empty")])
def test_a_clip_that_cannot_be_a_wav_is_refused(audio, why):
    from ambiemo.alm.hosted.audio_payload import wav_bytes

    with pytest.raises(ValueError, match=why):
        wav_bytes(audio)
