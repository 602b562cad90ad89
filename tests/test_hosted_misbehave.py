"""Hosted services that misbehave never stop a run (issue #26), against the local protocol
server: an unparseable 200 is a retried transient failure, then a failure row; rows a
service answered with another model are counted per served model in the generate report,
the status file and the run summary, and marked in the main table; a retired id given as a
`checkpoint:` is refused; Retry-After as seconds, as an HTTP date and as retry-after-ms is
honoured up to a configurable cap; a Gemini 429 for a spend cap or project limit stops the
model's job with one message; the retirement dates and replacements are data with their
sources. Loopback only; every wait is a fraction of a second."""
from __future__ import annotations

import email.utils
import json
import random

import numpy as np
import pandas as pd
import pytest
import yaml
from protocol_server import ProtocolServer

from ambiemo.alm import MODELS, Clip, Decoding, load_model
from ambiemo.alm import hosted  # noqa: F401  (registers the hosted models)
from ambiemo.alm.failure_kinds import failure_kind
from ambiemo.alm.hosted import RETIREMENTS_FILE, QuotaExhausted
from ambiemo.alm.hosted.probe import probe
from ambiemo.alm.hosted.retirements import read_retirements, retired_specs
from ambiemo.alm.hosted.retry import MAX_WAIT_S, RetryPolicy, quota_stop, retry_after_s
from ambiemo.alm.prompts import load_prompt
from ambiemo.alm.registry import RetiredModelError, retired_checkpoint
from ambiemo.alm.served_model import other_model_rows, served_note
from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline.plan import Job, plan
from ambiemo.pipeline.preflight import validate
from ambiemo.pipeline.stages import mark_other_model_rows
from ambiemo.pipeline.status import Outcome, read_status, summarise, write_status
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.sampling.store import SampleStore

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


def connect(api: str, url: str, **options):
    options = {"backoff_s": 0.01, "max_retries": 2, "timeout_s": 10, **options}
    return load_model(MODEL[api], base_url=url + ("/v1" if api == "openai" else ""), **options)


def sample(adapter, n=1):
    clip = Clip("u1", (0.3 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32))
    return adapter.generate([clip], "Which emotion?", n=n, greedy=n == 1, decoding=Decoding(),
                            classes=["happy", "sad"], seed=7)


def generate(adapter, manifest, store, repo, **settings):
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = {"n_samples": 2, "batch_size": 4, **settings}
    return generate_samples(adapter, manifest, store, prompt, GenerationSettings(**settings),
                            progress=False)


def study_config(tmp_path, repo, models: str):
    """A config whose run folder lies under `tmp_path`."""
    (tmp_path / "configs").mkdir(exist_ok=True)
    p = tmp_path / "configs" / "c.yaml"
    p.write_text(f"name: t\ncorpora:\n  demo: {{root: {repo / 'data' / 'demo'}}}\n"
                 f"models: {models}\ngeneration: {{n_samples: 2}}\n"
                 "scoring: {strategies: [greedy]}\n")
    return load_config(p, root=tmp_path)


# --- an unparseable 200 ---------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("bad", ["malformed", "wrong_shape"])
def test_an_unparseable_200_is_retried_like_a_server_error(api, bad, server):
    server.fail(bad)
    (g,) = sample(connect(api, server.url))
    assert [r.status for r in server.requests] == [200, 200]
    assert (g.text, g.error) == ("happy", "")


@pytest.mark.parametrize("api", APIS)
def test_a_persistent_malformed_body_is_a_transient_failure_row_not_an_exception(
        api, server, demo_manifest, repo, tmp_path):
    server.fail_always("malformed")
    adapter = connect(api, server.url, max_retries=1, concurrency=1)
    (g,) = sample(adapter)                         # never an exception out of generate
    assert g.text == "" and g.error.startswith("api: 200 malformed response body (not JSON")
    assert "(after 1 retries)" in g.error and failure_kind(g.error) == "transient"
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate(adapter, demo_manifest.head(2), store, repo)   # the job finishes
        rows = store.read(report.run_key)
    assert len(rows) == 6 and not rows["parse_ok"].any()
    assert (rows["failure"] == "api_error").all()
    server.fail_always(None)                        # a rerun asks those rows again
    with SampleStore(tmp_path / "s.sqlite") as store:
        again = generate(connect(api, server.url), demo_manifest.head(2), store, repo)
        assert again.redone_failures == 6 and store.read(again.run_key)["parse_ok"].all()


# --- rows from another model ------------------------------------------------------------------

