"""Tiny random-weight checkpoints of real ALM architectures, built offline.

No checkpoint can be downloaded on the machines this project is built and tested on, yet
the study of Jia et al. (2026) runs real ALMs through transformers. A tiny checkpoint keeps
every code path real: a small config of the real architecture, a BPE tokenizer trained here
with `tokenizers` (carrying the model's special tokens), the real processor class and chat
template, saved with `save_pretrained` and loaded back with `from_pretrained` exactly as
`Qwen/Qwen2-Audio-7B-Instruct` would be. The build is seeded, so the same files come out
on every machine; the weights are random, so the model's answers are noise.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

# arch -> (builder(path) -> path, build version). Bump an arch's version whenever its builder
# changes what it writes, so a stale cached tiny checkpoint is never reused.
TINY_BUILDERS: dict[str, tuple[Callable, int]] = {}


def register_tiny(arch: str, version: int = 1):
    """Decorator: `fn(path)` builds the tiny checkpoint of `arch` (a registry checkpoint
    "tiny:<arch>") into `path`, seeded, offline."""
    def decorate(fn):
        if arch in TINY_BUILDERS:
            raise ValueError(f"tiny builder for {arch!r} registered twice")
        TINY_BUILDERS[arch] = (fn, version)
        return fn
    return decorate

# Qwen2-Audio-7B-Instruct's chat template (the same Jinja its processor ships), so prompts
# built for the tiny model have the real model's layout.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)
QWEN2_AUDIO_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>",
                       "<|audio_bos|>", "<|audio_eos|>"]

# Text the tokenizer is trained on: the prompts' vocabulary and every class name of every
# label space, so prompts tokenize into a few hundred ids rather than raw bytes.
_CORPUS = [
    "You are a helpful assistant.",
    "Listen to the speech and answer with one emotion from this list: neutral, happy, sad, "
    "angry, excited, frustrated, surprised, fearful, disgusted, contempt, other.",
    "Give the probability of each emotion as label: probability, one per line.",
    "What emotion does the speaker express? Think step by step, then answer.",
    "Is this answer correct for the audio? Answer Yes or No.",
    "Neutral Happy Sad Angry Excited Frustrated Surprised Fearful Disgusted Contempt Other",
    "Audio 1: 0 1 2 3 4 5 6 7 8 9 0.5 0.25 { } \" : , . ; yes no Yes No",
]


def train_bpe(special_tokens: list[str], vocab_size: int = 400) -> tuple[dict[str, int], list]:
    """Train a byte-level BPE on `_CORPUS`; returns (vocab, merges) with specials first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    # Specials are added to the transformers tokenizer separately, as the real one does.
    vocab = {t: i for t, i in model["vocab"].items() if t not in special_tokens}
    vocab = {t: n for n, t in enumerate(sorted(vocab, key=vocab.get))}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return vocab, merges


# -- pieces the Qwen2-decoder ALMs' tiny builders share --------------------------------------

def chatml_tokenizer(special_tokens: list[str], named: dict[str, str] | None = None):
    """A Qwen2 BPE tokenizer trained here, with `special_tokens`, `<|im_end|>` as end of turn
    and `<|endoftext|>` as padding (left), as the real ChatML checkpoints ship it. `named`
    special tokens are the ones a processor reads by attribute (tokenizer.audio_token, ...)."""
    from transformers import Qwen2Tokenizer

    vocab, merges = train_bpe(special_tokens)
    extra = {"extra_special_tokens": named} if named else {}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, errors="replace", unk_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>", **extra)
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens})
    tokenizer.padding_side = "left"
    return tokenizer


def whisper_features(chunk_length_s: int):
    """The Whisper front end (128 mel bins, 10 ms hop) with a short window for a toy encoder."""
    from transformers import WhisperFeatureExtractor
    return WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000,
                                   chunk_length=chunk_length_s, hop_length=160)


def tiny_qwen2_text_config(vocab_size: int) -> dict:
    return {"model_type": "qwen2", "vocab_size": vocab_size, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 2048,
            "tie_word_embeddings": False}


def save_seeded(model_class, config, processor, tokenizer, path: Path, seed: int) -> Path:
    """Initialise `model_class(config)` under `seed`, set end of turn and padding for
    generate(), and save model and processor with save_pretrained."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@register_tiny("qwen2_audio", version=1)
def build_tiny_qwen2_audio(path: str | Path, *, seed: int = 0, chunk_length_s: int = 5) -> Path:
    """Write a tiny random-weight Qwen2-Audio checkpoint (model, tokenizer, processor) to `path`.

    `chunk_length_s` sets the feature extractor's window: the real model uses 30 s; 5 s keeps
    the tiny encoder cheap on a CPU (longer clips are truncated by the feature extractor).
    """
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    tokenizer = chatml_tokenizer(QWEN2_AUDIO_SPECIAL)
    processor = Qwen2AudioProcessor(feature_extractor=whisper_features(chunk_length_s),
                                    tokenizer=tokenizer, chat_template=QWEN2_AUDIO_CHAT_TEMPLATE)
    frames = chunk_length_s * 100  # 10 ms hop
    config = Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "d_model": 32,
                      "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 64, "num_mel_bins": 128,
                      "max_source_positions": frames // 2},
        text_config=tiny_qwen2_text_config(len(tokenizer)),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    return save_seeded(Qwen2AudioForConditionalGeneration, config, processor, tokenizer,
                       Path(path), seed)


# -- variants that exercise every decoding path (tests/test_engine_paths.py) ----------------

# Class names whose answers are 1, 2, 3 and 4 tokens long in the tiny BPE (the test asserts
# it), one of them a prefix of another ("happy" / "happy sad"): constrained rows then stop at
# different steps, and the trie must offer both the end of turn and a continuation.
MIXED_LENGTH_CLASSES = ("Neutral", "sad", "happy", "Happy Sad", "happy sad")


def peak_head(model, *, scale: float, stop_id: int | None = None,
              stop_as: int | None = None) -> None:
    """Make a random-weight model's next-token distributions peaked, in place.

    A tiny model's logits are nearly flat (std ~0.17 over 400 ids), so top-k and top-p cut
    nothing and greedy, sampled and beam outputs all look alike. Multiplying the output head
    by `scale` multiplies every logit by `scale` (the head has no bias): at 20 the top token
    holds 20-50 % of the mass, so temperature, top-k and top-p change which tokens can be
    drawn. With `stop_as`, the stop token `stop_id` gets token `stop_as`'s head row (x 1.001,
    so it wins the tie): the model then ends its answer wherever it would have written
    `stop_as`, which happens at different steps in different rows, so a batch's rows stop at
    different lengths (padding after the stop, as generate() writes it). A tied input
    embedding is scaled with the head, which only makes it another random model."""
    import torch

    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("peak_head expects an output head without bias")
    with torch.no_grad():
        head.weight.mul_(scale)
        if stop_as is not None:
            if stop_id is None:
                raise ValueError("stop_as needs the stop token's id (stop_id)")
            head.weight[stop_id] = head.weight[stop_as] * 1.001
