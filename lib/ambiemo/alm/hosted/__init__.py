"""Hosted ALMs: OpenAI chat completions with audio and Gemini, registered by name.

Jia et al. (2026) evaluate GPT-4o audio and Gemini beside the open ALMs, and use GPT-4o as
the verifier. Their parameter counts are not published (`n_params=None`), so they are left
out of the capacity fit. Keys come from environment variables only (OPENAI_API_KEY;
GEMINI_API_KEY or GOOGLE_API_KEY).

The study's hosted models have since been shut down by their providers. They stay
registered as retired (date, replacement, source; kept in `retirements.yaml`): a config
naming one, by name or as a `checkpoint:`, is refused before a run with the replacement
named. The replacements are today's audio-input chat models:

- OpenAI: `gpt-audio-1.5` (Chat Completions with audio input; OpenAI's model page lists no
  dated snapshot for it, only the id itself) and `gpt-audio-mini`, pinned to its dated
  snapshot `gpt-audio-mini-2025-12-15` (itself announced for shutdown on 2027-01-20 in the
  pinned openai 3.57.0 SDK, `types/shared/chat_model.py`). Both are reported not to accept
  `logprobs`, so it is not requested (BoN / W-BoN are reported unavailable for them).
- Gemini: `gemini-3.5-flash` (GA; the successor Google names for the 2.0 and 2.5 Flash
  models) and `gemini-3.1-pro-preview` (the Pro tier; Google offers no non-preview 3.x Pro
  id). Both are listed in the pinned google-genai 3.6.1 SDK
  (`_gaos/types/interactions/model.py`); Google gives no dated snapshot ids for them. Gemini
  3.x refuses `candidate_count > 1`, so they take one candidate per request, and their
  thinking is set by level with its own token headroom (the 3.x replacement for
  `thinking_budget`).
"""
from __future__ import annotations

from pathlib import Path

from ambiemo.alm.hosted.gemini import GeminiAdapter
from ambiemo.alm.hosted.openai_chat import OpenAIChatAdapter
from ambiemo.alm.hosted.retry import BudgetExhausted, QuotaExhausted, RequestBudget
from ambiemo.alm.hosted.retirements import retired_specs
from ambiemo.alm.registry import ModelSpec, register_model

__all__ = ["BudgetExhausted", "GeminiAdapter", "OpenAIChatAdapter", "QuotaExhausted",
           "RequestBudget", "HOSTED_MODELS", "RETIRED_HOSTED_MODELS"]

# The study's hosted models (Jia et al., 2026), as the providers serve them today: not at all.
# Dates, replacements and their sources are data (retirements.yaml), read once here.
RETIREMENTS_FILE = Path(__file__).with_name("retirements.yaml")
RETIRED_HOSTED_MODELS = retired_specs(RETIREMENTS_FILE)

HOSTED_MODELS = (
    ModelSpec(name="gpt-audio-1.5", checkpoint="openai:gpt-audio-1.5",
              hf_class="hosted", n_params=None, adapter="OpenAIChatAdapter",
              options={"logprobs": False}),
    ModelSpec(name="gpt-audio-mini", checkpoint="openai:gpt-audio-mini-2025-12-15",
              hf_class="hosted", n_params=None, adapter="OpenAIChatAdapter",
              options={"logprobs": False}),
    # Thinking by level (low: a one-word answer needs little), with 1024 / 2048 tokens of
    # headroom on top of the answer's max_new_tokens so the thinking cannot eat the answer.
    ModelSpec(name="gemini-3.5-flash", checkpoint="gemini:gemini-3.5-flash",
              hf_class="hosted", n_params=None, adapter="GeminiAdapter",
              options={"max_candidates_per_request": 1, "thinking_level": "low",
                       "thinking_headroom": 1024}),
    ModelSpec(name="gemini-3.1-pro-preview", checkpoint="gemini:gemini-3.1-pro-preview",
              hf_class="hosted", n_params=None, adapter="GeminiAdapter",
              options={"max_candidates_per_request": 1, "thinking_level": "low",
                       "thinking_headroom": 2048}),
)
for _spec in RETIRED_HOSTED_MODELS + HOSTED_MODELS:
    register_model(_spec)
