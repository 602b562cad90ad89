"""Granite-Speech 3.3 (IBM) through transformers' own `GraniteSpeechForConditionalGeneration`.

One of the open ALMs a study like Jia et al. (2026) compares: a conformer CTC encoder, a
windowed Q-former projector and a Granite-3.3-instruct decoder with a LoRA adapter that is
meant to be active whenever audio is in the prompt. What differs from the shared base
(alm/hf.py):

- the prompt is Granite's chat (`<|start_of_role|>user<|end_of_role|>...<|end_of_text|>`) with
  plain-string content and the `<|audio|>` placeholder before the instruction, as IBM's model
  card shows; the system turn is given explicitly (the model card's text) because the
  checkpoint's template would otherwise insert *today's* date, and a prompt that changes with
  the calendar would change the run key;
- the answer ends with `<|end_of_text|>`;
- the LoRA adapter: transformers' `generate()` switches it on when audio features are given,
  but the shared-prefix engine calls the model's forward directly, so it is switched on once
  at load (every prompt here has audio). A checkpoint that declares the adapter cannot run
  correctly without `peft`, so loading it without `peft` is an error, not a warning;
- audio length: the feature extractor neither truncates nor chunks, and the encoder's block
  attention works on any length, so there is no window (`audio_window_s` is None).

Not tested on an offline tiny checkpoint yet: the feature extractor requires `torchaudio`,
which this project's pinned environment lacks (see README's list of adapters without an
offline model test). tests/test_arch_granite_speech.py covers the prompt and the load checks.
"""
from __future__ import annotations

from ambiemo.alm.hf import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model

AUDIO_PLACEHOLDER = "<|audio|>"
# The system turn of IBM's granite-speech-3.3 model card usage example, fixed so that the
# prompt never depends on the day it is built.
SYSTEM_PROMPT = ("Knowledge Cutoff Date: April 2024.\nToday's Date: April 9, 2025.\n"
                 "You are Granite, developed by IBM. You are a helpful AI assistant")

# Granite-3.3-instruct's chat template in substance (tools and documents branches left out):
# one `<|start_of_role|>role<|end_of_role|>content<|end_of_text|>` line per turn.
GRANITE_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}"
    "{%- set system_message = \"Knowledge Cutoff Date: April 2024.\\nToday's Date: \" + "
    "strftime_now('%B %d, %Y') + \".\\nYou are Granite, developed by IBM. You are a helpful AI assistant.\" %}"
    "{%- set loop_messages = messages %}"
    "{%- endif %}"
    "{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}"
    "{%- for message in loop_messages %}"
    "{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' }}"
    "{%- if loop.last and add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}"
    "{%- endfor %}"
)
GRANITE_SPECIAL = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", AUDIO_PLACEHOLDER]


@register_adapter("granite_speech", "GraniteSpeechAdapter")
class GraniteSpeechAdapter(TransformersAdapter):
    hf_class = "GraniteSpeechForConditionalGeneration"
    end_of_turn = "<|end_of_text|>"

    def audio_window_s(self) -> float | None:
        return None

    def messages(self, user_text: str) -> list[dict]:
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": AUDIO_PLACEHOLDER + user_text}]

    def _attach(self, model, processor, engine, revision):
        if getattr(model.config, "has_lora_adapter", False):
            if not getattr(model, "_hf_peft_config_loaded", False):
                raise ImportError(
                    f"{getattr(model.config, '_name_or_path', 'this checkpoint')}: Granite-Speech "
                    "declares a LoRA adapter (has_lora_adapter=True) that was not loaded; without "
                    "it the model answers incorrectly. Install `peft` and load again.")
            # Audio is in every prompt, and the prefix engine bypasses generate()'s switch.
            model.enable_adapters()
        super()._attach(model, processor, engine, revision)


# n_params: the decoders' published sizes (IBM's granite-3.3-8b-instruct and -2b-instruct
# model cards: 8.17e9 and 2.53e9). The speech encoder, projector and LoRA are not included:
# their published configs could not be read offline. Revisions: none verified offline.
register_model(ModelSpec(
    name="granite-speech-3.3-8b", checkpoint="ibm-granite/granite-speech-3.3-8b",
    hf_class="GraniteSpeechForConditionalGeneration", n_params=8.17e9,
    adapter="GraniteSpeechAdapter"))
register_model(ModelSpec(
    name="granite-speech-3.3-2b", checkpoint="ibm-granite/granite-speech-3.3-2b",
    hf_class="GraniteSpeechForConditionalGeneration", n_params=2.53e9,
    adapter="GraniteSpeechAdapter"))
