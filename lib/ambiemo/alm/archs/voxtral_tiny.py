"""The tiny offline Voxtral checkpoint: a tekken.json written here and a toy
`VoxtralForConditionalGeneration` behind the real `VoxtralProcessor`.

Tests of the Voxtral adapter (archs/voxtral.py), which serves one of the open ALMs this
project compares beyond Jia et al. (2026), need a checkpoint that loads through the same
`from_pretrained` path as mistralai/Voxtral-Mini-3B-2507; none can be downloaded here, and
Voxtral's tokenizer is Mistral's tekken (mistral-common), not a transformers tokenizer, so
its file is written here from a byte-level BPE trained on the prompt corpus.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from ambiemo.alm.archs.voxtral import require_mistral_common
from ambiemo.alm.audio import TARGET_SR
from ambiemo.alm.tiny import register_tiny, train_bpe

# Mistral's special tokens at their ranks in the released tekken files: 0-19 as
# mistral-common's legacy list, [AUDIO] = 24 (VoxtralProcessor hard-codes audio_token_id 24),
# [BEGIN_AUDIO] = 25, [ARGS] / [CALL_ID] = 32 / 33 as in Mistral Small 3.2's file;
# [TRANSCRIBE] = 34 from memory (mistral-common requires it for non-streaming audio).
# Unnamed ranks are `<SPECIAL_i>` fillers, as the real files list them.
TEKKEN_SPECIAL = {0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]",
                  5: "[AVAILABLE_TOOLS]", 6: "[/AVAILABLE_TOOLS]", 7: "[TOOL_RESULTS]",
                  8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]", 10: "[IMG]", 11: "<pad>",
                  12: "[IMG_BREAK]", 13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]",
                  16: "[SUFFIX]", 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]",
                  19: "[TOOL_CONTENT]", 24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 32: "[ARGS]",
                  33: "[CALL_ID]", 34: "[TRANSCRIBE]"}
# Tekken's pre-tokenizer regex, as in every released tekken.json (mistral-common ships one).
TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
                  r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _byte_of_char() -> dict[str, int]:
    """Inverse of the byte-level BPE alphabet (each byte drawn as a printable character)."""
    keep = {*range(33, 127), *range(161, 173), *range(174, 256)}
    out, shifted = {}, 0
    for b in range(256):
        if b in keep:
            out[chr(b)] = b
        else:
            out[chr(256 + shifted)] = b
            shifted += 1
    return out


def write_tekken(path: Path, *, chunk_length_s: float, num_special: int = 40) -> Path:
    """A tekken.json with a byte-level BPE trained here (tiny.train_bpe): ranks 0-255 the
    bytes, then the merges in training order (tiktoken merges by rank), the special tokens
    above and Voxtral's audio config (16 kHz, 12.5 tokens/s, 128 mels, hop 160, window 400)."""
    vocab, _ = train_bpe([])
    char_byte = _byte_of_char()
    merged = [bytes(char_byte[c] for c in t) for t in sorted(vocab, key=vocab.get)]
    tokens = [bytes([b]) for b in range(256)] + [t for t in merged if len(t) > 1]
    specials = [{"rank": i, "token_str": TEKKEN_SPECIAL.get(i, f"<SPECIAL_{i}>"),
                 "is_control": True} for i in range(num_special)]
    data = {
        "config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(tokens),
                   "default_vocab_size": num_special + len(tokens),
                   # v7: the first tekken version with audio, recalled (not verified
                   # offline) as Voxtral's; v7-v13 encode an audio + text user turn alike.
                   "default_num_special_tokens": num_special, "version": "v7"},
        "vocab": [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": None}
                  for i, t in enumerate(tokens)],
        "special_tokens": specials,
        "audio": {"sampling_rate": TARGET_SR, "frame_rate": 12.5,
                  "chunk_length_s": chunk_length_s,
                  "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160,
                                            "window_size": 400}},
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "tekken.json").write_text(json.dumps(data))
    return path / "tekken.json"


@register_tiny("voxtral", version=1)
def build_tiny_voxtral(path: str | Path, *, seed: int = 0, chunk_length_s: int = 2) -> Path:
    """Write a tiny random-weight Voxtral (model, tekken tokenizer, processor) to `path`.

    `chunk_length_s` is one encoder window (real: 30 s); it must be even, so that a chunk
    is a whole number of 80 ms audio tokens (8 mel frames each)."""
    import torch
    from transformers import (MistralCommonBackend, VoxtralConfig, VoxtralForConditionalGeneration,
                              VoxtralProcessor, WhisperFeatureExtractor)

    require_mistral_common()
    path = Path(path)
    tokenizer = MistralCommonBackend(write_tekken(path, chunk_length_s=chunk_length_s))
    frames = round(chunk_length_s * TARGET_SR) // 160
    processor = VoxtralProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=TARGET_SR,
                                                  hop_length=160, chunk_length=chunk_length_s),
        tokenizer=tokenizer)
    config = VoxtralConfig(
        # intermediate_size is 4 x hidden_size: the projector reads 4 stacked encoder frames.
        audio_config={"model_type": "voxtral_encoder", "hidden_size": 32, "intermediate_size": 128,
                      "num_hidden_layers": 2, "num_attention_heads": 2, "num_mel_bins": 128,
                      "max_source_positions": frames // 2},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048,
                     "tie_word_embeddings": False},
        audio_token_id=processor.audio_token_id)
    torch.manual_seed(seed)
    model = VoxtralForConditionalGeneration(config).eval()
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
