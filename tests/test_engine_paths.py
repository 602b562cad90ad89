"""Every decoding path of the shared-prefix engine against transformers' generate(), token
for token on the same seed (CPU, float32), on tiny models made to exercise those paths.

The plain tiny checkpoints are nearly uniform (the four demo classes get 0.16-0.31 each, no
top-p cut removes anything) and every demo class name is 2 tokens, so a missing top-p
filter, a wrong temperature, a wrong min_new_tokens or a beam search that ignores
`early_stopping` all passed. Here the output head is scaled (alm/tiny.peak_head) so the top
token holds 20-50 % of the mass, the stop token takes the head row of a token the model
writes in some rows and not in others (rows stop at different steps), and the class names
are 1 to 4 tokens long with one a prefix of another (tiny.MIXED_LENGTH_CLASSES). Each
test first asserts that its path is really exercised (mass is cut, lengths differ,
settings change the output), then that the engine equals generate() exactly.
"""
import collections

import pytest
import torch

from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.hf import engine
from ambiemo.alm.audio import load_audio
from ambiemo.alm.hf.constrained import class_name_trie, prefix_allowed_tokens_fn
from ambiemo.alm.tiny import MIXED_LENGTH_CLASSES, peak_head

Q = "Which emotion?"
SCALE = 20.0
TINY = sorted(n for n, s in MODELS.items() if s.checkpoint.startswith("tiny:"))


@pytest.fixture(scope="module")
def clips(repo):
    ids = ["spk1_sad_s1", "spk2_happy_s2", "spk3_angry_s1"]
    return [Clip(u, load_audio(repo / "data" / "demo" / "wav" / f"{u}.wav")) for u in ids]


def stop_like_token(adapter, inputs, steps: int = 12) -> int | None:
    """A token greedy decoding writes in some rows but not in all (the most common such,
    then the lowest id): as the stop token's stand-in it ends rows at different steps.
    None when there is none (every row writes the same tokens)."""
    tokens, _ = engine.decode(adapter.model, engine.prefill(adapter.model, inputs), n=1,
                              greedy=True, max_new_tokens=steps, stop_ids=adapter.stop_ids,
                              pad_id=adapter.pad_id)
    rows = [set(r) for r in tokens.tolist()]
    seen = collections.Counter(t for r in rows for t in r)
    some = [t for t, c in seen.items() if c < len(rows) and t not in adapter.stop_ids
            and t != adapter.pad_id]
    return min(some, key=lambda t: (-seen[t], t)) if some else None


_PEAKED: dict = {}


@pytest.fixture(scope="module")
def peaked(tiny_cache, clips):
    """name -> a private copy of the tiny model with a peaked head and a stop token that
    ends rows at different steps (its own instance: the shared fixtures stay untouched)."""
    def get(name):
        if name not in _PEAKED:
            a = load_model(name, cache_dir=tiny_cache, device="cpu")
            peak_head(a.model, scale=SCALE)
            k = stop_like_token(a, inputs(a, clips))
            if k is not None:
                peak_head(a.model, scale=1.0, stop_id=a.eos_id, stop_as=k)
            _PEAKED[name] = a
        return _PEAKED[name]
    return get


def inputs(adapter, clips):
    return adapter.processor_inputs([adapter.build_prompt(Q)] * len(clips), [c.audio for c in clips])


def lengths(adapter, tokens) -> list[int]:
    """Tokens up to and including the first stop token, per row (all when none)."""
    out = []
    for row in tokens.tolist():
        hit = [i for i, t in enumerate(row) if t in adapter.stop_ids]
        out.append(hit[0] + 1 if hit else len(row))
    return out


def for_generate(adapter, inp, copies: int):
    """The inputs the adapter hands generate() when it asks for `copies` per row: Voxtral's
    audio merged into the embeddings first (VoxtralAdapter.generate_inputs: generate()'s
    row copies misorder a multi-chunk clip's audio windows), anything else as it is."""
    prepare = getattr(adapter, "generate_inputs", None)
    return prepare(inp, copies) if prepare else inp


def ref_generate(adapter, inp, seed, **kw):
    """transformers' generate(): the new tokens, with what the engine needs to compare."""
    copies = max(kw.get("num_beams", 1), kw.get("num_return_sequences", 1))
    torch.manual_seed(seed)
    out = adapter.model.generate(**for_generate(adapter, inp, copies),
                                 pad_token_id=adapter.pad_id, eos_token_id=adapter.stop_ids, **kw)
    return out[:, inp["input_ids"].shape[1]:]


def engine_decode(adapter, inp, seed, **kw):
    torch.manual_seed(seed)
    return engine.decode(adapter.model, engine.prefill(adapter.model, inp),
                         stop_ids=adapter.stop_ids, pad_id=adapter.pad_id, **kw)


