"""MSP-Podcast loader on hand-written label files of releases 1.11 (labels_consensus.csv +
EmoDetail strings) and 1.9 (labels_concensus.csv, Validation split, labels_detailed.json),
plus the column-per-field variant (Lotfian & Busso, 2019)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ambiemo.corpora import load
from ambiemo.corpora.msp_podcast import primary_class

V111 = Path(__file__).parent / "fixtures" / "msp_podcast" / "v1.11"
V19 = Path(__file__).parent / "fixtures" / "msp_podcast" / "v1.9"
EIGHT = ["angry", "sad", "happy", "surprised", "fearful", "disgusted", "contempt", "neutral"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "MSP-Podcast"
    shutil.copytree(V111, root)
    return root


def votes(m, utt):
    row = m.set_index("utt_id").loc[utt]
    return {c: float(row[f"votes_{c}"]) for c in m.attrs["classes"] if row[f"votes_{c}"]}


def test_release_1_11_default_8class():
    m = load("msp_podcast", V111)
    assert m.attrs["classes"] == EIGHT
    assert m["utt_id"].tolist() == ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0001_0019",
                                    "MSP-PODCAST_0002_0033", "MSP-PODCAST_0003_0005"]
    # WORKER00000102 is listed twice on 0008: the first row (Neutral) counts.
    assert votes(m, "MSP-PODCAST_0001_0008") == {"neutral": 2, "happy": 1}
    # The Other-* vote is dropped; three single votes remain, a three-way tie.
    assert votes(m, "MSP-PODCAST_0001_0019") == {"sad": 1, "contempt": 1, "neutral": 1}
    by = m.set_index("utt_id")
    assert by.loc["MSP-PODCAST_0001_0019", "majority"] is None
    assert by.loc["MSP-PODCAST_0001_0019", "n_raters"] == 3
    assert by.loc["MSP-PODCAST_0002_0033", "majority"] == "surprised"
    assert pd.isna(by.loc["MSP-PODCAST_0002_0033", "speaker"])  # SpkrID "Unknown"
    assert by.loc["MSP-PODCAST_0001_0008", "speaker"] == "127"
    assert by["split"].tolist() == ["train", "development", "test1", "test2"]
    assert by.loc["MSP-PODCAST_0003_0005", ["arousal", "valence", "dominance"]].tolist() == \
        pytest.approx([6.0, 2.0, 5.333333])
    assert by.loc["MSP-PODCAST_0003_0005", "gender"] == "male"
    assert by.loc["MSP-PODCAST_0003_0005", "audio_path"].endswith(
        "Audios/MSP-PODCAST_0003_0005.wav")
    assert m.attrs["dropped"] == {"duplicate_worker_rows": 1,
                                  "votes_for_files_not_in_consensus": 1,
                                  "votes_outside_8class:other": 3,
                                  "no_votes": 2}  # 0004_0100 (only Other), 0005_0001 (no rows)


def test_other_kept_as_ninth_class():
    m = load("msp_podcast", V111, "9class")
    assert m.attrs["classes"] == EIGHT + ["other"]
    assert votes(m, "MSP-PODCAST_0004_0100") == {"other": 2}  # "Other-sarcasm", "Other-"
    assert votes(m, "MSP-PODCAST_0001_0019") == {"sad": 1, "contempt": 1, "neutral": 1,
                                                 "other": 1}
    assert m.attrs["dropped"]["no_votes"] == 1


def test_release_1_9_json_and_old_names():
    m = load("msp_podcast", V19)
    assert len(m) == 3
    assert m["split"].tolist() == ["train", "development", "test1"]  # Validation
    assert votes(m, "MSP-PODCAST_0001_0008") == {"neutral": 2, "happy": 1}
    assert votes(m, "MSP-PODCAST_0002_0033") == {"surprised": 2, "fearful": 1}
    assert m.attrs["dropped"]["duplicate_worker_rows"] == 1


def test_column_per_field_release(corpus):
    detailed = corpus / "Labels" / "labels_detailed.csv"
    table = pd.read_csv(detailed, dtype=str)
    parts = table["EmoDetail"].str.split(";", expand=True)
    pd.DataFrame({"FileName": table["FileName"], "WorkerID": parts[0].str.strip(),
                  "EmoClass_Major": parts[1].str.strip(),
                  "EmoClass_Second": parts[2].str.strip()}).to_csv(detailed, index=False)
    m = load("msp_podcast", corpus)
    assert votes(m, "MSP-PODCAST_0001_0008") == {"neutral": 2, "happy": 1}
    assert m.attrs["dropped"] == load("msp_podcast", V111).attrs["dropped"]


def test_audio_present(corpus):
    wav = corpus / "Audios" / "MSP-PODCAST_0001_0008.wav"
    wav.parent.mkdir()
    sf.write(wav, np.zeros(8000, dtype=np.float32), 16000)
    m = load("msp_podcast", corpus)
    assert m.attrs["missing_audio"] == 3
    assert m.set_index("utt_id").loc["MSP-PODCAST_0001_0008", "duration_s"] == pytest.approx(0.5)


def test_primary_class_spellings():
    assert primary_class("Other-Worried about money") == "other"
    assert primary_class(" Surprise ") == "surprised"
    assert primary_class("Contempt") == "contempt"
    assert primary_class("Joyy") is None


def _replace(path: Path, old: str, new: str) -> int:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


@pytest.mark.parametrize("file,old,new,message", [
    ("labels_detailed.csv", "WORKER00000301; Fear;", "WORKER00000301; Joyy;",
     "unknown emotion 'Joyy'"),
    ("labels_detailed.csv", "WORKER00000401; Disgust; Angry;", "WORKER00000401 Disgust Angry",
     "malformed EmoDetail"),
    ("labels_consensus.csv", ",X,", ",Q,", "unknown EmoClass 'Q'"),
    ("labels_consensus.csv", "Test2", "Holdout", "unknown Split_Set 'Holdout'"),
])
def test_errors_name_file_and_line(corpus, file, old, new, message):
    lineno = _replace(corpus / "Labels" / file, old, new)
    with pytest.raises(ValueError, match=rf"{file}:{lineno}: {message}"):
        load("msp_podcast", corpus)


def test_missing_column_and_files(corpus, tmp_path):
    path = corpus / "Labels" / "labels_consensus.csv"
    path.write_text(path.read_text().replace("SpkrID", "Speaker"))
    with pytest.raises(ValueError, match=r"labels_consensus.csv:1: missing column.*SpkrID"):
        load("msp_podcast", corpus)
    with pytest.raises(FileNotFoundError, match="labels_concensus"):
        load("msp_podcast", tmp_path)


def test_json_unknown_emotion_names_entry(tmp_path):
    root = tmp_path / "msp"
    shutil.copytree(V19, root)
    path = root / "Labels" / "labels_detailed.json"
    path.write_text(path.read_text().replace('"Fear"', '"Joyy"'))
    with pytest.raises(ValueError, match=r"labels_detailed.json: entry 'MSP-PODCAST_0002_0033.wav'"
                                         r" / 'WORKER00000301'.*unknown emotion 'Joyy'"):
        load("msp_podcast", root)


def test_unknown_option():
    with pytest.raises(TypeError, match="keep_other"):
        load("msp_podcast", V111, keep_other=True)


def test_split_selects_partitions():
    m = load("msp_podcast", V111, split="Test1")
    assert m["utt_id"].tolist() == ["MSP-PODCAST_0002_0033"]
    assert m.attrs["splits"] == ["test1"]
    # Five of the six listed segments belong to other partitions; none of test1 lacks votes.
    assert m.attrs["dropped"]["other_splits"] == 5 and m.attrs["dropped"]["no_votes"] == 0
    # Only test1's votes are counted as dropped: the Other-* votes are in train/dev/test3.
    assert not any(k.startswith("votes_outside") for k in m.attrs["dropped"])
    both = load("msp_podcast", V111, split=["train", "Test2"])
    assert both["split"].tolist() == ["train", "test2"]
    assert both.attrs["splits"] == ["test2", "train"]
    assert load("msp_podcast", V111).attrs["splits"] is None
    # "Validation" is the older name of Development, in either release.
    assert load("msp_podcast", V19, split="validation")["split"].tolist() == ["development"]
    assert load("msp_podcast", V111, split="Validation")["split"].tolist() == ["development"]


def test_unknown_or_absent_split_names_the_partitions_present():
    present = r"\['development', 'test1', 'test2', 'test3', 'train'\]"
    with pytest.raises(ValueError, match=rf"unknown split 'Holdout'.*has: {present}"):
        load("msp_podcast", V111, split="Holdout")
    with pytest.raises(ValueError, match=r"unknown split 'Test3'.*has: \['development', "
                                         r"'test1', 'train'\]"):
        load("msp_podcast", V19, split="Test3")
    with pytest.raises(ValueError, match="empty list"):
        load("msp_podcast", V111, split=[])
    # Test3's only segment has Other votes alone: nothing is left in the 8 classes.
    with pytest.raises(ValueError, match="no segment of split 'test3'"):
        load("msp_podcast", V111, split="test3")
