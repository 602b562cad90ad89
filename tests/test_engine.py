"""The shared-prefix engine against transformers' generate() on the tiny Qwen2-Audio model:
greedy token for token, sampled class frequencies within sampling error, log-likelihoods,
and class-name scores recomputed here with plain teacher-forced forwards."""
import numpy as np
import pytest
import torch
from _reference import teacher_forced_logp
from scipy.stats import chi2_contingency

from ambiemo.alm import Clip, Decoding
from ambiemo.alm.audio import load_audio
from ambiemo.labels import classes_for

C = list(classes_for("demo"))
Q = "Which emotion?"


@pytest.fixture(scope="module")
def clips(repo):
    # three lengths (2.1 s, 1.4 s, 1.0 s): the batch is left-padded to different prompts
    ids = ["spk1_sad_s1", "spk2_happy_s2", "spk3_angry_s1"]
    return [Clip(u, load_audio(repo / "data" / "demo" / "wav" / f"{u}.wav")) for u in ids]


@pytest.fixture()
def adapter(tiny_qwen2_audio):
    yield tiny_qwen2_audio
    tiny_qwen2_audio.engine = "prefix"


def _run(adapter, engine, clips, **kw):
    adapter.engine = engine
    return adapter.generate(clips, Q, classes=C, **kw)


def _token_ids(adapter, clips, **kw):
    """The engine's raw token rows, to compare with generate()'s sequences."""
    from ambiemo.alm import engine
    inputs = adapter._inputs(clips, Q)
    torch.manual_seed(kw.pop("seed", 0))
    tokens, _ = engine.decode(adapter.model, engine.prefill(adapter.model, inputs),
                              stop_ids=adapter.stop_ids, pad_id=adapter.pad_id, **kw)
    return inputs, tokens


@pytest.mark.parametrize("constrained", [False, True])
def test_greedy_equals_generate_token_for_token(adapter, clips, constrained):
    d = Decoding(max_new_tokens=10, constrained=constrained)
    a = _run(adapter, "prefix", clips, n=1, greedy=True, decoding=d, seed=0)
    b = _run(adapter, "generate", clips, n=1, greedy=True, decoding=d, seed=0)
    assert [(g.text, g.n_tokens) for g in a] == [(g.text, g.n_tokens) for g in b]
    assert [g.logprob for g in a] == pytest.approx([g.logprob for g in b], abs=1e-4)
    if not constrained:  # also the raw ids against a plain generate() call
        inputs, tokens = _token_ids(adapter, clips, n=1, greedy=True, max_new_tokens=10)
        out = adapter.model.generate(**inputs, max_new_tokens=10, do_sample=False,
                                     pad_token_id=adapter.pad_id, eos_token_id=adapter.stop_ids)
        ref = out[:, inputs["input_ids"].shape[1]:]
        assert torch.equal(tokens[:, :ref.shape[1]], ref)


def test_top_k_1_sampling_is_greedy(adapter, clips):
    greedy = _run(adapter, "prefix", clips, n=1, greedy=True,
                  decoding=Decoding(max_new_tokens=8), seed=0)
    sampled = _run(adapter, "prefix", clips, n=3, greedy=False,
                   decoding=Decoding(max_new_tokens=8, top_k=1, temperature=0.7), seed=5)
    assert [g.text for g in sampled] == [g.text for g in greedy for _ in range(3)]


def test_sampled_class_frequencies_match_generate(adapter, clips):
    """2400 constrained draws from each path with different seeds (independent samples);
    a chi-square test of homogeneity at alpha = 1e-3 (deterministic: the seeds are fixed)."""
    d = Decoding(constrained=True, temperature=0.5, top_p=0.95, max_new_tokens=6)
    counts = []
    for engine, seed in (("prefix", 11), ("generate", 12)):
        gens = _run(adapter, engine, clips[:1], n=2400, greedy=False, decoding=d, seed=seed)
        texts = [g.text for g in gens]
        assert set(texts) <= set(C)
        counts.append([texts.count(c) for c in C])
    counts = np.array(counts)
    keep = counts.sum(0) > 0
    assert keep.sum() >= 2, counts          # the test means something: several classes drawn
    assert chi2_contingency(counts[:, keep]).pvalue > 1e-3, counts


