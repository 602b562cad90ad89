"""The realistic answer corpus (tests/data/answers/): every case parses as written there.

A missing prediction is scored at the metric's worst value, so the parser decides how much of
a run is usable; these cases pin what it reads in the styles ALMs and chat models write. The
parse rate per file is printed and asserted, so a change that moves any case fails here
(and bumps ambiemo.parse.PARSER_VERSION).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from ambiemo.labels import classes_for
from ambiemo.parse import parse_response, parse_score, parse_yes_no

ANSWERS = Path(__file__).parent / "data" / "answers"
PROMPT_ANSWER = {"direct_label": "label", "distribution": "distribution", "cot": "cot"}
# Cases read successfully / all cases, per file: any moved case changes one of these.
EXPECTED_PARSED = {"direct_label": (60, 76), "distribution": (106, 131), "cot": (30, 38),
                   "verifier": (20, 30)}


def _cases(stem: str) -> list[dict]:
    cases = yaml.safe_load((ANSWERS / f"{stem}.yaml").read_text())
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), f"{stem}.yaml: duplicate ids"
    return cases


def _check(stem: str, case: dict) -> bool:
    """Assert `case` parses as expected; return whether it was read (ok)."""
    where = f"{stem}.yaml id={case['id']}"
    if stem == "verifier":
        read = {"score": parse_score, "verify": parse_yes_no}[case["answer"]]
        score, why = read(case["text"])
        if "fail" in case:
            assert score is None and case["fail"] in why, f"{where}: got {score!r}, {why!r}"
        else:
            assert score == pytest.approx(case["score"]) and not why, f"{where}: {why!r}"
        return score is not None
    classes = list(classes_for(case.get("corpus", "crema_d"), case.get("label_space")))
    r = parse_response(case["text"], classes, answer=PROMPT_ANSWER[stem],
                       out_of_space=case.get("out_of_space", "drop"))
    if "fail" in case:
        assert not r.ok and case["fail"] in r.reason, f"{where}: ok={r.ok} reason={r.reason!r}"
        assert r.failure == case.get("failure", "unparsed"), f"{where}: {r.failure}"
        assert np.isnan(r.dist).all()
        return False
    assert r.ok, f"{where}: {r.reason}"
    expected = np.zeros(len(classes))
    if "label" in case:
        expected[classes.index(case["label"])] = 1.0
        assert math.isnan(r.raw_sum), f"{where}: a label answer has no stated sum"
    else:
        for cls, p in case["dist"].items():
            expected[classes.index(cls)] = p
        expected /= expected.sum()
    np.testing.assert_allclose(r.dist, expected, atol=1e-9, err_msg=where)
    if "raw_sum" in case:
        assert r.raw_sum == pytest.approx(case["raw_sum"]), where
    assert r.dropped_mass == pytest.approx(case.get("dropped_mass", 0.0)), where
    return True


@pytest.mark.parametrize("stem", sorted(EXPECTED_PARSED))
def test_answer_corpus(stem):
    cases = _cases(stem)
    failures, parsed = [], 0
    for case in cases:
        try:
            parsed += _check(stem, case)
        except AssertionError as e:
            failures.append(f"{case['id']}: {str(e).strip().splitlines()[0]}")
    assert not failures, f"{len(failures)} case(s) moved:\n" + "\n".join(failures)
    print(f"\n{stem}: parsed {parsed}/{len(cases)} ({parsed / len(cases):.0%})")
    assert (parsed, len(cases)) == EXPECTED_PARSED[stem]


def test_the_corpus_is_large_enough_for_every_prompt_kind():
    sizes = {stem: len(_cases(stem)) for stem in EXPECTED_PARSED}
    assert sum(sizes.values()) >= 150 and min(sizes.values()) >= 20, sizes
