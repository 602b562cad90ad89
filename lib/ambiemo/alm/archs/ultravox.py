"""Ultravox (fixie-ai) v0.3 / v0.4: a Whisper encoder and a Llama-3.1-8B-Instruct decoder
joined by a projector, loaded through `AutoModel` with the checkpoint's own remote code.

One of the open ALMs a study like Jia et al. (2026) compares. Transformers has no native
Ultravox class, so model and processor come from the checkpoint (`trust_remote_code`), and the
adapter refuses to load without a pinned `revision` (alm/hf/adapter.py raises): the registry records no
commit hash because none could be verified offline; pass `revision=` in the model's config
options. No offline checkpoint exists, so tests/test_arch_ultravox.py tests what does not need
the model: the prompt (a Llama-3 chat with the `<|audio|>` placeholder in the user turn), the
batch collation below, and turning generated token ids into answers.

How the remote processor differs from transformers' processors, and what this module does:
- it takes one text and one audio per call ("batch mode not supported"), so the clips of a
  batch are processed one by one and collated here with left padding, shifting each row's
  `audio_token_start_idx` by its padding (as fixie-ai's own training collator does);
- the placeholder is replaced by as many copies of the end-of-text token as the audio has
  projector frames; the model overwrites those positions with the audio embeddings;
- the v0.3 / v0.4 Whisper encoder takes at most 30 s and the processor does not cut longer
  audio, so clips are truncated to `audio_window_s()` here, and the runner counts them.

The default engine is transformers' `generate()`: the shared-prefix engine calls the model's
forward with `cache=` and explicit `position_ids`, which the remote forward (written for
`past_key_values`) has not been checked against. `label_scores` and `verify` need that engine
path too and are untested for this model until a checkpoint can be loaded.
"""
from __future__ import annotations

import numpy as np

from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model

AUDIO_PLACEHOLDER = "<|audio|>"
# Whisper's encoder window; the v0.3/v0.4 processors do not chunk longer audio (v0.5 does).
WHISPER_WINDOW_S = 30.0


@register_adapter("ultravox")
class UltravoxAdapter(TransformersAdapter):
    hf_class = "AutoModel"          # remote code registers UltravoxModel under AutoModel
    end_of_turn = "<|eot_id|>"
    trust_remote_code = True
    default_engine = "generate"

    def audio_window_s(self) -> float | None:
        return WHISPER_WINDOW_S

    def messages(self, user_text: str) -> list[dict]:
        # Ultravox takes plain-string content with the placeholder where the audio goes;
        # fixie-ai's examples put the instruction first and the audio after it.
        return [{"role": "user", "content": f"{user_text}\n{AUDIO_PLACEHOLDER}"}]

    def build_prompt(self, user_text: str) -> str:
        # The Llama-3 chat template ships with the tokenizer; the remote processor has none.
        return self.tokenizer.apply_chat_template(self.messages(user_text),
                                                  add_generation_prompt=True, tokenize=False)

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        import torch
        from transformers import BatchFeature

        if len(prompts) != len(audios):
            raise ValueError(f"{len(prompts)} prompts but {len(audios)} audio clips")
        keep = int(WHISPER_WINDOW_S * TARGET_SR)
        rows = []
        for prompt, audio in zip(prompts, audios):
            if AUDIO_PLACEHOLDER not in prompt:
                raise ValueError(f"Ultravox prompt has no {AUDIO_PLACEHOLDER} placeholder: {prompt!r}")
            rows.append(self.processor(text=prompt, audio=np.asarray(audio, np.float32)[:keep],
                                       sampling_rate=TARGET_SR, return_tensors="pt"))
        width = max(r["input_ids"].shape[1] for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        out: dict[str, list] = {}
        for i, r in enumerate(rows):
            n = r["input_ids"].shape[1]
            ids[i, width - n:] = r["input_ids"][0]
            mask[i, width - n:] = 1
            for key, value in r.items():
                if key in ("input_ids", "attention_mask"):
                    continue
                if key == "audio_token_start_idx":
                    value = value + (width - n)   # left padding moves the audio right
                out.setdefault(key, []).append(torch.as_tensor(value))
        data = {"input_ids": ids, "attention_mask": mask}
        for key, values in out.items():
            if key == "audio_values":
                # Per-clip features differ in length (padding="longest" per call): pad the
                # time axis with zeros, as fixie-ai's collator does.
                frames = max(v.shape[-1] for v in values)
                values = [torch.nn.functional.pad(v, (0, frames - v.shape[-1])) for v in values]
            data[key] = torch.cat(values, dim=0)
        return BatchFeature(data=data)


# Parameter counts: the hub repositories store only the projector (~50M) and load Whisper
# and Llama by id, so the count is the sum of the published parts: Llama-3.1-8B-Instruct
# 8.03e9 (Meta's model card) + Whisper-medium's encoder, about half of its 769M (OpenAI's
# model card) + the projector. Revisions: none verified offline; pass one in the config.
register_model(ModelSpec(
    name="ultravox-v0_3", checkpoint="fixie-ai/ultravox-v0_3", hf_class="AutoModel",
    n_params=8.4e9, adapter="UltravoxAdapter"))
register_model(ModelSpec(
    name="ultravox-v0_4", checkpoint="fixie-ai/ultravox-v0_4", hf_class="AutoModel",
    n_params=8.4e9, adapter="UltravoxAdapter"))
