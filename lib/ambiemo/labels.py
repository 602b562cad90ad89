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

# Words a model (or an annotation file) may use for a canonical class. Only unambiguous
# synonyms belong here: "calm" is not "neutral" in every corpus, so it is left out.
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


def canonical(word: str, *, allow_codes: bool = False) -> str | None:
    """Canonical class name for `word` (case and punctuation ignored), or None if unknown."""
    key = re.sub(r"[^a-z]", "", word.lower())
    if not allow_codes and key in _CODES:
        return None
    return SYNONYMS.get(key)


def columns(prefix: str, classes: tuple[str, ...] | list[str]) -> list[str]:
    """Column names such as `p_neutral` for `classes`, in order."""
    return [f"{prefix}_{c}" for c in classes]
