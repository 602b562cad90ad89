"""Label spaces per corpus and the synonym table that maps free text to canonical classes.

The study (Jia et al., 2026, "Decoding Ambiguous Emotions with Test-Time Scaling in
Audio-Language Models") compares model and human *distributions* over a corpus's emotion
classes, so every layer (Manifest columns, parsed responses, Predictions) must agree on one
canonical spelling and one order per label space. This module is that single source.
"""
from __future__ import annotations

import re

# (corpus, label space) -> canonical class names, in column order.
LABEL_SPACES: dict[str, dict[str, tuple[str, ...]]] = {
    "demo": {"4class": ("neutral", "happy", "sad", "angry")},
    "iemocap": {
        "4class": ("neutral", "happy", "angry", "sad"),
        "full": ("neutral", "happy", "excited", "sad", "angry", "frustrated",
                 "surprised", "fearful", "disgusted", "other"),
    },
    "msp_podcast": {
        "8class": ("angry", "sad", "happy", "surprised", "fearful", "disgusted",
                   "contempt", "neutral"),
        "9class": ("angry", "sad", "happy", "surprised", "fearful", "disgusted",
                   "contempt", "neutral", "other"),
    },
    "crema_d": {"6class": ("angry", "disgusted", "fearful", "happy", "neutral", "sad")},
}

DEFAULT_LABEL_SPACE: dict[str, str] = {
    "demo": "4class",
    "iemocap": "4class",
    "msp_podcast": "8class",
    "crema_d": "6class",
}

# Classes a label space merges: (corpus, label space) -> {class as named: the space's class}.
# The corpus loader merges the human votes with it, and the parser merges a model's stated
# mass with the same table (ambiemo.parse), so both sides of every metric mean the same by
# "happy". IEMOCAP's customary 4-class space counts Excited as happy (Busso et al. 2008 and
# most 4-class studies); no other corpus here merges classes (MSP-Podcast's 8-class space
# drops Other, it does not merge it).
MERGES: dict[tuple[str, str], dict[str, str]] = {
    ("iemocap", "4class"): {"excited": "happy"},
}

# Words a model (or an annotation file) may use for a canonical class. Only unambiguous
# synonyms belong here, the same in every label space: "calm" is not "neutral" (RAVDESS
# and TESS-style sets keep calm apart from neutral, and a calm voice can be happy or sad),
# "bored", "relaxed", "contempt" on CREMA-D, "surprised" on IEMOCAP 4-class are classes a
# listener of that corpus could not choose. Their mass is outside the label space
# (ambiemo.parse.distribution: dropped when small, the answer refused when it is most of
# it). Per-space merges are MERGES above, not synonyms. docs/design.md lists the decisions.
SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "neutrality": "neutral", "neu": "neutral", "n": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy", "hap": "happy",
    "h": "happy",
    "excited": "excited", "excitement": "excited", "exc": "excited",
    "sad": "sad", "sadness": "sad", "sorrow": "sad", "sorrowful": "sad", "s": "sad",
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry", "mad": "angry",
    "furious": "angry",
    "frustrated": "frustrated", "frustration": "frustrated", "fru": "frustrated",
    "surprised": "surprised", "surprise": "surprised", "astonished": "surprised",
    "sur": "surprised", "u": "surprised",
    "fearful": "fearful", "fear": "fearful", "afraid": "fearful", "scared": "fearful",
    "frightened": "fearful", "terrified": "fearful", "fea": "fearful", "f": "fearful",
    "disgusted": "disgusted", "disgust": "disgusted", "dis": "disgusted", "d": "disgusted",
    "contempt": "contempt", "contemptuous": "contempt", "c": "contempt",
    "other": "other", "oth": "other",
}

# Single letters are corpus codes (CREMA-D's A/D/F/H/N/S, MSP-Podcast's A/S/H/U/F/D/C/N);
# they are accepted only where a caller asks for codes, never inside free model text.
_CODES = {k for k in SYNONYMS if len(k) == 1}


def classes_for(corpus: str, label_space: str | None = None) -> tuple[str, ...]:
    """The canonical classes of `corpus` in `label_space` (None: the corpus default)."""
    if corpus not in LABEL_SPACES:
        raise KeyError(f"unknown corpus {corpus!r}; valid: {sorted(LABEL_SPACES)}")
    space = label_space or DEFAULT_LABEL_SPACE[corpus]
    spaces = LABEL_SPACES[corpus]
    if space not in spaces:
        raise KeyError(f"unknown label space {space!r} for corpus {corpus!r}; valid: {sorted(spaces)}")
    return spaces[space]


def merges_for(classes) -> dict[str, str]:
    """The merges of the label space whose classes are exactly `classes` (in order), {} when
    no label space merges or `classes` is no registered space. The parser is handed class
    lists, not corpus names; the class tuple names the space (the two 4-class spaces,
    IEMOCAP's and the demo's, differ in order, and only IEMOCAP's merges)."""
    key = tuple(classes)
    for corpus, spaces in LABEL_SPACES.items():
        for space, cls in spaces.items():
            if cls == key and (corpus, space) in MERGES:
                return dict(MERGES[(corpus, space)])
    return {}


def projection(corpus: str, label_space: str | None = None) -> dict[str, str]:
    """{class of the corpus's full vocabulary: class of `label_space`}: every class of the
    space maps to itself, and the space's MERGES add the merged parts."""
    space = label_space or DEFAULT_LABEL_SPACE[corpus]
    classes = classes_for(corpus, space)
    return {**{c: c for c in classes}, **MERGES.get((corpus, space), {})}


def canonical(word: str, *, allow_codes: bool = False) -> str | None:
    """Canonical class name for `word` (case and punctuation ignored), or None if unknown."""
    key = re.sub(r"[^a-z]", "", word.lower())
    if not allow_codes and key in _CODES:
        return None
    return SYNONYMS.get(key)


def columns(prefix: str, classes: tuple[str, ...] | list[str]) -> list[str]:
    """Column names such as `p_neutral` for `classes`, in order."""
    return [f"{prefix}_{c}" for c in classes]
