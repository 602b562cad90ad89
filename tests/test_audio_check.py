"""Issue #14: every audio file is probed when a corpus is prepared; a bad clip becomes named,
counted `audio_error` failure rows in generation, never a refused job and never an answer."""
import shutil

import numpy as np
import pytest
import soundfile as sf

from ambiemo import corpora
from ambiemo.alm.prompts import load_prompt
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.sampling.store import SampleStore
from ambiemo.config import Decoding
from ambiemo.corpora.audio_check import probe_audio, probe_manifest
from ambiemo.corpora.stats import corpus_statistics


def bad_files(folder):
    """One file per way a clip goes wrong, plus a good one."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.wav"
    sf.write(good, np.sin(np.arange(8000) / 10).astype("float32") * 0.3, 16000)
    (folder / "zero.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio\n")
    (folder / "cut.wav").write_bytes(good.read_bytes()[:100])      # 100 bytes: 1.75 ms
    sf.write(folder / "nan.wav", np.array([0.1, np.nan] * 4000, dtype="float32"), 16000,
             subtype="FLOAT")
    return folder


@pytest.mark.parametrize("name, status, reason", [
    ("good.wav", "ok", ""),
    ("zero.wav", "unreadable", "not a readable audio file"),
    ("text.wav", "unreadable", "not a readable audio file"),
    ("cut.wav", "too_short", "ms of audio, shorter than the minimum 0.1 s"),
    ("nan.wav", "non_finite", "4000 non-finite samples"),
    ("absent.wav", "missing", "no audio file"),
])
def test_each_file_is_probed(tmp_path, name, status, reason):
    folder = bad_files(tmp_path / "wav")
    p = probe_audio(folder / name)
    assert p.status == status and reason in p.reason
    assert p.status == "ok" or str(folder / name) in p.reason       # the file is named
    if name == "cut.wav":
        assert p.duration_s == pytest.approx(28 / 16000)            # what decodes, not the header
    if name == "good.wav":
        assert p.duration_s == pytest.approx(0.5)
        assert probe_audio(folder / name, min_duration_s=1.0).status == "too_short"


@pytest.fixture()
def broken_demo(repo, tmp_path):
    """The demo corpus with a 0-byte WAV, a text file named .wav and one cut to 100 bytes."""
    root = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", root)
    wav = root / "wav"
    (wav / "spk1_sad_s1.wav").write_bytes(b"")
    (wav / "spk2_happy_s2.wav").write_text("not audio")
    (wav / "spk1_angry_s1.wav").write_bytes((wav / "spk1_angry_s1.wav").read_bytes()[:100])
    return root


def test_prepare_writes_the_status_of_every_clip(broken_demo):
    m = corpora.load("demo", broken_demo)
    status = m.set_index("utt_id")["audio_status"]
    assert status["spk1_sad_s1"] == "unreadable" and status["spk2_happy_s2"] == "unreadable"
    assert status["spk1_angry_s1"] == "too_short"
    assert (status.drop(["spk1_sad_s1", "spk2_happy_s2", "spk1_angry_s1"]) == "ok").all()
    assert m.attrs["unusable_audio"] == 3 and m.attrs["missing_audio"] == 0
    assert m.attrs["audio_status_counts"]["unreadable"] == 2
    s = corpus_statistics(m).iloc[0]
    assert (s["missing_audio"], s["unusable_audio"]) == (0, 3)
    # the option reaches the probe (a corpus option in the config: min_audio_s)
    strict = corpora.load("demo", broken_demo, min_audio_s=100.0)
    assert (strict["audio_status"] != "ok").all() and strict.attrs["min_audio_s"] == 100.0
    with pytest.raises(ValueError, match="min_duration_s must be >= 0"):
        probe_manifest(m, -1)


def test_generate_stores_named_failures_not_a_refused_job(broken_demo, tmp_path, repo,
                                                           tiny_qwen2_audio):
    m = corpora.load("demo", broken_demo)
    m = m[m["utt_id"].isin(["spk1_sad_s1", "spk2_happy_s2", "spk1_angry_s1", "spk1_happy_s1"])]
    settings = GenerationSettings(n_samples=2, batch_size=4, decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, m, store,
                                  load_prompt("direct_label", repo / "configs" / "prompts"),
                                  settings, progress=False)
        df = store.read(report.run_key)
    bad = df[df["utt_id"] != "spk1_happy_s1"]
    assert report.unreadable_clips == 3 and len(bad) == 3 * 3       # greedy + 2 samples each
    assert bad["parse_error"].str.startswith("audio_error: ").all() and (~bad["parse_ok"]).all()
    assert bad[[c for c in df if c.startswith("p_")]].isna().all().all()     # never an answer
    assert df[df["utt_id"] == "spk1_happy_s1"]["parse_ok"].all()
    assert [e.split(":")[0] for e in report.audio_errors] == ["spk1_angry_s1", "spk1_sad_s1",
                                                             "spk2_happy_s2"]
    assert "too_short" in report.audio_errors[0]


def test_a_clip_cut_after_prepare_is_still_caught(repo, tmp_path, tiny_qwen2_audio):
    root = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", root)
    m = corpora.load("demo", root)
    m = m[m["utt_id"].isin(["spk1_angry_s1", "spk1_happy_s1"])]
    wav = root / "wav" / "spk1_angry_s1.wav"
    wav.write_bytes(wav.read_bytes()[:100])
    settings = GenerationSettings(n_samples=1, batch_size=2, decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, m, store,
                                  load_prompt("direct_label", repo / "configs" / "prompts"),
                                  settings, progress=False)
    assert report.audio_errors and report.audio_errors[0].startswith(
        "spk1_angry_s1: audio_error: too_short:")
