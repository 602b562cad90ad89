"""Audio Flamingo 3 specifics beyond the shared conformance tests (tests/test_adapters.py):
the chat layout, how the processor windows long audio, and the registered parameter count."""
import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS, load_model
from ambiemo.alm.archs.audio_flamingo_3 import AF3_ENCODER, AF3_TEXT

SR = 16_000


@pytest.fixture(scope="module")
def af3(tiny_cache):
    return load_model("tiny-audio-flamingo-3", cache_dir=tiny_cache, device="cpu")


def test_prompt_puts_the_sound_placeholder_before_the_text_under_the_default_system_turn(af3):
    assert af3.build_prompt("Which emotion?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<sound>Which emotion?<|im_end|>\n<|im_start|>assistant\n")


def test_long_audio_is_windowed_not_truncated_up_to_the_processor_limit(af3):
    """16 kHz mono float32 arrays go in as given; a clip longer than one encoder window is
    encoded window by window (more audio tokens), and only audio past max_audio_len is cut,
    which is what `max_audio_s` reports to the runner."""
    window = af3.processor.feature_extractor.chunk_length
    assert af3.max_audio_s == af3.processor.max_audio_len > window
    prompt = af3.build_prompt("Which emotion?")

    def n_audio_tokens(seconds):
        audio = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32)
        inputs = af3.processor_inputs([prompt], [audio])
        n_windows = inputs["input_features"].shape[0]
        return int((inputs["input_ids"] == af3.processor.audio_token_id).sum()), n_windows

    one, w1 = n_audio_tokens(window - 1)
    three, w3 = n_audio_tokens(2.5 * window)
    capped, wcap = n_audio_tokens(af3.max_audio_s + 2 * window)
    assert (w1, w3) == (1, 3) and three > one
    assert wcap == af3.max_audio_s // window
    assert capped == n_audio_tokens(af3.max_audio_s)[0]


def test_registered_parameter_count_is_the_published_architecture():
    """The capacity axis: AF3's registry count equals the hub config's architecture, counted
    on the meta device (no weights)."""
    from transformers import AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration

    config = AudioFlamingo3Config(
        audio_config={"model_type": "audioflamingo3_encoder", **AF3_ENCODER}, text_config=AF3_TEXT)
    with torch.device("meta"):
        model = AudioFlamingo3ForConditionalGeneration(config)
    n = sum(p.numel() for p in model.parameters())
    assert MODELS["audio-flamingo-3"].n_params == pytest.approx(n, rel=5e-3)
    assert MODELS["audio-flamingo-3"].hf_class == type(model).__name__
