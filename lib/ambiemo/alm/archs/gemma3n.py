"""Gemma-3n (Google) through transformers' own `Gemma3nForConditionalGeneration`.

One of today's open ALMs that this project adds beyond the models Jia et al. (2026)
compare: a USM conformer audio encoder and a MobileNet-V5 image encoder (a timm model)
feeding a MatFormer decoder with per-layer token embeddings, AltUp, and KV sharing across its
last layers. What differs from the shared base (alm/hf/adapter.py):

- the prompt is the hub chat template's (`<bos><start_of_turn>user\\n<audio_soft_token>...`);
  it starts with `<bos>` itself, so the text is tokenized without adding another;
- each clip's audio is encoded on its own: the batched feature extractor counts a few frames
  of a shorter clip's zero padding as audio, and the subsampling convolutions of the encoder
  read past a clip's last frame, so in a batch a clip's last audio tokens would depend on
  which clips share it. `processor_inputs` processes every clip alone and `_attach` makes the
  audio tower run each row at its own length (`_encode_each_clip`), which equals encoding the
  clip alone.

Audio: 16 kHz mono float arrays; the feature extractor keeps the first 30 s (its default
`max_length` of 480,000 samples) and the prompt always holds 188 audio tokens (one per
160 ms of a 30 s window, the shorter clips' rest filled with a padding embedding).
Positions: plain 1-D rotary positions and no bidirectional attention over audio tokens
(`token_type_ids` change nothing), so the shared-prefix engine reproduces `generate()`
exactly (`default_engine = "prefix"`). The decoder's sliding-window layers make the engine
repeat the prompt's cache per sample rather than share it (alm/hf/engine/shared.py); the per-layer
embeddings come from the token ids and KV sharing works inside each forward, both as in
`generate()`.

Tested offline on `tiny-gemma-3n` (tests/test_adapters.py; tests/test_arch_gemma3n.py): the
real processor class (`Gemma3nAudioFeatureExtractor`, the SigLIP image processor on
torchvision's Python code), a Gemma BPE tokenizer with Gemma-3n's special tokens and the hub
chat template, and the real model class at toy size, including sliding and full attention
layers, KV sharing, AltUp, Laurel, activation sparsity and the timm MobileNet-V5 encoder
(`mobilenetv5_300m_enc` at 1 % width, given one image by the test; the study never sends
images). Not tested offline: the hub checkpoints themselves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.per_clip import pad_time, wrap_once
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import register_tiny, train_bpe

HF_CLASS = "Gemma3nForConditionalGeneration"
WINDOW_S = 30.0     # Gemma3nAudioFeatureExtractor's default max_length, 480,000 samples

# The chat template google/gemma-3n-E2B-it and -E4B-it ship (Gemma 3's, with an audio part),
# as public copies of it give it (the hub files could not be read offline).
GEMMA3N_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'audio' -%}
                {{ '<audio_soft_token>' }}
            {%- elif item['type'] == 'image' -%}
                {{ '<image_soft_token>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""
# Gemma's text special tokens, first five at the hub ids 0-4; then the tokens the processor
# reads by attribute (tokenizer.audio_token, ...). In the hub vocabulary the start tokens are
# text ids and the end / soft tokens open the image and audio id ranges (262144, 262272).
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                 "<start_of_image>", "<start_of_audio>"]
GEMMA3N_NAMED = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                 "image_token": "<image_soft_token>", "boa_token": "<start_of_audio>",
                 "eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"}
IMAGE_RANGE = ["<end_of_image>", "<image_soft_token>"]
AUDIO_RANGE = ["<end_of_audio>", "<audio_soft_token>"]


@register_adapter("gemma3n")
class Gemma3nAdapter(TransformersAdapter):
    """Gemma-3n (each clip's audio encoded alone; see the module docstring)."""

    hf_class = HF_CLASS
    end_of_turn = "<end_of_turn>"

    def audio_window_s(self) -> float | None:
        return WINDOW_S

    def processor_inputs(self, prompts: list[str], audios: list[np.ndarray]):
        rows = [self.processor(text=[p], audio=[np.asarray(a, np.float32)],
                               sampling_rate=TARGET_SR, return_tensors="pt",
                               add_special_tokens=False)
                for p, a in zip(prompts, audios)]
        return _collate(rows, self.pad_id)

    def _attach(self, model, processor, engine, revision):
        wrap_once(model.model.audio_tower, "forward", _encode_each_clip)
        super()._attach(model, processor, engine, revision)


def _collate(rows, pad_id: int):
    """One batch from one-clip processor outputs: text left-padded (input_ids, attention_mask,
    token_type_ids), audio frames right-padded with zeros and masked out."""
    import torch
    from transformers import BatchFeature

    def stack(key, value, left=False):
        width = max(r[key].shape[1] for r in rows)
        return torch.cat([pad_time(r[key], width, value, left) for r in rows])

    text = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
    data = {key: stack(key, value, left=True) for key, value in text.items() if key in rows[0]}
    data.update(input_features=stack("input_features", 0.0),
                input_features_mask=stack("input_features_mask", False))
    return BatchFeature(data=data)


def _encode_each_clip(encode, audio_mel, audio_mel_mask, **kwargs):
    """`Gemma3nAudioEncoder.forward` row by row, each row cut to its own frames
    (`audio_mel_mask` is True on padding): every clip's encoding as if it were alone,
    zero-padded and masked to the longest."""
    import torch
    from transformers.models.gemma3n.modeling_gemma3n import Gemma3nAudioEncoderModelOutput

    lengths = (~audio_mel_mask).sum(-1).tolist()
    if all(n == audio_mel.shape[1] for n in lengths):
        return encode(audio_mel, audio_mel_mask, **kwargs)
    rows = [encode(m[None, :n], p[None, :n], **kwargs)
            for m, p, n in zip(audio_mel, audio_mel_mask, lengths)]
    width = max(r.last_hidden_state.shape[1] for r in rows)
    return Gemma3nAudioEncoderModelOutput(
        last_hidden_state=torch.cat([pad_time(r.last_hidden_state, width, 0.0) for r in rows]),
        audio_mel_mask=torch.cat([pad_time(r.audio_mel_mask, width, True) for r in rows]))


# Parameter counts: every weight the adapter loads, counted on the meta device from the hub
# config values (GEMMA3N_TEXT; the audio and vision configs are transformers' defaults, which
# are the hub's: USM conformer 0.681e9, timm mobilenetv5_300m_enc 0.294e9). E2B 5.418e9,
# E4B 7.819e9. Google's raw counts (5.44e9, 7.85e9, model cards) also include the k/v
# projections of the KV-sharing layers (10 x and 15 x 2 x 2048 x 512), which those layers
# never use and transformers does not instantiate. The text values: transformers'
# Gemma3nTextConfig defaults are E4B's; E2B's (30 layers, FFN 8192, 10 shared) are quoted
# from its config.json in public conversion code. tests/test_arch_gemma3n.py recounts them.
GEMMA3N_TEXT = {
    "gemma-3n-e2b": dict(num_hidden_layers=30, intermediate_size=8192, num_kv_shared_layers=10),
    "gemma-3n-e4b": dict(num_hidden_layers=35, intermediate_size=16384, num_kv_shared_layers=15),
}
register_model(ModelSpec(name="gemma-3n-e2b", checkpoint="google/gemma-3n-E2B-it",
                         hf_class=HF_CLASS, n_params=5.418e9, adapter="Gemma3nAdapter"))
register_model(ModelSpec(name="gemma-3n-e4b", checkpoint="google/gemma-3n-E4B-it",
                         hf_class=HF_CLASS, n_params=7.819e9, adapter="Gemma3nAdapter"))
register_model(ModelSpec(name="tiny-gemma-3n", checkpoint="tiny:gemma3n", hf_class=HF_CLASS,
                         n_params=1_896_544, adapter="Gemma3nAdapter"))


def gemma_tokenizer():
    """A Gemma tokenizer trained here: `train_bpe`'s pieces respelled in Gemma's SentencePiece
    alphabet ("▁" for a space, the text's own characters rather than byte-level stand-ins), the
    text specials first, then the image and audio tokens opening their own id ranges, as in
    the hub vocabulary. No byte-fallback pieces: a character outside the training text is
    <unk>. Returns (tokenizer, number of text ids)."""
    from transformers import GemmaTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab, merges = train_bpe(GEMMA_SPECIAL + IMAGE_RANGE + AUDIO_RANGE)
    byte_of = {u: b for b, u in bytes_to_unicode().items()}

    def respell(piece: str) -> str:
        return bytes(byte_of[c] for c in piece).decode("latin-1").replace(" ", "▁")

    pieces = GEMMA_SPECIAL + [respell(t) for t in sorted(vocab, key=vocab.get)]
    text_ids = len(pieces)
    tokenizer = GemmaTokenizer(
        vocab={t: i for i, t in enumerate(pieces + IMAGE_RANGE + AUDIO_RANGE)},
        merges=[(respell(a), respell(b)) for a, b in merges], add_bos_token=True,
        extra_special_tokens=GEMMA3N_NAMED)
    tokenizer.add_special_tokens({"additional_special_tokens":
                                  GEMMA_SPECIAL[5:] + IMAGE_RANGE + AUDIO_RANGE})
    return tokenizer, text_ids


@register_tiny("gemma3n", version=1)
def build_tiny_gemma3n(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Gemma-3n (model, tokenizer, processor) to `path`.

    The real feature extractor (128 log-mels, 30 s, 188 audio tokens) and image processor
    are kept. The decoder keeps every Gemma-3n mechanism at toy size: sliding (window 64,
    shorter than the prompt) and full attention layers, the last two sharing the first two's
    keys and values, AltUp over 4 streams, Laurel, per-layer embeddings, activation sparsity
    in the first layers. The image and audio vocabularies shrink to their two named tokens.
    The image encoder is timm's `mobilenetv5_300m_enc` (every block kept) at a 0.01 channel
    multiplier; its fusion adapter's 2048 output channels are fixed by timm."""
    import torch
    from transformers import (Gemma3nAudioFeatureExtractor, Gemma3nConfig,
                              Gemma3nForConditionalGeneration, Gemma3nProcessor,
                              SiglipImageProcessor)

    tokenizer, text_ids = gemma_tokenizer()
    # MobileNet-V5 takes [0, 1] pixels (timm's mean 0, std 1) at 768 px.
    images = SiglipImageProcessor(size={"height": 768, "width": 768}, do_normalize=False)
    processor = Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(),
                                 image_processor=images, tokenizer=tokenizer,
                                 chat_template=GEMMA3N_CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3nConfig(
        text_config=dict(
            vocab_size=len(tokenizer), vocab_size_per_layer_input=text_ids,
            hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, hidden_size_per_layer_input=8, laurel_rank=4,
            layer_types=["sliding_attention", "full_attention"] * 2, sliding_window=64,
            num_kv_shared_layers=2, activation_sparsity_pattern=[0.95, 0.95, 0.0, 0.0],
            max_position_embeddings=2048, pad_token_id=ids("<pad>"), eos_token_id=ids("<eos>"),
            bos_token_id=ids("<bos>")),
        audio_config=dict(vocab_size=len(AUDIO_RANGE), vocab_offset=ids(AUDIO_RANGE[0]),
                          hidden_size=32, conf_num_hidden_layers=2, conf_num_attention_heads=2,
                          sscp_conv_channel_size=[8, 8]),
        vision_config=dict(architecture="mobilenetv5_300m_enc",
                           model_args={"channel_multiplier": 0.01},
                           vocab_size=len(IMAGE_RANGE), vocab_offset=ids(IMAGE_RANGE[0])),
        **{f"{key}_id": ids(token) for key, token in GEMMA3N_NAMED.items()})
    torch.manual_seed(seed)
    model = Gemma3nForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [ids("<eos>"), ids("<end_of_turn>")]
    model.generation_config.pad_token_id = ids("<pad>")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
