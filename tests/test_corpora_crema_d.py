"""CREMA-D loader: the hand-written fixture in the public repository's format, and the real
annotation files from ../shared/data/crema_d when they are there (Cao et al., 2014)."""
from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ambiemo.corpora import load, require_audio
from ambiemo.corpora.stats import corpus_statistics

FIXTURE = Path(__file__).parent / "fixtures" / "crema_d"
SHARED = Path(os.environ.get("AMBIEMO_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
REAL = SHARED / "crema_d"
CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "sad"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "CREMA-D"
    shutil.copytree(FIXTURE, root)
    return root


def write_wav(path: Path, seconds: float = 0.25, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)


def test_fixture_voice_votes_and_extras():
    m = load("crema_d", FIXTURE)
    assert m.attrs["classes"] == CLASSES
    assert m.attrs["mode"] == "voice"
    assert m["utt_id"].tolist() == ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1076_MTI_SAD_XX",
                                    "1091_WSI_DIS_XX"]
    row = m.set_index("utt_id").loc["1076_MTI_SAD_XX"]
    assert [row[f"votes_{c}"] for c in CLASSES] == [0, 1, 0, 0, 5, 3]
    assert row["n_raters"] == 9 and row["speaker"] == "1076" and row["gender"] == "female"
    assert row["acted_label"] == "sad" and row["intensity"] == "XX"
    assert row["majority"] == "neutral"
    tie = m.set_index("utt_id").loc["1001_IEO_HAP_HI"]
    assert tie["majority"] is None and tie["emo_vote"] == "H:N"
    assert tie["entropy_bits"] == pytest.approx(1.0)
    assert m.set_index("utt_id").loc["1091_WSI_DIS_XX", "entropy_bits"] == 0
    assert np.allclose(m[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1)


@pytest.mark.parametrize("mode,expected", [("face", [0, 4, 0, 0, 0, 4]),
                                           ("audiovisual", [0, 7, 2, 0, 0, 0])])
def test_fixture_other_modes(mode, expected):
    m = load("crema_d", FIXTURE, mode=mode).set_index("utt_id")
    assert [m.loc["1091_WSI_DIS_XX", f"votes_{c}"] for c in CLASSES] == expected
    assert m.attrs["mode"] == mode


def test_unknown_mode_and_option():
    with pytest.raises(ValueError, match="unknown mode"):
        load("crema_d", FIXTURE, mode="video")
    with pytest.raises(TypeError, match="presentation"):
        load("crema_d", FIXTURE, presentation="voice")


def test_missing_audio_summarised_once_and_refused(corpus, caplog):
    for utt in ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1091_WSI_DIS_XX"]:
        write_wav(corpus / "AudioWAV" / f"{utt}.wav", seconds=0.5)
    with caplog.at_level(logging.INFO, logger="ambiemo.corpora"):
        m = load("crema_d", corpus)
    lines = [r for r in caplog.records if r.name == "ambiemo.corpora"]
    assert len(lines) == 1 and "1 of 4" in lines[0].getMessage()
    assert m.attrs["missing_audio"] == 1
    by = m.set_index("utt_id")
    assert not by.loc["1076_MTI_SAD_XX", "has_audio"]
    assert math.isnan(by.loc["1076_MTI_SAD_XX", "duration_s"])
    assert by.loc["1001_DFA_ANG_XX", "duration_s"] == pytest.approx(0.5)
    with pytest.raises(FileNotFoundError, match="1076_MTI_SAD_XX") as err:
        require_audio(m)
    assert "1001_DFA_ANG_XX" not in str(err.value)
    require_audio(m[m["has_audio"]])


def _edit_row(root: Path, row_id: str, column: int, value: str) -> int:
    path = root / "processedResults" / "tabulatedVotes.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f'"{row_id}"'):
            cells = line.split(",")
            cells[column] = value
            lines[i] = ",".join(cells)
            path.write_text("\n".join(lines) + "\n")
            return i + 1
    raise AssertionError(row_id)


def test_vote_sum_mismatch_names_file_and_line(corpus):
    lineno = _edit_row(corpus, "100003", 5, "6")  # N: 5 -> 6, numResponses stays 9
    with pytest.raises(ValueError, match=rf"tabulatedVotes.csv:{lineno}: votes sum to 10"):
        load("crema_d", corpus)


def test_unknown_emotion_names_file_and_line(corpus):
    lineno = _edit_row(corpus, "100002", 10, '"H:Q"')
    with pytest.raises(ValueError, match=rf"tabulatedVotes.csv:{lineno}: unknown emotion 'H:Q'"):
        load("crema_d", corpus)


def test_bad_count_and_missing_column(corpus):
    lineno = _edit_row(corpus, "100004", 2, "x")
    with pytest.raises(ValueError, match=rf"tabulatedVotes.csv:{lineno}: vote count D"):
        load("crema_d", corpus)
    path = corpus / "processedResults" / "tabulatedVotes.csv"
    path.write_text(path.read_text().replace('"numResponses"', '"responses"'))
    with pytest.raises(ValueError, match=r"tabulatedVotes.csv:1: missing column.*numResponses"):
        load("crema_d", corpus)


# --- the real annotation files -------------------------------------------------------------

real = pytest.mark.skipif(not (REAL / "processedResults" / "tabulatedVotes.csv").is_file(),
                          reason=f"CREMA-D annotations not found under {REAL}")


def _voice_rows() -> list[dict]:
    with open(REAL / "processedResults" / "tabulatedVotes.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if int(r[""]) // 100000 == 1]


@real
def test_real_annotations_load_fast_with_7442_voice_clips():
    start = time.perf_counter()
    m = load("crema_d", REAL)
    assert time.perf_counter() - start < 10
    assert len(m) == 7442 and m["utt_id"].is_unique
    assert m["speaker"].nunique() == 91
    assert "1076_MTI_SAD_XX" in set(m["utt_id"])
    assert m["gender"].notna().all()
    assert m.attrs["dropped"] == {"no_votes": 0}
    assert m["ambiguity_bin"].value_counts().min() > 2000  # tertiles despite ties


@real
def test_real_votes_agree_with_the_file():
    rows = {r["fileName"]: r for r in _voice_rows()}
    m = load("crema_d", REAL).set_index("utt_id")
    codes = dict(zip("ADFHNS", CLASSES))
    for name, r in rows.items():
        got = m.loc[name]
        assert got["n_raters"] == int(r["numResponses"])
        assert sum(got[f"votes_{c}"] for c in CLASSES) == int(r["numResponses"])
        assert all(got[f"votes_{codes[k]}"] == int(r[k]) for k in codes)
        assert got["agreement"] == pytest.approx(float(r["agreement"]))
        assert max(got[f"p_{c}"] for c in CLASSES) == pytest.approx(float(r["agreement"]))
        if ":" in r["emoVote"]:
            assert got["majority"] is None
        else:
            assert got["majority"] == codes[r["emoVote"]]


@real
def test_real_statistics_match_the_file_exactly():
    rows = _voice_rows()
    stats = corpus_statistics(load("crema_d", REAL)).iloc[0]
    n = np.array([int(r["numResponses"]) for r in rows])
    counts = np.array([[int(r[k]) for k in "ADFHNS"] for r in rows])
    p = counts / n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = np.where(p > 0, -p * np.log2(p), 0).sum(axis=1)
    assert stats["clips"] == len(rows) == 7442
    assert stats["raters_mean"] == pytest.approx(n.mean(), abs=1e-12)
    assert (stats["raters_min"], stats["raters_max"]) == (n.min(), n.max())
    assert stats["entropy_bits_mean"] == pytest.approx(entropy.mean(), abs=1e-12)
    assert stats["share_unanimous"] == np.mean([float(r["agreement"]) == 1 for r in rows])
    assert stats["share_tied"] == np.mean([":" in r["emoVote"] for r in rows])
    for k, c in zip("ADFHNS", CLASSES):
        assert stats[f"vote_share_{c}"] == pytest.approx(counts[:, "ADFHNS".index(k)].sum()
                                                        / n.sum(), abs=1e-12)
        assert stats[f"prior_{c}"] == pytest.approx(p[:, "ADFHNS".index(k)].mean(), abs=1e-12)
