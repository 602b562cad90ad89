"""Every tiny transformers checkpoint through the adapter interface: sample, greedy,
beam, label scores and verify, each checked against an independent full forward pass.

One test per (architecture, method); every registry entry whose checkpoint is "tiny:<arch>"
is covered automatically, so a new architecture is tested by registering it. Checkpoints are
built once per session (offline, save_pretrained -> from_pretrained).
"""
import numpy as np
import pytest
import torch

from _reference import full_forward_logits, teacher_forced_logp
from ambiemo.alm import MODELS, Clip, Decoding, load_model
from ambiemo.alm.audio import load_audio
from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.labels import classes_for

C = list(classes_for("demo"))
Q = "Listen to the speech. Which emotion does the speaker express? Answer with one of: " + ", ".join(C) + "."
VERIFY = ("Which emotion does the speaker express? Proposed answer: {answer}. "
          "Is the proposed answer correct? Answer Yes or No.")
TINY = sorted(n for n, s in MODELS.items() if s.checkpoint.startswith("tiny:"))


def through_generate(adapter, method, *args, **kw):
    """`adapter.<method>` with transformers' own generate() as the engine (the reference)."""
    engine = adapter.engine
    try:
        adapter.engine = "generate"
        return getattr(adapter, method)(*args, **kw)
    finally:
        adapter.engine = engine


@pytest.fixture(scope="session")
def adapters(tiny_cache):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_model(name, cache_dir=tiny_cache, device="cpu")
        return cache[name]
    return get


