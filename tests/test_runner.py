"""Generation refuses bad input before sampling anything, and never loses what is stored."""
import shutil

import pytest

from ambiemo import corpora
from ambiemo.alm import Decoding
from ambiemo.alm.prompts import load_prompt
from ambiemo.alm.runner import GenerationSettings, generate_samples
from ambiemo.alm.store import SampleStore
from ambiemo.corpora.manifest import AudioUnavailableError


@pytest.fixture()
def demo_copy(repo, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", root)
    return root


def test_missing_and_corrupt_wavs_are_listed_and_nothing_is_sampled(
        demo_copy, tmp_path, tiny_qwen2_audio, repo):
    (demo_copy / "wav" / "spk1_sad_s1.wav").unlink()
    (demo_copy / "wav" / "spk2_happy_s2.wav").write_bytes(b"RIFF....garbage")
    manifest = corpora.load("demo", demo_copy)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    with SampleStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(AudioUnavailableError) as err:
            generate_samples(tiny_qwen2_audio, manifest, store, prompt,
                             GenerationSettings(n_samples=2), progress=False)
        assert store.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0
    msg = str(err.value)
    assert "2 of 32 clips" in msg
    assert "spk1_sad_s1: no audio file at" in msg
    assert "spk2_happy_s2" in msg and "not a readable audio file" in msg


def test_empty_corpus_is_an_error_naming_it(demo_copy):
    votes = demo_copy / "votes.csv"
    votes.write_text(votes.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="demo: the corpus has no utterances"):
        corpora.load("demo", demo_copy)


def test_bad_vote_row_names_file_and_line(demo_copy):
    votes = demo_copy / "votes.csv"
    lines = votes.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",-1"
    votes.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"votes.csv:4: vote counts must be non-negative"):
        corpora.load("demo", demo_copy)


def test_unknown_corpus_lists_valid_names(tmp_path):
    with pytest.raises(KeyError, match=r"valid: \['crema_d', 'demo', 'iemocap', 'msp_podcast'\]"):
        corpora.load("voxceleb", tmp_path)


def test_parse_failures_are_stored_not_answered(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    """Unconstrained, the random model writes gibberish: every failure is a stored row with
    NaN probabilities and a reason, and the strategies see it as unusable."""
    from ambiemo import tts
    manifest = corpora.load("demo", demo_copy).head(4)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = GenerationSettings(n_samples=3, batch_size=4,
                                  decoding=Decoding(constrained=False, max_new_tokens=4))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, manifest, store, prompt, settings,
                                  progress=False)
        samples = store.read(report.run_key)
    assert report.rows_written == 16 and report.parse_failures == (~samples["parse_ok"]).sum()
    failed = samples[~samples["parse_ok"]]
    assert len(failed) > 0
    assert failed[["p_neutral", "p_happy", "p_sad", "p_angry"]].isna().all().all()
    assert (failed["parse_error"] != "").all()
    preds = tts.predict(samples, manifest.attrs["classes"], ["greedy", "majority"],
                        model="tiny")
    assert (preds["n_failed"] >= 0).all()
    assert preds.loc[preds["missing"], ["p_neutral", "p_sad"]].isna().all().all()
