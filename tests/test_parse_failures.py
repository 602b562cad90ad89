"""Missing predictions broken down by why they are missing, per model and prompt (issue #20):
the reasons the sampling run stores today are classified, and the counts add up."""
import numpy as np
import pandas as pd
import pytest

from ambiemo.alm.hosted.retry import ApiFailure
from ambiemo.parse import FAILURE_KINDS, failure_breakdown, failure_kind, parse_response

CREMA = ["angry", "disgusted", "fearful", "happy", "neutral", "sad"]


@pytest.mark.parametrize("ok, error, n_tokens, limit, kind", [
    (True, "", 5, 16, ""),
    (False, ApiFailure(503, "Service Unavailable", True).reason, None, None, "api_error"),
    (False, ApiFailure(None, "timed out", True).reason, None, None, "api_error"),
    (False, "audio: /data/x.wav: 12 NaN samples", None, None, "audio_error"),
    (False, "out of memory on one clip: CUDA out of memory", None, None, "out_of_memory"),
    (False, "no emotion label found", 16, 16, "truncated"),   # cut at the limit
    (False, "no emotion label found", 7, 16, "unparsed"),
    (False, "no emotion label found", None, 16, "unparsed"),
    (False, "outside the label space: 70% of the stated mass ...", 7, 16, "out_of_space"),
    (False, "outside the label space: 70% of the stated mass ...", 16, 16, "truncated"),
])
def test_failure_kind_of_stored_reasons(ok, error, n_tokens, limit, kind):
    assert failure_kind(ok, error, n_tokens, limit) == kind


def _row(model, prompt, text, **extra):
    r = parse_response(text, CREMA, answer="distribution")
    return dict(model=model, prompt=prompt, parse_ok=r.ok, parse_error=r.reason,
                raw_sum=r.raw_sum, dropped_mass=r.dropped_mass, **extra)


def test_breakdown_counts_each_kind_per_model_and_prompt():
    rows = pd.DataFrame([
        _row("qwen", "distribution", "neutral: 0.6\nsad: 0.4"),
        _row("qwen", "distribution", "neutral: 0.5\nsad: 0.4"),            # renormalised
        _row("qwen", "distribution", "surprised: 0.4\nneutral: 0.6"),      # dropped mass
        _row("qwen", "distribution", "calm: 0.7\nsad: 0.3"),               # out_of_space
        _row("qwen", "distribution", "I cannot tell."),                     # unparsed
        _row("qwen", "distribution", "neutral: 0.6, sa", n_tokens=64, max_new_tokens=64),
        dict(model="gpt", prompt="distribution", parse_ok=False, raw_sum=np.nan,
             dropped_mass=0.0, parse_error=ApiFailure(429, "rate limited", True).reason),
        dict(model="gpt", prompt="distribution", parse_ok=False, raw_sum=np.nan,
             dropped_mass=0.0, parse_error="audio: empty file"),
    ])
    out = failure_breakdown(rows).set_index(["model", "prompt"])
    qwen, gpt = out.loc[("qwen", "distribution")], out.loc[("gpt", "distribution")]
    assert (qwen["n"], qwen["parsed"], qwen["unparsed"], qwen["out_of_space"],
            qwen["renormalised"], qwen["dropped"]) == (6, 4, 1, 1, 2, 1)
    # "neutral: 0.6, sa" parsed (0.6 renormalised): truncation is only a failure when unreadable
    assert qwen["truncated"] == 0
    assert (gpt["n"], gpt["parsed"], gpt["api_error"], gpt["audio_error"]) == (2, 0, 1, 1)
    assert (out[["parsed", *FAILURE_KINDS]].sum(axis=1) == out["n"]).all()


def test_breakdown_prefers_the_recorded_kind_and_refuses_bad_input():
    rows = pd.DataFrame(dict(model=["m", "m"], prompt=["p", "p"], parse_ok=[False, True],
                             failure=["truncated", ""]))
    out = failure_breakdown(rows)
    assert out.loc[0, "truncated"] == 1 and out.loc[0, "parsed"] == 1
    with pytest.raises(ValueError, match="lack column"):
        failure_breakdown(rows.drop(columns="prompt"))
    with pytest.raises(ValueError, match="unknown failure kind"):
        failure_breakdown(rows.assign(failure=["timeout", ""]))


def test_a_generation_cut_at_the_token_limit_is_truncated_not_unparsed_or_renormalised():
    from ambiemo.parse import parse_generation
    cut = dict(n_tokens=32, max_new_tokens=32)
    r = parse_generation("neutral: 0.6\nsad: 0.", CREMA, answer="distribution", **cut)
    assert not r.ok and r.failure == "truncated" and "max_new_tokens=32" in r.reason
    r = parse_generation("Let me think about the pitch, which", CREMA, answer="cot", **cut)
    assert not r.ok and r.failure == "truncated" and "Answer:" in r.reason
    # A complete answer that happens to end at the limit is kept; so is any uncut answer.
    assert parse_generation("neutral: 0.6\nsad: 0.4", CREMA, answer="distribution", **cut).ok
    assert parse_generation("Sad, because the pitch", CREMA, answer="label", **cut).ok
    r = parse_generation("neutral: 0.6\nsad: 0.", CREMA, answer="distribution",
                         n_tokens=12, max_new_tokens=32)
    assert r.ok and r.raw_sum == pytest.approx(0.6)
    assert parse_generation("no idea", CREMA, answer="label", n_tokens=3).failure == "unparsed"
