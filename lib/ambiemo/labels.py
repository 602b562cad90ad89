"""Label spaces per corpus and the synonym table that maps free text to canonical classes.

The study (Jia et al., 2026, "Decoding Ambiguous Emotions with Test-Time Scaling in
Audio-Language Models") compares model and human *distributions* over a corpus's emotion
classes, so every layer (Manifest columns, parsed responses, Predictions) must agree on one
canonical spelling and one order per label space. This module is that single source.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


# Words a model (or an annotation file) may use for a canonical class. Only unambiguous
# synonyms belong here, the same in every label space: "calm" is not "neutral" (RAVDESS
# and TESS-style sets keep calm apart from neutral, and a calm voice can be happy or sad),
# "bored", "relaxed", "contempt" on CREMA-D, "surprised" on IEMOCAP 4-class are classes a
# listener of that corpus could not choose. Their mass is outside the label space
# (ambiemo.parse.distribution: dropped when small, the answer refused when it is most of
# it). Per-space merges are LabelSpace.merges below, not synonyms. docs/design.md lists the
# decisions.
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


def canonical(word: str, *, allow_codes: bool = False) -> str | None:
    """Canonical class name for `word` (case and punctuation ignored), or None if unknown."""
    key = re.sub(r"[^a-z]", "", word.lower())
    if not allow_codes and key in _CODES:
        return None
    return SYNONYMS.get(key)


def columns(prefix: str, classes: tuple[str, ...] | list[str]) -> list[str]:
    """Column names such as `p_neutral` for `classes`, in order."""
    return [f"{prefix}_{c}" for c in classes]


# A label space is an ordered list of canonical classes and the merges that count other
# labels as one of them (IEMOCAP's 4-class space counts "excited" as happy). One definition
# serves the corpus loaders (rater votes) and the parser (model answers).
# Adding one is one entry in LABEL_SPACES; the first space of a corpus is its default.


def _key(word: str) -> str:
    return re.sub(r"[^a-z]", "", str(word).lower())


@dataclass(frozen=True)
class LabelSpace:
    """Ordered canonical classes and the merges that count other labels as one of them.

    `merges` maps a source label (a rater's or a model's word, or its canonical name) to a
    class of the space: `{"excited": "happy"}`. Iterating a LabelSpace gives its classes,
    so `list(space)` is the class order."""
    name: str
    classes: tuple[str, ...]
    merges: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "merges", dict(self.merges))
        for problem in label_space_problems(self.classes, self.merges):
            raise ValueError(f"label space {self.name!r}: {problem}")

    def __iter__(self):
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, i):
        return self.classes[i]

    def projection(self) -> dict[str, str]:
        """Canonical label -> class: each class to itself, each merge source to its class."""
        out = {c: c for c in self.classes}
        for source, target in self.merges.items():
            out[canonical(source, allow_codes=True) or _key(source)] = target
        return out

    def class_of(self, word: str, *, allow_codes: bool = False) -> str | None:
        """The class `word` counts for: itself, the class it merges into, or None (an emotion
        outside the space, or a word that names none; `canonical` tells them apart)."""
        projection = self.projection()
        raw = {_key(s): t for s, t in self.merges.items()}
        if _key(word) in raw:              # a merge named in the corpus's own spelling
            return raw[_key(word)]
        return projection.get(canonical(word, allow_codes=allow_codes))

    @classmethod
    def from_mapping(cls, data, where: str = "label_space") -> LabelSpace:
        """A label space written in a config: `{classes: [...], merges: {...}, name: ...}`.
        ValueError naming `where`, the key and the value for anything wrong."""
        problems = mapping_problems(data, where)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(str(data.get("name", "custom")), tuple(data["classes"]),
                   dict(data.get("merges") or {}))


def label_space_problems(classes, merges) -> list[str]:
    """What is wrong with a label space: unknown or repeated classes, merges into a class the
    space does not have or out of one it has."""
    problems = []
    if not classes:
        problems.append("classes: an empty list; give at least two classes")
    known = sorted(set(SYNONYMS.values()))
    for c in classes:
        if not isinstance(c, str) or c not in known:
            problems.append(f"class {c!r} is not a canonical emotion name; valid: {known} "
                            "(answers are read through labels.SYNONYMS)")
    dup = sorted({c for c in classes if list(classes).count(c) > 1})
    if dup:
        problems.append(f"class(es) {dup} listed twice")
    for source, target in dict(merges).items():
        if target not in classes:
            problems.append(f"merges.{source}: {target!r} is not one of the classes "
                            f"{list(classes)}")
        elif (canonical(str(source), allow_codes=True) or _key(source)) in classes:
            problems.append(f"merges.{source}: {source!r} is already a class; a merge maps a "
                            "label outside the classes into one of them")
    return problems


def mapping_problems(data, where: str) -> list[str]:
    """Every problem of a label space written as a mapping, each naming its key."""
    if not isinstance(data, Mapping):
        return [f"{where}: {data!r}: must be a label space name or a mapping "
                "{classes: [...], merges: {label: class}}"]
    problems = []
    unknown = sorted(map(str, set(data) - {"name", "classes", "merges"}))
    if unknown:
        problems.append(f"{where}: unknown key(s) {unknown}; valid: ['classes', 'merges', "
                        "'name']")
    classes = data.get("classes")
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        problems.append(f"{where}.classes: {classes!r}: must be a list of class names")
        return problems
    merges = data.get("merges") or {}
    if not isinstance(merges, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in merges.items()):
        problems.append(f"{where}.merges: {merges!r}: must be a mapping label -> class")
        return problems
    if "name" in data and not isinstance(data["name"], str):
        problems.append(f"{where}.name: {data['name']!r}: must be a string")
    return problems + [f"{where}: {p}" for p in label_space_problems(classes, merges)]


def _spaces(*spaces: LabelSpace) -> dict[str, LabelSpace]:
    return {s.name: s for s in spaces}


# corpus -> its label spaces by name; THE FIRST IS THE CORPUS'S DEFAULT.
LABEL_SPACES: dict[str, dict[str, LabelSpace]] = {
    "demo": _spaces(LabelSpace("4class", ("neutral", "happy", "sad", "angry"))),
    "iemocap": _spaces(
        # The customary 4-class set merges Excited into happy (as most IEMOCAP studies do).
        LabelSpace("4class", ("neutral", "happy", "angry", "sad"), {"excited": "happy"}),
        LabelSpace("full", ("neutral", "happy", "excited", "sad", "angry", "frustrated",
                            "surprised", "fearful", "disgusted", "other"))),
    "msp_podcast": _spaces(
        LabelSpace("8class", ("angry", "sad", "happy", "surprised", "fearful", "disgusted",
                              "contempt", "neutral")),
        LabelSpace("9class", ("angry", "sad", "happy", "surprised", "fearful", "disgusted",
                              "contempt", "neutral", "other"))),
    "crema_d": _spaces(LabelSpace("6class", ("angry", "disgusted", "fearful", "happy",
                                             "neutral", "sad"))),
    "msp_improv": _spaces(
        LabelSpace("4class", ("angry", "happy", "sad", "neutral")),
        LabelSpace("5class", ("angry", "happy", "sad", "neutral", "other"))),
}


def default_label_space(corpus: str) -> str:
    """The name of `corpus`'s default label space (the first it lists)."""
    if corpus not in LABEL_SPACES:
        raise KeyError(f"unknown corpus {corpus!r}; valid: {sorted(LABEL_SPACES)}")
    return next(iter(LABEL_SPACES[corpus]))


