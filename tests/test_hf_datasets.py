"""Hugging Face `datasets` where the field uses it, tested offline with datasets built here:
a corpus kept as a dataset (save_to_disk folder, DatasetDict, hub-cache Parquet folder; vote
columns or rater-label lists; embedded audio) read by `corpora.load("hf", ...)`, and a run's
samples and predictions exported as a dataset folder and read back."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from ambiemo import corpora  # noqa: E402
from ambiemo.outputs.export import export_from_store, export_run, read_export  # noqa: E402

CLASSES = ["angry", "happy", "neutral", "sad"]


def _wav(seconds=0.2, sr=16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * sr), dtype="float32"), sr, format="WAV")
    return buf.getvalue()


def _votes_dataset():
    return datasets.Dataset.from_dict({
        "id": ["c1", "c2", "c3", "c4"],
        "spk": ["s1", "s1", "s2", "s2"],
        "audio": [{"path": f"c{i}.wav", "bytes": _wav()} for i in range(1, 5)],
        **{f"n_{c}": v for c, v in zip(CLASSES, ([3, 0, 1, 0], [1, 2, 0, 0], [0, 2, 1, 0],
                                                 [1, 1, 0, 0]))},
    }).cast_column("audio", datasets.Audio(decode=False))


def test_saved_dataset_with_vote_columns_and_embedded_audio(tmp_path):
    _votes_dataset().save_to_disk(str(tmp_path / "corpus"))
    man = corpora.load("hf", tmp_path / "corpus", classes=CLASSES, votes="n_",
                       speaker="spk", corpus_name="mycorpus")
    assert list(man.utt_id) == ["c1", "c2", "c3"]           # c4 has no votes at all
    assert man.attrs["dropped"]["no_votes"] == 1 and man.attrs["classes"] == CLASSES
    assert list(man.speaker) == ["s1", "s1", "s2"] and (man.corpus == "mycorpus").all()
    assert np.allclose(man.loc[0, [f"p_{c}" for c in CLASSES]].to_numpy(float),
                       [0.6, 0.2, 0.0, 0.2])
    assert man.majority.tolist() == ["angry", None, None]     # c2, c3: tied votes
    assert man.has_audio.all() and np.allclose(man.duration_s, 0.2)
    assert "ambiguity_bin" in man


def test_dataset_dict_with_rater_label_lists(tmp_path):
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({
            "id": ["a", "b"], "speaker": ["s1", "s2"], "audio": ["wav/a.wav", "wav/b.wav"],
            "labels": [["Angry", "anger", "happy"], ["neutral", "disgust", "sad"]]}),
        "test": datasets.Dataset.from_dict({
            "id": ["c"], "speaker": ["s3"], "audio": ["wav/c.wav"],
            "labels": [["sad", "sad", "sad"]]})})
    ds.save_to_disk(str(tmp_path / "dd"))
    man = corpora.load("hf", tmp_path / "dd", classes=CLASSES, raters="labels")
    assert list(man.split) == ["train", "train", "test"]
    assert man.loc[0, "votes_angry"] == 2 and man.loc[0, "votes_happy"] == 1
    assert man.loc[1, "n_raters"] == 2        # disgust is outside the 4-class space
    assert man.attrs["dropped"]["rater_labels_outside_label_space"] == 1
    assert man.audio_path[0].endswith("dd/wav/a.wav") and not man.has_audio.any()
    only = corpora.load("hf", tmp_path / "dd", classes=CLASSES, raters="labels",
                        hf_split="test")
    assert list(only.utt_id) == ["c"]
    ds["test"] = ds["test"].map(lambda r: {"labels": ["sad", "blorp"]})
    ds.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="'c'.*'blorp'"):
        corpora.load("hf", tmp_path / "bad", classes=CLASSES, raters="labels")


def test_hub_cache_parquet_folder(tmp_path):
    repo = tmp_path / "hub" / "data"
    repo.mkdir(parents=True)
    pd.DataFrame({"id": ["x", "y"], "speaker": ["s", "t"], "audio": ["x.wav", "y.wav"],
                  **{f"votes_{c}": [1, 0] for c in CLASSES}}).to_parquet(
        repo / "test-00000-of-00001.parquet")
    man = corpora.load("hf", tmp_path / "hub", label_space="demo:4class")
    assert list(man.utt_id) == ["x"] and man.attrs["classes"] == ["neutral", "happy", "sad", "angry"]


def test_bad_options_name_what_is_valid(tmp_path):
    _votes_dataset().save_to_disk(str(tmp_path / "c"))
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['vote_prefix'\].*raters"):
        corpora.load("hf", tmp_path / "c", classes=CLASSES, vote_prefix="n_")
    with pytest.raises(KeyError, match="votes_angry"):
        corpora.load("hf", tmp_path / "c", classes=CLASSES, speaker="spk")
    with pytest.raises(KeyError, match="speaker column 'speaker'.*spk"):
        corpora.load("hf", tmp_path / "c", classes=CLASSES, votes="n_")
    with pytest.raises(ValueError, match="give classes"):
        corpora.load("hf", tmp_path / "c", votes="n_", speaker="spk")


def test_run_export_round_trips_samples_and_predictions(tmp_path):
    samples = pd.DataFrame({"run_key": "abc123", "model": "tiny-qwen2-audio",
                            "utt_id": ["u1", "u1", "u2"], "kind": ["greedy", "sample", "greedy"],
                            "idx": [0, 0, 0], "text": ["angry", "Answer: sad", "happy"],
                            "logprob": [-0.1, -2.0, np.nan], "n_tokens": [2, 4, 2],
                            "seconds": [0.1, 0.1, 0.2], "failure": ["", "", ""]})
    predictions = pd.DataFrame({"utt_id": ["u1", "u2"], "model": "tiny-qwen2-audio",
                                "strategy": "greedy", "n": 1, "replicate": 0,
                                **{f"p_{c}": [1.0, 0.0] for c in CLASSES},
                                "params": ['{"seed": 0}'] * 2})
    runs = [{"run_key": "abc123", "model": "tiny-qwen2-audio",
             "settings": {"prompt": {"id": "emotion_v1", "version": 2}, "seed": 0}}]
    out = export_run(tmp_path / "export", samples=samples, predictions=predictions, runs=runs,
                     corpus="demo", classes=CLASSES,
                     licence="demo corpus: synthetic, CC0; model outputs: the model's licence")
    card = (out / "README.md").read_text()
    for needle in ("tiny-qwen2-audio", "emotion_v1", "abc123", "CC0", "Jia et al"):
        assert needle in card
    assert card.startswith("---\n") and "configs:" in card
    assert (out / "samples.parquet").is_file() and (out / "predictions.parquet").is_file()
    back = read_export(out)
    pd.testing.assert_frame_equal(back.samples, samples, check_dtype=False)
    pd.testing.assert_frame_equal(back.predictions, predictions, check_dtype=False)
    assert back.classes == CLASSES and back.corpus == "demo"
    assert back.runs[0]["settings"]["prompt"]["id"] == "emotion_v1"
    assert json.loads((out / "ambiemo_export.json").read_text())["classes"] == CLASSES
    with pytest.raises(ValueError, match="p_sad"):
        export_run(tmp_path / "bad", samples=samples, predictions=predictions.drop(
            columns="p_sad"), runs=runs, corpus="demo", classes=CLASSES, licence="x")


def test_export_from_the_sample_store(tmp_path):
    from ambiemo.sampling.store import SampleStore

    with SampleStore(tmp_path / "samples.sqlite") as store:
        store.register_run("k1", "tiny-qwen2-audio", {"prompt": {"id": "p1"}, "seed": 0},
                           CLASSES)
        store.write("k1", [{"utt_id": "u1", "kind": "greedy", "idx": 0, "text": "sad",
                            "logprob": -0.5, "n_tokens": 2, "seconds": 0.1, "parse_ok": True},
                           {"utt_id": "u2", "kind": "greedy", "idx": 0, "text": "???",
                            "n_tokens": 2, "seconds": 0.1, "parse_ok": False}])
        predictions = pd.DataFrame({"utt_id": ["u1"], "model": "tiny-qwen2-audio",
                                    "strategy": "greedy", "n": 1,
                                    **{f"p_{c}": [float(c == "sad")] for c in CLASSES}})
        out = export_from_store(tmp_path / "ex", store, ["k1"], predictions, corpus="demo",
                                classes=CLASSES, licence="synthetic demo corpus, CC0")
        with pytest.raises(KeyError, match="'k9'.*k1"):
            export_from_store(tmp_path / "ex2", store, ["k9"], predictions, corpus="demo",
                              classes=CLASSES, licence="x")
    back = read_export(out)
    assert list(back.samples.text) == ["sad", "???"] and set(back.samples.run_key) == {"k1"}
    assert back.runs == [{"run_key": "k1", "model": "tiny-qwen2-audio",
                          "settings": {"prompt": {"id": "p1"}, "seed": 0}}]
    assert "p1" in (out / "README.md").read_text()
