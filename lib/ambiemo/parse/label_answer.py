"""A single-label answer -> a one-hot distribution, and the final answer of a chain of thought.

Jia et al. (2026) read an ALM's free-text answer as one emotion label. Rules, stated once:
- a class named in brackets is an aside when exactly one class is named outside them
  ("Fearful (the voice trembles, though it could also be sad)" is fearful);
- a bracketed list of several classes ("From the list (angry, ..., sad), the answer is sad")
  echoes the prompt and is not read;
- synonyms map to canonical classes through `ambiemo.labels.SYNONYMS` (single-letter corpus
  codes are never read from free text);
- negated mentions ("not angry", "no sign of anger") never count, nor does a class a
  question asked about and the answer rejected ("Angry? No — sad." is sad;
  ambiemo.parse.mentions);
- a hedge is an aside when exactly one class is named without one: "Neutral, though there's a
  hint of sadness" is neutral. Hedges are degree phrases directly before the class ("a
  hint / touch / tinge / trace / note / shade / undertone of", "slightly", "a little", "a
  bit"); an alternative ("though it could also be sad") is no hedge, and "slightly more sad
  than angry" names two classes (a failure);
- merged classes (ambiemo.labels.MERGES) count as their class: "Excited." is happy on
  IEMOCAP's 4-class space;
- an answer naming two or more different classes of the label space is a failure ("several
  classes"), not a guess at the first one;
- classes outside the label space are dropped when they are not the answer's primary class,
  as their mass is in a distribution answer ("sad, with a hint of surprise" on CREMA-D is
  sad; the names are kept in `dropped`); an answer whose first class (outside brackets,
  neither negated nor hedged) is outside the space ("Surprised, maybe a little happy"), or
  that names only such classes, is a failure of kind OUT_OF_SPACE, and
  `out_of_space="refuse"` makes any such mention one.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from ambiemo.parse.mentions import Mention, mentions
from ambiemo.parse.result import OUT_OF_SPACE, OUTSIDE_PREFIX, ParseResult, failed, one_hot
from ambiemo.parse.surface import plain

# "Answer: sad", "**Final Answer:** sad", "Final answer - sad".
_FINAL = re.compile(r"answer\W{0,4}?\s*[:：]", re.IGNORECASE)
_FINAL_PROSE = re.compile(r"\banswer\s+is\b", re.IGNORECASE)   # read only without an "Answer:"
# A bracketed list naming this many classes echoes the prompt's list; it is not the answer.
ECHO_MIN_CLASSES = 3
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
_HEDGE = re.compile(r"(?:\b(?:hints?|touch|tinge|traces?|notes?|shades?|undertones?|edge|whiff|"
                    r"suggestion)\s+of(?:\s+[a-z]+)?|\b(?:slightly|faintly|mildly|a\s+little|"
                    r"a\s+bit|a\s+touch)(?:\s+of)?)\s*$", re.IGNORECASE)



def final_answer(text: str) -> str | None:
    """The first non-empty line after the last "Answer:" (or "answer is") of a chain-of-thought
    response (None if absent): the reasoning names several emotions, the final line names the
    answer."""
    marks = list(_FINAL.finditer(text or "")) or list(_FINAL_PROSE.finditer(text or ""))
    if not marks:
        return None
    rest = [line for line in text[marks[-1].end():].splitlines() if plain(line).strip(" *_")]
    return rest[0].strip() if rest else ""


def _hedged(text: str, m: Mention) -> bool:
    return bool(_HEDGE.search(text[max(0, m.start - 60):m.start]))


def _classes(text: str, classes: Sequence[str], merges: dict[str, str] | None = None,
             *, hedges: bool = True) -> tuple[list[str], list[str], list[str]]:
    """(named in the label space, negated, named outside it), each in order, no repeats;
    `hedges=False` leaves hedged mentions out."""
    found, negated, outside = [], [], []
    merges = merges or {}
    for m in mentions(text):
        if not hedges and _hedged(text, m):
            continue
        cls = merges.get(m.cls, m.cls)
        bucket = negated if m.negated else found if cls in classes else outside
        if cls not in bucket:
            bucket.append(cls)
    return found, negated, outside


def _primary(text: str, merges: dict[str, str] | None) -> str | None:
    """The first class named outside brackets, neither negated nor hedged (None if none)."""
    bare = _BRACKETED.sub(" ", text)
    for m in mentions(bare):
        if not m.negated and not _hedged(bare, m):
            return (merges or {}).get(m.cls, m.cls)
    return None


def from_label(text: str, classes: Sequence[str], *, out_of_space: str = "drop",
               merges: dict[str, str] | None = None) -> ParseResult:
    """The one class `text` names (negated mentions aside), as a one-hot over `classes`;
    `merges` maps a merged part to its class (ambiemo.labels.merges_for)."""
    classes, k = list(classes), len(classes)
    text = _BRACKETED.sub(lambda b: " " if len(mentions(b.group())) >= ECHO_MIN_CLASSES
                          else b.group(), plain(text))
    found, negated, outside = _classes(text, classes, merges)
    if len(found) > 1:                    # "Fearful (though it could also be sad)": the aside
        bare = _classes(_BRACKETED.sub(" ", text), classes, merges)[0]
        if len(bare) == 1:
            found = bare
    if len(found) > 1:                    # "Neutral, though there's a hint of sadness"
        plain_named = _classes(text, classes, merges, hedges=False)[0]
        if len(plain_named) == 1:
            found = plain_named
    if outside and (not found or out_of_space == "refuse"):
        return failed(k, f"{OUTSIDE_PREFIX}class {outside[0]!r} is not in this label space "
                         f"{classes}", OUT_OF_SPACE)
    primary = _primary(text, merges)
    if outside and primary is not None and primary not in classes:
        # "Surprised, maybe a little happy": the answer is a class outside the space; the
        # in-space one is its hedge, and reading it as the answer would be a guess.
        return failed(k, f"{OUTSIDE_PREFIX}the answer's first class {primary!r} is not in this "
                         f"label space {classes} (the others are named after it: {found})",
                      OUT_OF_SPACE)
    if not found:
        return failed(k, "no emotion label found"
                      + (f" (only negated ones: {negated})" if negated else ""))
    if len(found) > 1:
        return failed(k, f"several classes named without probabilities: {found}")
    return replace(one_hot(k, classes.index(found[0])), dropped=tuple(outside))
