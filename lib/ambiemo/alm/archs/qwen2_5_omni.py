"""Qwen2.5-Omni's thinker through transformers' own classes
(`Qwen2_5OmniThinkerForConditionalGeneration`, text out only).

Jia et al. (2026) compare open ALMs of different capacity; Qwen2.5-Omni (7B and 3B) is the
Qwen2-Audio successor. The study needs text answers only, so only the thinker (audio and
vision encoders + decoder) is loaded: transformers' weight conversion strips the `thinker.`
prefix from the full Omni checkpoint and leaves the talker and the vocoder unloaded.

Audio: 16 kHz mono float arrays through `Qwen2_5OmniProcessor` (Whisper features); the
feature extractor truncates to its `chunk_length` (300 s on the hub checkpoints), so longer
clips are cut there and that is `audio_window_s`; the encoder runs the kept audio in 2 s
blocks (`n_window` = 100, i.e. 200 feature frames), 25 audio tokens per second.
Positions: the decoder uses 3-D multimodal rotary positions (M-RoPE); for audio-only
prompts all three components are the plain running index (get_rope_index), so the
shared-prefix engine's 1-D positions give the same model and `default_engine = "prefix"`
holds (tests/test_adapters.py checks it token for token against generate()).

Tested offline: `tiny-qwen2.5-omni`, the real architecture at toy size with the real
processor class (its image and video processors import torchvision; the tests provide its
pure-Python part, tests/cpu_extras.py) and the hub chat template, through every conformance
test. Not tested: the hub checkpoints themselves and image or video input.
"""
from __future__ import annotations

from pathlib import Path

from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import chatml_tokenizer, register_tiny, save_seeded, whisper_features

HF_CLASS = "Qwen2_5OmniThinkerForConditionalGeneration"

# The chat template Qwen/Qwen2.5-Omni-7B ships (chat_template.json), so prompts built for the
# tiny model have the real model's layout. The default system turn is the plain one: the
# "You are Qwen, a virtual human ..." prompt is only required for speech output.
QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Named tokens the processor reads off the tokenizer (tokenizer.audio_token, ...), as the
# hub tokenizer_config declares them.
OMNI_NAMED_TOKENS = {
    "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}
OMNI_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *OMNI_NAMED_TOKENS.values(),
                "<|vision_pad|>"]


# Both the thinker-only config and the full Omni one (a hub download) load as the thinker.
@register_adapter("qwen2_5_omni_thinker", "qwen2_5_omni")
class Qwen2_5OmniAdapter(TransformersAdapter):
    """Qwen2.5-Omni's thinker (see the module docstring for audio limits and positions)."""

    hf_class = HF_CLASS
    end_of_turn = "<|im_end|>"


# Thinker parameter counts (audio encoder + vision encoder + decoder, what the adapter
# loads; the hub totals, 10.7e9 and 5.5e9, also count the talker and the vocoder), computed
# from the checkpoints' published config.json on the meta device; tests/test_arch_qwen2_5_omni.py
# recomputes them from OMNI_THINKERS.
OMNI_THINKERS = {
    "qwen2.5-omni-7b": dict(
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                  num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                  tie_word_embeddings=False),
        audio=dict(output_dim=3584), vision=dict(hidden_size=1280, out_hidden_size=3584)),
    "qwen2.5-omni-3b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008,
                  num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                  tie_word_embeddings=True),
        audio=dict(output_dim=2048), vision=dict(hidden_size=1280, out_hidden_size=2048)),
}
register_model(ModelSpec(
    name="qwen2.5-omni-7b", checkpoint="Qwen/Qwen2.5-Omni-7B", hf_class=HF_CLASS,
    n_params=8.93e9, adapter="Qwen2_5OmniAdapter"))
register_model(ModelSpec(
    name="qwen2.5-omni-3b", checkpoint="Qwen/Qwen2.5-Omni-3B", hf_class=HF_CLASS,
    n_params=4.70e9, adapter="Qwen2_5OmniAdapter"))
register_model(ModelSpec(
    name="tiny-qwen2.5-omni", checkpoint="tiny:qwen2_5_omni", hf_class=HF_CLASS,
    n_params=233_280, adapter="Qwen2_5OmniAdapter"))


@register_tiny("qwen2_5_omni", version=1)
def build_tiny_qwen2_5_omni(path: str | Path, *, seed: int = 0, chunk_length_s: int = 5) -> Path:
    """Write a tiny random-weight Qwen2.5-Omni thinker (model, tokenizer, processor) to `path`.

    `chunk_length_s` is the feature extractor's window (real: 300 s); 5 s keeps the toy
    encoder cheap. The processor's video processor needs torchvision's Python part."""
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        raise RuntimeError("the tiny Qwen2.5-Omni checkpoint needs torchvision: Qwen2_5OmniProcessor "
                           "cannot be built without a video processor (in a script, call "
                           "tests/cpu_extras.install() before importing transformers)")
    from transformers import (Qwen2_5OmniProcessor, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    tok = chatml_tokenizer(OMNI_SPECIAL, named=OMNI_NAMED_TOKENS)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in OMNI_NAMED_TOKENS.items()}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
        feature_extractor=whisper_features(chunk_length_s), tokenizer=tok,
        chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE)
    text = 64
    config = Qwen2_5OmniThinkerConfig(
        audio_config={"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 64, "num_mel_bins": 128, "n_window": 50,
                      "max_source_positions": 100, "output_dim": text},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64,
                       "num_heads": 2, "out_hidden_size": text, "fullatt_block_indexes": [0]},
        text_config={"vocab_size": len(tok), "hidden_size": text, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 2048,
                     # head_dim 16: the three M-RoPE sections cover its 8 frequencies
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                         "mrope_section": [2, 3, 3]},
                     "tie_word_embeddings": False},
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"],
        vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"],
        user_token_id=tok.encode("user", add_special_tokens=False)[0],
    )
    return save_seeded(Qwen2_5OmniThinkerForConditionalGeneration, config, processor, tok,
                       Path(path), seed)
