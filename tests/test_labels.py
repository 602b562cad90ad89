"""The synonym table and the class merges of ambiemo.labels, each entry pinned (issues #26,
#27): removing or changing any synonym fails a case here, and one merge definition serves the
corpus loader (human votes) and the parser (model answers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ambiemo.corpora import load
from ambiemo.labels import (LABEL_SPACES, MERGES, SYNONYMS, canonical, classes_for, merges_for,
                            projection)
from ambiemo.parse import parse_response

# Every canonical class of the table lies in one of these two spaces (contempt only in
# MSP-Podcast's; excited, frustrated and other only in IEMOCAP's full space).
IEMOCAP_FULL = list(classes_for("iemocap", "full"))
MSP_9 = list(classes_for("msp_podcast", "9class"))


# The table as decided, written out here: a parametrisation over SYNONYMS itself would lose
# the case of an entry removed from it. Changing the table means changing this too (and
# bumping ambiemo.parse.PARSER_VERSION).
DECIDED = {
    "neutral": ("neutral", "neutrality", "neu", "n"),
    "happy": ("happy", "happiness", "joy", "joyful", "hap", "h"),
    "excited": ("excited", "excitement", "exc"),
    "sad": ("sad", "sadness", "sorrow", "sorrowful", "s"),
    "angry": ("angry", "anger", "ang", "a", "mad", "furious"),
    "frustrated": ("frustrated", "frustration", "fru"),
    "surprised": ("surprised", "surprise", "astonished", "sur", "u"),
    "fearful": ("fearful", "fear", "afraid", "scared", "frightened", "terrified", "fea", "f"),
    "disgusted": ("disgusted", "disgust", "dis", "d"),
    "contempt": ("contempt", "contemptuous", "c"),
    "other": ("other", "oth"),
}
DECIDED_PAIRS = sorted((w, cls) for cls, words in DECIDED.items() for w in words)


def test_the_table_is_the_decided_one():
    assert sorted(SYNONYMS.items()) == DECIDED_PAIRS


def _space_with(cls: str) -> list[str]:
    return IEMOCAP_FULL if cls in IEMOCAP_FULL else MSP_9


@pytest.mark.parametrize("word, cls", DECIDED_PAIRS)
def test_every_synonym_is_read_as_its_class(word, cls):
    classes = _space_with(cls)
    expected = np.zeros(len(classes))
    expected[classes.index(cls)] = 1.0
    r = parse_response(f"The speaker sounds {word}.", classes, answer="label")
    if len(word) == 1:
        # Single letters are corpus codes: read only where a caller asks for codes.
        assert canonical(word) is None
        assert canonical(word.upper(), allow_codes=True) == cls
        assert not r.ok and "no emotion label found" in r.reason
        return
    assert canonical(word) == cls
    assert canonical(word.upper() + ".") == cls       # case and punctuation ignored
    assert r.ok, r.reason
    np.testing.assert_array_equal(r.dist, expected)


def test_the_table_maps_only_to_classes_of_some_label_space():
    known = {c for spaces in LABEL_SPACES.values() for cls in spaces.values() for c in cls}
    assert set(SYNONYMS.values()) <= known
    assert {"calm", "bored", "relaxed"}.isdisjoint(SYNONYMS)   # decided: outside every space


def test_merges_name_classes_outside_the_space_merged_into_one_inside_it():
    for (corpus, space), merges in MERGES.items():
        classes = classes_for(corpus, space)
        for part, into in merges.items():
            assert part not in classes and into in classes, (corpus, space, part)
        assert merges_for(classes) == merges
        assert projection(corpus, space) == {**{c: c for c in classes}, **merges}
    # The demo's 4 classes are IEMOCAP's in another order, and merge nothing.
    assert merges_for(classes_for("demo")) == {}
    assert merges_for(classes_for("iemocap", "full")) == {}


@pytest.mark.parametrize("corpus_space", sorted(MERGES))
def test_the_parser_merges_a_models_mass_as_the_corpus_merges_votes(corpus_space):
    corpus, space = corpus_space
    classes = list(classes_for(corpus, space))
    for part, into in MERGES[corpus_space].items():
        other = next(c for c in classes if c != into)
        r = parse_response(f"{into}: 0.3, {part}: 0.3, {other}: 0.4", classes,
                           answer="distribution")
        assert r.ok and r.dropped_mass == 0.0, r.reason
        assert r.dist[classes.index(into)] == pytest.approx(0.6)
        label = parse_response(f"{part.capitalize()}.", classes, answer="label")
        assert label.ok and label.dist[classes.index(into)] == 1.0
        # merges={} (no merge) drops the part's mass instead: the merge is what moves it
        unmerged = parse_response(f"{into}: 0.3, {part}: 0.3, {other}: 0.4", classes,
                                  answer="distribution", merges={})
        assert unmerged.dropped_mass == pytest.approx(0.3)


def test_iemocap_loader_merges_with_the_same_table():
    fixture = Path(__file__).parent / "fixtures" / "iemocap"
    m = load("iemocap", fixture).set_index("utt_id")
    # Ses03F_impro02_F000: one Neutral and one Excited + one Happiness evaluator vote
    # (tests/test_corpora_iemocap.py): Excited counts for happy through MERGES.
    assert MERGES[("iemocap", "4class")] == {"excited": "happy"}
    assert m.loc["Ses03F_impro02_F000", "votes_happy"] == 2
