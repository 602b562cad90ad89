"""Per-clip features (features/cache.py, features/egemaps.py): failure rows, the cache, workers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ambiemo.features.cache import extract_features, feature_columns, feature_matrix
from ambiemo.features.egemaps import N_EGEMAPS, extract_egemaps

SR = 16_000


def _write(path, seconds=1.0, f0=150.0, amp=0.1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * f0 * t) + 0.01 * amp * rng.standard_normal(len(t))
    sf.write(path, x.astype("float32"), SR, subtype="FLOAT")
    return str(path)


class CountingExtractor:
    """A cheap stand-in extractor (RMS, peak) that records which clips it was asked for."""

    def __init__(self, version=1):
        self.settings = {"extractor": "counting", "version": version, "sample_rate": SR}
        self.seen: list[int] = []

    def columns(self):
        return ["rms", "peak"]

    def __call__(self, audio, sr):
        self.seen.append(len(audio))
        return np.array([np.sqrt(np.mean(audio ** 2)), np.abs(audio).max()])


@pytest.fixture()
def clips(tmp_path):
    paths = [_write(tmp_path / f"c{i}.wav", seconds=0.5 + 0.1 * i, amp=0.05 * (i + 1), seed=i)
             for i in range(4)]
    bad = tmp_path / "nan.wav"
    sf.write(bad, np.full(SR // 2, np.nan, dtype="float32"), SR, subtype="FLOAT")
    paths += [str(tmp_path / "absent.wav"), str(bad)]
    return pd.DataFrame({"utt_id": [f"u{i}" for i in range(6)], "audio_path": paths,
                         "speaker": ["a", "a", "b", "b", "c", "c"]})


def test_failed_clips_are_counted_rows_with_the_file_named(clips, tmp_path):
    out = extract_features(clips, tmp_path / "f.parquet", CountingExtractor(), progress=False)
    assert out["utt_id"].tolist() == clips["utt_id"].tolist()
    assert out["status"].tolist() == ["ok"] * 4 + ["failed"] * 2
    assert out.attrs["n_failed"] == 2
    assert "absent.wav" in out.loc[4, "reason"] and "not found" in out.loc[4, "reason"]
    assert "nan.wav" in out.loc[5, "reason"] and "non-finite" in out.loc[5, "reason"]
    assert out.loc[:3, "reason"].isna().all()
    X, ok = feature_matrix(clips, out)
    assert ok.tolist() == [True] * 4 + [False] * 2 and np.isnan(X[4:]).all()
    # The first feature is the clip's RMS: the rows belong to their clips.
    np.testing.assert_allclose(X[:4, 0], 0.05 * np.arange(1, 5) / np.sqrt(2), rtol=0.02)


def test_cache_extracts_only_what_is_new_and_retries_failures(clips, tmp_path):
    cache = tmp_path / "feats" / "demo__counting.parquet"
    ex = CountingExtractor()
    first = extract_features(clips.iloc[:3], cache, ex, progress=False)
    assert len(ex.seen) == 3
    ex.seen.clear()
    again = extract_features(clips, cache, ex, progress=False)
    # Three clips cached; the new readable one extracted; failed ones tried (and failing).
    assert len(ex.seen) == 1
    pd.testing.assert_frame_equal(again.iloc[:3].reset_index(drop=True), first)
    # Other settings: the cache is not reused.
    other = CountingExtractor(version=2)
    extract_features(clips, cache, other, progress=False)
    assert len(other.seen) == 4
    # A changed audio path for a cached utt_id is extracted again.
    moved = clips.copy()
    moved.loc[0, "audio_path"] = clips.loc[3, "audio_path"]
    other.seen.clear()
    out = extract_features(moved, cache, other, progress=False)
    assert len(other.seen) == 1 and out.loc[0, "rms"] == out.loc[3, "rms"]
    # A run over part of the corpus keeps the other clips in the cache.
    other.seen.clear()
    extract_features(moved.iloc[4:], cache, other, progress=False)
    assert len(other.seen) == 0  # both fail again: nothing readable to extract
    assert set(pd.read_parquet(cache)["utt_id"]) == set(clips["utt_id"])


def test_bad_manifest_is_refused_with_the_reason(clips):
    with pytest.raises(ValueError, match="utt_id 'u0' more than once"):
        extract_features(pd.concat([clips, clips.iloc[:1]]), None, CountingExtractor(),
                         progress=False)
    with pytest.raises(ValueError, match="audio_path"):
        extract_features(clips.drop(columns="audio_path"), None, CountingExtractor(),
                         progress=False)
    with pytest.raises(ValueError, match="executor='spark'"):
        extract_features(clips, None, CountingExtractor(), executor="spark", progress=False)
    with pytest.raises(ValueError, match="no feature row"):
        feature_matrix(clips, extract_features(clips.iloc[:2], None, CountingExtractor(),
                                               progress=False))


def test_egemaps_gives_88_functionals_and_the_same_numbers_in_worker_processes(clips, tmp_path):
    seq = extract_egemaps(clips, None, n_jobs=1, progress=False)
    assert len(feature_columns(seq)) == N_EGEMAPS == 88
    assert "loudness_sma3_amean" in seq.columns
    assert seq["status"].tolist() == ["ok"] * 4 + ["failed"] * 2
    par = extract_egemaps(clips, tmp_path / "e.parquet", n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(seq, par)
    # Louder synthetic clips have higher eGeMAPS loudness.
    loud = seq.loc[:3, "loudness_sma3_amean"].to_numpy()
    assert (np.diff(loud) > 0).all()
    assert par.attrs["settings"]["feature_set"] == "eGeMAPSv02"


def test_ray_executor_runs_the_same_batches(clips, monkeypatch):
    """The Ray path's task loop, against a synchronous stand-in for `ray` (a real local Ray
    cluster takes a minute to start on the shared 2-core test machine)."""
    import sys
    import types

    class Ref:
        def __init__(self, value):
            self.value = value

    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: True
    fake.put = Ref
    fake.get = lambda ref: ref.value
    fake.wait = lambda refs, num_returns: (refs[-num_returns:], refs[:-num_returns])

    def remote(fn):
        def call(*args):
            return Ref(fn(*[a.value if isinstance(a, Ref) else a for a in args]))
        return types.SimpleNamespace(remote=call)

    fake.remote = remote
    monkeypatch.setitem(sys.modules, "ray", fake)
    local = extract_features(clips, None, CountingExtractor(), progress=False)
    remote_rows = extract_features(clips, None, CountingExtractor(), executor="ray",
                                   batch_size=2, progress=False)
    pd.testing.assert_frame_equal(local, remote_rows)


def test_tiny_wavlm_features_are_the_mean_of_the_chosen_layer(clips, tmp_path):
    import torch
    from transformers import AutoFeatureExtractor, WavLMModel

    from ambiemo.alm.audio import load_audio
    from ambiemo.features.ssl import extract_ssl

    out = extract_ssl(clips, tmp_path / "w.parquet", encoder="tiny-wavlm", layer=2,
                      cache_dir=tmp_path / "cache", progress=False)
    assert out["status"].tolist() == ["ok"] * 4 + ["failed"] * 2
    cols = feature_columns(out)
    assert len(cols) == 32 and cols[0] == "L2_0"
    assert out.attrs["settings"]["layer"] == 2
    assert out.attrs["settings"]["checkpoint"] == "tiny:wavlm"
    # Cross-check one clip against the encoder run directly.
    path = next((tmp_path / "cache" / "tiny").glob("wavlm-v*"))
    model = WavLMModel.from_pretrained(path).eval()
    proc = AutoFeatureExtractor.from_pretrained(path)
    audio = load_audio(clips.loc[1, "audio_path"])
    with torch.inference_mode():
        hs = model(**proc(audio, sampling_rate=SR, return_tensors="pt"),
                   output_hidden_states=True).hidden_states
    np.testing.assert_allclose(out.loc[1, cols].to_numpy(float), hs[2][0].mean(0).numpy(),
                               rtol=1e-5, atol=1e-6)
    layer1 = extract_ssl(clips.iloc[:2], None, encoder="tiny-wavlm",
                         cache_dir=tmp_path / "cache", progress=False)
    assert feature_columns(layer1)[0] == "L1_0"
    with pytest.raises(KeyError, match="valid: .*tiny-wavlm"):
        extract_ssl(clips, None, encoder="hubert-xl")
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        extract_ssl(clips.iloc[:1], None, encoder="tiny-wavlm", layer=7,
                    cache_dir=tmp_path / "cache", progress=False)
