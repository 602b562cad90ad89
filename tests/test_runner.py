"""Generation refuses bad input before sampling anything, and never loses what is stored."""
import dataclasses
import shutil

import pytest

from ambiemo import corpora
from ambiemo.alm import Decoding
from ambiemo.alm.prompts import load_prompt
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.sampling.store import SampleStore
from ambiemo.corpora.manifest import AudioUnavailableError


@pytest.fixture()
def demo_copy(repo, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", root)
    return root


def test_missing_wavs_are_listed_and_nothing_is_sampled(
        demo_copy, tmp_path, tiny_qwen2_audio, repo):
    """An absent file (most often a wrong corpus root) refuses the job; a corrupt one does
    not (it becomes audio_error failure rows: tests/test_audio_check.py)."""
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
    assert "1 of 32 clips" in msg
    assert "spk1_sad_s1: no audio file at" in msg
    assert "spk2_happy_s2" not in msg


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
    with pytest.raises(KeyError, match=r"valid: \['crema_d', 'demo', 'hf', 'iemocap', 'msp_improv', 'msp_podcast', "
                                     r"'votes_table'\]"):
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
    # Each prediction counts exactly the failed rows of its kind for its utterance (greedy
    # reads the greedy row, majority the samples), and is missing when all of them failed.
    failed_rows = (~samples["parse_ok"]).groupby([samples["utt_id"], samples["kind"]]).sum()
    for r in preds.itertuples():
        kind = "greedy" if r.strategy == "greedy" else "sample"
        assert r.n_failed == failed_rows.get((r.utt_id, kind), 0), r
        assert r.missing == (r.n_failed == r.n), r
    assert preds["n_failed"].sum() > 0
    assert preds.loc[preds["missing"], ["p_neutral", "p_sad"]].isna().all().all()


# -- every kind, capabilities, bad input and out-of-memory ---------------------------------

def _small(manifest, k=6):
    out = manifest.head(k).copy()
    out.attrs.update(manifest.attrs)
    return out


def test_every_kind_is_stored_and_a_rerun_costs_nothing(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    manifest = _small(corpora.load("demo", demo_copy))
    prompts = repo / "configs" / "prompts"
    settings = GenerationSettings(n_samples=3, beams=2, label_scores=True, batch_size=4,
                                  cot_prompt=load_prompt("cot", prompts), cot_max_new_tokens=6,
                                  decoding=Decoding(constrained=True, max_new_tokens=8))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, manifest, store,
                                  load_prompt("direct_label", prompts), settings, progress=False)
        df = store.read(report.run_key)
        again = generate_samples(tiny_qwen2_audio, manifest, store,
                                 load_prompt("direct_label", prompts), settings, progress=False)
    counts = df.groupby("kind").size().to_dict()
    assert counts == {"greedy": 6, "sample": 18, "beam": 12, "cot": 6, "label_score": 6}
    assert report.rows_written == 48 and again.rows_written == 0 and again.batches_run == 0
    beams = df[df["kind"] == "beam"]
    assert beams["parse_ok"].all()                      # constrained beams spell class names
    # CoT is unconstrained: the random model never writes "Answer:", and says why.
    cot = df[df["kind"] == "cot"]
    assert (~cot["parse_ok"]).all() and cot["parse_error"].str.contains("Answer:").all()


class _NoBeamAdapter:
    """Delegates to the tiny model but declares no beam search and no label scores, as a
    hosted API adapter does."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.capabilities = frozenset({"sample", "greedy", "logprob", "verify"})

    def __getattr__(self, item):
        return getattr(self.inner, item)


def test_kinds_a_model_cannot_produce_are_reported_unavailable(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    manifest = _small(corpora.load("demo", demo_copy), 2)
    settings = GenerationSettings(n_samples=2, beams=2, label_scores=True,
                                  decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(_NoBeamAdapter(tiny_qwen2_audio), manifest, store,
                                  load_prompt("direct_label", repo / "configs" / "prompts"),
                                  settings, progress=False)
        kinds = set(store.read(report.run_key)["kind"])
    assert kinds == {"greedy", "sample"}
    assert any(u.startswith("beam:") for u in report.unavailable)
    assert any(u.startswith("label_score:") for u in report.unavailable)


def test_empty_audio_file_is_a_counted_failure_not_a_crash(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    import numpy as np
    import soundfile as sf
    manifest = _small(corpora.load("demo", demo_copy), 4)
    victim = manifest["utt_id"].iloc[0]
    sf.write(manifest["audio_path"].iloc[0], np.zeros(0, dtype="float32"), 16000)
    settings = GenerationSettings(n_samples=2, decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, manifest, store,
                                  load_prompt("direct_label", repo / "configs" / "prompts"),
                                  settings, progress=False)
        df = store.read(report.run_key)
    bad = df[df["utt_id"] == victim]
    assert report.unreadable_clips == 1 and len(bad) == 3           # greedy + 2 samples
    assert (~bad["parse_ok"]).all() and bad["parse_error"].str.contains("empty").all()
    assert bad["parse_error"].str.startswith("audio_error: ").all()
    assert bad[[c for c in df if c.startswith("p_")]].isna().all().all()
    assert df[df["utt_id"] != victim]["parse_ok"].all()


class _SmallMemoryAdapter:
    """The tiny model behind a fake memory limit: more than 2 clips per call is an OOM."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, []

    def __getattr__(self, item):
        return getattr(self.inner, item)

    def generate(self, clips, *a, **kw):
        import torch
        self.calls.append(len(clips))
        if len(clips) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner.generate(clips, *a, **kw)


def test_out_of_memory_halves_the_batch_and_loses_nothing(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    manifest = _small(corpora.load("demo", demo_copy), 8)
    adapter = _SmallMemoryAdapter(tiny_qwen2_audio)
    settings = GenerationSettings(n_samples=2, greedy=False, batch_size=8,
                                  decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(adapter, manifest, store,
                                  load_prompt("direct_label", repo / "configs" / "prompts"),
                                  settings, progress=False)
        df = store.read(report.run_key)
    assert adapter.calls == [8, 4, 2, 2, 4, 2, 2]
    assert report.oom_splits == 3 and len(df) == 16 and df["parse_ok"].all()


def test_verifier_scores_every_parsed_candidate_once(demo_copy, tmp_path, tiny_qwen2_audio, repo):
    from ambiemo.sampling.verify import verify_samples
    manifest = _small(corpora.load("demo", demo_copy), 4)
    prompts = repo / "configs" / "prompts"
    settings = GenerationSettings(n_samples=3, decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        gen = generate_samples(tiny_qwen2_audio, manifest, store,
                               load_prompt("direct_label", prompts), settings, progress=False)
        # One candidate made unparseable (its stored text; answers are parsed on reading):
        # it is not judged.
        store.conn.execute("UPDATE samples SET text='no idea' WHERE kind='sample' AND idx=2")
        store.conn.commit()
        kw = dict(candidates="sample", batch_size=3, progress=False)
        first = verify_samples(tiny_qwen2_audio, manifest, store, gen.run_key,
                               load_prompt("verifier", prompts), **kw)
        again = verify_samples(tiny_qwen2_audio, manifest, store, gen.run_key,
                               load_prompt("verifier", prompts), **kw)
        ver = store.read(first.run_key)
        samples = store.read(gen.run_key)
    assert first.rows_written == 8 and again.rows_written == 0 and again.clips_cached == 4
    assert set(ver["kind"]) == {"verify"} and sorted(set(ver["idx"])) == [0, 1]
    assert ver["score"].between(0, 1).all() and ver["parse_ok"].all()
    # Same answer text, same audio -> same score.
    merged = ver.merge(samples[samples["kind"] == "sample"][["utt_id", "idx", "text"]],
                       on=["utt_id", "idx"], suffixes=("_v", ""))
    assert (merged.groupby(["utt_id", "text"])["score"].nunique() == 1).all()
    # The store's frames go straight into the strategies: every clip gets a verified answer.
    from ambiemo.tts.predictions import predict, verifier_scores
    pred = predict(samples, samples.attrs["classes"], ["alm_v", "w_alm_v"], model="m",
                   verifier=verifier_scores(ver))
    assert not pred["missing"].any() and (pred["n_usable"] == 2).all()
    with pytest.raises(ValueError, match="not a verifier prompt"):
        verify_samples(tiny_qwen2_audio, manifest, SampleStore(tmp_path / "t.sqlite"), gen.run_key,
                       load_prompt("direct_label", prompts))


# -- run keys and batch seeds, end to end (each input of the key alone: test_run_key.py) ----

def _sampled(df) -> list:
    rows = df[df["kind"] == "sample"].sort_values(["utt_id", "idx"])
    return list(zip(rows["utt_id"], rows["idx"], rows["text"], rows["logprob"].round(5)))


def test_seed_1_after_seed_0_into_the_same_store_samples_anew(demo_copy, tmp_path,
                                                              tiny_qwen2_audio, repo):
    """Had the seed been left out of the run key, the seed-1 run would have found seed 0's
    rows under its key and written nothing."""
    manifest = _small(corpora.load("demo", demo_copy), 2)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    runs = {}
    with SampleStore(tmp_path / "s.sqlite") as store:
        for seed in (0, 1, 0):
            settings = GenerationSettings(n_samples=3, greedy=False, seed=seed, batch_size=2,
                                          decoding=Decoding(max_new_tokens=4))
            report = generate_samples(tiny_qwen2_audio, manifest, store, prompt, settings,
                                      progress=False)
            runs.setdefault(seed, []).append((report, _sampled(store.read(report.run_key))))
    (first, s0), (again, s0_again) = runs[0]
    (other, s1), = runs[1]
    assert other.run_key != first.run_key and again.run_key == first.run_key
    assert first.rows_written == other.rows_written == 6 and other.batches_cached == 0
    assert again.rows_written == 0 and s0_again == s0           # seed 0 again: all stored
    assert [r[2:] for r in s1] != [r[2:] for r in s0]           # seed 1 drew other samples


def test_prompt_version_2_or_an_edited_text_into_the_same_store_samples_anew(
        demo_copy, tmp_path, tiny_qwen2_audio, repo):
    """A new prompt version, or the prompt's text edited under the same version, is another
    run: its rows are sampled, not taken from the earlier prompt's."""
    manifest = _small(corpora.load("demo", demo_copy), 2)
    v1 = load_prompt("direct_label", repo / "configs" / "prompts")
    v2 = dataclasses.replace(v1, version=v1.version + 1)
    edited = dataclasses.replace(v1, user=v1.user + " Answer in one word.")
    settings = GenerationSettings(n_samples=2, greedy=False, batch_size=2,
                                  decoding=Decoding(max_new_tokens=4))
    with SampleStore(tmp_path / "s.sqlite") as store:
        reports = [generate_samples(tiny_qwen2_audio, manifest, store, p, settings,
                                    progress=False) for p in (v1, v2, edited)]
        samples = [_sampled(store.read(r.run_key)) for r in reports]
    assert len({r.run_key for r in reports}) == 3
    assert [r.rows_written for r in reports] == [4, 4, 4]
    assert [r.batches_cached for r in reports] == [0, 0, 0]
    assert samples[1] == samples[0]     # the same text and seed: the model drew the same
    assert samples[2] != samples[0]     # another text, other answers


def test_settings_outside_the_key_reuse_the_stored_samples(demo_copy, tmp_path,
                                                           tiny_qwen2_audio, repo):
    """The other way: another batch size (a memory setting) and the progress bar find the
    run's rows and sample nothing (test_run_key.py lists every such setting)."""
    manifest = _small(corpora.load("demo", demo_copy), 4)
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    settings = GenerationSettings(n_samples=2, greedy=False, batch_size=4,
                                  decoding=Decoding(constrained=True))
    with SampleStore(tmp_path / "s.sqlite") as store:
        first = generate_samples(tiny_qwen2_audio, manifest, store, prompt, settings,
                                 progress=False)
        smaller = dataclasses.replace(settings, batch_size=1)
        again = generate_samples(tiny_qwen2_audio, manifest, store, prompt, smaller,
                                 progress=True, retry_failed=True)
    assert first.rows_written == 8
    assert again.run_key == first.run_key and again.rows_written == 0 and again.batches_run == 0


def test_each_batch_samples_as_generate_seeded_with_its_batch_seed(demo_copy, tmp_path,
                                                                  tiny_qwen2_audio, repo):
    """batch_size 1 on two clips, the tiny real-architecture model: each batch's stored
    samples are exactly the adapter's generate() on that clip, seeded with
    _batch_seed(run seed, "sample", the clip), and the two batches' seeds differ."""
    from ambiemo.alm import Clip
    from ambiemo.alm.audio import load_audio
    from ambiemo.sampling.generate import _batch_seed

    manifest = _small(corpora.load("demo", demo_copy), 2)
    classes = list(manifest.attrs["classes"])
    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    decoding = Decoding(max_new_tokens=4)
    settings = GenerationSettings(n_samples=3, greedy=False, seed=5, batch_size=1,
                                  decoding=decoding)
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, manifest, store, prompt, settings,
                                  progress=False)
        stored = store.read(report.run_key)
    assert report.batches_run == 2
    seeds = {u: _batch_seed(5, "sample", u) for u in manifest["utt_id"]}
    assert len(set(seeds.values())) == 2
    for u, path in zip(manifest["utt_id"], manifest["audio_path"]):
        alone = tiny_qwen2_audio.generate([Clip(u, load_audio(path))], prompt.render(classes),
                                          n=3, greedy=False, decoding=decoding,
                                          classes=classes, seed=seeds[u])
        mine = stored[(stored["utt_id"] == u) & (stored["kind"] == "sample")].sort_values("idx")
        assert list(mine["text"]) == [g.text for g in alone], u
        assert list(mine["n_tokens"]) == [g.n_tokens for g in alone], u
        assert mine["logprob"].to_numpy() == pytest.approx([g.logprob for g in alone], abs=1e-5)