def assert_same(got, ref):
    """generate() stops when every row has; the engine too. Equal ids, equal width."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert torch.equal(got, ref), (got.tolist(), ref.tolist())


# -- the variant really exercises the paths ---------------------------------------------------

def test_mixed_length_class_names_tokenize_to_1_2_3_and_4_tokens(peaked):
    a = peaked("tiny-qwen2-audio")
    n = [len(a.tokenizer.encode(c, add_special_tokens=False)) for c in MIXED_LENGTH_CLASSES]
    assert sorted(set(n)) == [1, 2, 3, 4], dict(zip(MIXED_LENGTH_CLASSES, n))


def test_peaked_head_makes_top_p_and_top_k_cut_real_mass(peaked, clips):
    from transformers import TopKLogitsWarper, TopPLogitsWarper
    a = peaked("tiny-qwen2-audio")
    logits = engine.prefill(a.model, inputs(a, clips)).last_logits / 0.7
    p = torch.softmax(logits, -1)
    for warp in (TopPLogitsWarper(top_p=0.9), TopKLogitsWarper(top_k=5)):
        cut = p.masked_fill(torch.isfinite(warp(None, logits.clone())), 0).sum(-1)
        assert (cut > 0.02).all(), cut       # each filter removes > 2 % of every row's mass


# -- samples: temperature, top-k, top-p, min_new_tokens, mixed stopping lengths --------------

SAMPLING = [dict(temperature=0.7, top_p=0.9, top_k=0), dict(temperature=1.0, top_p=1.0, top_k=5),
            dict(temperature=1.3, top_p=0.8, top_k=10), dict(temperature=0.5, top_p=0.95, top_k=0)]


@pytest.mark.parametrize("setting", SAMPLING, ids=lambda s: "t{temperature}-p{top_p}-k{top_k}".format(**s))
def test_samples_equal_generate_on_the_same_seed(peaked, clips, setting):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    got, _ = engine_decode(a, inp, 5, n=4, greedy=False, max_new_tokens=10, **setting)
    ref = ref_generate(a, inp, 5, do_sample=True, num_return_sequences=4, max_new_tokens=10,
                       **setting)
    assert_same(got, ref)
    n = lengths(a, got)
    assert len(set(n)) >= 3 and min(n) < 10, n          # rows stop at different steps


def test_samples_with_min_new_tokens_equal_generate(peaked, clips):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    kw = dict(temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=10)
    free = lengths(a, engine_decode(a, inp, 5, n=4, greedy=False, **kw)[0])
    min_new = min(free) + 1                 # some row stopped earlier than this without it
    got, _ = engine_decode(a, inp, 5, n=4, greedy=False, min_new_tokens=min_new, **kw)
    ref = ref_generate(a, inp, 5, do_sample=True, num_return_sequences=4,
                       min_new_tokens=min_new, **kw)
    assert_same(got, ref)
    assert min(lengths(a, got)) > min_new


@pytest.mark.parametrize("min_new", [0, 2])
def test_greedy_equals_generate_with_min_new_tokens(peaked, clips, min_new):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    got, _ = engine_decode(a, inp, 0, n=1, greedy=True, max_new_tokens=12, min_new_tokens=min_new)
    ref = ref_generate(a, inp, 0, do_sample=False, max_new_tokens=12, min_new_tokens=min_new)
    assert_same(got, ref)
    if min_new == 0:   # the rows stop at different steps, before max_new_tokens in some
        n = lengths(a, got)
        assert len(set(n)) >= 2 and min(n) < 12, n


def test_min_new_tokens_changes_where_rows_stop(peaked, clips):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    short = lengths(a, engine_decode(a, inp, 0, n=1, greedy=True, max_new_tokens=12)[0])
    min_new = min(short) + 1
    long = lengths(a, engine_decode(a, inp, 0, n=1, greedy=True, max_new_tokens=12,
                                    min_new_tokens=min_new)[0])
    assert min(short) < min_new < min(long), (short, long)
    ref = ref_generate(a, inp, 0, do_sample=False, max_new_tokens=12, min_new_tokens=min_new)
    assert lengths(a, ref) == long


CONSTRAINED = [dict(temperature=1.5, top_p=0.95, top_k=0), dict(temperature=2.0, top_p=1.0, top_k=3)]


@pytest.mark.parametrize("setting", CONSTRAINED, ids=["t1.5-p0.95", "t2-k3"])
def test_constrained_samples_of_mixed_length_names_equal_generate(peaked, clips, setting):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    trie = class_name_trie(a.tokenizer, MIXED_LENGTH_CLASSES, a.eos_id)
    plen = inp["input_ids"].shape[1]
    got, logp = engine_decode(a, inp, 9, n=8, greedy=False, max_new_tokens=6,
                              allowed=trie.allowed, **setting)
    ref = ref_generate(a, inp, 9, do_sample=True, num_return_sequences=8, max_new_tokens=6,
                       prefix_allowed_tokens_fn=prefix_allowed_tokens_fn(trie, plen), **setting)
    assert_same(got, ref)
    texts = a.tokenizer.batch_decode(got, skip_special_tokens=True)
    assert set(texts) <= set(MIXED_LENGTH_CLASSES)
    assert len(set(lengths(a, got))) >= 2, texts        # names of several lengths drawn


# -- beam search: every early_stopping value, length penalties -------------------------------

PENALTIES = (1.0, 0.0, -0.5)
BEAMS = [(es, lp) for es in (True, False, "never") for lp in PENALTIES]


def _beams(a, inp, beams, es, lp, trie=None):
    plen = inp["input_ids"].shape[1]
    extra = {"prefix_allowed_tokens_fn": prefix_allowed_tokens_fn(trie, plen)} if trie else {}
    out = a.model.generate(**for_generate(a, inp, beams), num_beams=beams,
                           num_return_sequences=beams, do_sample=False,
                           early_stopping=es, length_penalty=lp, max_new_tokens=8,
                           pad_token_id=a.pad_id, eos_token_id=a.stop_ids,
                           return_dict_in_generate=True, output_scores=True, **extra)
    got = engine.beam_search(a.model, engine.prefill(a.model, inp), beams=beams,
                             max_new_tokens=8, stop_ids=a.stop_ids, pad_id=a.pad_id,
                             allowed=trie.allowed if trie else None, early_stopping=es,
                             length_penalty=lp)
    return got, out


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "constrained"])
@pytest.mark.parametrize("early_stopping,length_penalty", BEAMS)
def test_beam_search_equals_generate(peaked, clips, constrained, early_stopping, length_penalty):
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    trie = class_name_trie(a.tokenizer, MIXED_LENGTH_CLASSES, a.eos_id) if constrained else None
    got, out = _beams(a, inp, 3, early_stopping, length_penalty, trie)
    plen = inp["input_ids"].shape[1]
    assert_same(got.tokens, out.sequences[:, plen:])
    torch.testing.assert_close(got.scores, out.sequences_scores, atol=1e-4, rtol=0)


@pytest.mark.parametrize("constrained", [False, True], ids=["free", "constrained"])
def test_beam_settings_change_generates_output(peaked, clips, constrained):
    """The beam matrix above is discriminating: on this model generate() returns different
    hypotheses for different length penalties and, constrained to the mixed-length names,
    different hypotheses or scores for different early_stopping values, so an engine that
    ignored either could not equal it everywhere."""
    a = peaked("tiny-qwen2-audio")
    inp = inputs(a, clips)
    trie = class_name_trie(a.tokenizer, MIXED_LENGTH_CLASSES, a.eos_id) if constrained else None
    plen = inp["input_ids"].shape[1]
    res = {}
    for es, lp in BEAMS:
        _, out = _beams(a, inp, 3, es, lp, trie)
        res[es, lp] = (tuple(map(tuple, out.sequences[:, plen:].tolist())),
                       tuple(round(x, 4) for x in out.sequences_scores.tolist()))
    by_es = [len({res[es, lp] for es in (True, False, "never")}) for lp in PENALTIES]
    by_lp = [len({res[es, lp][0] for lp in PENALTIES}) for es in (True, False, "never")]
    assert max(by_lp) >= 2, by_lp    # the length penalty changes which hypotheses win
    if constrained:                  # (unconstrained, this model's beams end alike)
        assert max(by_es) >= 2, by_es    # early_stopping changes some result


# -- every tiny architecture ------------------------------------------------------------------

@pytest.mark.parametrize("name", TINY)
def test_every_architecture_samples_and_beams_as_generate(peaked, clips, name):
    """The peaked variant of each tiny architecture: samples at temperature 0.7, top-p 0.9,
    top-k 20 with rows stopping at different steps, and a beam search with early_stopping
    False and a length penalty, token for token as generate()."""
    a = peaked(name)
    inp = inputs(a, clips[:2])
    kw = dict(temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=8)
    got, _ = engine_decode(a, inp, 3, n=3, greedy=False, **kw)
    assert_same(got, ref_generate(a, inp, 3, do_sample=True, num_return_sequences=3, **kw))
    beams, out = _beams(a, inp, 2, False, 0.5)
    assert_same(beams.tokens, out.sequences[:, inp["input_ids"].shape[1]:])
    torch.testing.assert_close(beams.scores, out.sequences_scores, atol=1e-4, rtol=0)
