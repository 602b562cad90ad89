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
- ranges: a stated range is read at its midpoint ("neutral: 0.5-0.6" is 0.55, "60-70%" is
  65%; ambiemo.parse.numbers);
- one value for several classes: "happy and angry at 0.125 each" (also "apiece", "each at",
  "both at") gives the value to every class of the list, not only the nearest; without
  "each" ("sad and angry 0.2") it is refused (one value for both together, or for each?),
  and a bound ("each below 0.1") is no value for each;
- several values for several classes: "sad and fearful at 0.3 and 0.2" pairs them in order;
  a clause that leaves a class and a value unpaired is refused;
- merged classes: where the label space merges classes (ambiemo.labels.MERGES: IEMOCAP's
  4-class space counts excited as happy), a stated part adds to its merged class, exactly as
  the corpus loader merges the human votes;
- classes outside the label space (known emotions of other corpora, or unknown emotion words
  in a key position such as "calm: 0.2"): when they hold less than `max_dropped_share` of the
  stated mass (PARSER_SETTINGS, default 0.5) their mass is dropped and the rest
  renormalised, the dropped mass (on 0-1, before renormalising) kept as `dropped_mass`; at
  that share or above, renormalising would turn a hedge into a confident answer ("calm: 0.7,
  sad: 0.3" is not sad 1.0), so the answer is a failure of kind OUT_OF_SPACE;
  `out_of_space="refuse"` makes any such mass a failure;
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
from ambiemo.parse.result import (OUT_OF_SPACE, OUTSIDE_PREFIX, PARSER_SETTINGS, ParseResult,
                                  failed)
from ambiemo.parse.surface import clauses, plain

SUM_TOLERANCE = (0.5, 1.5)
OUT_OF_SPACE_MODES = ("drop", "refuse")
MAX_DROPPED_SHARE = PARSER_SETTINGS["max_dropped_share"]
# Words between a label and its number ("Neutral is the most likely at 60%"), at most.
MAX_GAP_AFTER = 6
MAX_GAP_BEFORE = 4      # "70% neutral", "a 60% chance listeners pick neutral"
# Keys in a "key: number" line that are not emotions.
IGNORED_KEYS = {"total", "sum", "overall", "confidence", "certainty", "score", "probability",
                "probabilities", "step", "note", "intensity", "valence", "arousal", "dominance",
                "uncertainty", "entropy", "rating", "answer"}
_WRAPPERS = ("distribution", "probabilities", "probability", "emotions", "emotion_probabilities",
             "scores", "probs", "result", "answer", "prediction", "predictions", "output")
_NAME_KEYS = ("emotion", "label", "class", "name", "category", "answer", "prediction",
              "predicted_emotion", "final_answer")
_VALUE_KEYS = ("probability", "prob", "p", "score", "confidence", "likelihood", "value",
               "percentage")
_KEY_LINE = re.compile(r"^\W*([A-Za-z][A-Za-z' -]{0,30}?)\W*\s*[:=|–—-]\s*[^\w-]*"
                       r"(?:about|approximately|approx|around|roughly|~)?\s*$")
# "Calm 0.4" in a list of "Label number" items: one word before the number, no separator.
_KEY_BARE = re.compile(r"^\W*([A-Za-z]{3,20})\s+(?:about|approximately|approx|around|roughly|~)?"
                       r"\s*$")
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
        head = clause[:ns[0].start]
        m = (_KEY_LINE.match(head) or _KEY_BARE.match(head)) if len(ns) == 1 else None
        key = m[1].strip() if m else ""
        if key and not clause[ns[0].end:].strip(" \t|*).,") and key.lower() not in IGNORED_KEYS:
            return [Pair(key, None, ns[0].value, ns[0].unit)]
        return []
    pairs, used = [], set()
    if len(ms) == len(ns) > 1 and ms[-1].end <= ns[0].start and not any(m.negated for m in ms):
        # "sad and fearful at 0.3 and 0.2": the values in the order of the classes
        return [Pair(m.word, m.cls, n.value, n.unit) for m, n in zip(ms, ns)]
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
    unpaired = [m for m in ms if id(m) not in used and not m.negated]
    if pairs and unpaired and len(pairs) < len(ns):
        # A value and a class of one clause left unpaired: reading only the pairs found
        # would drop that class's mass silently (and renormalise it away).
        raise Refused(f"cannot tell which value belongs to {unpaired[0].word!r} in "
                      f"{clause.strip()[:60]!r}")
    for m in unpaired:
        nxt = next((o for o in ms if o.start >= m.end), None)
        if pairs and nxt is not None and id(nxt) in used and _JOINED.match(
                clause[m.end:nxt.start]):
            raise Refused(f"one value for {m.word!r} and {nxt.word!r} together, or for each? "
                          f"{clause.strip()[:60]!r}")
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


# "each", "apiece" after the value, or "each"/"both" before it: one value for several classes.
_EACH_AFTER = re.compile(r"^\s*(?:each|apiece|for\s+each|for\s+both)\b", re.IGNORECASE)
_EACH_BEFORE = re.compile(r"\b(?:each|both)\b(?:\s+[A-Za-z]+){0,2}\s*$", re.IGNORECASE)
_LIST_JOIN = {",", "and", "&", "as well as", "plus"}
# A bound is not a value: "sad and angry each below 0.1" is not 0.1 each.
_BOUND = re.compile(r"\b(?:below|under|less\s+than|at\s+most|above|over|more\s+than|at\s+least|"
                    r"up\s+to)\b|[<>≤≥]", re.IGNORECASE)
# Two classes joined as one ("sad and angry 0.2"): one value, or one each? Not guessed.
_JOINED = re.compile(r"^\s*(?:,|and|&|or|plus|/)\s*$", re.IGNORECASE)
_LIST_TOKEN = re.compile(r"as\s+well\s+as|[A-Za-z]+|,|&")


def _shared_values(text: str) -> str:
    """`text` with "A, B and C at 0.1 each" written out as "A at 0.1; B at 0.1; C at 0.1", so
    the clause reader pairs the value with every class of the list."""
    out, last = [], 0
    for n in numbers(text):
        if n.start < last:
            continue
        after = _EACH_AFTER.match(text[n.end:])
        before = _EACH_BEFORE.search(text[last:n.start])
        if not (after or before):
            continue
        # Walk back from the value over at most MAX_GAP_AFTER words to the list's last class,
        # then over "A, B and" while every item is an emotion word.
        head = text[last:n.start]
        toks = list(_LIST_TOKEN.finditer(head))
        i = len(toks) - 1
        while i >= 0 and canonical(toks[i].group()) is None and len(toks) - i <= MAX_GAP_AFTER:
            i -= 1
        if i < 0 or canonical(toks[i].group()) is None:
            continue
        items, j = [toks[i]], i - 1
        while j >= 1 and re.sub(r"\s+", " ", toks[j].group().lower()) in _LIST_JOIN:
            if canonical(toks[j - 1].group()) is None:
                break
            items.insert(0, toks[j - 1])
            j -= 2
        if len(items) < 2 or _BOUND.search(head[items[-1].end():]):
            continue
        value = text[n.start:n.end]
        end = n.end + (after.end() if after else 0)
        out.append(head[:items[0].start()])
        out.append("; ".join(f"{t.group()} at {value}" for t in items) + ";")
        last = end
    out.append(text[last:])
    return "".join(out)


def read_pairs(text: str) -> list[Pair] | str:
    """The label-number pairs of an answer (empty if none), or a str: the single label of a
    JSON answer such as {"emotion": "sad"}. Raises Refused for unreadable JSON values."""
    text = plain(text)
    found = _from_json(text)
    if found:
        return found
    text = _shared_values(text)
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
               sum_tolerance: tuple[float, float] = SUM_TOLERANCE,
               merges: dict[str, str] | None = None,
               max_dropped_share: float = MAX_DROPPED_SHARE) -> ParseResult:
    """A distribution over `classes` from stated pairs (see the module's rules); `merges`
    maps a merged part to its class of `classes` (ambiemo.labels.merges_for)."""
    classes, k = list(classes), len(classes)
    merges = merges or {}
    if out_of_space not in OUT_OF_SPACE_MODES:
        raise ValueError(f"out_of_space must be one of {OUT_OF_SPACE_MODES}, got {out_of_space!r}")
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
    target = [merges.get(p.cls, p.cls) for p in pairs]
    outside = [p for p, t in zip(pairs, target) if t not in classes]
    if outside and out_of_space == "refuse":
        return failed(k, OUTSIDE_PREFIX + "; ".join(_outside_reason(p, classes) for p in outside),
                      OUT_OF_SPACE)
    dist = np.zeros(k)
    for t, v in zip(target, values):
        if t in classes:
            dist[classes.index(t)] += v
    kept = dist.sum()
    dropped = float(sum(v for t, v in zip(target, values) if t not in classes))
    if kept == 0:
        return failed(k, OUTSIDE_PREFIX + "no probability on a class of this label space: "
                      + "; ".join(_outside_reason(p, classes) for p in outside), OUT_OF_SPACE)
    if dropped >= max_dropped_share * raw_sum:
        return failed(k, OUTSIDE_PREFIX + f"{dropped / raw_sum:.0%} of the stated mass is on "
                      f"classes outside it ({', '.join(p.name for p in outside)}); at "
                      f"{max_dropped_share:.0%} or more the rest is not renormalised: "
                      + "; ".join(_outside_reason(p, classes) for p in outside), OUT_OF_SPACE)
    return ParseResult(dist / kept, True, raw_sum=raw_sum, dropped_mass=dropped,
                       dropped=tuple(p.name for p in outside))


def _outside_reason(p: Pair, classes: Sequence[str]) -> str:
    if p.cls is None:
        return f"unknown emotion {p.name!r}"
    return f"class {p.cls!r} is not in this label space {list(classes)}"
