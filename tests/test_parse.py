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
