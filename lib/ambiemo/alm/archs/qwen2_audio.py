"""Qwen2-Audio through transformers' own classes (`Qwen2AudioForConditionalGeneration`).

Qwen2-Audio-7B-Instruct is the main open model of Jia et al. (2026). Everything but the
class, the end-of-turn token and the processor call is shared (alm/hf/adapter.py): the N samples come
from the shared-prefix engine by default, `engine="generate"` keeps batched
`generate(num_return_sequences=N)` as the reference the engine is tested against. The same
code loads the real checkpoint and the tiny one built by `ambiemo.alm.tiny`.
"""
from __future__ import annotations

from ambiemo.alm.hf.adapter import ENGINES, TransformersAdapter, local_fingerprint, resolve_device
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model

__all__ = ["ENGINES", "Qwen2AudioAdapter", "local_fingerprint", "resolve_device"]


@register_adapter("qwen2_audio")
class Qwen2AudioAdapter(TransformersAdapter):
    hf_class = "Qwen2AudioForConditionalGeneration"
    end_of_turn = "<|im_end|>"


# n_params 8.4e9: 8.397e9 counted on the meta device from the checkpoint's published config
# (Whisper-large-v3-sized encoder: d_model 1280, 32 layers; Qwen-7B decoder: hidden 4096,
# 32 layers, vocabulary 156,032, untied embeddings).
register_model(ModelSpec(
    name="qwen2-audio-7b-instruct", checkpoint="Qwen/Qwen2-Audio-7B-Instruct",
    hf_class="Qwen2AudioForConditionalGeneration", n_params=8.4e9,
    adapter="Qwen2AudioAdapter"))
register_model(ModelSpec(
    name="tiny-qwen2-audio", checkpoint="tiny:qwen2_audio",
    hf_class="Qwen2AudioForConditionalGeneration", n_params=168_128,
    adapter="Qwen2AudioAdapter"))
