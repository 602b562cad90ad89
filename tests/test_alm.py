"""The Qwen2-Audio adapter on a tiny random-weight checkpoint loaded through from_pretrained."""
import json
from pathlib import Path

import numpy as np
import pytest

from _reference import teacher_forced_logp
from ambiemo.alm import MODELS, Clip, Decoding, load_model
from ambiemo.alm.audio import AudioError, load_audio
from ambiemo.labels import classes_for

C = list(classes_for("demo"))


@pytest.fixture(scope="module")
def clips(repo):
    ids = ["spk1_sad_s1", "spk2_happy_s2", "spk3_angry_s1"]
    return [Clip(u, load_audio(repo / "data" / "demo" / "wav" / f"{u}.wav")) for u in ids]


def test_tiny_checkpoint_is_real_architecture(tiny_qwen2_audio):
    from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor
    a = tiny_qwen2_audio
    assert isinstance(a.model, Qwen2AudioForConditionalGeneration)
    assert isinstance(a.processor, Qwen2AudioProcessor)
    config = json.loads(Path(a.checkpoint, "config.json").read_text())
    assert config["model_type"] == "qwen2_audio"
    # the registry's parameter count is the built model's
    assert MODELS["tiny-qwen2-audio"].n_params == sum(p.numel() for p in a.model.parameters())
    prompt = a.build_prompt("Which emotion?")
    assert prompt.endswith("<|im_start|>assistant\n") and "<|AUDIO|>" in prompt


def test_constrained_sampling_spells_class_names(tiny_qwen2_audio, clips):
    gens = tiny_qwen2_audio.generate(clips, "Which emotion?", n=8, greedy=False,
                                     decoding=Decoding(constrained=True), classes=C, seed=3)
    assert len(gens) == 24
    assert [(g.utt_id, g.idx) for g in gens] == [(c.utt_id, i) for c in clips for i in range(8)]
    assert {g.text for g in gens} <= set(C)
    assert all(g.logprob < 0 and g.n_tokens >= 2 for g in gens)


def test_sampling_is_seeded(tiny_qwen2_audio, clips):
    kw = dict(n=4, greedy=False, decoding=Decoding(max_new_tokens=6), classes=C)
    a = tiny_qwen2_audio.generate(clips, "x", seed=1, **kw)
    b = tiny_qwen2_audio.generate(clips, "x", seed=1, **kw)
    c = tiny_qwen2_audio.generate(clips, "x", seed=2, **kw)
    assert a == b
    assert [g.text for g in a] != [g.text for g in c]


def test_logprob_is_the_models_sequence_likelihood(tiny_qwen2_audio, clips):
    """Recompute each response's log-likelihood with one teacher-forced forward pass.
    Constrained answers are a class name plus the end-of-turn token, so the generated ids
    can be rebuilt from the text; the likelihood is the unconstrained model's."""
    a = tiny_qwen2_audio
    gens = a.generate(clips[:2], "Which emotion?", n=3, greedy=False,
                      decoding=Decoding(constrained=True), classes=C, seed=0)
    for g in gens:
        clip = next(c for c in clips if c.utt_id == g.utt_id)
        ids = a.processor.tokenizer.encode(g.text, add_special_tokens=False) + [a.eos_id]
        assert len(ids) == g.n_tokens
        expected = teacher_forced_logp(a, clip, "Which emotion?", ids)
        assert g.logprob == pytest.approx(expected, abs=1e-3)


def test_greedy_matches_plain_generate(tiny_qwen2_audio, clips):
    a = tiny_qwen2_audio
    gens = a.generate(clips[:1], "Which emotion?", n=1, greedy=True,
                      decoding=Decoding(max_new_tokens=6), classes=C, seed=0)
    inputs = a.processor(text=[a.build_prompt("Which emotion?")], audio=[clips[0].audio],
                         sampling_rate=16000, return_tensors="pt")
    out = a.model.generate(**inputs, max_new_tokens=6, do_sample=False)
    text = a.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                        skip_special_tokens=True).strip()
    assert gens[0].text == text


def test_static_cache_option_gives_the_same_samples_and_enters_the_key(tiny_qwen2_audio, clips,
                                                                       tiny_cache):
    """The GPU decoding options reach the engine through load_model's options (a config's
    model `options:`); the compiled step is the same code path (checked on a GPU)."""
    kw = dict(n=4, greedy=False, decoding=Decoding(constrained=True), classes=C, seed=5)
    static = load_model("tiny-qwen2-audio", cache_dir=tiny_cache, device="cpu", static_cache=True)
    assert static.generate(clips, "Which emotion?", **kw) == \
        tiny_qwen2_audio.generate(clips, "Which emotion?", **kw)
    assert static.identity() == {**tiny_qwen2_audio.identity(), "static_cache": True}
    with pytest.raises(ValueError, match="options of the prefix engine"):
        load_model("tiny-qwen2-audio", cache_dir=tiny_cache, device="cpu", engine="generate",
                   compile=True)
    # a model whose prompt cache cannot be shared (sliding-window layers) says so
    sliding = load_model("tiny-gemma-3n", cache_dir=tiny_cache, device="cpu", static_cache=True)
    with pytest.raises(ValueError, match="needs prefix_sharing='shared'"):
        sliding.generate(clips[:1], "Which emotion?", **kw)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="tiny-qwen2-audio"):
        load_model("qwen9-audio")


def test_every_registered_model_resolves(tiny_cache):
    """Hub checkpoints cannot be fetched here: their entries must be complete and their
    adapter registered; tiny ones are built and loaded."""
    from ambiemo.alm.registry import ADAPTERS
    import transformers
    for name, spec in MODELS.items():
        assert spec.adapter in ADAPTERS, name
        if spec.hf_class == "hosted":   # API models: no transformers class, size not published
            assert spec.n_params is None and spec.checkpoint.split(":")[0] in ("openai", "gemini"), name
            continue
        if spec.hf_class == "simulated":  # alm/sim.py: nothing to load, a fictitious size
            assert spec.checkpoint.startswith("sim:") and spec.n_params > 0, name
            assert load_model(name).name == name
            continue
        assert hasattr(transformers, spec.hf_class), spec.hf_class
        assert spec.n_params > 0
        if spec.checkpoint.startswith("tiny:"):
            assert load_model(name, cache_dir=tiny_cache, device="cpu").name == name


def test_bad_audio_is_named(tmp_path):
    import soundfile as sf
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioError, match="corrupt.wav: not a readable audio file"):
        load_audio(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype="float32"), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    nan = np.zeros(1600, dtype="float32")
    nan[[3, 700]] = [np.nan, np.inf]
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav: 2 non-finite samples \(NaN or inf\) of 1600"):
        load_audio(tmp_path / "nan.wav")


def test_stereo_and_other_rates_are_normalised(tmp_path):
    import soundfile as sf
    t = np.linspace(0, 1, 44100, endpoint=False)
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.zeros_like(t)], axis=1).astype("float32")
    sf.write(tmp_path / "s.wav", stereo, 44100)
    audio = load_audio(tmp_path / "s.wav")
    assert audio.ndim == 1 and audio.dtype == np.float32 and len(audio) == 16000
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)  # mean of the two channels
