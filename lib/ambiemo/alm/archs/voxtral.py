"""Voxtral (Mistral) through transformers' own `VoxtralForConditionalGeneration` and processor.

Jia et al. (2026) compare open ALMs of different capacity; Voxtral Mini (3B decoder) and
Small (24B decoder) are a Whisper-large-v3 encoder, a projector that stacks 4 encoder frames
into one 12.5 Hz audio token, and a Llama-layout Mistral decoder. What differs from the
shared base (alm/hf/adapter.py):

- **No Jinja chat template.** The processor's tokenizer is Mistral's tekken through
  transformers' mistral-common backend, and `VoxtralProcessor.apply_chat_template` builds
  the prompt with the audio: mistral-common encodes the chat (`<s>[INST][BEGIN_AUDIO]`,
  one `[AUDIO]` per 80 ms of audio padded to whole 30 s chunks, the instruction,
  `[/INST]`) and the feature extractor makes one 30 s mel window per chunk. `generate`,
  `beam` and `label_scores` call exactly that (`_inputs`). The answer ends with `</s>`.
- **Prompts as text.** `verify` splits a prompt at the answer slot, and the conformance
  tests rebuild prompts as strings, so `build_prompt` renders mistral-common's own token
  sequence as text, with the run of `[AUDIO]` tokens collapsed to one placeholder, and
  `processor_inputs` turns such text back into ids, expanding the placeholder with
  mistral-common's audio encoder and computing the mel windows as the processor does.
  mistral-common never reads control tokens (`[INST]`, `</s>`, ...) from text, so the
  adapter's `tokenizer` is the processor's tokenizer reading them (`ControlTokenReader`);
  tests/test_arch_voxtral.py checks the text path equals `apply_chat_template` id for id.
  `verify` therefore needs no override: the shared prefix (audio and instruction up to the
  answer) is prefilled once per clip and every answer + rest + `[/INST]` + Yes/No is
  teacher-forced. As in the base, the answer is tokenized apart from the instruction text
  before it (the instruction is one text chunk in mistral-common's own encoding).
- **generate() with copies.** transformers' generate() copies inputs for beams and return
  sequences row by row, which misorders the chunks of a clip longer than one chunk (they
  are not rows); `_hf_generate` then hands it the audio already merged into the embeddings.
  The default shared-prefix engine encodes each clip once and is not affected.
- **Audio length.** The processor neither truncates nor limits audio: every 30 s chunk
  adds 375 tokens. Mistral's model card gives 40 min for audio understanding in the 32k
  context, so the adapter keeps the first 40 min (`audio_window_s`) and the runner counts
  longer clips as truncated. The chunk length, frame rate and mel settings are read from
  the tokenizer's audio config (tekken.json), which is where mistral-common reads them.

The decoder uses plain 1-D rotary positions, so the shared-prefix engine reproduces
`generate()` exactly (default engine "prefix"). Tested offline on the tiny checkpoint built
by archs/voxtral_tiny.py (`tiny-voxtral`): a tekken.json written locally (byte-level BPE trained on the prompt
corpus, Mistral's control tokens at their real ranks, an audio config with 2 s chunks so
the toy encoder stays cheap and short clips still span different numbers of chunks), the
real processor and model classes, saved and loaded through `from_pretrained`. The hub
checkpoints are not run offline. The processor needs `mistral-common`, an optional extra.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np

from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model

HF_CLASS = "VoxtralForConditionalGeneration"
# Mistral's model card: "40 minutes for understanding" within the 32k-token context.
UNDERSTANDING_WINDOW_S = 40 * 60.0


def require_mistral_common() -> None:
    try:
        import mistral_common  # noqa: F401
    except ImportError:
        raise ImportError("Voxtral's processor tokenizes with Mistral's own library; install "
                          "it with `pip install -e .[voxtral]` (mistral-common[audio])") from None


def wav_base64(audio: np.ndarray) -> str:
    """A clip as base64 WAV for a chat message; 32-bit float so mistral-common decodes the
    very samples given."""
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, np.float32), TARGET_SR, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class ControlTokenReader:
    """The processor's tokenizer (mistral-common backend), except that `encode` reads
    Mistral's special-token strings in the text as those tokens, as transformers' own
    tokenizers do. Only prompts rendered by `VoxtralAdapter.build_prompt` contain them."""

    def __init__(self, backend):
        tekken = backend.tokenizer.instruct_tokenizer.tokenizer
        specials = sorted(backend.all_special_tokens, key=len, reverse=True)
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "control", {s: tekken.get_special_token(s) for s in specials})
        object.__setattr__(self, "pattern",
                           re.compile("(" + "|".join(map(re.escape, specials)) + ")"))

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def __setattr__(self, name, value):
        setattr(self.backend, name, value)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self.backend.bos_token_id] if add_special_tokens else []
        for part in self.pattern.split(text):
            if part in self.control:
                ids.append(self.control[part])
            elif part:
                ids += self.backend.encode(part, add_special_tokens=False)
        return ids


@register_adapter("voxtral")
class VoxtralAdapter(TransformersAdapter):
    """Voxtral Mini / Small (audio in 30 s chunks, first 40 min kept; see module docstring)."""

    hf_class = HF_CLASS
    end_of_turn = "</s>"

    @classmethod
    def required_packages(cls, checkpoint: str, options: dict) -> dict[str, str]:
        return {"mistral_common": "Voxtral's tokenizer; pip install -e .[voxtral]"}

    def __init__(self, checkpoint, **kwargs):
        require_mistral_common()
        super().__init__(checkpoint, **kwargs)

    def _attach(self, model, processor, engine, revision):
        super()._attach(model, processor, engine, revision)
        self.tokenizer = ControlTokenReader(processor.tokenizer)
        self.audio_encoder = processor.tokenizer.tokenizer.instruct_tokenizer.audio_encoder
        frames = self.audio_kwargs()["max_source_positions"]
        # The encoder takes fixed windows (conv stride 2): the tokenizer's chunk must match.
        if frames != 2 * model.config.audio_config.max_source_positions:
            raise ValueError(f"{self.checkpoint}: the tokenizer's audio chunk is {frames} mel "
                             "frames but the encoder takes "
                             f"{2 * model.config.audio_config.max_source_positions}")

    def audio_window_s(self) -> float | None:
        return UNDERSTANDING_WINDOW_S

    def audio_kwargs(self) -> dict:
        """The processor's audio settings, from the tokenizer's audio config (the processor's
        defaults hard-code the released 30 s chunk). `max_source_positions` is, in the
        processor, mel frames per chunk (3000 for 30 s; the encoder's config counts 1500)."""
        cfg = self.audio_encoder.audio_config
        return {"sampling_rate": cfg.sampling_rate, "pad_to_multiple_of": cfg.chunk_frames,
                "max_source_positions": cfg.chunk_frames // cfg.encoding_config.hop_length}

    def cut(self, audio: np.ndarray) -> np.ndarray:
        return np.asarray(audio, np.float32)[: int(self.max_audio_s * TARGET_SR)]

    def conversation(self, audio: np.ndarray, user_text: str) -> list[dict]:
        # Audio before the instruction, as in Mistral's and transformers' Voxtral examples.
        return [{"role": "user", "content": [{"type": "audio", "base64": wav_base64(audio)},
                                             {"type": "text", "text": user_text}]}]

    def build_prompt(self, user_text: str) -> str:
        """mistral-common's prompt as text, the audio as `[BEGIN_AUDIO][AUDIO]` (one token
        where the processor puts one per 80 ms)."""
        silence = np.zeros(TARGET_SR // 10, np.float32)
        ids = self.processor.tokenizer.apply_chat_template(
            self.conversation(silence, user_text), tokenize=True, return_dict=False)
        audio_id = self.processor.audio_token_id
        first, n = ids.index(audio_id), ids.count(audio_id)
        if ids[first:first + n] != [audio_id] * n:
            raise ValueError("expected one run of audio tokens in a one-clip Voxtral prompt")
        return self.tokenizer.decode(ids[:first + 1] + ids[first + n:])

    def _inputs(self, clips, user_text: str):
        """The processor's own path: the chat with each clip, through `apply_chat_template`."""
        return self.processor.apply_chat_template(
            [self.conversation(self.cut(c.audio), user_text) for c in clips],
            processor_kwargs={"audio_kwargs": self.audio_kwargs()}).to(self.device)

    def _hf_generate(self, inputs, decoding, trie, **kwargs):
        copies = max(kwargs.get("num_beams", 1), kwargs.get("num_return_sequences", 1))
        return super()._hf_generate(self.generate_inputs(inputs, copies), decoding, trie,
                                    **kwargs)

    def generate_inputs(self, inputs, copies: int):
        """Inputs that transformers' generate() may copy `copies` times per row. generate()
        copies each input row for beams and return sequences by repeating every tensor along
        dim 0, but `input_features` has one entry per 30 s chunk, not per row: a two-chunk
        clip copied three times would read chunks c0 c0 c0 c1 c1 c1, not c0 c1 c0 c1 c0 c1
        (tests/test_arch_voxtral.py shows the copies that get the wrong chunks). When copies
        meet a multi-chunk clip, the audio is merged into the input embeddings first (as
        VoxtralModel.forward merges it) and generate() copies rows."""
        import torch

        ids = inputs["input_ids"]
        if copies <= 1 or inputs["input_features"].shape[0] == ids.shape[0]:
            return inputs
        with torch.inference_mode():
            embeds = self.model.get_input_embeddings()(ids)
            audio = self.model.get_audio_features(inputs["input_features"]).pooler_output
            at_audio = (ids == self.model.config.audio_token_id)[..., None]
            embeds = embeds.masked_scatter(at_audio, audio.to(embeds.dtype))
        return {"input_ids": ids, "attention_mask": inputs["attention_mask"],
                "inputs_embeds": embeds}

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        """Model inputs for prompts rendered by `build_prompt` (or a prefix of one): the
        placeholder becomes mistral-common's audio tokens for the clip, the padded clip
        becomes mel windows as `VoxtralProcessor` computes them, rows are left-padded."""
        import torch
        from mistral_common.tokens.tokenizers.audio import Audio
        from transformers import BatchFeature

        audio_id, kw = self.processor.audio_token_id, self.audio_kwargs()
        fe = self.processor.feature_extractor
        rows, features = [], []
        for prompt, audio in zip(prompts, audios, strict=True):
            ids = self.tokenizer.encode(prompt, add_special_tokens=False)
            at = ids.index(audio_id) if ids.count(audio_id) == 1 else 0
            if at == 0 or ids[at - 1] != self.audio_encoder.begin_audio_token:
                raise ValueError(f"not a one-clip Voxtral prompt from build_prompt: {prompt!r}")
            encoded = self.audio_encoder.encode_audio(Audio(self.cut(audio), TARGET_SR, "wav"))
            rows.append(ids[:at - 1] + encoded.tokens + ids[at + 1:])   # [BEGIN_AUDIO][AUDIO]
            mel = fe(encoded.audio.audio_array, sampling_rate=kw["sampling_rate"], padding=True,
                     truncation=False, pad_to_multiple_of=kw["pad_to_multiple_of"],
                     return_tensors="pt")["input_features"]
            chunks = mel.reshape(fe.feature_size, -1, kw["max_source_positions"])
            features.append(chunks.transpose(0, 1))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        return BatchFeature({"input_ids": input_ids, "attention_mask": mask,
                             "input_features": torch.cat(features)})


# Parameter counts: the architecture instantiated on the meta device from these configs
# (tests/test_arch_voxtral.py recomputes them). Encoder (Whisper-large-v3) and Mini decoder:
# transformers' VoxtralEncoderConfig / VoxtralConfig defaults, which document
# mistralai/Voxtral-Mini-3B-2507, with untied embeddings (a tied head would give 4.27e9, not
# the 9.35 GB of its bf16 weights). Small decoder: Mistral Small 3.1's shape, recalled from
# memory, not read from the hub file. Both totals agree with the Voxtral report's 4.7B and
# 24.3B (arXiv 2507.13264).
VOXTRAL_ENCODER = dict(model_type="voxtral_encoder", hidden_size=1280, intermediate_size=5120,
                       num_hidden_layers=32, num_attention_heads=20, num_mel_bins=128,
                       max_source_positions=1500)
VOXTRAL_MINI_TEXT = dict(model_type="llama", vocab_size=131072, hidden_size=3072,
                         intermediate_size=8192, num_hidden_layers=30, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)
VOXTRAL_SMALL_TEXT = dict(model_type="llama", vocab_size=131072, hidden_size=5120,
                          intermediate_size=32768, num_hidden_layers=40, num_attention_heads=32,
                          num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)

register_model(ModelSpec(
    name="voxtral-mini-3b", checkpoint="mistralai/Voxtral-Mini-3B-2507", hf_class=HF_CLASS,
    # 4.68e9: encoder 0.637e9 + projector 0.025e9 + decoder with untied 131k embeddings.
    n_params=4_676_271_104, adapter="VoxtralAdapter"))
register_model(ModelSpec(
    name="voxtral-small-24b", checkpoint="mistralai/Voxtral-Small-24B-2507", hf_class=HF_CLASS,
    n_params=24_261_800_960, adapter="VoxtralAdapter"))
register_model(ModelSpec(
    name="tiny-voxtral", checkpoint="tiny:voxtral", hf_class=HF_CLASS,
    n_params=186_688, adapter="VoxtralAdapter"))
