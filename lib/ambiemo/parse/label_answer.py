"""A single-label answer -> a one-hot distribution, and the final answer of a chain of thought.

Jia et al. (2026) read an ALM's free-text answer as one emotion label. Rules, stated once:
- a class named in brackets is an aside when exactly one class is named outside them
  ("Fearful (the voice trembles, though it could also be sad)" is fearful);
- a bracketed list of several classes ("From the list (angry, ..., sad), the answer is sad")
  echoes the prompt and is not read;
- synonyms map to canonical classes through `ambiemo.labels.SYNONYMS` (single-letter corpus
  codes are never read from free text);
- negated mentions ("not angry", "no sign of anger") never count (ambiemo.parse.mentions);
- an answer naming two or more different classes of the label space is a failure ("several
  classes"), not a guess at the first one;
- classes outside the label space are dropped, as their mass is in a distribution answer
  ("sad, with a hint of surprise" on CREMA-D is sad; the names are kept in `dropped`); an
  answer naming only such classes is a failure, and `out_of_space="refuse"` makes any such
  mention a failure.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from ambiemo.parse.mentions import mentions
from ambiemo.parse.result import ParseResult, failed, one_hot
from ambiemo.parse.surface import plain

# "Answer: sad", "**Final Answer:** sad", "Final answer - sad".
_FINAL = re.compile(r"answer\W{0,4}?\s*[:：]", re.IGNORECASE)
_FINAL_PROSE = re.compile(r"\banswer\s+is\b", re.IGNORECASE)   # read only without an "Answer:"
# A bracketed list naming this many classes echoes the prompt's list; it is not the answer.
ECHO_MIN_CLASSES = 3
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")


def final_answer(text: str) -> str | None:
    """The first non-empty line after the last "Answer:" (or "answer is") of a chain-of-thought
    response (None if absent): the reasoning names several emotions, the final line names the
    answer."""
    marks = list(_FINAL.finditer(text or "")) or list(_FINAL_PROSE.finditer(text or ""))
    if not marks:
        return None
    rest = [line for line in text[marks[-1].end():].splitlines() if plain(line).strip(" *_")]
    return rest[0].strip() if rest else ""


def _classes(text: str, classes: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(named in the label space, negated, named outside it), each in order, no repeats."""
    found, negated, outside = [], [], []
    for m in mentions(text):
        bucket = negated if m.negated else found if m.cls in classes else outside
        if m.cls not in bucket:
            bucket.append(m.cls)
    return found, negated, outside


def from_label(text: str, classes: Sequence[str], *, out_of_space: str = "drop") -> ParseResult:
    """The one class `text` names (negated mentions aside), as a one-hot over `classes`."""
    classes, k = list(classes), len(classes)
    text = _BRACKETED.sub(lambda b: " " if len(mentions(b.group())) >= ECHO_MIN_CLASSES
                          else b.group(), plain(text))
    found, negated, outside = _classes(text, classes)
    if len(found) > 1:                    # "Fearful (though it could also be sad)": the aside
        bare = _classes(_BRACKETED.sub(" ", text), classes)[0]
        if len(bare) == 1:
            found = bare
    if outside and (not found or out_of_space == "refuse"):
        return failed(k, f"class {outside[0]!r} is not in this label space {classes}")
    if not found:
        return failed(k, "no emotion label found"
                      + (f" (only negated ones: {negated})" if negated else ""))
    if len(found) > 1:
        return failed(k, f"several classes named without probabilities: {found}")
    return replace(one_hot(k, classes.index(found[0])), dropped=tuple(outside))
