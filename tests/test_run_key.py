"""Everything that changes a run's samples changes its run key; what does not, does not.

A sample store answers a rerun from the rows under the run key it computes, so an input
left out of the key silently reuses another run's samples (a seed-1 run getting seed 0's,
an edited prompt getting the old prompt's answers), and an input put into it needlessly
samples again. Each list below names every field or option of its kind, read by
introspection: a field added to `GenerationSettings`, `Decoding`, `PromptTemplate` or an
adapter's constructor fails `test_*_are_all_classified` until it is put in the keyed list
(and then shown to move the key) or in the excluded list with the reason. The batch seeds
(`_batch_seed`) are tested here too; the end-to-end checks (seed 0 then 1, prompt version
1 then 2 into one store) are in tests/test_runner.py.
"""
import dataclasses
import inspect

import pytest

from ambiemo.alm import Decoding
from ambiemo.alm.prompts import PromptTemplate, load_prompt
from ambiemo.alm.sim import SimulatedALM
from ambiemo.sampling.generate import GenerationSettings, _batch_seed, run_key

CLASSES = ["angry", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def prompts(repo):
    return repo / "configs" / "prompts"


@pytest.fixture(scope="module")
def sim(repo):
    from ambiemo import corpora
    return SimulatedALM("sim:test", name="sim", manifest=corpora.load("demo", repo / "data" / "demo"))


@pytest.fixture(scope="module")
def base(prompts):
    """Settings with every optional kind on, so each switch and its parameter can move."""
    return GenerationSettings(n_samples=2, greedy=True, decoding=Decoding(), seed=0,
                              batch_size=4, label_scores=True, beams=2,
                              cot_prompt=load_prompt("cot", prompts), cot_max_new_tokens=6)


def key(adapter, prompt, settings, classes=CLASSES):
    return run_key(adapter, prompt, settings, classes)[0]


# -- GenerationSettings and Decoding ---------------------------------------------------------

def _other_cot(prompts):
    cot = load_prompt("cot", prompts)
    return dataclasses.replace(cot, version=cot.version + 1)


# field -> another value; each must move the key.
SETTINGS_KEYED = {
    "n_samples": lambda p: 3, "greedy": lambda p: False, "decoding": lambda p: Decoding(top_k=5),
    "seed": lambda p: 1, "label_scores": lambda p: False, "beams": lambda p: 3,
    "cot_prompt": _other_cot, "cot_max_new_tokens": lambda p: 7,
}
# field -> (another value, why it stays out of the key).
SETTINGS_EXCLUDED = {
    "batch_size": (8, "clips per model call, a memory setting: the batch boundaries move the "
                      "batch seeds, but any boundaries give valid samples (out-of-memory "
                      "halving moves them within a run too), and a rerun on a smaller card "
                      "keeps what is stored"),
}
DECODING_VALUES = {"temperature": 0.7, "top_p": 0.9, "top_k": 5, "max_new_tokens": 9,
                   "constrained": True}


def test_generation_settings_fields_are_all_classified():
    names = {f.name for f in dataclasses.fields(GenerationSettings)}
    assert names == set(SETTINGS_KEYED) | set(SETTINGS_EXCLUDED), (
        "a GenerationSettings field is neither keyed nor listed as excluded (with the reason)")
    assert not set(SETTINGS_KEYED) & set(SETTINGS_EXCLUDED)
    assert {f.name for f in dataclasses.fields(Decoding)} == set(DECODING_VALUES)


@pytest.mark.parametrize("field", sorted(SETTINGS_KEYED))
def test_each_generation_setting_moves_the_key(sim, prompts, base, field):
    prompt = load_prompt("direct_label", prompts)
    changed = dataclasses.replace(base, **{field: SETTINGS_KEYED[field](prompts)})
    assert getattr(changed, field) != getattr(base, field)
    assert key(sim, prompt, changed) != key(sim, prompt, base)


@pytest.mark.parametrize("field", sorted(SETTINGS_EXCLUDED))
def test_settings_that_change_no_sample_leave_the_key(sim, prompts, base, field):
    prompt = load_prompt("direct_label", prompts)
    changed = dataclasses.replace(base, **{field: SETTINGS_EXCLUDED[field][0]})
    assert getattr(changed, field) != getattr(base, field)
    assert key(sim, prompt, changed) == key(sim, prompt, base)


@pytest.mark.parametrize("field", sorted(DECODING_VALUES))
def test_each_decoding_setting_moves_the_key(sim, prompts, base, field):
    prompt = load_prompt("direct_label", prompts)
    changed = dataclasses.replace(base, decoding=Decoding(**{field: DECODING_VALUES[field]}))
    assert getattr(changed.decoding, field) != getattr(base.decoding, field)
    assert key(sim, prompt, changed) != key(sim, prompt, base)


def test_seed_moves_the_key_with_nothing_else_on(sim, prompts):
    """The plainest run (greedy + N samples): seed 1 is another run than seed 0."""
    prompt = load_prompt("direct_label", prompts)
    keys = {key(sim, prompt, GenerationSettings(seed=s)) for s in (0, 1, 2)}
    assert len(keys) == 3


# -- the prompt and the chain-of-thought prompt ---------------------------------------------

PROMPT_VALUES = {
    "id": "direct_label_b", "version": 2, "answer": "distribution",
    "user": "Name the emotion of the speaker. Classes: {classes}. One word.",
}


def test_prompt_fields_are_all_classified():
    assert {f.name for f in dataclasses.fields(PromptTemplate)} == set(PROMPT_VALUES)


@pytest.mark.parametrize("field", sorted(PROMPT_VALUES))
def test_each_prompt_field_moves_the_key(sim, prompts, field):
    """id, version, the answer format and the text itself: a prompt edited without a new
    version samples afresh too."""
    prompt = load_prompt("direct_label", prompts)
    changed = dataclasses.replace(prompt, **{field: PROMPT_VALUES[field]})
    assert getattr(changed, field) != getattr(prompt, field)
    settings = GenerationSettings()
    assert key(sim, changed, settings) != key(sim, prompt, settings)


@pytest.mark.parametrize("field", ["id", "version", "user"])
def test_each_cot_prompt_field_moves_the_key(sim, prompts, base, field):
    """(Its answer format can only be `cot`: GenerationSettings refuses any other.)"""
    cot = base.cot_prompt
    value = {"id": "cot_b", "version": cot.version + 1,
             "user": "Think it through, then answer with one of {classes}. Answer: <class>"}[field]
    changed = dataclasses.replace(base, cot_prompt=dataclasses.replace(cot, **{field: value}))
    prompt = load_prompt("direct_label", prompts)
    assert key(sim, prompt, changed) != key(sim, prompt, base)


def test_cot_tokens_do_not_matter_when_cot_is_off(sim, prompts):
    prompt = load_prompt("direct_label", prompts)
    assert key(sim, prompt, GenerationSettings(cot_max_new_tokens=6)) == \
        key(sim, prompt, GenerationSettings(cot_max_new_tokens=7))


# -- the class list ---------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [CLASSES[::-1], CLASSES[:3], [*CLASSES[:3], "sadness"]],
                         ids=["reordered", "one-fewer", "renamed"])
