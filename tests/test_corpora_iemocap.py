"""IEMOCAP loader on hand-written EmoEvaluation files in the release's format (Busso et al.,
2008): tab-separated fields, comments with spaces and semicolons, varying evaluator ids,
multi-label evaluators, self-evaluations, a duplicated evaluator line, Categorical/ subfolder
files and macOS "._" resource forks that must be skipped."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiemo.corpora import load, require_audio

FIXTURE = Path(__file__).parent / "fixtures" / "iemocap"
FOUR = ["neutral", "happy", "angry", "sad"]
FILE1 = "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    shutil.copytree(FIXTURE, root)
    return root


def votes(m, utt, classes):
    row = m.set_index("utt_id").loc[utt]
    return [round(float(row[f"votes_{c}"]), 6) for c in classes]


def test_default_is_the_consensus_protocol():
    m = load("iemocap", FIXTURE)
    assert m.attrs["classes"] == FOUR and m.attrs["selection"] == "consensus"
    # Header labels neu, hap, sad, exc (-> happy) and ang enter; xxx (F001), fru (M000) and
    # oth (M010) stay out even where evaluators voted inside the 4 classes (F001).
    assert m["utt_id"].tolist() == ["Ses01F_impro01_F000", "Ses01F_impro01_M001",
                                    "Ses02M_script01_1_F003", "Ses03F_impro02_F000",
                                    "Ses03F_impro02_M000"]
    # The distribution is the external evaluators' votes over the 4 classes: C-F1 is not
    # counted, Excited and Happiness both count for happy, Neutral stays.
    assert votes(m, "Ses03F_impro02_F000", FOUR) == [1, 2, 0, 0]
    # C-E2 "Anger; Frustration;" gives 1/2 to angry; C-E4's lone Frustration is no vote.
    assert votes(m, "Ses03F_impro02_M000", FOUR) == [0, 0, 1.5, 0]
    by = m.set_index("utt_id")
    assert by.loc["Ses03F_impro02_M000", "n_raters"] == 2
    assert by.loc["Ses03F_impro02_F000", "label_consensus"] == "excited"
    assert by.loc["Ses03F_impro02_F000", "majority"] == "happy"
    assert m.attrs["dropped"] == {
        "no_votes": 0, "no_consensus": 1,
        "consensus_outside_4class:frustrated": 1, "consensus_outside_4class:other": 1,
        "votes_outside_4class:frustrated": 2, "votes_outside_4class:surprised": 1,
        "duplicate_evaluator_lines": 1}


def test_consensus_in_the_full_space_keeps_every_named_label():
    full = load("iemocap", FIXTURE, "full")
    # Only the "xxx" turn (no majority) is out: every other header label is a full class.
    assert len(full) == 7 and "Ses01F_impro01_F001" not in set(full["utt_id"])
    assert full.attrs["dropped"]["no_consensus"] == 1


def test_votes_selection_keeps_any_turn_with_a_4class_vote():
    m = load("iemocap", FIXTURE, selection="votes")
    assert m.attrs["selection"] == "votes"
    # M000 (only Frustration from evaluators) and M010 (Other/Disgust) have no 4-class vote.
    assert m["utt_id"].tolist() == ["Ses01F_impro01_F000", "Ses01F_impro01_F001",
                                    "Ses01F_impro01_M001", "Ses02M_script01_1_F003",
                                    "Ses03F_impro02_F000", "Ses03F_impro02_M000"]
    # C-E1 "Neutral; Frustration;" gives 1/2 to each; Frustration is then dropped.
    assert votes(m, "Ses01F_impro01_F001", FOUR) == [0.5, 0, 1, 1]
    # Happiness + Excited merge into happy; C-E5 names three categories (1/3 each).
    assert votes(m, "Ses01F_impro01_M001", FOUR) == [0, round(8 / 3, 6), 0, 0]
    by = m.set_index("utt_id")
    assert by.loc["Ses01F_impro01_F001", "majority"] is None  # angry/sad tie
    assert by.loc["Ses01F_impro01_F000", "n_raters"] == 3      # C-F1 not counted by default
    assert by.loc["Ses01F_impro01_F000", "duration_s"] == pytest.approx(8.2357 - 6.2901)
    assert by.loc["Ses02M_script01_1_F003", "speaker"] == "Ses02F"  # the speaking actor
    assert by.loc["Ses01F_impro01_M001", "speaker"] == "Ses01M"
    assert by.loc["Ses02M_script01_1_F003", "split"] == "session2"
    assert by.loc["Ses01F_impro01_F000", "label_consensus"] == "neutral"
    vad = by.loc["Ses01F_impro01_M001", ["valence", "arousal", "dominance"]]
    assert vad.tolist() == [4, 3.5, 3]
    assert m.attrs["dropped"] == {
        "no_votes": 2,
        "votes_outside_4class:frustrated": 6, "votes_outside_4class:surprised": 1,
        "votes_outside_4class:other": 2, "votes_outside_4class:disgusted": 1,
        "duplicate_evaluator_lines": 1}


def test_duplicate_evaluator_and_repeated_emotion_count_once():
    m = load("iemocap", FIXTURE)
    # C-E2 appears twice (Sadness, then Neutral): the first line counts; C-E6 says
    # "Sadness; Sadness;" which is one vote.
    assert votes(m, "Ses02M_script01_1_F003", FOUR) == [0, 0, 0, 3]


def test_full_space_with_self_evaluations_and_whole_votes():
    full = load("iemocap", FIXTURE, "full", self_evaluations=True, multi_label="each",
                selection="votes")
    assert len(full) == 8
    classes = full.attrs["classes"]
    assert classes[:3] == ["neutral", "happy", "excited"] and len(classes) == 10
    f001 = dict(zip(classes, votes(full, "Ses01F_impro01_F001", classes)))
    assert f001["neutral"] == 1 and f001["frustrated"] == 2 and f001["angry"] == 1
    assert full.set_index("utt_id").loc["Ses01F_impro01_F001", "n_raters"] == 4
    m000 = dict(zip(classes, votes(full, "Ses01F_impro01_M000", classes)))
    assert m000["frustrated"] == 3 and m000["angry"] == 1  # C-M1 is the actor's own rating
    assert full.set_index("utt_id").loc["Ses01F_impro01_M001", "majority"] is None


def test_self_evaluation_can_rescue_an_utterance():
    m = load("iemocap", FIXTURE, self_evaluations=True, selection="votes")
    assert votes(m, "Ses01F_impro01_M000", FOUR) == [0, 0, 1, 0]
    assert m.attrs["dropped"]["no_votes"] == 1


def test_options_are_checked():
    with pytest.raises(ValueError, match="multi_label"):
        load("iemocap", FIXTURE, multi_label="half")
    with pytest.raises(ValueError, match=r"selection 'majority'.*'consensus', 'votes'"):
        load("iemocap", FIXTURE, selection="majority")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['sessions'\]; valid: "
                                        r"\['self_evaluations', 'multi_label', 'selection'\]"):
        load("iemocap", FIXTURE, sessions=[1])
    with pytest.raises(KeyError, match="label space"):
        load("iemocap", FIXTURE, "6class")


def test_resource_forks_are_skipped_and_audio_found(corpus):
    fork = corpus / "Session1/dialog/EmoEvaluation/._Ses01F_impro01.txt"
    fork.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    wav = corpus / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    m = load("iemocap", corpus)
    assert m.attrs["missing_audio"] == 4
    assert m.set_index("utt_id").loc["Ses01F_impro01_F000", "has_audio"]
    with pytest.raises(FileNotFoundError, match="Ses02M_script01_1_F003"):
        require_audio(m)


def _replace(root: Path, old: str, new: str) -> int:
    path = root / FILE1
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


@pytest.mark.parametrize("old,new,message", [
    ("C-E4:\tSadness;", "C-E4:\tJoyy;", "unknown emotion 'Joyy'"),
    ("\tneu\t", "\tjoy\t", "unknown emotion code 'joy'"),
    ("[6.2901 - 8.2357]", "[6.2901 8.2357]", "malformed turn header"),
    ("A-E3:\tval 3;", "A-E3 val 3;", "malformed line"),
])
def test_errors_name_file_and_line(corpus, old, new, message):
    lineno = _replace(corpus, old, new)
    with pytest.raises(ValueError, match=rf"Ses01F_impro01.txt:{lineno}: {message}"):
        load("iemocap", corpus)


def test_rating_outside_a_block_is_malformed(corpus):
    lineno = _replace(corpus, "\n\n[10.0100", "\n\nC-E9:\tNeutral;\t()\n[10.0100")
    with pytest.raises(ValueError, match=rf"Ses01F_impro01.txt:{lineno + 2}: malformed line"):
        load("iemocap", corpus)


def test_no_label_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="EmoEvaluation"):
        load("iemocap", tmp_path)
