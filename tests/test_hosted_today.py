"""Hosted models as the providers serve them today, against the local protocol server: a
retired model (404), a refused parameter (400 logprobs, 400 candidate_count > 1), thinking
that leaves the answer cut off (MAX_TOKENS / length), a 429 with its wait in the body
(RetryInfo), a per-day quota, and a served model other than the one requested -- each as the
adapter, the store, the rerun and the preflight probe see it. Loopback only; every wait is
a fraction of a second."""
from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from protocol_server import ProtocolServer

from ambiemo.alm import MODELS, Clip, Decoding, load_model
from ambiemo.alm import hosted  # noqa: F401  (registers the hosted models)
from ambiemo.alm.failure_kinds import failure_kind
from ambiemo.alm.hosted import QuotaExhausted
from ambiemo.alm.hosted.probe import probe
from ambiemo.alm.hosted.retry import RetryPolicy, per_day_quota, retry_info_delay_s
from ambiemo.alm.prompts import load_prompt
from ambiemo.alm.registry import RetiredModelError
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.alm.served_model import served_matches
from ambiemo.sampling.store import SampleStore
from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline.preflight import validate
from ambiemo.pipeline.plan import plan

MODEL = {"openai": "gpt-audio-1.5", "gemini": "gemini-3.5-flash"}
APIS = ["openai", "gemini"]


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-fake")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("AMBIEMO_RETRY_FAILED", raising=False)


@pytest.fixture()
def server():
    with ProtocolServer() as s:
        yield s


def base_url(api: str, url: str) -> str:
    return url + ("/v1" if api == "openai" else "")


def connect(api: str, url: str, name: str | None = None, **options):
    """The registered model (its registry options) pointed at the local server."""
    options = {"backoff_s": 0.01, "max_retries": 2, "timeout_s": 10, **options}
    return load_model(name or MODEL[api], base_url=base_url(api, url), **options)


def clip(utt="u1") -> Clip:
    return Clip(utt, (0.3 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32))


def sample(adapter, n=1, greedy=False, **decoding):
    return adapter.generate([clip()], "Which emotion?", n=n, greedy=greedy,
                            decoding=Decoding(**decoding), classes=["happy", "sad"], seed=7)


def generate(adapter, manifest, store, repo, **settings):
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = {"n_samples": 2, "batch_size": 4, **settings}
    return generate_samples(adapter, manifest, store, prompt, GenerationSettings(**settings),
                            progress=False)


# --- the registry: retired models and their replacements ----------------------------------

def test_the_studys_hosted_models_are_retired_with_date_and_replacement():
    expected = {"gpt-4o-audio-preview": ("2026-05-07", "gpt-audio-1.5"),
                "gpt-4o-mini-audio-preview": ("2026-05-07", "gpt-audio-mini"),
                "gemini-2.0-flash": ("2026-06-01", "gemini-3.5-flash"),
                "gemini-2.5-pro": ("2026-12-01", "gemini-3.1-pro-preview")}
    for name, (date, replacement) in expected.items():
        r = MODELS[name].retired
        assert (r.shutdown, r.replacement) == (date, replacement)
        assert MODELS[replacement].retired is None            # the replacement can run
        with pytest.raises(RetiredModelError, match=rf"'{name}' was retired on {date}.*"
                                                    rf"use '{replacement}' instead"):
            load_model(name)


# --- 404: a retired model ------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
def test_a_retired_model_is_a_permanent_404_and_the_probe_names_it(api, server):
    server.retired = {MODEL[api]}
    adapter = connect(api, server.url)
    (g,) = sample(adapter)
    assert len(server.requests) == 1                          # a 404 is never retried
    assert g.error.startswith("api: 404 ") and failure_kind(g.error) == "permanent"
    (problem,) = probe(adapter, n_samples=5, decoding=Decoding())
    assert f"model id {MODEL[api]!r} does not exist" in problem and "404" in problem
    assert [r.status for r in server.requests[1:]] == [404, 404]   # looked up, then asked
    assert server.requests[1].path.endswith(f"/models/{MODEL[api]}")


def test_a_server_without_the_model_lookup_route_is_probed_by_its_request(server):
    """An OpenAI-compatible server (vLLM) may not offer models.retrieve: the tiny request
    decides."""
    server.model_lookup = False
    assert probe(connect("openai", server.url), n_samples=2, decoding=Decoding()) == []
    assert [r.status for r in server.requests] == [404, 200]


