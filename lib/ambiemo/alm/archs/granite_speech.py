"""Granite-Speech 3.3 (IBM) through transformers' own `GraniteSpeechForConditionalGeneration`.

One of the open ALMs a study like Jia et al. (2026) compares: a conformer CTC encoder, a
windowed Q-former projector and a Granite-3.3-instruct decoder with a LoRA adapter that is
meant to be active whenever audio is in the prompt. What differs from the shared base
(alm/hf/adapter.py):

- the prompt is Granite's chat (`<|start_of_role|>user<|end_of_role|>...<|end_of_text|>`) with
  plain-string content and the `<|audio|>` placeholder before the instruction, as IBM's model
  card shows; the system turn is given explicitly (the model card's text) because the
  checkpoint's template would otherwise insert *today's* date, and a prompt that changes with
  the calendar would change the run key;
- the answer ends with `<|end_of_text|>`;
- each clip's audio is encoded on its own: transformers runs the encoder on a zero-padded
  batch without a mask, so a clip's last frames would see its neighbours' padding (the
  conformer's convolution and block attention, the projector's last window) and its answer
  would depend on which clips share its batch. `processor_inputs` extracts every clip's
  features alone and marks the padding with NaN; the adapter's `_attach` makes the model
  encode each row without it (`_encode_each_clip`), which equals encoding the clip alone;
- the LoRA adapter: transformers' `generate()` switches it on when audio features are given,
  but the shared-prefix engine calls the model's forward directly, so it is switched on once
  at load (every prompt here has audio). A checkpoint that declares the adapter cannot run
  correctly without `peft`, so loading it without `peft` is an error, not a warning. The hub
  checkpoints declare it, and transformers 5.24 needs peft >= 0.22 to load it (the package
  index this project was built with offered 0.21.2 at most, so they could not be run here).

Audio: 16 kHz mono float arrays; the feature extractor neither truncates nor chunks and the
encoder's block attention takes any length, so there is no window (`audio_window_s` is None).
Positions: the Granite decoder uses plain 1-D rotary positions, so the shared-prefix engine
reproduces `generate()` exactly (`default_engine = "prefix"`).

Tested offline on `tiny-granite-speech` (tests/test_adapters.py; tests/test_arch_granite_speech.py):
the real processor class (`GraniteSpeechFeatureExtractor`'s log-mels, needing torchaudio's
Python code) with the Granite-3.3 chat template and special tokens, and the real model class
at toy size without the LoRA adapter. Not tested offline: the LoRA path with `peft`, and the
hub checkpoints themselves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.per_clip import pad_stack, wrap_once
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import register_tiny, train_bpe

HF_CLASS = "GraniteSpeechForConditionalGeneration"
AUDIO_PLACEHOLDER = "<|audio|>"
END_OF_TEXT = "<|end_of_text|>"
# The system turn of IBM's granite-speech-3.3 model card usage example, fixed so that the
# prompt never depends on the day it is built.
SYSTEM_PROMPT = ("Knowledge Cutoff Date: April 2024.\nToday's Date: April 9, 2025.\n"
                 "You are Granite, developed by IBM. You are a helpful AI assistant")

# The chat template of Granite-3.3-instruct's tokenizer, which the speech checkpoints were
# aligned from and ship with (reconstructed from a public transcription of that template;
# the speech checkpoints' own tokenizer_config.json could not be read offline).
GRANITE_CHAT_TEMPLATE = """{# Alias tools -> available_tools #}
{%- if tools and not available_tools -%}
    {%- set available_tools = tools -%}
{%- endif -%}
{%- if messages[0]['role'] == 'system' %}
     {%- set system_message = messages[0]['content'] %}
     {%- set loop_messages = messages[1:] %}
 {%- else %}
     {%- set system_message = "Knowledge Cutoff Date: April 2024.\\nToday's Date: " + strftime_now('%B %d, %Y') + ".\\nYou are Granite, developed by IBM." %}
     {%- if available_tools and documents %}
         {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request.\\nWrite the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
     {%- elif available_tools %}
         {%- set system_message = system_message + " You are a helpful assistant with access to the following tools. When a tool is required to answer the user's query, respond only with <|tool_call|> followed by a JSON list of tools used. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request." %}
     {%- elif documents %}
         {%- set system_message = system_message + " Write the response to the user's input by strictly aligning with the facts in the provided documents. If the information needed to answer the question is not available in the documents, inform the user that the question cannot be answered based on the available data." %}
    {%- elif thinking %}
    {%- set system_message = system_message + " You are a helpful AI assistant.\\nRespond to every user query in a comprehensive and detailed way. You can write down your thoughts and reasoning process before responding. In the thought process, engage in a comprehensive cycle of analysis, summarization, exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking process. In the response section, based on various attempts, explorations, and reflections from the thoughts section, systematically present the final solution that you deem correct. The response should summarize the thought process. Write your thoughts between <think></think> and write your response between <response></response> for each user query." %}
     {%- else %}
         {%- set system_message = system_message + " You are a helpful AI assistant." %}
     {%- endif %}
     {%- if 'citations' in controls and documents %}
         {%- set system_message = system_message + '\\nUse the symbols <|start_of_cite|> and <|end_of_cite|> to indicate when a fact comes from a document in the search result, e.g <|start_of_cite|> {document_id: 1}my fact <|end_of_cite|> for a fact from document 1. Afterwards, list all the citations with their corresponding documents in an ordered list.' %}
     {%- endif %}
     {%- if 'hallucinations' in controls and documents %}
         {%- set system_message = system_message + '\\nFinally, after the response is written, include a numbered list of sentences from the response with a corresponding risk value that are hallucinated and not based in the documents.' %}
     {%- endif %}
     {%- set loop_messages = messages %}
 {%- endif %}
 {{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}
 {%- if available_tools %}
     {{- '<|start_of_role|>available_tools<|end_of_role|>' }}
     {{- available_tools | tojson(indent=4) }}
     {{- '<|end_of_text|>\\n' }}
 {%- endif %}
 {%- if documents %}
     {%- for document in documents %}
         {{- '<|start_of_role|>document {"document_id": "' + document['doc_id'] | string + '"}<|end_of_role|>\\n' }}
         {{- document['text'] }}
         {{- '<|end_of_text|>\\n' }}
              {%- endfor %}
 {%- endif %}
 {%- for message in loop_messages %}
     {{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\\n' }}
     {%- if loop.last and add_generation_prompt %}
         {{- '<|start_of_role|>assistant' }}
             {%- if controls %}
                 {{- ' ' + controls | tojson()}}
             {%- endif %}
         {{- '<|end_of_role|>' }}
     {%- endif %}
 {%- endfor %}"""
# Granite-3.3's special tokens in the hub tokenizer's id order, `<|audio|>` appended last by
# the speech checkpoints (id 49159 there).
GRANITE_SPECIAL = [
    END_OF_TEXT, "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<empty_output>", "<commit_before>",
    "<commit_msg>", "<commit_after>", "<reponame>", "<|start_of_role|>", "<|end_of_role|>",
    "<|tool_call|>", "<|start_of_cite|>", "<|end_of_cite|>", "<|start_of_plugin|>",
    "<|end_of_plugin|>", AUDIO_PLACEHOLDER]


@register_adapter("granite_speech")
class GraniteSpeechAdapter(TransformersAdapter):
    """Granite-Speech 3.3 (each clip encoded alone; see the module docstring)."""

    hf_class = HF_CLASS
    end_of_turn = END_OF_TEXT

    def audio_window_s(self) -> float | None:
        return None

    def messages(self, user_text: str) -> list[dict]:
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": AUDIO_PLACEHOLDER + user_text}]

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        import torch

        # The processor expands each placeholder to its clip's audio tokens and pads the
        # text; only its batched features are replaced (the extractor pads the waveforms,
        # which changes the last frames of a shorter clip).
        inputs = self.processor(text=prompts, audio=audios, return_tensors="pt")
        clips = [self.processor.audio_processor([np.asarray(a, np.float32)])["input_features"][0]
                 for a in audios]
        frames = max(len(c) for c in clips)
        inputs["input_features"] = torch.stack([torch.nn.functional.pad(
            c, (0, 0, 0, frames - len(c)), value=float("nan")) for c in clips])
        return inputs

    @classmethod
    def required_packages(cls, checkpoint: str, options: dict) -> dict[str, str]:
        # The hub checkpoints declare a LoRA adapter (has_lora_adapter); the tiny one does not.
        if str(checkpoint).startswith("tiny:"):
            return {}
        return {"peft": "the checkpoint's LoRA adapter; peft >= 0.22 (transformers 5.24's minimum)"}

    def _attach(self, model, processor, engine, revision):
        if getattr(model.config, "has_lora_adapter", False):
            if not getattr(model, "_hf_peft_config_loaded", False):
                raise ImportError(
                    f"{getattr(model.config, '_name_or_path', 'this checkpoint')}: Granite-Speech "
                    "declares a LoRA adapter (has_lora_adapter=True) that was not loaded; without "
                    "it the model answers incorrectly. Install `peft` (>= 0.22 for transformers "
                    "5.24) and load again.")
            # Audio is in every prompt, and the prefix engine bypasses generate()'s switch.
            model.enable_adapters()
        wrap_once(model.model, "get_audio_features", _encode_each_clip)
        super()._attach(model, processor, engine, revision)


def _encode_each_clip(encode, input_features, **kwargs):
    """`GraniteSpeechModel.get_audio_features` row by row, each row without its NaN-marked
    padding frames: the projected audio of every clip as if it were encoded alone, zero-padded
    to the longest (the model keeps each clip's first tokens, `input_features_mask`)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    padding = input_features.isnan().any(dim=-1)
    if not padding.any():
        return encode(input_features, **kwargs)
    return BaseModelOutputWithPooling(pooler_output=pad_stack(
        [encode(f[~p][None], **kwargs).pooler_output[0] for f, p in zip(input_features, padding)]))


# Parameter counts: every weight the adapter loads (conformer encoder + Q-former projector +
# decoder with tied embeddings, counted on the meta device, + the LoRA adapter), from the
# published configs of the current hub revision (3.3.2, 16-layer encoder) as transcribed by
# a public re-implementation (KerasFormers) that loads those checkpoints' weights; the
# decoders' counts equal IBM's granite-3.3-8b/2b-instruct model cards (8.17e9, 2.53e9).
# tests/test_arch_granite_speech.py recounts them. Revisions: none verified offline.
ENCODER = dict(input_dim=160, num_layers=16, hidden_dim=1024, feedforward_mult=4, num_heads=8,
               dim_head=128, output_dim=256, context_size=200, max_pos_emb=512,
               conv_kernel_size=15, conv_expansion_factor=2)
PROJECTOR = dict(model_type="blip_2_qformer", hidden_size=1024, num_hidden_layers=2,
                 num_attention_heads=16, intermediate_size=4096, encoder_hidden_size=1024,
                 cross_attention_frequency=1)
TEXT = {size: dict(model_type="granite", vocab_size=49160, hidden_size=hidden,
                   intermediate_size=inter, num_hidden_layers=40, num_attention_heads=32,
                   num_key_value_heads=8, tie_word_embeddings=True)
        for size, hidden, inter in (("8b", 4096, 12800), ("2b", 2048, 8192))}
LORA_RANK, LORA_MODULES = 64, ("q_proj", "v_proj")   # the adapter_config, same source

# 8b: 8.649e9 model (encoder 0.440e9, projector 0.038e9, decoder 8.171e9) + LoRA 0.034e9.
register_model(ModelSpec(
    name="granite-speech-3.3-8b", checkpoint="ibm-granite/granite-speech-3.3-8b",
    hf_class=HF_CLASS, n_params=8.683e9, adapter="GraniteSpeechAdapter"))
# 2b: 3.009e9 model (encoder 0.440e9, projector 0.036e9, decoder 2.534e9) + LoRA 0.017e9.
register_model(ModelSpec(
    name="granite-speech-3.3-2b", checkpoint="ibm-granite/granite-speech-3.3-2b",
    hf_class=HF_CLASS, n_params=3.026e9, adapter="GraniteSpeechAdapter"))
register_model(ModelSpec(
    name="tiny-granite-speech", checkpoint="tiny:granite_speech", hf_class=HF_CLASS,
    n_params=181_672, adapter="GraniteSpeechAdapter"))


@register_tiny("granite_speech", version=1)
def build_tiny_granite_speech(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Granite-Speech (model, tokenizer, processor) to `path`.

    The real feature extractor (80 log-mels, two frames stacked: 160 inputs) and the real
    projector window (15 encoder frames -> 3 audio tokens) are kept; the conformer's
    attention block shrinks from 200 to 32 frames so the demo clips span several blocks.
    No LoRA adapter: building one needs `peft`."""
    import torch
    from transformers import (GPT2Tokenizer, GraniteSpeechConfig, GraniteSpeechFeatureExtractor,
                              GraniteSpeechForConditionalGeneration, GraniteSpeechProcessor)

    vocab, merges = train_bpe(GRANITE_SPECIAL)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, unk_token=END_OF_TEXT,
                              bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)
    tokenizer.add_special_tokens({"additional_special_tokens": GRANITE_SPECIAL[1:]})
    tokenizer.padding_side = "left"
    processor = GraniteSpeechProcessor(audio_processor=GraniteSpeechFeatureExtractor(),
                                       tokenizer=tokenizer, chat_template=GRANITE_CHAT_TEMPLATE)
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = GraniteSpeechConfig(
        text_config={**TEXT["2b"], "vocab_size": len(tokenizer), "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 2048,
                     # Granite's scaling multipliers, as the real configs set them
                     # (attention: 1 / head_dim).
                     "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
                     "logits_scaling": 8.0, "attention_multiplier": 1 / 16,
                     "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot,
                     # Wide random weights: at the default 0.02 the scaled logits are
                     # so flat that every clip's answer distribution would look alike.
                     "initializer_range": 0.5},
        encoder_config={**ENCODER, "num_layers": 2, "hidden_dim": 32, "num_heads": 2,
                        "dim_head": 16, "output_dim": 8, "context_size": 32, "max_pos_emb": 64},
        projector_config={**PROJECTOR, "hidden_size": 32, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "intermediate_size": 64,
                          "encoder_hidden_size": 32},
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_PLACEHOLDER),
        has_lora_adapter=False, initializer_range=0.5)
    torch.manual_seed(seed)
    model = GraniteSpeechForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = eot
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