def get_label_space(corpus: str | None, space=None) -> LabelSpace:
    """The LabelSpace that `space` names for `corpus`: None (the corpus default), a name of
    the corpus's spaces, `<corpus>:<name>` (another corpus's space), a mapping
    `{classes, merges, name}` written in a config, or a LabelSpace."""
    if isinstance(space, LabelSpace):
        return space
    if isinstance(space, Mapping):
        return LabelSpace.from_mapping(space)
    if isinstance(space, str) and ":" in space:
        corpus, space = space.split(":", 1)
    if corpus not in LABEL_SPACES:
        valid = [f"{c}:{s}" for c, spaces in LABEL_SPACES.items() for s in spaces]
        raise KeyError(f"no label space registered for corpus {corpus!r}: give label_space as "
                       f"one of {valid} or as {{classes: [...], merges: {{...}}}}")
    spaces = LABEL_SPACES[corpus]
    name = space or default_label_space(corpus)
    if name not in spaces:
        raise KeyError(f"unknown label space {name!r} for corpus {corpus!r}; valid: "
                       f"{sorted(spaces)}")
    return spaces[name]


def classes_for(corpus: str, label_space=None) -> tuple[str, ...]:
    """The canonical classes of `corpus` in `label_space` (None: the corpus default; see
    `get_label_space` for the other forms)."""
    return get_label_space(corpus, label_space).classes


# Classes a label space merges: (corpus, label space) -> {class as named: the space's class}.
# The corpus loader merges the human votes with it, and the parser merges a model's stated
# mass with the same table (ambiemo.parse), so both sides of every metric mean the same by
# "happy". IEMOCAP's customary 4-class space counts Excited as happy (Busso et al. 2008 and
# most 4-class studies); MSP-Podcast's 8-class space drops Other, it does not merge it.
MERGES: dict[tuple[str, str], dict[str, str]] = {
    (corpus, name): dict(space.merges)
    for corpus, spaces in LABEL_SPACES.items() for name, space in spaces.items() if space.merges}


def merges_for(classes) -> dict[str, str]:
    """The merges of the label space whose classes are exactly `classes` (in order), {} when
    no label space merges or `classes` is no registered space. A LabelSpace gives its own.
    The parser is handed class lists, not corpus names; the class tuple names the space (the
    two 4-class spaces, IEMOCAP's and the demo's, differ in order, and only IEMOCAP's
    merges)."""
    if isinstance(classes, LabelSpace):
        return dict(classes.merges)
    key = tuple(classes)
    for spaces in LABEL_SPACES.values():
        for space in spaces.values():
            if space.classes == key and space.merges:
                return dict(space.merges)
    return {}


def projection(corpus: str, label_space=None) -> dict[str, str]:
    """{class of the corpus's full vocabulary: class of `label_space`}: every class of the
    space maps to itself, and the space's merges add the merged parts."""
    return get_label_space(corpus, label_space).projection()