def test_same_seed_gives_the_same_samples_as_generate(adapter, clips):
    """Beyond the distribution: the engine consumes the RNG as generate() does, so on the
    same seed (CPU, float32) the samples coincide."""
    d = Decoding(constrained=True, max_new_tokens=6)
    a = _run(adapter, "prefix", clips, n=5, greedy=False, decoding=d, seed=7)
    b = _run(adapter, "generate", clips, n=5, greedy=False, decoding=d, seed=7)
    assert [g.text for g in a] == [g.text for g in b]


def test_engine_logprob_is_the_teacher_forced_likelihood(adapter, clips):
    gens = _run(adapter, "prefix", clips, n=2, greedy=False,
                decoding=Decoding(constrained=True, temperature=1.5), seed=3)
    tok = adapter.processor.tokenizer
    for g in gens:
        clip = next(c for c in clips if c.utt_id == g.utt_id)
        ids = tok.encode(g.text, add_special_tokens=False) + [adapter.eos_id]
        assert len(ids) == g.n_tokens
        assert g.logprob == pytest.approx(teacher_forced_logp(adapter, clip, Q, ids), abs=1e-3)


def test_exact_length_option_matches_generate(adapter, clips):
    """min_new_tokens (the benchmarks' exact-length mode) masks stop tokens as generate()."""
    d = Decoding(max_new_tokens=7)
    a = _run(adapter, "prefix", clips, n=1, greedy=True, decoding=d, seed=0, min_new_tokens=7)
    b = _run(adapter, "generate", clips, n=1, greedy=True, decoding=d, seed=0, min_new_tokens=7)
    assert [(g.text, g.n_tokens) for g in a] == [(g.text, g.n_tokens) for g in b]
    assert all(g.n_tokens == 7 for g in a)


def test_label_scores_are_normalised_class_name_likelihoods(adapter, clips):
    tok = adapter.processor.tokenizer
    scores = adapter.label_scores(clips, Q, C)
    assert [u for u, _ in scores] == [c.utt_id for c in clips]
    for clip, (_, p) in zip(clips, scores):
        assert p.shape == (len(C),) and p.sum() == pytest.approx(1.0)
        lp = np.array([teacher_forced_logp(adapter, clip, Q, tok.encode(c, add_special_tokens=False)
                                            + [adapter.eos_id]) for c in C])
        expected = np.exp(lp - lp.max())
        np.testing.assert_allclose(p, expected / expected.sum(), atol=1e-4)


def test_unknown_engine_is_refused(tiny_cache):
    from ambiemo.alm import load_model
    with pytest.raises(ValueError, match="engine must be one of"):
        load_model("tiny-qwen2-audio", cache_dir=tiny_cache, device="cpu", engine="vllm")


def test_runner_writes_label_scores_only_when_asked(repo, tmp_path, adapter, demo_manifest):
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.alm.runner import GenerationSettings, generate_samples, run_key
    from ambiemo.alm.store import SampleStore

    prompt = load_prompt("direct_label", repo / "configs" / "prompts")
    classes = demo_manifest.attrs["classes"]
    plain = GenerationSettings(n_samples=2)
    with_scores = GenerationSettings(n_samples=0, greedy=False, label_scores=True, batch_size=16)
    assert "label_scores" not in run_key(adapter, prompt, plain, classes)[1]
    assert run_key(adapter, prompt, with_scores, classes)[1]["label_scores"] is True
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_samples(adapter, demo_manifest, store, prompt, with_scores,
                                  progress=False)
        df = store.read(report.run_key)
    assert len(df) == len(demo_manifest) and set(df["kind"]) == {"label_score"}
    p = df[[f"p_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    assert df["parse_ok"].all() and (df["text"] == "").all()
