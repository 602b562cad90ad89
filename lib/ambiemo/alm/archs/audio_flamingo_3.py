"""Audio Flamingo 3 through transformers' own classes (`AudioFlamingo3ForConditionalGeneration`).

Jia et al. (2026) compare open ALMs of different capacity; Audio Flamingo 3 (NVIDIA,
Goel et al. 2025) is an AF-Whisper encoder + projector + Qwen2.5-7B decoder. Its processor
(`AudioFlamingo3Processor`) takes 16 kHz mono float arrays, cuts each clip into 30 s windows
and keeps at most `max_audio_len` = 600 s (20 windows): long audio is *chunked* (every
window encoded, all their tokens in the prompt), not truncated to one window; only audio
past 600 s is dropped, so that is the adapter's `audio_window_s`. The decoder uses plain
1-D rotary positions, so the shared-prefix engine reproduces `generate()` exactly.

The tiny checkpoint keeps the real layout at toy size: the real processor class, a
Qwen-style BPE tokenizer with AF3's `<sound>` placeholder, and the chat template the HF
checkpoint ships (audio placeholders before the text of a turn, Qwen's default system turn).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import (chatml_tokenizer, register_tiny, save_seeded,
                              tiny_qwen2_text_config, whisper_features)

HF_CLASS = "AudioFlamingo3ForConditionalGeneration"

# The chat template of nvidia/audio-flamingo-3-hf, reconstructed from transformers'
# processor tests (test_chat_template: a user turn [text, audio] renders as
# "<|im_start|>user\n<sound>{text}<|im_end|>\n"): every audio item of a turn becomes one
# `<sound>` placeholder ahead of the turn's text; no system message means Qwen's default one.
AF3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'path' in content %}<sound>{% endif %}"
    "{% endfor %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
AF3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]


@register_adapter("audioflamingo3")
class AudioFlamingo3Adapter(TransformersAdapter):
    """Audio Flamingo 3 (chunks audio into 30 s windows up to 600 s; see module docstring)."""

    hf_class = HF_CLASS
    end_of_turn = "<|im_end|>"

    def audio_window_s(self) -> float | None:
        # The feature extractor's chunk_length is one window, not the limit: the processor
        # encodes up to max_audio_len seconds as consecutive windows.
        return float(self.processor.max_audio_len)

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        # No top-level `padding=True`: it would also reach the feature extractor, which must
        # pad every window to its full length (the encoder adds fixed-size positions). The
        # processor pads the text itself (its text_kwargs default), on the left.
        return self.processor(text=prompts, audio=audios, sampling_rate=TARGET_SR,
                              return_tensors="pt")


# Parameter counts: computed exactly from each checkpoint's published config.json by
# instantiating the architecture on the meta device (tests/test_arch_audio_flamingo_3.py
# recomputes it from the same numbers), i.e. the weights the adapter actually loads.
AF3_ENCODER = dict(num_mel_bins=128, num_hidden_layers=32, num_attention_heads=20,
                   intermediate_size=5120, hidden_size=1280, max_source_positions=1500)
AF3_TEXT = dict(model_type="qwen2", vocab_size=151672, hidden_size=3584,
                intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                num_key_value_heads=4, tie_word_embeddings=False)

register_model(ModelSpec(
    name="audio-flamingo-3", checkpoint="nvidia/audio-flamingo-3-hf", hf_class=HF_CLASS,
    # 8.27e9: AF-Whisper encoder (0.64e9) + projector + Qwen2.5-7B decoder with AF3's
    # 151,672-token vocabulary, counted from AF3_ENCODER/AF3_TEXT on the meta device.
    n_params=8.27e9, adapter="AudioFlamingo3Adapter"))
register_model(ModelSpec(
    name="tiny-audio-flamingo-3", checkpoint="tiny:audioflamingo3", hf_class=HF_CLASS,
    n_params=172_288, adapter="AudioFlamingo3Adapter"))


@register_tiny("audioflamingo3", version=1)
def build_tiny_audio_flamingo_3(path: str | Path, *, seed: int = 0, chunk_length_s: int = 5,
                                max_audio_len_s: int = 20) -> Path:
    """Write a tiny random-weight Audio Flamingo 3 (model, tokenizer, processor) to `path`.

    `chunk_length_s` is one encoder window (real: 30 s) and `max_audio_len_s` the longest
    audio kept (real: 600 s); both shrink so the toy encoder stays cheap on a CPU."""
    from transformers import (AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration,
                              AudioFlamingo3Processor)

    tokenizer = chatml_tokenizer(AF3_SPECIAL)
    processor = AudioFlamingo3Processor(feature_extractor=whisper_features(chunk_length_s),
                                        tokenizer=tokenizer, chat_template=AF3_CHAT_TEMPLATE,
                                        max_audio_len=max_audio_len_s)
    frames = chunk_length_s * 100  # 10 ms hop
    config = AudioFlamingo3Config(
        audio_config={"model_type": "audioflamingo3_encoder", "hidden_size": 32,
                      "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64, "num_mel_bins": 128,
                      "max_source_positions": frames // 2},
        text_config=tiny_qwen2_text_config(len(tokenizer)),
        audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
    )
    return save_seeded(AudioFlamingo3ForConditionalGeneration, config, processor, tokenizer,
                       Path(path), seed)
