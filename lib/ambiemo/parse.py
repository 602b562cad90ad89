"""Response text -> a distribution over the corpus's classes, or a recorded parse failure.

Jia et al. (2026) read an ALM's answer as an emotion label (a one-hot distribution) and,
with distribution prompts, as a probability per class. Three shapes are read here:
a JSON object (`{"neutral": 0.6, "sad": 0.4}`), a "label: probability" list (commas,
semicolons or new lines; percentages allowed) and a single label in free text. Anything
else is a failure with a reason; a failure is never turned into an answer.

Rules, stated once:
- synonyms map to canonical classes through `ambiemo.labels.SYNONYMS` (single-letter
  codes are never read from free text);
- free text naming two or more different classes without probabilities is a failure
  ("several classes"), not a guess at the first one;
- a class outside the corpus's label space is a failure;
- probabilities are renormalised when they sum to within 0.05 of 1 (or of 100 for
  percentages); otherwise, or if any is negative, the response is a failure.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ambiemo.labels import canonical

SUM_TOLERANCE = 0.05
# "label: 0.6" / "label = 60%" / "label 60%" (a bare number needs the percent sign).
_PAIR = re.compile(r"([A-Za-z][A-Za-z\-]*)\s*(?:[:=]\s*(\d+(?:\.\d+)?)\s*(%?)"
                   r"|\s(\d+(?:\.\d+)?)\s*(%))")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class ParseResult:
    dist: np.ndarray          # shape (K,); all NaN when parsing failed
    ok: bool
    reason: str = ""          # why it failed; empty on success


def _fail(k: int, reason: str) -> ParseResult:
    return ParseResult(np.full(k, np.nan), False, reason)


def _from_pairs(pairs: list[tuple[str, float, bool]], classes: Sequence[str]) -> ParseResult:
    k = len(classes)
    dist = np.zeros(k)
    percent = any(p for _, _, p in pairs)
    for name, value, _ in pairs:
        cls = canonical(name)
        if cls is None:
            return _fail(k, f"unknown emotion {name.strip()!r}")
        if cls not in classes:
            return _fail(k, f"class {cls!r} is not in this label space {list(classes)}")
        if value < 0:
            return _fail(k, f"negative probability for {cls!r}")
        dist[classes.index(cls)] += value
    total = dist.sum()
    scale = 100.0 if percent or total > 1 + SUM_TOLERANCE else 1.0
    if abs(total - scale) > SUM_TOLERANCE * scale:
        return _fail(k, f"probabilities sum to {total:g}, not {scale:g}")
    return ParseResult(dist / total, True)


def _from_json(text: str, classes: Sequence[str]) -> ParseResult | None:
    m = re.search(r"\{.*\}", text, flags=re.S)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("distribution", "probabilities", "emotions"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
    if set(obj) & {"emotion", "label"} and len(obj) == 1:
        return _from_label(str(next(iter(obj.values()))), classes)
    pairs = []
    for name, value in obj.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return _fail(len(classes), f"non-numeric probability for {name!r}")
        pairs.append((str(name), float(value), False))
    return _from_pairs(pairs, classes) if pairs else _fail(len(classes), "empty JSON object")


def _from_label(text: str, classes: Sequence[str]) -> ParseResult:
    k = len(classes)
    found = []
    for word in _WORD.findall(text):
        cls = canonical(word)
        if cls is not None and cls not in found:
            found.append(cls)
    if not found:
        return _fail(k, "no emotion label found")
    if len(found) > 1:
        return _fail(k, f"several classes named without probabilities: {found}")
    if found[0] not in classes:
        return _fail(k, f"class {found[0]!r} is not in this label space {list(classes)}")
    dist = np.zeros(k)
    dist[list(classes).index(found[0])] = 1.0
    return ParseResult(dist, True)


_FINAL = re.compile(r"answer\s*:", re.IGNORECASE)


def final_answer(text: str) -> str | None:
    """The text after the last "Answer:" of a chain-of-thought response (None if absent):
    the reasoning names several emotions, the final line names the answer."""
    marks = list(_FINAL.finditer(text or ""))
    return text[marks[-1].end():].strip() if marks else None


def parse_response(text: str, classes: Sequence[str], *, answer: str = "label") -> ParseResult:
    """Parse one response into a distribution over `classes` (in that order). With
    `answer="cot"` only the final answer (after the last "Answer:") is read."""
    classes = list(classes)
    if answer == "cot" and text and text.strip():
        final = final_answer(text)
        if final is None:
            return _fail(len(classes), 'no final "Answer:" line in the reasoning')
        text = final
    if not text or not text.strip():
        return _fail(len(classes), "empty response")
    parsed = _from_json(text, classes)
    if parsed is not None:
        return parsed
    pairs = [(n, float(v1 or v2), bool(p1 or p2)) for n, v1, p1, v2, p2 in _PAIR.findall(text)]
    if pairs:
        return _from_pairs(pairs, classes)
    return _from_label(text, classes)
