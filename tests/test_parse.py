"""Response text -> distribution: the shapes models answer in, and every failure reason."""
import numpy as np
import pytest

from ambiemo.parse import parse_response

C = ["neutral", "happy", "sad", "angry"]


@pytest.mark.parametrize("text, expected", [
    ("Neutral", [1, 0, 0, 0]),
    ("The speaker sounds sad.", [0, 0, 1, 0]),
    ("anger", [0, 0, 0, 1]),
    ("neutral: 0.6, sad: 0.3, angry: 0.1", [0.6, 0, 0.3, 0.1]),
    ("Neutral 60%; Sad 40%", [0.6, 0, 0.4, 0]),
    ("happy = 50%\nsad = 50%", [0, 0.5, 0.5, 0]),
    ('{"neutral": 0.5, "happiness": 0.5}', [0.5, 0.5, 0, 0]),
    ('Answer: {"distribution": {"sad": 0.98, "angry": 0.0}}', [0, 0, 1, 0]),  # renormalised
    ('{"emotion": "Joy"}', [0, 1, 0, 0]),
])
def test_parses(text, expected):
    r = parse_response(text, C)
    assert r.ok, r.reason
    np.testing.assert_allclose(r.dist, expected)
    assert r.dist.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("text, reason", [
    ("", "empty response"),
    ("��} nxcited", "no emotion label found"),
    ("sad or angry", "several classes"),
    ("surprised", "not in this label space"),
    ("neutral: 0.3", "sum to 0.3"),
    ('{"neutral": "high"}', "non-numeric"),
    ("joyous: 1.0", "unknown emotion"),
    ("N", "no emotion label found"),  # corpus codes are not read from free text
])
def test_failures_are_reported_not_guessed(text, reason):
    r = parse_response(text, C)
    assert not r.ok
    assert reason in r.reason
    assert np.isnan(r.dist).all() and r.dist.shape == (4,)


def test_class_order_follows_label_space():
    r = parse_response("sad: 0.25, neutral: 0.75", ["sad", "neutral"])
    np.testing.assert_allclose(r.dist, [0.25, 0.75])


def test_chain_of_thought_reads_only_the_final_answer():
    classes = ["neutral", "happy", "sad", "angry"]
    text = "The pitch is low, maybe sad, maybe angry... but the pace is calm.\nAnswer: sad"
    r = parse_response(text, classes, answer="cot")
    assert r.ok and r.dist.tolist() == [0, 0, 1, 0]
    # Without the final line the reasoning names several classes: a failure, not a guess.
    r = parse_response("maybe sad, maybe angry", classes, answer="cot")
    assert not r.ok and "Answer:" in r.reason


def test_every_shipped_prompt_loads_and_verifier_prompts_need_an_answer_slot(repo):
    from ambiemo.alm.prompts import PromptTemplate, load_prompt
    prompts = {p.stem: load_prompt(p.stem, repo / "configs" / "prompts")
               for p in (repo / "configs" / "prompts").glob("*.yaml")}
    assert {"direct_label", "distribution", "cot", "verifier", "verifier_score"} <= set(prompts)
    assert prompts["verifier"].is_verifier and not prompts["cot"].is_verifier
    assert "{answer}" in prompts["verifier"].render(["sad", "happy"])
    with pytest.raises(ValueError, match="answer"):
        PromptTemplate("v", 1, "verify", "Is {classes} right?")
    with pytest.raises(ValueError, match="answer"):
        PromptTemplate("l", 1, "label", "Pick one of {classes}; candidate {answer}")
