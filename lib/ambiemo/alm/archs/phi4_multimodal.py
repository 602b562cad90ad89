"""Phi-4-multimodal (Microsoft) through transformers' own `Phi4MultimodalForCausalLM`.

One of today's open ALMs that this project adds beyond the models Jia et al. (2026)
compare: a conformer speech encoder and a SigLIP image encoder feeding Phi-4-mini, with one
LoRA adapter per modality ("mixture of LoRAs"). What differs from the shared base (alm/hf/adapter.py):

- the checkpoint: the hub repository's main branch holds the remote-code `phi4mm` layout;
  the transformers-native weights live at revision `refs/pr/70` (the one transformers' model
  tests and vLLM's tests load), which the registry pins;
- the speech LoRA: the native checkpoint keeps it apart (`speech-lora/`, a peft adapter,
  loaded by hand in transformers' documented audio example) and transformers never switches
  it on by itself; transformers' own audio integration test, which loads no LoRA, expects
  the answer "I'm sorry, but I can't listen to audio". The adapter loads it with `peft` and
  activates it once at load, so `generate()` and the shared-prefix engine's direct forward
  calls both run with it. Without `peft` (>= 0.22 for transformers 5.24) loading fails with
  an error rather than running a model that ignores the audio;
- the prompt: `<|user|><|audio|>{instruction}<|end|><|assistant|>`. The processor's typed
  template (PHI4_CHAT_TEMPLATE) writes `<|audio|>` for an `{"type": "audio"}` part, but
  transformers 5.24's `Phi4MultimodalProcessor` drops its chat template when loading (its
  `__init__` does not name the argument), so the prompt is rendered with the tokenizer's
  template from plain-string content, which gives the same text under both that typed
  template and Phi-4-mini's string-only one (tests/test_arch_phi4_multimodal.py checks both);
- each clip's audio is encoded on its own: the encoder's attention adds the boolean padding
  mask to its relative-position bias (+1 / +0) instead of masking padded frames, and its
  subsampling convolutions read them, so in a batch a clip's audio embeddings would depend
  on which clips share it. `_attach` makes the encoder run every row at its own length
  (`_encode_each_clip`), which equals encoding the clip alone.

Audio: 16 kHz mono float arrays; 80 log-mels at 10 ms, one audio token per 80 ms. Nothing
is truncated (`audio_window_s` is None): the encoder takes 40 s (500 tokens) at a time and
encodes longer audio as consecutive, independent 40 s chunks.
Positions: plain 1-D rotary positions (LongRoPE, short factors below 4,096 tokens), so the
shared-prefix engine reproduces `generate()` exactly (`default_engine = "prefix"`); the real
config's 262,144-token sliding window makes every cache layer a sliding one, so the engine
repeats the prompt's cache per sample rather than sharing it. A prompt plus answer past
4,096 tokens (about 5 min of audio) would make `generate()` recompute its cache with the long
factors, which the engine does not: clips here are far shorter.

Tested offline on `tiny-phi-4-multimodal` (tests/test_adapters.py;
tests/test_arch_phi4_multimodal.py): the real processor class with
`Phi4MultimodalFeatureExtractor`, the image processor (torchvision's Python code), a GPT-2
style BPE tokenizer with Phi-4's special tokens and the typed chat template (PHI4_CHAT_TEMPLATE),
and the real model class at toy size (sliding window and LongRoPE as in the hub config),
without a speech LoRA. Not tested offline: loading the LoRA with `peft`, and the hub
checkpoint itself.
"""
from __future__ import annotations

from pathlib import Path

from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.per_clip import pad_stack, wrap_once
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import register_tiny, train_bpe

HF_CLASS = "Phi4MultimodalForCausalLM"
AUDIO_PLACEHOLDER = "<|audio|>"
END = "<|end|>"
ENDOFTEXT = "<|endoftext|>"
SPEECH_LORA = "speech-lora"      # the native checkpoint's subfolder holding the speech LoRA