def test_the_class_list_moves_the_key(sim, prompts, classes):
    prompt, settings = load_prompt("direct_label", prompts), GenerationSettings()
    assert key(sim, prompt, settings, classes) != key(sim, prompt, settings)


# -- the adapter's identity -------------------------------------------------------------------

def _params(cls) -> set[str]:
    """The constructor's options, with those a `**kwargs` passes on to the base class."""
    params = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in params if p.kind is p.KEYWORD_ONLY or p.name == "checkpoint"}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names |= _params(cls.__mro__[1])
    return names


def _assert_classified(cls, keyed, excluded):
    assert _params(cls) == set(keyed) | set(excluded), (
        f"{cls.__name__}: a constructor option is neither keyed nor listed as excluded")
    assert not set(keyed) & set(excluded)


# SimulatedALM: option -> another value.
SIM_KEYED = {"checkpoint": "sim:other", "name": "sim2", "power": 2.0, "mix": 0.5,
             "label": "sad", "listeners": 7, "manifest": "other annotations"}
SIM_EXCLUDED = {"device": "cuda", "dtype": "bfloat16", "revision": "r1"}   # accepted, ignored


def test_simulated_model_options_are_all_classified():
    _assert_classified(SimulatedALM, SIM_KEYED, SIM_EXCLUDED)