def test_rows_per_served_model_reach_the_report_status_summary_and_table(
        server, demo_manifest, repo, tmp_path):
    server.served = {"gemini-3.5-flash": "gemini-3.8-flash"}
    adapter = connect("gemini", server.url)         # as with --no-probe: nothing checked first
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate(adapter, demo_manifest.head(3), store, repo)
        rows = store.read(report.run_key)
    assert report.served == (("gemini-3.8-flash", 9),) and report.requested == "gemini-3.5-flash"
    note = served_note(dict(report.served), report.requested)
    assert note == "served: gemini-3.8-flash 9 rows [NOT gemini-3.5-flash]"
    assert served_note({"gemini-3.5-flash-001": 4}, "gemini-3.5-flash") == \
        "served: gemini-3.5-flash-001 4 rows"       # a snapshot of the alias is the model
    # the status JSON (numbers) and the note that the console summary, summary.json and the
    # report's run summary show
    cfg = study_config(tmp_path, repo, "[gemini-3.5-flash, gpt-audio-1.5]")
    job = Job("generate", "demo", "gemini-3.5-flash")
    path = write_status(cfg, "generate", corpus="demo", model="gemini-3.5-flash", ran=1,
                        note=f"9 rows; {note}", served={"direct_label": dict(report.served)})
    assert json.loads(path.read_text())["served"] == {"direct_label": {"gemini-3.8-flash": 9}}
    state, read_note = read_status(path)
    assert state == "ran" and "gemini-3.8-flash 9 rows [NOT gemini-3.5-flash]" in read_note
    outcome = Outcome(job, state, note=read_note)
    assert "[NOT gemini-3.5-flash]" in outcome.row()["note"]
    assert "[NOT gemini-3.5-flash]" in summarise(cfg, [outcome])
    from ambiemo.outputs.report import _summary_table
    assert "[NOT gemini-3.5-flash]" in _summary_table([outcome.row()])
    # the main table's rows of that model and arm are marked
    answers = [rows.assign(model="gemini-3.5-flash", prompt="direct_label"),
               rows.assign(model="gpt-audio-1.5", prompt="direct_label", served_model=None)]
    assert other_model_rows(answers[0], "gemini-3.5-flash") == {"gemini-3.8-flash": 9}
    table = pd.DataFrame(dict(model=["gemini-3.5-flash", "gemini-3.5-flash", "gpt-audio-1.5",
                                     "prior"],
                              prompt=["direct_label", "direct_label", "direct_label", "-"],
                              row_type=["model", "unavailable", "model", "reference"],
                              note=["", "no logprobs", "", ""]))
    marked = mark_other_model_rows(cfg, table, answers)
    assert marked["note"].tolist() == [
        "samples from another model: gemini-3.8-flash (9 of 9 rows)",
        "no logprobs; samples from another model: gemini-3.8-flash (9 of 9 rows)", "", ""]


# --- retired ids through `checkpoint` ---------------------------------------------------------

@pytest.mark.parametrize("name, checkpoint, retired", [
    ("gpt-audio-1.5", "openai:gpt-4o-audio-preview", "gpt-4o-audio-preview"),
    ("gemini-3.5-flash", "gemini:gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini-3.5-flash", "gemini:models/gemini-2.0-flash", "gemini-2.0-flash")])
def test_a_retired_id_given_as_checkpoint_is_refused(name, checkpoint, retired, server,
                                                     tmp_path, repo):
    assert retired_checkpoint(checkpoint)[0] == retired
    with pytest.raises(RetiredModelError, match=rf"checkpoint '{checkpoint}' is a retired model: "
                                                rf"model '{retired}' was retired on"):
        load_model(name, checkpoint=checkpoint, base_url=server.url)
    assert server.requests == []                    # nothing was requested
    cfg = study_config(tmp_path, repo, f"[{{name: {name}, checkpoint: '{checkpoint}'}}]")
    with pytest.raises(ConfigError, match=rf"model '{name}': checkpoint '{checkpoint}' is a "
                                          rf"retired model: model '{retired}' was retired"):
        validate(cfg, plan(cfg, ("prepare", "generate")), probe=False)   # also --no-probe
    assert retired_checkpoint("openai:gpt-audio-1.5") is None


# --- waits ------------------------------------------------------------------------------------

def test_retry_after_as_seconds_http_date_and_milliseconds():
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after_s({"retry-after": "120"}) == 120.0
    assert retry_after_s({"retry-after": date}, now=now) == pytest.approx(90.0)
    assert retry_after_s({"retry-after": email.utils.formatdate(now - 5, usegmt=True)},
                         now=now) == 0.0                 # a date in the past: no wait
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5   # ms first
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s(None) is None
    rng = random.Random(0)
    # a 120 s wait is honoured whole (the cap was 60 s), up to the configurable cap
    assert MAX_WAIT_S == 300.0
    assert RetryPolicy().delay(0, rng, 120.0) == 120.0
    assert RetryPolicy().delay(0, rng, 900.0) == 300.0
    assert RetryPolicy(max_wait_s=30).delay(0, rng, 120.0) == 30.0
    assert RetryPolicy(backoff_s=1, max_backoff_s=4).delay(5, rng) == 4.0   # own backoff cap
    with pytest.raises(ValueError, match="max_wait_s"):
        RetryPolicy(max_wait_s=-1)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("headers, at_least", [({"retry-after-ms": "400"}, 0.4),
                                               ({"retry-after": "1"}, 1.0)])
