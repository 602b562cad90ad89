"""What all corpora share: registration, ambiguity bins, speaker-independent splits and the
corpus statistics of notebook 01 (Jia et al., 2026)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ambiemo.corpora import LOADERS, load, loader_options
from ambiemo.corpora.manifest import ambiguity_bins, build_manifest, tertile_edges
from ambiemo.corpora.splits import (EXCLUDED, assert_speaker_independent, session_groups,
                                    speaker_folds, speaker_split)
from ambiemo.corpora.stats import corpus_statistics

FIXTURES = Path(__file__).parent / "fixtures"
ROOTS = {"iemocap": FIXTURES / "iemocap", "msp_podcast": FIXTURES / "msp_podcast" / "v1.11",
         "crema_d": FIXTURES / "crema_d"}


def test_the_three_corpora_are_registered():
    assert {"iemocap", "msp_podcast", "crema_d"} <= set(LOADERS)


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_every_corpus_loads_from_a_string_root(name):
    m = load(name, str(ROOTS[name]))
    assert m["ambiguity_bin"].cat.ordered
    assert list(m["ambiguity_bin"].cat.categories) == ["low", "mid", "high"]
    assert m.attrs["corpus"] == name and "no_votes" in m.attrs["dropped"]
    assert m.attrs["missing_audio"] == len(m)
    p = m[[f"p_{c}" for c in m.attrs["classes"]]].to_numpy()
    assert np.allclose(p.sum(axis=1), 1)
    valid = loader_options(name)
    with pytest.raises(TypeError, match=rf"corpus '{name}': unknown option\(s\) "
                                        rf"\['no_such_option'\]; valid: \[.*\]"):
        load(name, ROOTS[name], no_such_option=1)
    assert valid  # every real corpus has at least one protocol option


def test_demo_takes_no_options(repo):
    with pytest.raises(TypeError, match="takes no options"):
        load("demo", repo / "data" / "demo", split="test")


def test_missing_root():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("crema_d", FIXTURES / "nowhere")


# --- ambiguity bins ------------------------------------------------------------------------

def test_tertiles_keep_ties_together():
    # 40% unanimous clips: the first cut sits on 0, never splitting the zeros.
    e = np.array([0.0] * 4 + [0.5, 0.7, 0.9, 1.2, 1.5, 1.58])
    bins, edges = ambiguity_bins(e)
    assert edges == (0.0, 0.9)
    assert bins.tolist() == ["low"] * 4 + ["mid"] * 3 + ["high"] * 3
    assert bins.ordered and list(bins.categories) == ["low", "mid", "high"]


def test_tertiles_with_few_distinct_values():
    # 70% at 0: no cut can balance; no bin is empty while three distinct values exist.
    e = np.array([0.0] * 7 + [1.0, 1.0, 1.585])
    bins, edges = ambiguity_bins(e)
    assert pd.Series(bins).value_counts().to_dict() == {"low": 7, "mid": 2, "high": 1}
    assert tertile_edges(np.zeros(5)) == (0.0, 0.0)


def test_tertiles_ignore_float_noise():
    e = np.array([0.918295834054489, 0.9182958340544896, 0.0, 1.5, 1.5, 0.0])
    bins, _ = ambiguity_bins(e)
    assert bins[0] == bins[1]


def test_balanced_tertiles_on_distinct_values():
    e = np.linspace(0, 2, 99)
    bins, _ = ambiguity_bins(e)
    assert pd.Series(bins).value_counts().tolist() == [33, 33, 33]


def test_fixed_edges():
    bins, edges = ambiguity_bins(np.array([0.0, 0.5, 0.51, 1.0, 1.01, 2.0]), [0.5, 1.0])
    assert bins.tolist() == ["low", "low", "mid", "mid", "high", "high"]
    bins, _ = ambiguity_bins(np.array([0.0, 0.2, 2.0]), [0.1])
    assert bins.tolist() == ["(-inf, 0.1]", "(0.1, inf]", "(0.1, inf]"]
    with pytest.raises(ValueError, match="increasing"):
        ambiguity_bins(np.array([0.0]), [1.0, 0.5])


def test_load_with_fixed_edges():
    m = load("crema_d", ROOTS["crema_d"], ambiguity_edges=[0.5, 1.2])
    assert m.attrs["ambiguity_edges"] == [0.5, 1.2] and m.attrs["ambiguity_rule"] == "fixed"
    assert m.set_index("utt_id")["ambiguity_bin"].to_dict() == {
        "1001_DFA_ANG_XX": "mid", "1001_IEO_HAP_HI": "mid", "1076_MTI_SAD_XX": "high",
        "1091_WSI_DIS_XX": "low"}


# --- splits --------------------------------------------------------------------------------

def toy_manifest(speakers: list) -> pd.DataFrame:
    n = len(speakers)
    records = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "split": "all",
                            "speaker": pd.Series(speakers, dtype=object),
                            "audio_path": [f"/nowhere/u{i}.wav" for i in range(n)],
                            "n_raters": 3})
    votes = np.tile([[2.0, 1.0]], (n, 1))
    return build_manifest(records, votes, ["a", "b"], corpus="toy", label_space="2class")


def test_speaker_folds_are_speaker_independent_and_seeded():
    speakers = [f"s{i % 10}" for i in range(100)] + [None] * 5
    m = toy_manifest(speakers)
    folds = speaker_folds(m, 5, seed=1)
    assert_speaker_independent(m, folds)
    assert (folds[m["speaker"].isna()] == EXCLUDED).all()
    assert folds[folds >= 0].value_counts().tolist() == [20] * 5
    assert folds.equals(speaker_folds(m, 5, seed=1))
    assert not folds.equals(speaker_folds(m, 5, seed=2))
    together = speaker_folds(m, 5, unknown="together")
    assert together[m["speaker"].isna()].nunique() == 1 and (together >= 0).all()
    assert (speaker_folds(m, 5, unknown="singleton") >= 0).all()
    with pytest.raises(ValueError, match="n_folds"):
        speaker_folds(m, 11)
    with pytest.raises(ValueError, match="unknown="):
        speaker_folds(m, 5, unknown="ignore")


def test_speaker_split_shares():
    m = toy_manifest([f"{1001 + i % 91}" for i in range(910)])
    split = speaker_split(m, {"train": 0.7, "dev": 0.1, "test": 0.2}, seed=0)
    assert_speaker_independent(m, split)
    share = split.value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.7, abs=0.02)
    assert share["test"] == pytest.approx(0.2, abs=0.02)
    with pytest.raises(AssertionError, match="more than one split"):
        assert_speaker_independent(m, pd.Series(np.arange(len(m)) % 2))


def test_msp_unknown_speakers_are_excluded_by_default():
    m = load("msp_podcast", ROOTS["msp_podcast"])
    split = speaker_split(m, {"train": 0.5, "test": 0.5})
    assert split[m["speaker"].isna()].isna().all()
    assert split[m["speaker"].notna()].notna().all()


def test_iemocap_sessions():
    m = load("iemocap", ROOTS["iemocap"], "full")
    assert session_groups(m).tolist() == ["Ses01"] * 3 + ["Ses02"] * 2 + ["Ses03"] * 2
    with pytest.raises(ValueError, match="IEMOCAP"):
        session_groups(load("crema_d", ROOTS["crema_d"]))


# --- statistics ----------------------------------------------------------------------------

def test_statistics_on_fixture():
    s = corpus_statistics(load("crema_d", ROOTS["crema_d"])).iloc[0]
    assert s["clips"] == 4
    assert (s["raters_min"], s["raters_max"], s["raters_mean"]) == (9, 10, 9.5)
    assert s["share_unanimous"] == 0.25 and s["share_tied"] == 0.25
    assert s["vote_share_neutral"] == pytest.approx(10 / 38)
    assert s["prior_neutral"] == pytest.approx((0.5 + 5 / 9) / 4)
    assert s["missing_audio"] == 4
    priors = [s[f"prior_{c}"] for c in ["angry", "disgusted", "fearful", "happy", "neutral", "sad"]]
    assert sum(priors) == pytest.approx(1)


def test_statistics_with_fractional_votes():
    s = corpus_statistics(load("iemocap", ROOTS["iemocap"], selection="votes")).iloc[0]
    # F000, M001, F003 and Ses03 M000 are unanimous (M001 only after Excited merges into
    # happy, Ses03 M000 only after Frustration is dropped); F001 is an angry/sad tie.
    assert s["share_unanimous"] == pytest.approx(4 / 6)
    assert s["share_tied"] == pytest.approx(1 / 6)
    assert s["label_space"] == "4class"
