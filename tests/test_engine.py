"""The shared-prefix engine against transformers' generate() on the tiny Qwen2-Audio model:
greedy token for token, sampled class frequencies within sampling error, log-likelihoods,
class-name scores recomputed here with plain teacher-forced forwards, the shared-prefix
attention against the repeated cache and SDPA, and beam search against generate()'s."""
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


def _inputs(adapter, clips):
    return adapter.processor_inputs([adapter.build_prompt(Q)] * len(clips), [c.audio for c in clips])


def _token_ids(adapter, clips, **kw):
    """The engine's raw token rows, to compare with generate()'s sequences."""
    from ambiemo.alm.hf import engine
    inputs = _inputs(adapter, clips)
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
    from ambiemo.sampling.generate import GenerationSettings, generate_samples, run_key
    from ambiemo.sampling.store import SampleStore

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


# -- shared-prefix attention (alm/hf/engine/shared.py) -----------------------------------------

@pytest.mark.parametrize("heads,kv_heads,length", [(4, 4, 1), (8, 2, 1), (8, 2, 3)])
def test_cascade_attention_equals_sdpa_over_the_repeated_cache(heads, kv_heads, length):
    """One prompt copy per clip + a per-row suffix gives SDPA's output over the prompt
    repeated per row followed by the suffix (left padding masked, causal among the new
    positions), with and without grouped-query heads."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from ambiemo.alm.hf.engine.shared import cascade_attention

    g = torch.Generator().manual_seed(0)
    clips, n, plen, tlen, dim = 3, 4, 7, 5, 16
    rows = clips * n
    q = torch.randn(rows, heads, length, dim, generator=g)
    k, v = (torch.randn(rows, kv_heads, tlen, dim, generator=g) for _ in range(2))
    pk, pv = (torch.randn(clips, kv_heads, plen, dim, generator=g) for _ in range(2))
    pad = torch.tensor([0, 2, 5])                      # left padding per clip
    keep = torch.arange(plen)[None, :] >= pad[:, None]
    bias = torch.zeros(clips, plen).masked_fill(~keep, -float("inf"))[:, None, None, :]
    out = cascade_attention(q, k, v, pk, pv, bias, dim ** -0.5)

    full_k = torch.cat([pk.repeat_interleave(n, 0), k], 2).repeat_interleave(heads // kv_heads, 1)
    full_v = torch.cat([pv.repeat_interleave(n, 0), v], 2).repeat_interleave(heads // kv_heads, 1)
    causal = torch.arange(tlen)[None, :] <= torch.arange(length)[:, None] + tlen - length
    mask = torch.cat([keep.repeat_interleave(n, 0)[:, None, None, :].expand(rows, 1, length, plen),
                      causal.expand(rows, 1, length, tlen)], -1)
    ref = sdpa(q, full_k, full_v, attn_mask=mask).transpose(1, 2)
    assert out.shape == (rows, length, heads, dim)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def _prefill(adapter, clips):
    from ambiemo.alm.hf import engine
    return engine.prefill(adapter.model, _inputs(adapter, clips))


def test_shared_prefix_decodes_as_the_repeated_cache(adapter, clips):
    """Greedy tokens identical, per-token log-probs within float32 rounding, and the prompt
    left untouched: a second decode from the same prefill gives the same answer."""
    from ambiemo.alm.hf import engine
    kw = dict(n=3, greedy=True, max_new_tokens=10, stop_ids=adapter.stop_ids, pad_id=adapter.pad_id)
    ref_tokens, ref_logp = engine.decode(adapter.model, _prefill(adapter, clips),
                                         prefix_sharing="repeat", **kw)
    prefix = _prefill(adapter, clips)
    for _ in range(2):
        tokens, logp = engine.decode(adapter.model, prefix, prefix_sharing="shared", **kw)
        assert torch.equal(tokens, ref_tokens)
        torch.testing.assert_close(logp, ref_logp, atol=1e-5, rtol=0)
    assert not torch.equal(tokens[0], tokens[3])     # clips differ: rows are not mixed up


def test_shared_prefix_samples_as_the_repeated_cache(adapter, clips):
    """Same seed, same draws: both paths consume the RNG identically."""
    from ambiemo.alm.hf import engine
    kw = dict(n=4, greedy=False, max_new_tokens=8, temperature=1.3, stop_ids=adapter.stop_ids,
              pad_id=adapter.pad_id)
    out = {}
    for sharing in ("repeat", "shared"):
        prefix = _prefill(adapter, clips)
        torch.manual_seed(21)
        out[sharing] = engine.decode(adapter.model, prefix, prefix_sharing=sharing, **kw)[0]
    assert torch.equal(out["repeat"], out["shared"])


def test_shared_prefix_holds_the_prompt_once(adapter, clips):
    """What sharing is for: the cache holds B prompts + B*n suffixes, not B*n prompts."""
    from ambiemo.alm.hf.engine.continuations import Continuations
    n, steps = 4, 3
    sizes = {}
    for sharing in ("repeat", "shared"):
        prefix = _prefill(adapter, clips)
        plen = prefix.attention_mask.shape[1]
        rows = Continuations(adapter.model, prefix, n, sharing=sharing)
        for _ in range(steps):
            rows.forward(torch.zeros(len(clips) * n, 1, dtype=torch.long))
        sizes[sharing] = rows.cache_bytes()
    cfg = adapter.model.config.text_config
    per_token_row = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (
        cfg.hidden_size // cfg.num_attention_heads) * 4                      # K and V, float32
    assert sizes["repeat"] == len(clips) * n * (plen + steps) * per_token_row
    assert sizes["shared"] == (len(clips) * plen + len(clips) * n * steps) * per_token_row


def test_teacher_force_shared_equals_repeat(adapter, clips):
    from ambiemo.alm.hf import engine
    seqs = [[5, 6, 7, 8], [9], [10, 11]]
    shared = engine.teacher_force(adapter.model, _prefill(adapter, clips), seqs, prefix_sharing="shared")
    repeat = engine.teacher_force(adapter.model, _prefill(adapter, clips), seqs, prefix_sharing="repeat")
    torch.testing.assert_close(shared, repeat, atol=1e-4, rtol=0)


def test_prefix_sharing_is_validated(adapter, clips):
    from transformers.cache_utils import DynamicSlidingWindowLayer

    from ambiemo.alm.hf import engine
    kw = dict(n=2, greedy=True, max_new_tokens=2, stop_ids=adapter.stop_ids, pad_id=adapter.pad_id)
    with pytest.raises(ValueError, match="prefix_sharing must be one of"):
        engine.decode(adapter.model, _prefill(adapter, clips), prefix_sharing="copy", **kw)
    prefix = _prefill(adapter, clips)
    prefix.cache.layers[1] = DynamicSlidingWindowLayer(sliding_window=4)
    with pytest.raises(ValueError, match="cache layer 1 is a DynamicSlidingWindowLayer"):
        engine.decode(adapter.model, prefix, prefix_sharing="shared", **kw)


# -- beam search from the shared prefill (alm/hf/engine/beam.py) -------------------------------

@pytest.mark.parametrize("constrained,beams,early_stopping,length_penalty", [
    (False, 3, True, 1.0), (False, 2, False, 0.5), (True, 4, True, 1.0),
    (True, 3, "never", 2.0), (True, 3, False, -1.0)])
def test_beam_search_equals_generate(adapter, clips, constrained, beams, early_stopping,
                                     length_penalty):
    from ambiemo.alm.hf import engine
    from ambiemo.alm.hf.constrained import class_name_trie, prefix_allowed_tokens_fn

    inputs = _inputs(adapter, clips)
    plen = inputs["input_ids"].shape[1]
    trie = class_name_trie(adapter.tokenizer, C, adapter.eos_id) if constrained else None
    extra = {"prefix_allowed_tokens_fn": prefix_allowed_tokens_fn(trie, plen)} if trie else {}
    out = adapter.model.generate(
        **inputs, num_beams=beams, num_return_sequences=beams, do_sample=False,
        early_stopping=early_stopping, length_penalty=length_penalty, max_new_tokens=7,
        pad_token_id=adapter.pad_id, eos_token_id=adapter.stop_ids, return_dict_in_generate=True,
        output_scores=True, **extra)
    got = engine.beam_search(adapter.model, engine.prefill(adapter.model, inputs), beams=beams,
                             max_new_tokens=7, stop_ids=adapter.stop_ids, pad_id=adapter.pad_id,
                             allowed=trie.allowed if trie else None,
                             early_stopping=early_stopping, length_penalty=length_penalty)
    assert torch.equal(got.tokens, out.sequences[:, plen:])
    torch.testing.assert_close(got.scores, out.sequences_scores, atol=1e-4, rtol=0)
    raw = adapter.model.compute_transition_scores(out.sequences, out.scores, out.beam_indices,
                                                  normalize_logits=False)
    torch.testing.assert_close(got.token_logp, raw.float(), atol=1e-4, rtol=0)
    if constrained:
        texts = adapter.tokenizer.batch_decode(got.tokens, skip_special_tokens=True)
        assert set(texts) <= set(C) and len(set(texts[:beams])) == beams


def test_static_suffix_cache_decodes_as_the_dynamic_one(adapter, clips):
    """The preallocated, in-place suffix cache (the compiled GPU path's cache) changes
    nothing: same tokens, same log-probs. torch.compile itself takes minutes on this CPU
    and is exercised by benchmarks/gpu.sh only."""
    from ambiemo.alm.hf import engine
    kw = dict(n=3, greedy=True, max_new_tokens=9, stop_ids=adapter.stop_ids, pad_id=adapter.pad_id,
              min_new_tokens=9)
    ref = engine.decode(adapter.model, _prefill(adapter, clips), prefix_sharing="repeat", **kw)
    got = engine.decode(adapter.model, _prefill(adapter, clips), static_cache=True, **kw)
    assert torch.equal(got[0], ref[0]) and got[0].shape == (9, 9)
    torch.testing.assert_close(got[1], ref[1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs prefix_sharing='shared'"):
        engine.decode(adapter.model, _prefill(adapter, clips), prefix_sharing="repeat",
                      static_cache=True, **kw)
