"""Qwen3-Omni thinker specifics beyond the shared conformance tests (tests/test_adapters.py):
the chat layout, long audio (never truncated), the tiny decoder being a mixture of experts,
and the registered parameter count. The M-RoPE positions the shared-prefix engine relies on
are checked beside Qwen2.5-Omni's (tests/test_arch_qwen2_5_omni.py)."""
import numpy as np
import pytest

from _reference import meta_thinker
from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.archs.qwen3_omni import QWEN3_OMNI_THINKER

SR = 16_000
TOKENS_PER_S = 13      # one 1 s chunk (100 feature frames) -> 13 encoder outputs


@pytest.fixture(scope="module")
def q3(tiny_cache):
    return load_model("tiny-qwen3-omni", cache_dir=tiny_cache, device="cpu")


def n_audio_tokens(adapter, inputs) -> list[int]:
    audio = adapter.tokenizer.convert_tokens_to_ids(adapter.processor.audio_token)
    return (inputs["input_ids"] == audio).sum(-1).tolist()


def test_prompt_is_the_checkpoint_template_without_a_system_turn(q3):
    assert q3.build_prompt("Which emotion?") == (
        "<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>Which emotion?<|im_end|>\n"
        "<|im_start|>assistant\n")
    # The template's thinking switch is there, and left off by the adapter.
    off = q3.processor.apply_chat_template(q3.messages("Which emotion?"), tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)
    assert off == q3.build_prompt("Which emotion?") + "<think>\n\n</think>\n\n"


def test_long_audio_is_encoded_whole(q3):
    """No window: the processor pads to the longest clip and never truncates (even past the
    feature extractor's chunk_length), ~13 audio tokens per second; a clip longer than the
    encoder's 8 s attention window runs through the model."""
    assert q3.max_audio_s is None
    window = q3.processor.feature_extractor.chunk_length
    rng = np.random.default_rng(0)
    long = rng.uniform(-0.5, 0.5, (window + 1) * SR).astype(np.float32)
    inputs = q3.processor_inputs([q3.build_prompt("Which emotion?")], [long])
    assert n_audio_tokens(q3, inputs) == [(window + 1) * TOKENS_PER_S]

    clip = Clip("ten_seconds", long[: 10 * SR])
    assert n_audio_tokens(q3, q3._inputs([clip], "Which emotion?")) == [10 * TOKENS_PER_S]
    [(_, p)] = q3.label_scores([clip], "Which emotion?", ["happy", "sad"])
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)


def test_tiny_decoder_is_a_mixture_of_experts(q3):
    text = q3.model.config.text_config
    assert (text.num_experts, text.num_experts_per_tok) == (4, 2)
    for layer in q3.model.model.language_model.layers:
        assert type(layer.mlp).__name__ == "Qwen3OmniMoeThinkerTextSparseMoeBlock"
        assert layer.mlp.experts.gate_up_proj.shape[0] == text.num_experts


def test_registered_parameter_count_is_the_thinker_of_the_published_config():
    """The capacity axis: the thinker (what the adapter loads) of the hub config, counted on
    the meta device; the thinker config is what transformers reads from the full Omni
    config.json. The count is the MoE total, not the ~3.3e9 routed per token."""
    from transformers import (Qwen3OmniMoeConfig, Qwen3OmniMoeThinkerConfig,
                              Qwen3OmniMoeThinkerForConditionalGeneration)

    arch = QWEN3_OMNI_THINKER
    model = meta_thinker(Qwen3OmniMoeConfig, Qwen3OmniMoeThinkerConfig,
                         Qwen3OmniMoeThinkerForConditionalGeneration, arch)
    assert model.config.text_config.num_experts == arch["text"]["num_experts"]
    n = sum(p.numel() for p in model.parameters())
    spec = MODELS["qwen3-omni-30b-a3b"]
    assert spec.n_params == pytest.approx(n, rel=5e-3)
    assert spec.hf_class == type(model).__name__

    text = arch["text"]
    experts = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
    decoder = sum(p.numel() for p in model.model.language_model.parameters()) \
        + model.lm_head.weight.numel()
    active = decoder - experts * (1 - text["num_experts_per_tok"] / text["num_experts"])
    assert active == pytest.approx(3.35e9, rel=5e-3)
