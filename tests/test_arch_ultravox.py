"""Ultravox offline: no checkpoint can be loaded here (remote code, hub-only weights), so
these tests cover what the adapter itself does: refusing an unpinned revision, the Llama-3
chat prompt with the audio placeholder, batching one-clip-per-call processor outputs with
left padding, truncation to the Whisper window, and token ids -> answers.

The processor below follows the published contract of fixie-ai's UltravoxProcessor
(v0.3/v0.4): one text and one audio per call, the placeholder replaced by one end-of-text
token per projector frame (Whisper frames / 2 conv stride, stacked by 8), `audio_values`
from a Whisper feature extractor with padding="longest", and `audio_token_start_idx`.
"""
import math

import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS, load_model
from ambiemo.alm.archs.ultravox import AUDIO_PLACEHOLDER, WHISPER_WINDOW_S, UltravoxAdapter
from ambiemo.alm.base import Clip
from ambiemo.alm.tiny import train_bpe

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
           "<|end_header_id|>", "<|eot_id|>"]
# Llama-3.1-Instruct's chat template in substance (tools branch left out): a system header
# with the knowledge-cutoff lines, then one header + content + <|eot_id|> per turn.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)


class UltravoxStyleProcessor:
    """One text + one audio per call, as fixie-ai's UltravoxProcessor (see module doc)."""

    def __init__(self, tokenizer, stack_factor=8, encoder_ds_factor=320):
        from transformers import WhisperFeatureExtractor
        self.tokenizer = tokenizer
        self.fe = WhisperFeatureExtractor(feature_size=80)
        self.stack_factor, self.ds = stack_factor, encoder_ds_factor
        self.calls = []

    def __call__(self, text, audio, sampling_rate, return_tensors="pt"):
        from transformers import BatchFeature
        assert isinstance(text, str) and audio.ndim == 1 and sampling_rate == 16_000
        self.calls.append(len(audio))
        frames = math.ceil(int(round(len(audio) / self.ds + 1e-4)) / self.stack_factor)
        feats = self.fe(audio, sampling_rate=sampling_rate, padding="longest",
                        max_length=len(audio), return_tensors="pt").input_features
        start = len(self.tokenizer.encode(text[:text.index(AUDIO_PLACEHOLDER)],
                                          add_special_tokens=False))
        text = text.replace(AUDIO_PLACEHOLDER, self.tokenizer.eos_token * frames)
        enc = self.tokenizer([text], add_special_tokens=False, return_tensors="pt")
        return BatchFeature({**enc, "audio_values": feats, "audio_token_len": torch.tensor([frames]),
                             "audio_token_start_idx": torch.tensor([start])})


@pytest.fixture(scope="module")
def adapter():
    """The adapter around a Llama-3-style tokenizer and a tiny Llama decoder (the Ultravox
    decoder's architecture) in memory: everything but the remote audio tower."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab, merges = train_bpe(SPECIAL)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>",
                                        eos_token="<|end_of_text|>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    tokenizer.chat_template = LLAMA3_TEMPLATE
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    return UltravoxAdapter.from_parts(model, UltravoxStyleProcessor(tokenizer), name="ultravox-test",
                                      device="cpu")


def test_registered_and_refuses_an_unpinned_revision():
    for name in ("ultravox-v0_3", "ultravox-v0_4"):
        spec = MODELS[name]
        assert spec.checkpoint == f"fixie-ai/{name}" and spec.adapter == "UltravoxAdapter"
        # Remote code must never run unpinned: the error comes before any download.
        with pytest.raises(ValueError, match="pin a `revision`"):
            load_model(name, device="cpu")


def test_prompt_is_a_llama3_chat_with_the_audio_after_the_instruction(adapter):
    prompt = adapter.build_prompt("Which emotion?")
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert prompt.endswith("<|start_header_id|>user<|end_header_id|>\n\nWhich emotion?\n"
                           "<|audio|><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert adapter.eos_id == adapter.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert adapter.engine == "generate" and adapter.max_audio_s == WHISPER_WINDOW_S


def test_batch_is_left_padded_with_the_audio_span_moved(adapter):
    rng = np.random.default_rng(0)
    audios = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 40_000)]
    prompts = [adapter.build_prompt("Which emotion?"), adapter.build_prompt("Emotion of the speaker?")]
    batch = adapter.processor_inputs(prompts, audios)
    singles = [adapter.processor_inputs([p], [a]) for p, a in zip(prompts, audios)]
    width = batch["input_ids"].shape[1]
    eos = adapter.tokenizer.eos_token_id
    for i, single in enumerate(singles):
        n = single["input_ids"].shape[1]
        assert batch["input_ids"][i, width - n:].tolist() == single["input_ids"][0].tolist()
        assert batch["attention_mask"][i].tolist() == [0] * (width - n) + [1] * n
        start, length = int(batch["audio_token_start_idx"][i]), int(batch["audio_token_len"][i])
        assert start == int(single["audio_token_start_idx"][0]) + width - n
        # The span the model overwrites with audio is exactly the placeholder's tokens.
        assert batch["input_ids"][i, start:start + length].tolist() == [eos] * length
        assert batch["input_ids"][i, start - 1] != eos and batch["input_ids"][i, start + length] != eos
        frames = single["audio_values"].shape[-1]
        np.testing.assert_array_equal(batch["audio_values"][i, :, :frames], single["audio_values"][0])
    assert batch["audio_values"].shape[0] == 2
    assert int(batch["audio_token_len"][1]) == math.ceil(round(40_000 / 320) / 8)


def test_audio_beyond_the_whisper_window_is_cut(adapter):
    long = np.zeros(int(31.5 * 16_000), np.float32)
    adapter.processor.calls.clear()
    adapter.processor_inputs([adapter.build_prompt("x")], [long])
    assert adapter.processor.calls == [int(WHISPER_WINDOW_S * 16_000)]


def test_prompt_without_placeholder_is_refused(adapter):
    with pytest.raises(ValueError, match="no <\\|audio\\|> placeholder"):
        adapter.processor_inputs(["no audio here"], [np.zeros(1600, np.float32)])


def test_generated_ids_become_answers_up_to_the_end_of_turn(adapter):
    tok = adapter.tokenizer
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    eot = adapter.eos_id
    sad, happy = enc("sad"), enc("happy")
    width = max(len(sad), len(happy)) + 3
    never_stops = (happy + enc(" sad") * width)[:width]
    rows = [sad + [eot], happy + [eot, *enc("sad")], never_stops]
    tokens = torch.tensor([r + [adapter.pad_id] * (width - len(r)) for r in rows])
    logp = torch.full(tokens.shape, -0.5)
    clips = [Clip("a", np.zeros(10, np.float32)), Clip("b", np.zeros(10, np.float32))]
    gens = adapter._to_generations(clips, 2, tokens[:2].repeat(2, 1)[:4], logp[:2].repeat(2, 1)[:4])
    assert [(g.utt_id, g.idx, g.text) for g in gens] == [("a", 0, "sad"), ("a", 1, "happy"),
                                                         ("b", 0, "sad"), ("b", 1, "happy")]
    assert [g.n_tokens for g in gens[:2]] == [len(sad) + 1, len(happy) + 1]
    assert gens[0].logprob == pytest.approx(-0.5 * (len(sad) + 1))
    # A row that never reached the end of turn (max_new_tokens) counts every token.
    open_row = adapter._to_generations(clips[:1], 1, tokens[2:], logp[2:])[0]
    assert open_row.n_tokens == width and open_row.text.startswith("happy")