def test_the_probe_refuses_a_model_whose_announced_shutdown_has_passed(server):
    server.shutdown_dates = {"gpt-audio-mini-2025-12-15": "2027-01-20"}
    adapter = connect("openai", server.url, name="gpt-audio-mini")
    assert probe(adapter, n_samples=5, decoding=Decoding(), today=dt.date(2026, 12, 1)) == []
    (problem,) = probe(adapter, n_samples=5, decoding=Decoding(), today=dt.date(2027, 1, 21))
    assert "shutdown date as 2027-01-20, which has passed" in problem


# --- 400: parameters the model refuses ------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
def test_logprobs_refused_by_an_audio_model_is_named_by_the_probe(api, server):
    server.refuse_logprobs = {MODEL[api]}
    on = connect(api, server.url, logprobs=True)
    (g,) = sample(on)
    assert g.error.startswith("api: 400 ") and failure_kind(g.error) == "permanent"
    assert len(server.requests) == 1
    (problem,) = probe(on, n_samples=5, decoding=Decoding(temperature=0.7))
    assert "logprobs=True" in problem and "`logprobs: false`" in problem
    # As registered (gpt-audio-1.5: logprobs off; Gemini: off by default) nothing is refused.
    off = connect(api, server.url)
    assert probe(off, n_samples=5, decoding=Decoding()) == []
    (g,) = sample(off)
    assert g.text == "happy" and g.logprob is None and "logprob" not in off.capabilities


def test_candidate_count_refused_by_gemini_3_gives_n_requests_as_registered(server):
    server.single_candidate = {"gemini-3.5-flash"}
    several = connect("gemini", server.url, max_candidates_per_request=8)
    gens = sample(several, n=3, temperature=0.7)
    assert all(g.error.startswith("api: 400 Multiple candidates") for g in gens)
    (problem,) = probe(several, n_samples=3, decoding=Decoding(temperature=0.7))
    assert "n=3" in problem and "`max_candidates_per_request: 1`" in problem
    registered = connect("gemini", server.url, concurrency=1)      # one candidate per request
    assert probe(registered, n_samples=3, decoding=Decoding(temperature=0.7)) == []
    before = len(server.requests)
    gens = sample(registered, n=3, temperature=0.7)
    sent = [r.body["generationConfig"] for r in server.requests[before:]]
    assert [g.text for g in gens] == ["happy"] * 3 and len(sent) == 3
    assert all("candidateCount" not in c for c in sent)
    assert [c["seed"] for c in sent] == [7, 8, 9]                  # the usual per-request seeds


# --- MAX_TOKENS / length: truncated, never an answer ----------------------------------------

def test_thinking_that_eats_the_answer_is_a_truncated_failure(server, demo_manifest, repo,
                                                              tmp_path):
    server.thinking_tokens = {"gemini-3.5-flash": 5000}            # more than the headroom
    adapter = connect("gemini", server.url)
    (g,) = sample(adapter, max_new_tokens=16)
    assert server.requests[-1].body["generationConfig"]["maxOutputTokens"] == 16 + 1024
    assert g.text == "" and g.error.startswith("truncated: ") and "MAX_TOKENS" in g.error
    # a partial answer cut off by the limit is no answer either
    server.thinking_tokens = {"gemini-3.5-flash": 16 + 1024 - 1}   # room for 1 of 2 tokens
    (g,) = sample(adapter, max_new_tokens=16)
    assert g.text == "" and "'hap'" in g.error and failure_kind(g.error) == "truncated"
    (problem,) = probe(adapter, n_samples=2, decoding=Decoding(max_new_tokens=16))
    assert "gave no complete answer" in problem and "thinking_headroom" in problem
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate(adapter, demo_manifest.head(2), store, repo, n_samples=1)
        rows = store.read(report.run_key)
    assert not rows["parse_ok"].any() and rows["parse_error"].str.startswith("truncated: ").all()
    assert rows[["p_happy", "p_sad"]].isna().all().all()
    # with real headroom the same model answers
    server.thinking_tokens = {"gemini-3.5-flash": 900}
    assert [g.text for g in sample(adapter, max_new_tokens=16)] == ["happy"]


def test_an_openai_answer_cut_off_by_length_is_truncated(server):
    server.reply = lambda api, body, count: ["happy, or maybe sad"] * count
    (g,) = sample(connect("openai", server.url), max_new_tokens=2)
    assert server.requests[-1].answers[0][0] == "happy,"             # what the server sent
    assert g.text == "" and g.error.startswith("truncated: ") and "length" in g.error


