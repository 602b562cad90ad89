"""Verifier replies -> a score in [0, 1], or (None, why).

The study's verifier (GPT-4o in Jia et al., 2026; an open ALM here) judges one candidate
answer. Open models are scored from the Yes/No token probabilities (alm/hf.py, no text to
read); hosted models reply in text: a 1-10 score (prompt `verifier_score`) or Yes/No (prompt
`verifier`). A score is the number a reply opens with, or else its only number; a reply with
no readable verdict, or two different numbers and none leading, is a failure, never a guess.
"""
from __future__ import annotations

import re

# The scale restated in the reply is not the score: "1-10", "1 to 10", "out of 10", "/10".
_SCALE = re.compile(r"\b(?:from\s+)?1\s*(?:-|–|to)\s*10\b|(?:/|\bout\s+of\s+|\bof\s+)10\b",
                    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_YES = {"yes", "correct", "true", "right"}
_NO = {"no", "incorrect", "false", "wrong"}


# A reply that opens with its score ("8 - the tone ...", "**Score:** 7. Two cues ...").
_JUNK = r"(?:[^\w-]|_|-(?!\d))*"          # "-3" keeps its sign
_LEADING = re.compile(rf"^{_JUNK}(?:(?:final\s+)?(?:score|rating)\b{_JUNK})?(-?\d+(?:\.\d+)?)",
                      re.IGNORECASE)


def parse_score(text: str) -> tuple[float | None, str]:
    """A 1-10 verifier reply -> (score / 10, "") or (None, why). The score is the number the
    reply opens with, or else the one number it holds (a restated scale such as "out of 10"
    aside); it must be an integer from 1 to 10, and two different numbers are a failure."""
    rest = _SCALE.sub(" ", text or "")
    lead = _LEADING.match(rest)
    nums = [lead[1]] if lead else _NUMBER.findall(rest)
    if not nums:
        return None, f"no score in verifier reply {text[:80]!r}"
    bad = [n for n in nums if not re.fullmatch(r"\d+", n) or not 1 <= int(n) <= 10]
    if bad:
        return None, f"score {bad[0]} is not an integer from 1 to 10 in {text[:80]!r}"
    if len(set(nums)) > 1:
        return None, f"several scores ({', '.join(dict.fromkeys(nums))}) in {text[:80]!r}"
    return int(nums[0]) / 10, ""


def parse_yes_no(text: str) -> tuple[float | None, str]:
    """A Yes/No verifier reply -> (1.0 or 0.0, "") or (None, why). The first verdict word
    decides ("Yes, ..." / "No, it is not correct"); a reply with none is a failure."""
    for word in re.findall(r"[A-Za-z]+", text or ""):
        w = word.lower()
        if w in _YES:
            return 1.0, ""
        if w in _NO:
            return 0.0, ""
    return None, f"no Yes/No verdict in verifier reply {(text or '')[:80]!r}"
