"""Granite-Speech offline, as far as this environment allows: the real model class at toy
size (conformer encoder, Q-former projector, Granite decoder) with a locally trained
tokenizer carrying Granite's special tokens and chat template. The real feature extractor
needs torchaudio (not in the pinned environment), so audio features are given directly in
the shape the extractor produces: (batch, frames, 2 * n_mels) stacked log-mels.
"""
import math

import pytest
import torch

from ambiemo.alm import MODELS, engine
from ambiemo.alm.archs.granite_speech import (AUDIO_PLACEHOLDER, GRANITE_CHAT_TEMPLATE,
                                              GRANITE_SPECIAL, SYSTEM_PROMPT, GraniteSpeechAdapter)
from ambiemo.alm.tiny import train_bpe

WINDOW, DOWNSAMPLE = 15, 5      # the projector's window and downsampling (real values)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab, merges = train_bpe(GRANITE_SPECIAL)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end_of_text|>",
                                        pad_token="<|end_of_text|>")
    tokenizer.add_special_tokens({"additional_special_tokens": GRANITE_SPECIAL})
    tokenizer.chat_template = GRANITE_CHAT_TEMPLATE
    return tokenizer


def _model(tokenizer, *, lora: bool):
    from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

    config = GraniteSpeechConfig(
        text_config={"model_type": "granite", "vocab_size": len(tokenizer), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "tie_word_embeddings": True,
                     # Large random weights: a default-initialised toy model is so close to
                     # uniform that every row's output would look alike.
                     "initializer_range": 1.0},
        encoder_config={"input_dim": 160, "num_layers": 2, "hidden_dim": 32, "num_heads": 2,
                        "output_dim": 8, "context_size": 20, "max_pos_emb": 32,
                        "conv_kernel_size": 3},
        projector_config={"model_type": "blip_2_qformer", "hidden_size": 32,
                          "num_hidden_layers": 1, "num_attention_heads": 2,
                          "intermediate_size": 64, "encoder_hidden_size": 32},
        audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_PLACEHOLDER),
        initializer_range=1.0, has_lora_adapter=lora, window_size=WINDOW, downsample_rate=DOWNSAMPLE)
    torch.manual_seed(0)
    model = GraniteSpeechForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


@pytest.fixture(scope="module")
def adapter():
    tokenizer = _tokenizer()
    # The tokenizer stands in for the processor: it carries the same chat template.
    return GraniteSpeechAdapter.from_parts(_model(tokenizer, lora=False), tokenizer,
                                           name="granite-test", device="cpu")


def test_registered_checkpoints():
    for name in ("granite-speech-3.3-8b", "granite-speech-3.3-2b"):
        spec = MODELS[name]
        assert spec.checkpoint == f"ibm-granite/{name}"
        assert spec.hf_class == "GraniteSpeechForConditionalGeneration"


def test_prompt_is_granites_chat_with_a_fixed_system_turn(adapter):
    prompt = adapter.build_prompt("Which emotion?")
    assert prompt == (f"<|start_of_role|>system<|end_of_role|>{SYSTEM_PROMPT}<|end_of_text|>\n"
                      "<|start_of_role|>user<|end_of_role|><|audio|>Which emotion?<|end_of_text|>\n"
                      "<|start_of_role|>assistant<|end_of_role|>")
    assert adapter.eos_id == adapter.tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert adapter.max_audio_s is None


def test_a_declared_lora_adapter_without_peft_is_an_error():
    tokenizer = _tokenizer()
    with pytest.raises(ImportError, match="peft"):
        GraniteSpeechAdapter.from_parts(_model(tokenizer, lora=True), tokenizer, name="g", device="cpu")


def _audio_batch(adapter, frames_per_clip):
    """Prompts with as many audio tokens as the projector makes from each clip's frames,
    left-padded, plus the features and mask the real extractor would return."""
    prompt = adapter.build_prompt("Which emotion?")
    n_audio = [math.ceil(f / WINDOW) * (WINDOW // DOWNSAMPLE) for f in frames_per_clip]
    texts = [prompt.replace(AUDIO_PLACEHOLDER, AUDIO_PLACEHOLDER * n) for n in n_audio]
    enc = adapter.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(1)
    feats = torch.randn(len(frames_per_clip), max(frames_per_clip), 160)
    mask = torch.arange(max(n_audio))[None] < torch.tensor(n_audio)[:, None]
    return {**enc, "input_features": feats, "input_features_mask": mask}


def test_prefix_engine_greedy_equals_generate(adapter):
    """The shared-prefix engine (1-D positions from the attention mask) reproduces
    transformers' generate() on Granite-Speech token for token, left padding included."""
    inputs = _audio_batch(adapter, [30, 15])       # the second clip is shorter
    prefix = engine.prefill(adapter.model, inputs)
    tokens, logp = engine.decode(adapter.model, prefix, n=1, greedy=True, max_new_tokens=6,
                                 stop_ids=adapter.stop_ids, pad_id=adapter.pad_id)
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=6,
                                     eos_token_id=adapter.stop_ids, pad_token_id=adapter.pad_id,
                                     return_dict_in_generate=True, output_logits=True)
    ref = out.sequences[:, inputs["input_ids"].shape[1]:]
    assert tokens.tolist() == ref.tolist()
    # Token log-probabilities too: equal tokens alone could hide a position or padding error
    # in a random model that repeats one token.
    ref_logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, ref[..., None])
    torch.testing.assert_close(logp, ref_logp.squeeze(-1), atol=1e-4, rtol=0)
    assert not torch.allclose(logp[0], logp[1], atol=1e-3)   # the two clips really differ