# --- 429: the wait in the body; a per-day quota stops the job -------------------------------

def test_gemini_429_waits_the_retry_info_delay_from_the_body(server):
    server.retry_delay = "0.4s"
    server.fail(429)
    (g,) = sample(connect("gemini", server.url, backoff_s=0.01))
    assert [r.status for r in server.requests] == [429, 200] and g.text == "happy"
    assert server.requests[1].time - server.requests[0].time >= 0.4


def test_retry_info_and_quota_are_read_from_a_gemini_error_body():
    body = {"error": {"code": 429, "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "m", "quotaId": "GenerateRequestsPerDayPerProjectPerModel",
             "quotaValue": "250"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}
    assert retry_info_delay_s(body) == 37.0
    assert "GenerateRequestsPerDayPerProjectPerModel (limit 250)" in per_day_quota(body)
    per_minute = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                         "violations": [{"quotaId": "PerMinutePerModel"}]}]}}
    assert per_day_quota(per_minute) is None and retry_info_delay_s(per_minute) is None
    assert retry_info_delay_s({"error": "text"}) is None and per_day_quota(None) is None
    # a ~37 s server wait is honoured (not cut to the exponential 1 s), up to max_backoff_s
    import random
    assert RetryPolicy(backoff_s=1, max_backoff_s=60).delay(0, random.Random(0), 37.0) == 37.0


@pytest.mark.parametrize("api", APIS)
def test_a_per_day_quota_stops_the_job_with_one_message(api, server, demo_manifest, repo,
                                                        tmp_path):
    server.fail_always("quota_day")
    adapter = connect(api, server.url, concurrency=1)
    with SampleStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(QuotaExhausted) as err:
            generate(adapter, demo_manifest, store, repo)
        assert store.conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (0,)
    assert len(server.requests) == 1                     # no retries, no failure rows
    msg = str(err.value)
    assert f"model {MODEL[api]!r}: quota exhausted" in msg and "rerun after the reset" in msg
    assert ("PerDay" in msg and "midnight Pacific" in msg) if api == "gemini" \
        else "insufficient_quota" in msg
    (problem,) = probe(adapter, n_samples=2, decoding=Decoding())
    assert "quota exhausted" in problem


# --- the served model ------------------------------------------------------------------------

def test_a_routed_model_is_recorded_and_flagged(server, demo_manifest, repo, tmp_path):
    server.served = {"gemini-3.5-flash": "gemini-3.8-flash"}
    adapter = connect("gemini", server.url)
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate(adapter, demo_manifest.head(3), store, repo)
        rows = store.read(report.run_key)
    assert (rows["served_model"] == "gemini-3.8-flash").all() and rows["parse_ok"].all()
    assert report.served_other == ("gemini-3.8-flash (9 rows)",)
    (problem,) = probe(adapter, n_samples=2, decoding=Decoding())
    assert "requested 'gemini-3.5-flash' but the service answered with gemini-3.8-flash" in problem


def test_a_dated_snapshot_of_the_requested_alias_is_not_flagged(server, demo_manifest, repo,
                                                                tmp_path):
    server.served = {"gpt-audio-1.5": "gpt-audio-1.5-2026-02-23"}
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate(connect("openai", server.url), demo_manifest.head(2), store, repo)
        rows = store.read(report.run_key)
    assert (rows["served_model"] == "gpt-audio-1.5-2026-02-23").all()
    assert report.served_other == ()


@pytest.mark.parametrize("requested, served, same", [
    ("gpt-audio-1.5", "gpt-audio-1.5", True), ("gpt-audio-1.5", "gpt-audio-1.5-2026-02-23", True),
    ("gpt-audio-mini-2025-12-15", "gpt-audio-mini", True),
    ("gemini-3.5-flash", "models/gemini-3.5-flash-001", True), ("x", None, True),
    ("gemini-2.5-pro", "gemini-3.5-flash", False), ("gpt-audio-1.5", "gpt-audio-1.5-mini", False),
    ("gpt-audio-mini-2025-12-15", "gpt-audio-mini-2025-10-06", False)])
def test_served_matches(requested, served, same):
    assert served_matches(requested, served) is same


# --- reruns: transient failures redone, permanent ones kept unless --retry-failed -------------

