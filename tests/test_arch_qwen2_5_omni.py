"""Qwen2.5-Omni thinker specifics beyond the shared conformance tests (tests/test_adapters.py):
the chat layout, the audio window, the positions the shared-prefix engine relies on (here
for Qwen3-Omni too), and the registered parameter counts."""
import numpy as np
import pytest
import torch

from _reference import meta_thinker
from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.archs.qwen2_5_omni import OMNI_THINKERS

SR = 16_000


@pytest.fixture(scope="module")
def omni(tiny_cache):
    return load_model("tiny-qwen2.5-omni", cache_dir=tiny_cache, device="cpu")


def n_audio_tokens(adapter, seconds: float) -> int:
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32)
    inputs = adapter._inputs([Clip("x", audio)], "Which emotion?")
    token = adapter.tokenizer.convert_tokens_to_ids(adapter.processor.audio_token)
    return int((inputs["input_ids"] == token).sum())


def test_prompt_has_the_hub_template_layout(omni):
    assert omni.build_prompt("Which emotion?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|audio_bos|><|AUDIO|><|audio_eos|>Which emotion?<|im_end|>\n<|im_start|>assistant\n")


def test_audio_past_the_window_is_truncated(omni):
    """The feature extractor cuts clips at its chunk_length, which `max_audio_s` reports to
    the runner; below it the audio gets 25 tokens per second."""
    window = omni.processor.feature_extractor.chunk_length
    assert omni.max_audio_s == window
    assert window > 2 and n_audio_tokens(omni, 2) == 25 * 2
    assert n_audio_tokens(omni, window + 3) == n_audio_tokens(omni, window) == 25 * window


@pytest.mark.parametrize("name", ["tiny-qwen2.5-omni", "tiny-qwen3-omni"])
def test_audio_prompt_positions_are_the_running_index(name, tiny_cache, repo):
    """What makes the shared-prefix engine exact for both Omni thinkers: for a left-padded
    batch of audio-only prompts, the model's own 3-D M-RoPE positions are the running index
    over the attention mask in all three components, and the rope delta is 0."""
    from ambiemo.alm.audio import load_audio

    adapter = load_model(name, cache_dir=tiny_cache, device="cpu")
    audio = load_audio(repo / "data" / "demo" / "wav" / "spk1_sad_s1.wav")
    inputs = adapter._inputs([Clip("a", audio), Clip("b", audio[: len(audio) // 2])],
                             "Which emotion?")
    mask = inputs["attention_mask"]
    assert mask[1].min() == 0                                   # the shorter clip is padded
    pos, delta = adapter.model.get_rope_index(
        inputs["input_ids"], attention_mask=mask,
        audio_seqlens=inputs["feature_attention_mask"].sum(-1))
    assert delta.tolist() == [[0], [0]]
    for row in range(2):
        valid = mask[row] == 1
        running = torch.arange(int(valid.sum()), dtype=pos.dtype)
        for axis in range(3):
            assert torch.equal(pos[axis, row, valid], running)


@pytest.mark.parametrize("name", sorted(OMNI_THINKERS))
def test_registered_parameter_counts_are_the_thinkers_of_the_published_configs(name):
    """The capacity axis: the thinker (what the adapter loads) of each hub config, counted
    on the meta device, and the thinker config is what transformers reads from the full
    Omni config.json (the hub checkpoints hold thinker, talker and vocoder)."""
    from transformers import (Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration)

    arch = OMNI_THINKERS[name]
    model = meta_thinker(Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig,
                         Qwen2_5OmniThinkerForConditionalGeneration, arch)
    assert model.config.text_config.hidden_size == arch["text"]["hidden_size"]
    n = sum(p.numel() for p in model.parameters())
    assert MODELS[name].n_params == pytest.approx(n, rel=5e-3)
    assert MODELS[name].hf_class == type(model).__name__
