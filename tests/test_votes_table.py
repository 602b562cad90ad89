"""Any rated corpus without code: the votes_table loader (both layouts, CSV and Parquet), the
label space written in a config (classes and merges), the errors a lab sees for a bad table,
MSP-IMPROV through the same path, and label spaces defined in one place."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ambiemo import corpora, labels
from ambiemo.config import ConfigError, load_config
from ambiemo.corpora.votes_table import VotesTableError, check_votes_table
from ambiemo.labels import LabelSpace, classes_for, get_label_space

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
CLASSES = ["neutral", "happy", "sad", "angry"]
SPACE = {"classes": CLASSES}
KEY = ["utt_id", "speaker", "split", "n_raters", *[f"p_{c}" for c in CLASSES], "entropy_bits",
       "majority", "ambiguity_bin", "audio_status"]


def demo_votes(tmp_path):
    """The demo corpus's votes written both ways a lab keeps them: one row per clip
    (votes_<class>) and one row per vote (file, rater, label)."""
    demo = pd.read_csv(DEMO / "votes.csv")
    wide = demo[["speaker", "split", "sentence"]].assign(
        file=[f"wav/{u}.wav" for u in demo["utt_id"]])
    for c in CLASSES:
        wide[f"votes_{c}"] = demo[f"votes_{c}"]
    rows = []
    for r in wide.itertuples(index=False):
        raters = iter(range(100))
        for c in CLASSES:
            rows += [{"file": r.file, "rater": f"r{next(raters)}", "label": c,
                      "speaker": r.speaker, "split": r.split, "sentence": r.sentence}
                     for _ in range(int(getattr(r, f"votes_{c}")))]
    long = pd.DataFrame(rows)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    wide.to_parquet(tmp_path / "wide.parquet", index=False)
    long.to_csv(tmp_path / "long.csv", index=False)
    return long, wide


def test_both_layouts_give_the_corpus_its_own_loader_gives(tmp_path):
    demo_votes(tmp_path)
    want = corpora.load("demo", DEMO)[KEY]
    for votes in ("long.csv", "wide.csv", "wide.parquet"):
        got = corpora.load("votes_table", DEMO, SPACE, votes=str(tmp_path / votes))
        pd.testing.assert_frame_equal(got[KEY], want, check_dtype=False, obj=votes)
        assert got["sentence"].tolist()[:1] == ["It's eleven o'clock."]
        assert got.attrs["classes"] == CLASSES and got.attrs["dropped"] == {"no_votes": 0}


def test_merges_count_a_label_as_a_class_and_outside_votes_are_counted(tmp_path):
    space = {"classes": ["neutral", "happy", "sad"], "merges": {"excited": "happy"}}
    (tmp_path / "v.csv").write_text(
        "file,rater,label\n"
        "a.wav,r1,Excited\n"       # merged into happy
        "a.wav,r2,happiness\n"     # a synonym of happy
        "a.wav,r3,frustrated\n"    # an emotion outside the space: dropped, counted
        "a.wav,r4,sad\na.wav,r4,neutral\n"   # one rater, two labels: half a vote each
        "a.wav,r1,Excited\n"       # the same vote again: once
        "b.wav,r1,angry\n")        # no vote inside the space: the clip is left out
    m = corpora.load("votes_table", tmp_path, space, votes="v.csv")
    assert m["utt_id"].tolist() == ["a"]
    assert m[["votes_neutral", "votes_happy", "votes_sad"]].iloc[0].tolist() == [0.5, 2, 0.5]
    assert m["n_raters"].iloc[0] == 3          # r1, r2, r4 voted inside the space
    assert m["speaker"].iloc[0] == "a"         # no speaker column: each clip its own
    assert m.attrs["dropped"] == {"duplicate_votes": 1, "votes_outside_custom:frustrated": 1,
                                  "votes_outside_custom:angry": 1, "no_votes": 1}
    assert m.attrs["merges"] == {"excited": "happy"}
    (tmp_path / "w.csv").write_text("file,speaker,votes_happy,votes_excited,votes_sad,"
                                    "votes_angry\na.wav,s1,1,2,3,4\n")
    w = corpora.load("votes_table", tmp_path, space, votes="w.csv")
    assert w[["votes_neutral", "votes_happy", "votes_sad"]].iloc[0].tolist() == [0, 3, 3]
    assert w.attrs["dropped"]["votes_outside_custom:angry"] == 4


def test_every_problem_is_named_with_file_line_column_and_value(tmp_path):
    (tmp_path / "v.csv").write_text("file,rater,label,speaker\n"
                                    "a.wav,r1,happy,s1\n"
                                    "a.wav,r2,grumpy-ish,s1\n"     # line 3: no emotion
                                    ",r3,sad,s2\n"                  # line 4: no file
                                    "a.wav,r4,sad,s9\n")            # clip a: two speakers
    with pytest.raises(VotesTableError) as e:
        corpora.load("votes_table", tmp_path, SPACE, votes="v.csv")
    text = str(e.value)
    assert text.startswith(f"{tmp_path / 'v.csv'}: 3 problem(s)")
    assert "line 3, column label: 'grumpy-ish' names no emotion" in text
    assert "line 4, column file: empty" in text
    assert "column speaker: clip 'a.wav' has several values ['s1', 's9']" in text
    (tmp_path / "w.csv").write_text("file,votes_happy,votes_sad\na.wav,2,x\nb.wav,-1,1\n")
    problems = check_votes_table(tmp_path, SPACE, votes="w.csv")
    assert "line 2, column votes_sad: 'x' is not a vote count" in problems[0]
    assert "line 3, column votes_happy: '-1' is not a vote count" in problems[0]
    (tmp_path / "x.csv").write_text("path,emotion\na.wav,happy\n")
    assert "no column 'file'" in check_votes_table(tmp_path, SPACE, votes="x.csv")[0]
    assert "label_space is required" in check_votes_table(tmp_path, None, votes="w.csv")[0]


def config_with(tmp_path, corpus: str) -> Path:
    (tmp_path / "lib" / "ambiemo").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "prompts").mkdir(parents=True, exist_ok=True)
    p = tmp_path / "configs" / "c.yaml"
    p.write_text(f"name: t\ncorpora:\n  lab:\n{corpus}\nmodels: [sim-human]\n")
    return p


def test_a_label_space_in_the_config_is_checked_with_the_config(tmp_path):
    bad = config_with(tmp_path, "    loader: votes_table\n    root: .\n    label_space: "
                                "{classes: [happy, calm], merges: {joy: sad}, colours: 3}")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    text = str(e.value)
    assert "corpora.lab.label_space: unknown key(s) ['colours']" in text
    assert "corpora.lab.label_space: class 'calm' is not a canonical emotion name" in text
    assert "merges.joy: 'sad' is not one of the classes ['happy', 'calm']" in text
    good = config_with(tmp_path, "    loader: votes_table\n    root: .\n    label_space: "
                                 "{classes: [happy, sad], merges: {excited: happy}}")
    cc = load_config(good).corpora["lab"]
    assert cc.loader_name == "votes_table"
    assert get_label_space(None, cc.label_space).class_of("EXCITED") == "happy"


def test_preflight_names_a_bad_votes_row_before_any_work(tmp_path):
    from ambiemo.pipeline.preflight import validate

    (tmp_path / "votes.csv").write_text("file,rater,label\na.wav,r1,happy\na.wav,r2,meh\n")
    cfg = load_config(config_with(tmp_path, f"    loader: votes_table\n    root: {tmp_path}\n"
                                            "    label_space: {classes: [happy, sad]}"))
    with pytest.raises(ConfigError) as e:
        validate(cfg, probe=False)
    assert "corpora.lab: " in str(e.value) and "line 3, column label: 'meh'" in str(e.value)
    cfg = load_config(config_with(tmp_path, "    loader: nosuch\n    root: ."))
    with pytest.raises(ConfigError, match=r"corpora.lab.loader: unknown corpus 'nosuch'"):
        validate(cfg, probe=False)


def test_a_label_space_is_defined_in_one_place(monkeypatch):
    # The first space a corpus lists is its default: adding a corpus or a space is one entry.
    monkeypatch.setitem(labels.LABEL_SPACES, "mine", {
        "3class": LabelSpace("3class", ("happy", "sad", "neutral")),
        "2class": LabelSpace("2class", ("happy", "sad"))})
    assert classes_for("mine") == ("happy", "sad", "neutral")
    assert classes_for("mine", "2class") == ("happy", "sad")
    with pytest.raises(KeyError, match=r"unknown label space '9class' for corpus 'mine'; "
                                       r"valid: \['2class', '3class'\]"):
        classes_for("mine", "9class")
    with pytest.raises(KeyError, match="no label space registered for corpus 'nowhere'"):
        classes_for("nowhere")
    # One definition of IEMOCAP's 4-class merge serves votes and answers alike.
    four = get_label_space("iemocap")
    assert four.name == "4class" and four.merges == {"excited": "happy"}
    assert four.class_of("exc") == "happy" and four.class_of("frustration") is None
    assert list(four) == list(classes_for("iemocap")) == ["neutral", "happy", "angry", "sad"]
    # ... and travels with the Manifest, where the parser finds it.
    assert corpora.load("iemocap", REPO / "tests" / "fixtures" / "iemocap").attrs["merges"] \
        == {"excited": "happy"}
    assert corpora.load("iemocap", REPO / "tests" / "fixtures" / "iemocap", "full"
                        ).attrs["merges"] == {}
    with pytest.raises(ValueError, match="merges.excited: 'joy' is not one of the classes"):
        LabelSpace("x", ("happy", "sad"), {"excited": "joy"})
    with pytest.raises(ValueError, match="'happiness' is already a class"):
        LabelSpace("x", ("happy", "sad"), {"happiness": "sad"})


FIXTURE = REPO / "tests" / "fixtures" / "msp_improv"


def test_msp_improv_per_rater_labels_become_the_distribution():
    m = corpora.load("msp_improv", FIXTURE)
    assert m["utt_id"].tolist() == ["MSP-IMPROV-S01A-F01-P-FM01", "MSP-IMPROV-S01H-M01-R-MM02",
                                    "MSP-IMPROV-S02S-F02-T-FF01"]
    votes = m[["votes_angry", "votes_happy", "votes_sad", "votes_neutral"]].to_numpy()
    # rater-0003's copied line counts once; rater-0005's Other is outside the 4 classes.
    assert votes.tolist() == [[3, 0, 0, 1], [0, 4, 0, 1], [0, 0, 2, 2]]
    assert m["n_raters"].tolist() == [4, 5, 4]
    assert m["majority"].tolist() == ["angry", "happy", None]
    assert m["speaker"].tolist() == ["F01", "M01", "F02"]
    assert m["split"].tolist() == ["session1", "session1", "session2"]
    # The target sentence is a cluster for P and T turns; an R turn is its own.
    assert m["sentence"].tolist() == ["S01", "MSP-IMPROV-S01H-M01-R-MM02", "S02"]
    assert m["label_consensus"].tolist() == ["A", "H", "X"]
    assert m["audio_path"].iloc[0].endswith(
        "session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav")
    assert m.attrs["dropped"] == {"duplicate_rater_lines": 1,
                                  "votes_outside_4class:other": 4, "no_votes": 1}
    five = corpora.load("msp_improv", FIXTURE, "5class")
    assert len(five) == 4 and five["votes_other"].tolist() == [1, 0, 0, 3]
    np.testing.assert_allclose(five[[f"p_{c}" for c in five.attrs["classes"]]].sum(axis=1), 1)


def test_msp_improv_names_a_line_it_cannot_read(tmp_path):
    text = (FIXTURE / "Evalution.txt").read_text().splitlines()
    (tmp_path / "Evaluation.txt").write_text("\n".join(text[:3] + ["garbage without fields"]
                                                       + text[3:]))
    with pytest.raises(VotesTableError, match=r"line 4: 'garbage without fields' is neither"):
        corpora.load("msp_improv", tmp_path)
