"""Qwen2-Audio through transformers' own classes (`Qwen2AudioForConditionalGeneration`).

Qwen2-Audio-7B-Instruct is the main open model of Jia et al. (2026). Everything but the
class, the end-of-turn token and the processor call is shared (alm/hf.py): the N samples come
from the shared-prefix engine by default, `engine="generate"` keeps batched
`generate(num_return_sequences=N)` as the reference the engine is tested against. The same
code loads the real checkpoint and the tiny one built by `ambiemo.alm.tiny`.
"""
from __future__ import annotations

from ambiemo.alm.hf import ENGINES, TransformersAdapter, local_fingerprint, resolve_device
from ambiemo.alm.registry import register_adapter

__all__ = ["ENGINES", "Qwen2AudioAdapter", "local_fingerprint", "resolve_device"]


@register_adapter("qwen2_audio", "Qwen2AudioAdapter")
class Qwen2AudioAdapter(TransformersAdapter):
    hf_class = "Qwen2AudioForConditionalGeneration"
    end_of_turn = "<|im_end|>"
