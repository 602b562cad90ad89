"""Hosted ALMs: OpenAI chat completions with audio and Gemini, registered by name.

Jia et al. (2026) evaluate GPT-4o audio and Gemini beside the open ALMs, and use GPT-4o as
the verifier. Their parameter counts are not published (`n_params=None`), so they are left
out of the capacity fit. Keys come from environment variables only (OPENAI_API_KEY;
GEMINI_API_KEY or GOOGLE_API_KEY).
"""
from __future__ import annotations

from ambiemo.alm.hosted.gemini import GeminiAdapter
from ambiemo.alm.hosted.openai_chat import OpenAIChatAdapter
from ambiemo.alm.hosted.retry import BudgetExhausted, RequestBudget
from ambiemo.alm.registry import ModelSpec, register_model

__all__ = ["BudgetExhausted", "GeminiAdapter", "OpenAIChatAdapter", "RequestBudget",
           "HOSTED_MODELS"]

HOSTED_MODELS = (
    ModelSpec(name="gpt-4o-audio-preview", checkpoint="openai:gpt-4o-audio-preview",
              hf_class="hosted", n_params=None, adapter="OpenAIChatAdapter"),
    ModelSpec(name="gpt-4o-mini-audio-preview", checkpoint="openai:gpt-4o-mini-audio-preview",
              hf_class="hosted", n_params=None, adapter="OpenAIChatAdapter"),
    ModelSpec(name="gemini-2.0-flash", checkpoint="gemini:gemini-2.0-flash",
              hf_class="hosted", n_params=None, adapter="GeminiAdapter"),
    # 2.5 Pro cannot switch thinking off; its minimum budget (128 tokens) keeps a one-word
    # answer from being cut off by max_new_tokens.
    ModelSpec(name="gemini-2.5-pro", checkpoint="gemini:gemini-2.5-pro",
              hf_class="hosted", n_params=None, adapter="GeminiAdapter",
              options={"thinking_budget": 128}),
)
for _spec in HOSTED_MODELS:
    register_model(_spec)
