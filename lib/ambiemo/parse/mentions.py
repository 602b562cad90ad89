"""Where a response names an emotion, and whether that mention is negated.

A label answer is read from the classes a response names (Jia et al., 2026, read an ALM's
free-text answer as a label). "The speaker does not sound angry; they sound sad." names two
classes but answers one: a mention inside the scope of a negation ("not angry", "no sign of
anger", "doesn't sound angry", "rather than angry") never counts for that class.

Scope, stated once: a negation cue negates the emotion words in the next few words (up to
NEGATION_WINDOW words between cue and emotion), up to a clause boundary (punctuation or a
contrastive word such as "but", or a dash). Fixed phrases that look negative but affirm
("no doubt", "not only") open no scope. A question answered "No" rejects the classes it
asked about ("Angry? No — sad." answers sad): a "no" (or "nope", "not really") right after
a question mark and followed by punctuation or a dash negates the question's mentions and
opens no scope of its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ambiemo.labels import canonical

NEGATION_WINDOW = 3
_CUES = {"not", "no", "never", "without", "nor", "neither", "hardly", "barely", "none",
         "lacks", "lacking", "absent", "absence", "cannot", "cant"}
_CUE_PHRASES = (("rather", "than"), ("instead", "of"), ("as", "opposed", "to"),
                ("free", "of"), ("lack", "of"), ("devoid", "of"), ("anything", "but"))
# Look negative, affirm what follows.
_AFFIRMING = (("no", "doubt"), ("not", "only"), ("not", "just"), ("no", "question"),
              ("without", "a", "doubt"), ("without", "doubt"), ("not", "merely"),
              ("nothing", "but"))
_CONTRAST = {"but", "however", "though", "although", "yet", "instead", "rather", "whereas",
             "while"}
# Words, contractions included; sentence punctuation, dashes standing alone and new lines are
# boundaries.
_TOKEN = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?|[.;:!?,()\[\]|\n—–]|(?<![\w-])--?(?![\w-])")
_SENTENCE_END = {".", "!", "?", "\n"}
# Answers to a question that reject it ("Angry? No — sad.").
_REJECTIONS = (("no",), ("nope",), ("not", "really"), ("not", "quite"), ("no", "way"))


@dataclass(frozen=True)
class Mention:
    word: str          # as written
    cls: str           # canonical class (ambiemo.labels.SYNONYMS)
    start: int         # character offsets in the text
    end: int
    negated: bool


def _word(tok: str) -> str:
    return tok.lower().replace("’", "'")


def _starts(words: list[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(words[i:i + len(phrase)]) == phrase


def _negated_list(words: list[str], i: int) -> bool:
    """Whether the words after the comma at `i`, up to the clause's end, are only emotions,
    commas and conjunctions, closed by "or"/"nor"."""
    rest = []
    for w in words[i + 1:]:
        if w in {".", ";", ":", "!", "?", "\n"}:
            break
        rest.append(w)
    return (bool(rest) and {"or", "nor"} & set(rest)
            and all(w in {",", "or", "nor", "and"} or canonical(w) for w in rest))


def mentions(text: str) -> list[Mention]:
    """Every emotion word of `text` in order, each marked negated or not."""
    toks = list(_TOKEN.finditer(text))
    words = [_word(t.group()) for t in toks]
    out: list[Mention] = []
    scope = 0          # words still inside the current negation's scope (+1 for the cue)
    skip = 0           # words of a cue phrase still to pass
    sentence = 0       # index in `out` of the current sentence's first mention
    asked = (0, 0)     # mentions (out[a:b]) of the question that just ended with "?"
    i = 0
    for i, (tok, w) in enumerate(zip(toks, words)):
        if w in _SENTENCE_END:
            asked = (sentence, len(out)) if w == "?" else (0, 0)
            sentence = len(out)
        rejection = (i > 0 and words[i - 1] == "?" and not skip
                     and next((p for p in _REJECTIONS if _starts(words, i, p)
                               and (i + len(p) >= len(words)
                                    or not words[i + len(p)][0].isalpha())), None))
        if rejection:
            a, b = asked
            out[a:b] = [replace(m, negated=True) for m in out[a:b]]
            scope, skip = 0, len(rejection) - 1
            continue
        if not w[0].isalpha():
            # "no sign of anger, fear, or happiness": a list of emotions closed by "or"/"nor"
            # stays inside the negation; "not angry, sad" does not.
            scope = NEGATION_WINDOW + 1 if (w == "," and scope and _negated_list(words, i)) else 0
            continue
        if skip:
            skip -= 1
            continue
        if w in _CONTRAST:
            scope = 0
        affirming = next((p for p in _AFFIRMING if _starts(words, i, p)), None)
        if affirming:
            scope, skip = 0, len(affirming) - 1
            continue
        phrase = next((p for p in _CUE_PHRASES if _starts(words, i, p)), None)
        if phrase:
            scope, skip = NEGATION_WINDOW + 1, len(phrase) - 1
            continue
        if w in _CUES or w.endswith("n't"):
            scope = NEGATION_WINDOW + 1
            continue
        cls = canonical(w)
        # "other" is a class only standing alone ("Other.", "other: 0.1"), not in "any
        # other emotion" or "on the other hand".
        if cls == "other" and i + 1 < len(words) and words[i + 1][0].isalpha():
            cls = None
        if cls is not None:
            out.append(Mention(tok.group(), cls, tok.start(), tok.end(), scope > 0))
        scope = max(scope - 1, 0)
    return out
