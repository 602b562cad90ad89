"""A verbalised distribution -> probabilities over the corpus's classes.

The study's distribution prompt asks an ALM for the probability that a listener would choose
each emotion (Jia et al., 2026, compare such distributions with the human label
distribution). Models state them as JSON (fenced or not, flat, wrapped or as a list of
objects) or as label-number pairs in prose, lists or tables; `read_pairs` finds the pairs,
`from_pairs` turns them into a distribution.

Rules, stated once:
- scale: numbers with % are percentages; fractions "a/b" are on 0-1; bare numbers are on 0-1
  when none exceeds 1, otherwise on 0-100;
- sums: probabilities are renormalised when their sum lies within SUM_TOLERANCE times the
  scale (default 0.5x to 1.5x); outside it, at zero, or with a negative value the answer is
  a failure. The stated sum is kept as `raw_sum` (on 0-1);
- classes outside the label space (known emotions of other corpora, or unknown emotion words
  in a key position such as "calm: 0.2"): their mass is dropped and the rest renormalised,
  the dropped mass (on 0-1, before renormalising) kept as `dropped_mass`;
  `out_of_space="refuse"` makes them a failure;
- a label and its number belong together inside one clause (or one column of a table whose
  header row names the classes); "0.7 neutral" and "neutral (about 70%)" both pair, a number
  far from any label is not a probability; a pair restated with the same value counts once,
  the same label with two different values is a failure.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ambiemo.labels import canonical
from ambiemo.parse.mentions import mentions
from ambiemo.parse.numbers import BARE, PERCENT, numbers
from ambiemo.parse.result import ParseResult, failed
from ambiemo.parse.surface import clauses, plain

SUM_TOLERANCE = (0.5, 1.5)
OUT_OF_SPACE = ("drop", "refuse")
# Words between a label and its number ("Neutral is the most likely at 60%"), at most.
MAX_GAP_AFTER = 6
MAX_GAP_BEFORE = 4      # "70% neutral", "a 60% chance listeners pick neutral"
# Keys in a "key: number" line that are not emotions.
IGNORED_KEYS = {"total", "sum", "overall", "confidence", "certainty", "score", "probability",
                "probabilities", "step", "note"}
_WRAPPERS = ("distribution", "probabilities", "probability", "emotions", "emotion_probabilities",
             "scores", "probs", "result", "answer", "prediction", "predictions", "output")
_NAME_KEYS = ("emotion", "label", "class", "name", "category", "answer", "prediction",
              "predicted_emotion", "final_answer")
_VALUE_KEYS = ("probability", "prob", "p", "score", "confidence", "likelihood", "value",
               "percentage")
_KEY_LINE = re.compile(r"^\W*([A-Za-z][A-Za-z' -]{0,30}?)\W*\s*[:=|–—-]\s*[^\w-]*"
                       r"(?:about|approximately|approx|around|roughly|~)?\s*$")
_WORDS = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Pair:
    name: str           # as written
    cls: str | None     # canonical class; None for an unknown emotion word
    value: float        # as written (60 for "60%")
    unit: str           # numbers.PERCENT | FRACTION | BARE


class Refused(Exception):
    """The answer holds pairs that cannot be read (e.g. a non-numeric JSON value)."""


def _json_value(name: str, value) -> tuple[float, str]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Refused(f"non-numeric probability for {name!r}: {value!r}")
    if isinstance(value, str):
        nums = numbers(value)
        if len(nums) != 1:
            raise Refused(f"non-numeric probability for {name!r}: {value!r}")
        return nums[0].value, nums[0].unit
    return float(value), BARE


def _numeric(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, str) and len(numbers(value)) == 1)


def _json_pairs(obj) -> list[Pair] | str | None:
    """Pairs of a parsed JSON value; a str is a single label ({"emotion": "sad"})."""
    if isinstance(obj, list):
        pairs = []
        for item in obj:
            if not isinstance(item, dict):
                return None
            item = {str(k).lower(): v for k, v in item.items()}
            name = next((item[k] for k in _NAME_KEYS if k in item), None)
            vkey = next((k for k in _VALUE_KEYS if k in item), None)
            if name is None or vkey is None:
                return None
            pairs.append(Pair(str(name), canonical(str(name)), *_json_value(str(name), item[vkey])))
        return pairs or None
    if not isinstance(obj, dict) or not obj:
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in _WRAPPERS:
        if isinstance(lowered.get(key), (dict, list)):
            return _json_pairs(lowered[key])
    name = next((lowered[k] for k in _NAME_KEYS if isinstance(lowered.get(k), str)), None)
    if name is not None:                   # {"emotion": "sad"} or {"emotion": "sad", "p": 0.8}
        vkey = next((k for k in _VALUE_KEYS if k in lowered), None)
        return name if vkey is None else [Pair(name, canonical(name),
                                               *_json_value(name, lowered[vkey]))]
    # Non-numeric values of keys that are no emotion ("reasoning": "...") are commentary.
    return [Pair(str(k), canonical(str(k)), *_json_value(str(k), v))
            for k, v in obj.items() if str(k).lower() not in IGNORED_KEYS
            and (canonical(str(k)) is not None or _numeric(v))]


def _from_json(text: str) -> list[Pair] | str | None:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    end = max(text.rfind("}"), text.rfind("]"))
    if end <= start:
        return None
    chunk = text[start:end + 1]
    for load in (json.loads, ast.literal_eval):   # literal_eval: {'neutral': 0.6}, Python style
        try:
            return _json_pairs(load(chunk))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _gap(text: str, a: int, b: int) -> int:
    return len(_WORDS.findall(text[a:b]))


def _clause_pairs(clause: str) -> list[Pair]:
    ms = mentions(clause)
    ns = numbers(clause)
    if not ns:
        return []
    if not ms:
        m = _KEY_LINE.match(clause[:ns[0].start]) if len(ns) == 1 else None
        key = m[1].strip() if m else ""
        if key and not clause[ns[0].end:].strip(" \t|*).,") and key.lower() not in IGNORED_KEYS:
            return [Pair(key, None, ns[0].value, ns[0].unit)]
        return []
    pairs, used = [], set()
    if ns[0].start < ms[0].start:          # "70% neutral, 30% sad": the label follows
        for n in ns:
            m = next((m for m in ms if m.start >= n.end), None)
            if m and id(m) not in used and _gap(clause, n.end, m.start) <= MAX_GAP_BEFORE:
                used.add(id(m))
                pairs.append(Pair(m.word, m.cls, n.value, n.unit))
    else:                                  # "neutral (about 70%)": the label precedes
        for n in ns:
            m = next((m for m in reversed(ms) if m.end <= n.start), None)
            if m and id(m) not in used and _gap(clause, m.end, n.start) <= MAX_GAP_AFTER:
                used.add(id(m))
                pairs.append(Pair(m.word, m.cls, n.value, n.unit))
    return pairs


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_pairs(text: str) -> list[Pair]:
    """A table with the classes as its header row and the probabilities in the next row
    ("| Angry | Sad |" over "| 0.2 | 0.8 |"); a first column of row titles is allowed."""
    rows = [_cells(line) for line in text.splitlines() if line.count("|") >= 2]
    for head, values in zip(rows, rows[1:]):
        if len(head) != len(values) or len(head) < 2:
            continue
        start = 0 if canonical(head[0]) else 1     # "| Emotion | Angry | ..." / "| p | 0.2 |"
        named = [canonical(c) for c in head[start:]]
        nums = [numbers(c) for c in values[start:]]
        if (len(named) >= 2 and all(named) and all(len(n) == 1 and n[0].text.strip() == c
                                                   for n, c in zip(nums, values[start:]))):
            return [Pair(h, cls, n[0].value, n[0].unit)
                    for h, cls, n in zip(head[start:], named, nums)]
    return []


def read_pairs(text: str) -> list[Pair] | str:
    """The label-number pairs of an answer (empty if none), or a str: the single label of a
    JSON answer such as {"emotion": "sad"}. Raises Refused for unreadable JSON values."""
    text = plain(text)
    found = _from_json(text)
    if found:
        return found
    pairs = _table_pairs(text) or [p for _, c in clauses(text) for p in _clause_pairs(c)]
    out: list[Pair] = []
    for p in pairs:                        # a restated pair counts once
        same = [q for q in out if q.name.lower() == p.name.lower()]
        if any((q.value, q.unit) == (p.value, p.unit) for q in same):
            continue
        if same:
            raise Refused(f"two probabilities for {p.name!r}: {same[0].value:g} and {p.value:g}")
        out.append(p)
    return out


def from_pairs(pairs: Sequence[Pair], classes: Sequence[str], *, out_of_space: str = "drop",
               sum_tolerance: tuple[float, float] = SUM_TOLERANCE) -> ParseResult:
    """A distribution over `classes` from stated pairs (see the module's rules)."""
    classes, k = list(classes), len(classes)
    if out_of_space not in OUT_OF_SPACE:
        raise ValueError(f"out_of_space must be one of {OUT_OF_SPACE}, got {out_of_space!r}")
    for p in pairs:
        if p.value < 0:
            return failed(k, f"negative probability for {p.name!r}: {p.value:g}")
    bare = [p.value for p in pairs if p.unit == BARE]
    bare_scale = 1.0 if not bare or max(bare) <= 1 else 100.0
    shown = 100.0 if bare_scale == 100 or all(p.unit == PERCENT for p in pairs) else 1.0
    values = np.array([p.value / (100.0 if p.unit == PERCENT else bare_scale if p.unit == BARE
                                  else 1.0) for p in pairs])
    raw_sum = float(values.sum())
    lo, hi = sum_tolerance
    if raw_sum == 0:
        return failed(k, "probabilities sum to 0")
    if not lo <= raw_sum <= hi:
        return failed(k, f"probabilities sum to {raw_sum * shown:g}, not {shown:g} "
                         f"(renormalised only within {lo:g}x to {hi:g}x)")
    outside = [p for p in pairs if p.cls not in classes]
    if outside and out_of_space == "refuse":
        return failed(k, "; ".join(_outside_reason(p, classes) for p in outside))
    dist = np.zeros(k)
    for p, v in zip(pairs, values):
        if p.cls in classes:
            dist[classes.index(p.cls)] += v
    kept = dist.sum()
    if kept == 0:
        return failed(k, "no probability on a class of this label space: "
                         + "; ".join(_outside_reason(p, classes) for p in outside))
    dropped = float(sum(v for p, v in zip(pairs, values) if p.cls not in classes))
    return ParseResult(dist / kept, True, raw_sum=raw_sum, dropped_mass=dropped,
                       dropped=tuple(p.name for p in outside))


def _outside_reason(p: Pair, classes: Sequence[str]) -> str:
    if p.cls is None:
        return f"unknown emotion {p.name!r}"
    return f"class {p.cls!r} is not in this label space {list(classes)}"