def test_the_servers_wait_is_honoured_by_both_adapters(api, headers, at_least, server):
    server.retry_after_headers = headers
    server.retry_delay = None                       # no RetryInfo: only the headers say it
    server.fail("retry_after")
    (g,) = sample(connect(api, server.url, backoff_s=0.01))
    assert [r.status for r in server.requests] == [429, 200] and g.text == "happy"
    assert server.requests[1].time - server.requests[0].time >= at_least
    adapter = connect(api, server.url, max_wait_s=0.05)
    assert adapter.policy.max_wait_s == 0.05        # the cap is an adapter option
    assert "max_wait_s" not in adapter.identity()   # and changes no sample


def test_an_http_date_retry_after_is_honoured(server):
    server.retry_after_headers = {"retry-after": email.utils.formatdate(
        __import__("time").time() + 2, usegmt=True)}
    server.fail("retry_after")
    (g,) = sample(connect("openai", server.url, backoff_s=0.01))
    assert [r.status for r in server.requests] == [429, 200] and g.text == "happy"
    assert server.requests[1].time - server.requests[0].time >= 0.9   # 1 s resolution


# --- a Gemini 429 that no wait cures ----------------------------------------------------------

def test_a_gemini_spend_cap_stops_the_job_with_one_message(server, demo_manifest, repo,
                                                           tmp_path):
    server.fail_always("spend_cap")
    adapter = connect("gemini", server.url, concurrency=1)
    with SampleStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(QuotaExhausted) as err:
            generate(adapter, demo_manifest, store, repo)
        assert store.conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (0,)
    assert len(server.requests) == 1                # not retried, no failure rows
    msg = str(err.value)
    assert "model 'gemini-3.5-flash': quota exhausted" in msg
    assert "SPEND_CAP_EXCEEDED" in msg and "waiting does not lift it" in msg


def _body(*details):
    return {"error": {"code": 429, "details": list(details)}}


def _quota(quota_id, value="100"):
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "m", "quotaId": quota_id, "quotaValue": value}]}


def _info(reason):
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}


@pytest.mark.parametrize("body, stops", [
    (_body(), None),                                                        # no details: a rate
    (_body(_quota("GenerateContentPaidTierInputTokensPerModelPerMinute")), None),
    (_body(_info("RATE_LIMIT_EXCEEDED"), _quota("GenerateRequestsPerMinutePerProject")), None),
    (_body(_quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier")), "PerDay"),
    (_body(_info("SPEND_CAP_EXCEEDED")), "SPEND_CAP_EXCEEDED"),
    (_body(_info("BILLING_DISABLED")), "BILLING_DISABLED"),
    (_body(_quota("ProjectMonthlySpend")), "is not a per-minute rate"),
    (_body(_quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "0")), "limit 0"),
])
def test_a_gemini_429_is_classified_by_its_reason(body, stops):
    why = quota_stop(body)
    assert (why is None) if stops is None else (stops in why)


# --- the retirement data file -----------------------------------------------------------------

def test_retirement_dates_and_replacements_are_one_data_file_with_sources(tmp_path):
    entries = read_retirements(RETIREMENTS_FILE)
    assert set(entries) == {n for n, s in MODELS.items() if s.retired is not None}
    for name, e in entries.items():
        r = MODELS[name].retired
        assert (r.shutdown, r.replacement, r.source) == (e["shutdown"], e["replacement"],
                                                         e["source"])
        assert MODELS[name].checkpoint == e["checkpoint"] and r.source
    # the sources disagree on gemini-2.5-pro; both claims are kept and named
    pro = MODELS["gemini-2.5-pro"].retired
    assert pro.replacement == "gemini-3.1-pro-preview"
    assert [m for m, _, _ in pro.reported_routing] == ["gemini-3.8-flash"]
    assert "also reported: routed to gemini-3.8-flash" in pro.message("gemini-2.5-pro")
    bad = tmp_path / "r.yaml"
    bad.write_text(yaml.safe_dump({"x": {"checkpoint": "openai:x", "shutdown": "2026-01-01",
                                         "replacement": "y"}}))
    with pytest.raises(ValueError, match=r"r.yaml: entry 'x' lacks \['source'\]"):
        retired_specs(bad)
    bad.write_text(yaml.safe_dump({"x": {"checkpoint": "vllm:x", "shutdown": "2026-01-01",
                                         "replacement": "y", "source": "s"}}))
    with pytest.raises(ValueError, match="must start with one of"):
        retired_specs(bad)


def test_the_probe_reports_what_the_service_answers(server, caplog):
    server.served = {"gemini-3.5-flash": "gemini-3.8-flash"}
    with caplog.at_level("INFO", logger="ambiemo.alm.hosted"):
        (problem,) = probe(connect("gemini", server.url), n_samples=1, decoding=Decoding())
    assert "the service answered with gemini-3.8-flash" in problem
    assert "retirements.yaml: gemini-2.5-pro is reported routed to gemini-3.8-flash" in problem
    assert "the service answers: model lookup gemini-3.5-flash" in caplog.text
    assert "served by gemini-3.8-flash" in caplog.text