def _sim(repo, **options):
    from ambiemo import corpora
    manifest = corpora.load("demo", repo / "data" / "demo")
    if options.pop("manifest", None):
        manifest = manifest.copy()
        manifest[["p_sad", "p_neutral"]] = manifest[["p_neutral", "p_sad"]].to_numpy()
    opts = {"checkpoint": "sim:test", "name": "sim", **options}
    return SimulatedALM(opts.pop("checkpoint"), manifest=manifest, **opts)


@pytest.mark.parametrize("option", sorted(SIM_KEYED) + sorted(SIM_EXCLUDED))
def test_simulated_model_options_move_the_key_or_not(repo, prompts, option):
    prompt, settings = load_prompt("direct_label", prompts), GenerationSettings()
    value = {**SIM_KEYED, **SIM_EXCLUDED}[option]
    same = key(_sim(repo, **{option: value}), prompt, settings) == key(_sim(repo), prompt, settings)
    assert same == (option in SIM_EXCLUDED)


# Hosted adapters: option -> another value. What only steers the requests (retries,
# back-off, timeouts, budget, concurrency, the key's variable) changes no answer.
HOSTED_EXCLUDED = {"api_key_env": "OTHER_KEY", "max_requests": 10, "max_retries": 2,
                   "backoff_s": 3.0, "max_backoff_s": 9.0, "timeout_s": 30.0, "concurrency": 16,
                   "max_wait_s": 60.0,   # how long to honour a Retry-After: no answer changes
                   "device": "cuda", "dtype": "bfloat16",
                   "revision": None}   # must be None: a dated model id is the checkpoint
OPENAI_KEYED = {"checkpoint": "openai:gpt-audio-mini", "name": "other",
                "base_url": "http://localhost:8000/v1", "logprobs": False,
                "max_candidates_per_request": 2}
GEMINI_KEYED = {"checkpoint": "gemini:gemini-3.5-flash", "name": "other",
                "base_url": "http://localhost:8000", "logprobs": True,
                "max_candidates_per_request": 2, "thinking_budget": 128,
                "thinking_level": "high", "thinking_headroom": 512}


