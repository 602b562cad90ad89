"""Numbers as models write probabilities: 0.6, .6, 0,6, 60%, 60 percent, 3/5, 2 in 3,
60-70% (read at its midpoint), -0.1.

Each number keeps its unit, because the scale of an answer (0-1 or 0-100) is decided from
all its numbers together (ambiemo.parse.distribution), not from each one alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PERCENT, FRACTION, BARE = "percent", "fraction", "bare"

# A sign only when glued to the digits ("-0.1"); "Neutral - 0.6" is a separator. Digits inside
# words ("Qwen2", "2nd") are not numbers.
_DECIMAL = r"(?:[01],\d{1,3}(?![\d,])|\d+(?:\.\d+)?|\.\d+)"   # "0,6": a decimal comma
_NUMBER = re.compile(
    rf"(?<![\w.,])(?P<sign>-)?(?P<num>{_DECIMAL})"
    rf"(?:\s*(?:-|–|—)\s*(?P<hi>{_DECIMAL}))?"                       # a range: "60-70%"
    r"(?:\s*(?:/|\bin\b|\bout\s+of\b)\s*(?P<den>\d+(?:\.\d+)?))?"  # "3/5", "2 in 3"
    r"(?:\s*(?P<pct>%|percent\b|per\s*cent\b))?"
    r"(?![A-Za-z\d])")


@dataclass(frozen=True)
class Number:
    value: float       # as written: 60 for "60%", 0.6 for "3/5"
    unit: str          # PERCENT | FRACTION ("a/b") | BARE
    start: int
    end: int
    text: str


def _float(s: str) -> float:
    return float(s.replace(",", "."))


def numbers(text: str) -> list[Number]:
    """Every number of `text` in order; a fraction with a zero denominator is skipped."""
    out = []
    for m in _NUMBER.finditer(text):
        value = _float(m["num"])
        if m["hi"] is not None:           # a stated range is read at its midpoint
            value = (value + _float(m["hi"])) / 2
        unit = PERCENT if m["pct"] else BARE
        if m["den"] is not None:
            if float(m["den"]) == 0:
                continue
            value, unit = value / float(m["den"]), (PERCENT if m["pct"] else FRACTION)
        out.append(Number(-value if m["sign"] else value, unit, m.start(), m.end(), m.group()))
    return out