@pytest.mark.parametrize("reason, kind", [
    ("api: 500 boom (after 3 retries)", "transient"), ("api: 503 x", "transient"),
    ("api: 429 slow down (after 5 retries)", "transient"), ("api: connection timed out", "transient"),
    ("api: 408 timeout", "transient"), ("quota: per day", "transient"),
    ("api: 400 bad parameter", "permanent"), ("api: 404 no such model", "permanent"),
    ("api: empty candidate (finish_reason SAFETY)", "permanent"), ("audio: empty file", "permanent"),
    ("truncated: cut off", "truncated"), ("no class name in 'hmm'", None), ("", None)])
def test_failure_kinds(reason, kind):
    assert failure_kind(reason) == kind


def test_a_rerun_redoes_transient_failures_and_retry_failed_the_permanent_ones(
        server, demo_manifest, repo, tmp_path, monkeypatch):
    manifest = demo_manifest.head(2)
    with SampleStore(tmp_path / "s.sqlite") as store:
        server.fail_always(503)
        first = generate(connect("openai", server.url, max_retries=0), manifest, store, repo)
        assert first.parse_failures == 6
        server.fail_always(None)
        again = generate(connect("openai", server.url), manifest, store, repo)
        assert again.redone_failures == 6 and again.rows_written == 6
        assert store.read(first.run_key)["parse_ok"].all()
        # a permanent failure stays through a rerun ...
        store.conn.execute("UPDATE samples SET parse_ok=0, parse_error='api: 400 bad', "
                           "dist=NULL WHERE kind='greedy'")
        store.conn.commit()
        sent = len(server.requests)
        kept = generate(connect("openai", server.url), manifest, store, repo)
        assert kept.rows_written == 0 and len(server.requests) == sent
        # ... until --retry-failed (the pipeline sets AMBIEMO_RETRY_FAILED=1 for notebooks)
        monkeypatch.setenv("AMBIEMO_RETRY_FAILED", "1")
        redone = generate(connect("openai", server.url), manifest, store, repo)
        assert redone.redone_failures == 2 and redone.rows_written == 2
        assert store.read(first.run_key)["parse_ok"].all()


def test_a_store_file_from_before_served_model_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    old_schema = ("CREATE TABLE runs (run_key TEXT PRIMARY KEY, model TEXT NOT NULL, settings "
                  "TEXT NOT NULL, classes TEXT NOT NULL); CREATE TABLE samples (run_key TEXT "
                  "NOT NULL, utt_id TEXT NOT NULL, kind TEXT NOT NULL, idx INTEGER NOT NULL, "
                  "text TEXT NOT NULL, logprob REAL, n_tokens INTEGER, dist TEXT, parse_ok "
                  "INTEGER NOT NULL, parse_error TEXT NOT NULL, seconds REAL, score REAL, "
                  "PRIMARY KEY (run_key, utt_id, kind, idx));")
    conn.executescript(old_schema)
    conn.execute("INSERT INTO runs VALUES ('k', 'm', '{}', '[\"happy\", \"sad\"]')")
    conn.execute("INSERT INTO samples VALUES ('k','a','greedy',0,'happy',NULL,1,'[1.0, 0.0]',"
                 "1,'',0.1,NULL)")
    conn.commit()
    conn.close()
    with SampleStore(path) as store:
        store.write("k", [{"utt_id": "b", "kind": "greedy", "idx": 0, "text": "sad",
                           "dist": [0, 1], "parse_ok": True, "served_model": "gpt-audio-1.5"}])
        rows = store.read("k")
    assert rows["served_model"].isna().tolist() == [True, False]     # unknown for old rows
    assert rows["served_model"].iloc[1] == "gpt-audio-1.5"
    assert list(rows["p_happy"]) == [1.0, 0.0]


# --- preflight -------------------------------------------------------------------------------

def study_config(tmp_path, repo, models: str, verifier: str | None = None):
    text = (f"name: t\ncorpora:\n  demo: {{root: {repo / 'data' / 'demo'}}}\nmodels: {models}\n"
            "generation: {n_samples: 3, greedy: true, decoding: {temperature: 0.7, top_p: 1.0, "
            "top_k: 0, max_new_tokens: 16, constrained: false}}\n"
            "scoring: {strategies: [greedy, bon_sample]}\n")
    if verifier:
        text += f"verification: {{model: {verifier}, prompt: verifier_score, candidates: sample}}\n"
        text = text.replace("[greedy, bon_sample]", "[greedy, bon_sample, alm_v]")
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p, root=repo)