@pytest.fixture(scope="module")
def clips(repo):
    # Two lengths, so batching pads (left) and the engine must handle it.
    ids = ["spk1_sad_s1", "spk2_happy_s2", "spk3_angry_s1"]
    out = [Clip(u, load_audio(repo / "data" / "demo" / "wav" / f"{u}.wav")) for u in ids]
    return [out[0], Clip(out[1].utt_id, out[1].audio[: len(out[1].audio) // 2]), out[2]]


@pytest.mark.parametrize("name", TINY)
def test_tiny_checkpoint_is_the_registered_architecture(name, adapters):
    import transformers
    a = adapters(name)
    spec = MODELS[name]
    assert isinstance(a, TransformersAdapter)
    assert isinstance(a.model, getattr(transformers, spec.hf_class))
    # The registry's parameter count is the built model's (the capacity axis).
    assert spec.n_params == sum(p.numel() for p in a.model.parameters())
    assert a.identity()["revision"].startswith("local-")


@pytest.mark.parametrize("name", TINY)
def test_sample_spells_class_names_with_likelihoods(name, adapters, clips):
    a = adapters(name)
    kw = dict(n=4, greedy=False, decoding=Decoding(constrained=True, max_new_tokens=8), classes=C)
    gens = a.generate(clips, Q, seed=3, **kw)
    assert [(g.utt_id, g.idx) for g in gens] == [(c.utt_id, i) for c in clips for i in range(4)]
    assert {g.text for g in gens} <= set(C)
    assert a.generate(clips, Q, seed=3, **kw) == gens          # seeded
    for g in gens[:3]:
        clip = next(c for c in clips if c.utt_id == g.utt_id)
        ids = a.tokenizer.encode(g.text, add_special_tokens=False) + [a.eos_id]
        assert g.n_tokens == len(ids)
        assert g.logprob == pytest.approx(teacher_forced_logp(a, clip, Q, ids), abs=2e-3)


@pytest.mark.parametrize("name", TINY)
def test_greedy_engine_equals_generate(name, adapters, clips):
    """The adapter's default engine against transformers' own generate(), token for token."""
    a = adapters(name)
    kw = dict(n=1, greedy=True, decoding=Decoding(max_new_tokens=6), classes=C, seed=0)
    mine = a.generate(clips, Q, **kw)
    ref = through_generate(a, "generate", clips, Q, **kw)
    assert [(g.text, g.n_tokens) for g in mine] == [(g.text, g.n_tokens) for g in ref]
    assert [g.logprob for g in mine] == pytest.approx([g.logprob for g in ref], abs=1e-3)


@pytest.mark.parametrize("name", TINY)
def test_beam_returns_ranked_distinct_candidates(name, adapters, clips):
    a = adapters(name)
    gens = a.beam(clips[:2], Q, beams=3, decoding=Decoding(constrained=True, max_new_tokens=8),
                  classes=C)
    assert [(g.utt_id, g.idx) for g in gens] == [(c.utt_id, i) for c in clips[:2] for i in range(3)]
    for clip in clips[:2]:
        mine = [g for g in gens if g.utt_id == clip.utt_id]
        assert len({g.text for g in mine}) == 3 and {g.text for g in mine} <= set(C)
        for g in mine:
            ids = a.tokenizer.encode(g.text, add_special_tokens=False) + [a.eos_id]
            assert g.logprob == pytest.approx(teacher_forced_logp(a, clip, Q, ids), abs=2e-3)
        # With length normalisation the rank follows logprob / n_tokens.
        norm = [g.logprob / g.n_tokens for g in mine]
        assert norm == sorted(norm, reverse=True)


@pytest.mark.parametrize("name", TINY)
def test_label_scores_are_the_class_name_probabilities(name, adapters, clips):
    a = adapters(name)
    scores = a.label_scores(clips, Q, C)
    assert [u for u, _ in scores] == [c.utt_id for c in clips]
    for clip, (_, p) in zip(clips, scores):
        ref = np.array([teacher_forced_logp(
            a, clip, Q, a.tokenizer.encode(c, add_special_tokens=False) + [a.eos_id]) for c in C])
        ref = np.exp(ref - ref.max())
        np.testing.assert_allclose(p, ref / ref.sum(), atol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_verify_scores_are_p_yes_from_a_full_forward(name, adapters, clips):
    a = adapters(name)
    cands = [[(0, "sad"), (3, "happy")], [(1, "angry")], [(0, "neutral"), (1, "sad")]]
    verdicts = a.verify(clips, cands, VERIFY)
    assert [(v.utt_id, v.idx) for v in verdicts] == [
        (c.utt_id, i) for c, cs in zip(clips, cands) for i, _ in cs]
    assert all(0 < v.score < 1 for v in verdicts)
    # Reference: the prompt split at the answer, the answer and the rest appended as tokens,
    # one plain forward; P(Yes) against P(No) at the last position.
    head, _, tail = a.build_prompt(VERIFY.replace("{answer}", "\x00")).partition("\x00")
    enc = lambda s: a.tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    yes, no = enc("Yes"), enc("No")
    v = iter(verdicts)
    for clip, cs in zip(clips, cands):
        for _, text in cs:
            lp = []
            for word in (yes, no):
                ids = enc(text + tail) + word
                logits, p0 = full_forward_logits(a, clip, head, ids)
                logp = torch.log_softmax(logits[p0 - 1:-1], -1)
                lp.append(logp.gather(-1, torch.tensor(ids)[:, None]).sum().item())
            assert next(v).score == pytest.approx(1 / (1 + np.exp(lp[1] - lp[0])), abs=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_beam_engine_equals_generate(name, adapters, clips):
    """The default engine's beam search against generate(num_beams=B), same candidates."""
    a = adapters(name)
    kw = dict(beams=3, decoding=Decoding(max_new_tokens=6), classes=C)
    mine = a.beam(clips, Q, **kw)
    ref = through_generate(a, "beam", clips, Q, **kw)
    assert [(g.utt_id, g.idx, g.text, g.n_tokens) for g in mine] == \
        [(g.utt_id, g.idx, g.text, g.n_tokens) for g in ref]
    assert [g.logprob for g in mine] == pytest.approx([g.logprob for g in ref], abs=1e-3)


@pytest.mark.parametrize("name", TINY)
def test_one_prefill_serves_every_kind_of_a_batch(name, adapters, clips, monkeypatch):
    """The runner asks greedy, samples, beams and label scores of the same batch under one
    prompt: the adapter prefills once when decoding only reads the prompt cache (shared),
    again when a decode extended it (repeat), and the answers are the same either way."""
    from ambiemo.alm.hf import engine
    from ambiemo.alm.hf.engine.continuations import resolve_sharing

    a = adapters(name)
    calls = []
    real = engine.prefill
    monkeypatch.setattr(engine, "prefill", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    dec = Decoding(constrained=True, max_new_tokens=8)

    def batch():
        a.forget_prefill()
        return (a.generate(clips, Q, n=1, greedy=True, decoding=dec, classes=C, seed=1),
                a.generate(clips, Q, n=3, greedy=False, decoding=dec, classes=C, seed=2),
                a.beam(clips, Q, beams=2, decoding=dec, classes=C),
                [p.tolist() for _, p in a.label_scores(clips, Q, C)])

    a.reuse_prefill = False
    try:
        cold, n_cold = batch(), len(calls)
    finally:
        a.reuse_prefill = True
    calls.clear()
    warm = batch()
    assert n_cold == 4
    shared = resolve_sharing(a.model, real(a.model, a._inputs(clips, Q)), "auto") == "shared"
    assert len(calls) == (1 if shared else 4)
    assert warm[:3] == cold[:3]
    assert np.allclose(warm[3], cold[3], atol=1e-6)