# The typed chat template transformers' own Phi4MultimodalProcessor tests build the processor
# with (the native checkpoint's chat_template file could not be read offline): `<|role|>` +
# content + `<|end|>`, typed parts as placeholders.
PHI4_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'audio' %}{{ '<|audio|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% endif %}"
    "{{ '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)
# Phi-4-multimodal's special tokens (ids 199999 and 200010-200028 in the hub tokenizer).
PHI4_SPECIAL = [ENDOFTEXT, "<|image|>", AUDIO_PLACEHOLDER, "<|assistant|>", END, "<|user|>",
                "<|system|>", "<|tool|>", "<|/tool|>", "<|tool_call|>", "<|/tool_call|>",
                "<|tool_response|>", "<|tag|>"]


@register_adapter("phi4_multimodal")
class Phi4MultimodalAdapter(TransformersAdapter):
    """Phi-4-multimodal with its speech LoRA (see the module docstring)."""

    hf_class = HF_CLASS
    end_of_turn = END

    @classmethod
    def required_packages(cls, checkpoint: str, options: dict) -> dict[str, str]:
        if options.get("speech_lora", SPEECH_LORA):
            return {"peft": "the speech LoRA; peft >= 0.22 (transformers 5.24's minimum), "
                            "or the model option speech_lora: null to run the base weights"}
        return {}

    def __init__(self, checkpoint: str | Path, *, speech_lora: str | None = SPEECH_LORA,
                 **kwargs):
        """`speech_lora`: the checkpoint's subfolder with the speech LoRA; None runs the
        base weights alone (the tiny checkpoint has no LoRA)."""
        super().__init__(checkpoint, **kwargs)
        self.speech_lora = speech_lora
        if speech_lora:
            load_speech_lora(self.model, self.checkpoint, speech_lora, kwargs.get("revision"))

    def identity(self) -> dict:
        # The base weights alone answer otherwise than with the speech LoRA: another LoRA
        # (or none) enters the key, added only then so the default's keys do not move.
        lora = getattr(self, "speech_lora", SPEECH_LORA)
        return {**super().identity(), **({"speech_lora": lora} if lora != SPEECH_LORA else {})}

    def audio_window_s(self) -> float | None:
        return None

    def messages(self, user_text: str) -> list[dict]:
        return [{"role": "user", "content": AUDIO_PLACEHOLDER + user_text}]

    def build_prompt(self, user_text: str) -> str:
        return self.tokenizer.apply_chat_template(self.messages(user_text),
                                                  add_generation_prompt=True, tokenize=False)

    def _attach(self, model, processor, engine, revision):
        wrap_once(model.model.embed_tokens_extend.audio_embed.encoder, "forward", _encode_each_clip)
        super()._attach(model, processor, engine, revision)


def load_speech_lora(model, checkpoint: str, subfolder: str, revision: str | None = None):
    """Load the speech LoRA from `checkpoint/subfolder` (peft) and make it the active one."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise ImportError(
            f"{checkpoint}: Phi-4-multimodal hears audio through its speech LoRA "
            f"({subfolder}/), which needs `peft` (>= 0.22 for transformers 5.24); the base "
            "weights alone do not follow audio (transformers' own test of them gets \"I can't "
            "listen to audio\"). Install peft, or pass speech_lora=None to run them anyway.")
    # A hub id is read at the model's revision; a local copy is read as it is.
    pinned = revision and not Path(checkpoint).is_dir()
    where = {"subfolder": subfolder, **({"revision": revision} if pinned else {})}
    model.load_adapter(checkpoint, adapter_name="speech", adapter_kwargs=where)
    model.set_adapter("speech")


def _encode_each_clip(encode, features, mask=None, **kwargs):
    """The Phi-4 audio encoder row by row, each row cut to its own frames (`mask`, True on
    real frames): every clip's encoding as if it were alone, zero-padded to the longest
    (the model keeps each clip's first `audio_embed_sizes` frames)."""
    if mask is None:
        return encode(features, mask, **kwargs)
    return pad_stack([encode(f[None, :n], None, **kwargs)[0]
                      for f, n in zip(features, mask.sum(-1).tolist())])


# Parameter count: what the adapter loads, the native model (4.744e9: decoder 3.836e9 with
# tied embeddings, speech encoder + projectors 0.466e9, image encoder + projector 0.442e9;
# counted on the meta device from PHI4_TEXT / PHI4_AUDIO, the hub config.json values as a
# public copy of it in TensorRT-LLM's tests gives them; the vision tower is transformers'
# default, which is the hub's) + the speech LoRA (0.461e9: rank 320 on qkv/o/gate_up/down of
# all 32 layers, from memory of the remote-code config; its 923 MB bf16 file on the hub
# matches it). Microsoft's 5.6e9 also counts the vision LoRA (rank 256, 0.369e9), which the
# adapter does not load. tests/test_arch_phi4_multimodal.py recounts the model.
PHI4_TEXT = dict(vocab_size=200064, hidden_size=3072, intermediate_size=8192,
                 num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8,
                 tie_word_embeddings=True)
PHI4_AUDIO = dict(hidden_size=1024, num_attention_heads=16, intermediate_size=1536,
                  num_blocks=24, nemo_conv_channels=1024, ext_pw_out_channel=1024,
                  depthwise_separable_out_channel=1024, bias_max_distance=500, input_size=80,
                  time_reduction=8, chunk_size=-1, left_chunk=18)
SPEECH_LORA_RANK = 320

register_model(ModelSpec(
    name="phi-4-multimodal", checkpoint="microsoft/Phi-4-multimodal-instruct", hf_class=HF_CLASS,
    n_params=5.205e9, adapter="Phi4MultimodalAdapter", revision="refs/pr/70"))
register_model(ModelSpec(
    name="tiny-phi-4-multimodal", checkpoint="tiny:phi4_multimodal", hf_class=HF_CLASS,
    n_params=247_120, adapter="Phi4MultimodalAdapter", options={"speech_lora": None}))


@register_tiny("phi4_multimodal", version=1)
def build_tiny_phi4_multimodal(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Phi-4-multimodal (model, tokenizer, processor) to `path`.

    The real feature extractor (80 log-mels, 8x time reduction) and image processor (448 px
    crops of 14 px patches) are kept; the encoders and the decoder shrink to toy width. The
    decoder keeps the hub config's sliding window and LongRoPE (short factors 1, as there;
    the long ones never apply below 4,096 tokens). No speech LoRA: building one needs `peft`."""
    import torch
    from transformers import (GPT2Tokenizer, Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor,
                              Phi4MultimodalForCausalLM, Phi4MultimodalImageProcessor,
                              Phi4MultimodalProcessor)

    vocab, merges = train_bpe(PHI4_SPECIAL)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, unk_token=ENDOFTEXT,
                              bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, pad_token=ENDOFTEXT,
                              add_bos_token=False,
                              extra_special_tokens={"image_token": "<|image|>",
                                                    "audio_token": AUDIO_PLACEHOLDER})
    tokenizer.add_special_tokens({"additional_special_tokens": PHI4_SPECIAL[1:]})
    tokenizer.padding_side = "left"
    processor = Phi4MultimodalProcessor(image_processor=Phi4MultimodalImageProcessor(),
                                        audio_processor=Phi4MultimodalFeatureExtractor(),
                                        tokenizer=tokenizer, chat_template=PHI4_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    head_dim, rotary = 16, 0.75     # 12 of 16 dimensions rotate, as 96 of 128 in the hub model
    config = Phi4MultimodalConfig(
        **{**PHI4_TEXT, "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2},
        max_position_embeddings=131072, original_max_position_embeddings=4096,
        sliding_window=262144,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "partial_rotary_factor": rotary,
                         "short_factor": [1.0] * int(head_dim * rotary // 2),
                         "long_factor": [1.0 + i for i in range(int(head_dim * rotary // 2))]},
        bos_token_id=ids(ENDOFTEXT), pad_token_id=ids(ENDOFTEXT),
        eos_token_id=[ids(ENDOFTEXT), ids(END)],
        audio_config={**PHI4_AUDIO, "hidden_size": 32, "num_attention_heads": 2,
                      "intermediate_size": 64, "num_blocks": 2, "nemo_conv_channels": 16,
                      "ext_pw_out_channel": 32, "depthwise_separable_out_channel": 32,
                      "audio_token_id": ids(AUDIO_PLACEHOLDER)},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_token_id": ids("<|image|>")})
    torch.manual_seed(seed)
    model = Phi4MultimodalForCausalLM(config).eval()
    model.generation_config.eos_token_id = [ids(ENDOFTEXT), ids(END)]
    model.generation_config.pad_token_id = ids(ENDOFTEXT)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