def test_preflight_refuses_each_retired_model_naming_date_and_replacement(tmp_path, repo):
    cfg = study_config(tmp_path, repo, "[gpt-4o-audio-preview, gemini-2.0-flash, gemini-2.5-pro]",
                       verifier="gpt-4o-mini-audio-preview")
    with pytest.raises(ConfigError) as err:
        validate(cfg, plan(cfg, ("prepare", "generate", "verify")), probe=False)
    msg = str(err.value)
    for key, name, date, repl in (
            ("models", "gpt-4o-audio-preview", "2026-05-07", "gpt-audio-1.5"),
            ("models", "gemini-2.0-flash", "2026-06-01", "gemini-3.5-flash"),
            ("models", "gemini-2.5-pro", "2026-12-01", "gemini-3.1-pro-preview"),
            ("verification.model", "gpt-4o-mini-audio-preview", "2026-05-07", "gpt-audio-mini")):
        assert f"{key}: model {name!r} was retired on {date}" in msg
        assert f"use {repl!r} instead" in msg


def test_preflight_probes_hosted_models_with_the_runs_parameters(tmp_path, repo, server):
    server.refuse_logprobs = {"gpt-audio-1.5"}
    server.single_candidate = {"gemini-3.5-flash"}
    models = (f"[{{name: gpt-audio-1.5, options: {{base_url: '{server.url}/v1', logprobs: true}}}},"
              f" {{name: gemini-3.5-flash, options: {{base_url: '{server.url}', "
              "max_candidates_per_request: 4}}]")
    cfg = study_config(tmp_path, repo, models)
    jobs = plan(cfg, ("prepare", "generate"))
    with pytest.raises(ConfigError) as err:
        validate(cfg, jobs)
    msg = str(err.value)
    assert "models: model 'gpt-audio-1.5' (probe):" in msg and "`logprobs: false`" in msg
    assert "models: model 'gemini-3.5-flash' (probe):" in msg and "n=3" in msg
    assert "`max_candidates_per_request: 1`" in msg
    validate(cfg, jobs, probe=False)                  # --no-probe: nothing asked, nothing found
    ok = study_config(tmp_path, repo, f"[{{name: gpt-audio-1.5, options: {{base_url: "
                                      f"'{server.url}/v1'}}}}]")
    sent = len(server.requests)
    validate(ok, plan(ok, ("prepare", "generate")))
    assert len(server.requests) == sent + 2           # models.retrieve, one tiny request
    assert server.requests[-1].body["n"] == 3 and server.requests[-1].body["temperature"] == 0.7


def test_the_cli_with_fake_keys_and_no_probe_names_no_hosted_problem_for_paper_yaml(repo,
                                                                                   tmp_path):
    """configs/paper.yaml names the replacements, so with keys set (fake) and --no-probe the
    hosted models pass; what fails is what this machine lacks (corpora, checkpoints)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo / "lib"), "OPENAI_API_KEY": "sk-fake",
           "GEMINI_API_KEY": "gm-fake", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", "configs/paper.yaml",
                        "--no-probe", "--stage", "generate"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nothing was run" in r.stderr, r.stderr[-2000:]
    assert "retired" not in r.stderr
    for name in ("gpt-audio-1.5", "gemini-3.5-flash", "gemini-3.1-pro-preview"):
        assert f"model {name!r}" not in r.stderr


def test_verdicts_lost_to_a_transient_failure_are_asked_again(server, demo_manifest, repo,
                                                              tmp_path):
    from ambiemo.sampling.verify import verify_samples

    manifest = demo_manifest.head(2)
    judge = load_prompt("verifier_score", repo / "configs" / "prompts")
    with SampleStore(tmp_path / "s.sqlite") as store:
        gen = generate(connect("openai", server.url), manifest, store, repo, greedy=False)
        server.fail_always(500)
        first = verify_samples(connect("gemini", server.url, max_retries=0), manifest, store,
                               gen.run_key, judge, progress=False)
        assert first.failures == 4
        server.fail_always(None)
        server.reply = lambda api, body, count: ["7"] * count
        again = verify_samples(connect("gemini", server.url), manifest, store, gen.run_key,
                               judge, progress=False)
        rows = store.read(first.run_key)
    assert again.rows_written == 4 and again.failures == 0
    assert list(rows["score"]) == [0.7] * 4
    assert (rows["served_model"] == "gemini-3.5-flash").all() and again.served_other == ()