def _hosted(kind, monkeypatch, **options):
    for var in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OTHER_KEY"):
        monkeypatch.setenv(var, "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    if kind == "openai":
        from ambiemo.alm.hosted.openai_chat import OpenAIChatAdapter as cls
        opts = {"checkpoint": "openai:gpt-audio-1.5", "name": "gpt"}
    else:
        from ambiemo.alm.hosted.gemini import GeminiAdapter as cls
        # A thinking level with its headroom on, so the headroom can move the key; a
        # budget replaces the level (the API refuses both).
        opts = {"checkpoint": "gemini:gemini-3-pro-preview", "name": "gemini",
                "thinking_level": "low", "thinking_headroom": 256}
        if "thinking_budget" in options:
            opts.pop("thinking_level")
    opts.update(options)
    return cls(opts.pop("checkpoint"), **opts)


def test_hosted_model_options_are_all_classified():
    from ambiemo.alm.hosted.gemini import GeminiAdapter
    from ambiemo.alm.hosted.openai_chat import OpenAIChatAdapter
    _assert_classified(OpenAIChatAdapter, OPENAI_KEYED, HOSTED_EXCLUDED)
    _assert_classified(GeminiAdapter, GEMINI_KEYED, HOSTED_EXCLUDED)


@pytest.mark.parametrize("kind, option",
                         [("openai", o) for o in sorted({**OPENAI_KEYED, **HOSTED_EXCLUDED})]
                         + [("gemini", o) for o in sorted({**GEMINI_KEYED, **HOSTED_EXCLUDED})])
def test_hosted_model_options_move_the_key_or_not(prompts, monkeypatch, kind, option):
    prompt, settings = load_prompt("direct_label", prompts), GenerationSettings()
    keyed = OPENAI_KEYED if kind == "openai" else GEMINI_KEYED
    value = {**keyed, **HOSTED_EXCLUDED}[option]
    baseline = _hosted(kind, monkeypatch, **({"thinking_budget": 64}
                                             if option == "thinking_budget" else {}))
    changed = _hosted(kind, monkeypatch, **{option: value})
    assert (key(changed, prompt, settings) == key(baseline, prompt, settings)) == \
        (option in HOSTED_EXCLUDED)


# Open models (transformers): option -> another value.
HF_KEYED = {"checkpoint": "copy", "name": "other", "revision": "0123abc", "dtype": "bfloat16",
            "engine": "generate", "static_cache": True, "compile": True}
HF_EXCLUDED = {
    # The numerics follow the dtype (keyed); the device's kernels agree in distribution, and
    # "cuda" / "cuda:1" / another machine must not orphan a run's samples.
    "device": "cpu",
    # Whether the checkpoint's own code may run; with it, a revision must be pinned (keyed).
    "trust_remote_code": False,
}


def test_open_model_options_are_all_classified():
    from ambiemo.alm.archs.phi4_multimodal import Phi4MultimodalAdapter
    from ambiemo.alm.hf.adapter import TransformersAdapter
    _assert_classified(TransformersAdapter, HF_KEYED, HF_EXCLUDED)
    # Phi-4 adds its speech LoRA: the base weights alone answer otherwise.
    _assert_classified(Phi4MultimodalAdapter, {**HF_KEYED, "speech_lora": None}, HF_EXCLUDED)


@pytest.mark.parametrize("option", sorted(HF_KEYED) + sorted(HF_EXCLUDED))
def test_open_model_options_move_the_key_or_not(tiny_qwen2_audio, prompts, tmp_path, option):
    import shutil
    cls, path = type(tiny_qwen2_audio), tiny_qwen2_audio.checkpoint
    value = {**HF_KEYED, **HF_EXCLUDED}[option]
    if option == "checkpoint":
        value = shutil.copytree(path, tmp_path / "copy")   # same weights, another checkpoint
    opts = {"name": tiny_qwen2_audio.name, "device": "cpu", option: value}
    changed = cls(opts.pop("checkpoint", path), **opts)
    prompt, settings = load_prompt("direct_label", prompts), GenerationSettings()
    assert (key(changed, prompt, settings) == key(tiny_qwen2_audio, prompt, settings)) == \
        (option in HF_EXCLUDED)


def test_phi4_without_its_speech_lora_is_another_run(tiny_cache, prompts):
    """The tiny Phi-4 has no LoRA (speech_lora None): its identity says so, and the same
    model with the default LoRA would be keyed apart (the default adds nothing, so the keys
    of runs with it did not move)."""
    import copy

    from ambiemo.alm import load_model
    from ambiemo.alm.archs.phi4_multimodal import SPEECH_LORA

    bare = load_model("tiny-phi-4-multimodal", cache_dir=tiny_cache, device="cpu")
    assert bare.speech_lora is None and bare.identity()["speech_lora"] is None
    with_lora = copy.copy(bare)
    with_lora.speech_lora = SPEECH_LORA
    assert "speech_lora" not in with_lora.identity()
    prompt, settings = load_prompt("direct_label", prompts), GenerationSettings()
    assert key(bare, prompt, settings) != key(with_lora, prompt, settings)


# -- batch seeds ------------------------------------------------------------------------------

def test_batch_seed_moves_with_each_of_seed_kind_and_first_clip():
    """A batch's random stream is fixed by (run seed, kind, its first clip): equal inputs,
    equal seed (a resumed run redraws what an uninterrupted one drew); any one changed,
    another seed (else every batch, or every kind, would draw the same stream)."""
    seed = _batch_seed(0, "sample", "spk1_sad_s1")
    assert seed == _batch_seed(0, "sample", "spk1_sad_s1")
    others = [_batch_seed(1, "sample", "spk1_sad_s1"), _batch_seed(0, "greedy", "spk1_sad_s1"),
              _batch_seed(0, "cot", "spk1_sad_s1"), _batch_seed(0, "sample", "spk2_happy_s2")]
    assert len({seed, *others}) == 5
    assert all(0 <= s < 2 ** 31 for s in (seed, *others))     # what torch.manual_seed takes


def test_batch_seed_derivation_is_pinned():
    """The values themselves: a changed derivation would give a resumed run's remaining
    batches other streams than its first ones (stored samples are never redrawn)."""
    assert [_batch_seed(0, "sample", "spk1_sad_s1"), _batch_seed(7, "greedy", "u")] == \
        [1169213378, 1724984767]

