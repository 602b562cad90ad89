"""Granite-Speech specifics beyond the shared conformance tests (tests/test_adapters.py run
on `tiny-granite-speech`): the chat layout, each clip encoded as if alone, the LoRA load
check, and the registered parameter counts."""
import datetime

import pytest
import torch

from ambiemo.alm import MODELS, load_model
from ambiemo.alm.archs.granite_speech import (ENCODER, GRANITE_SPECIAL, LORA_MODULES, LORA_RANK,
                                              PROJECTOR, SYSTEM_PROMPT, TEXT, GraniteSpeechAdapter)
from ambiemo.alm.audio import load_audio


@pytest.fixture(scope="module")
def granite(tiny_cache):
    return load_model("tiny-granite-speech", cache_dir=tiny_cache, device="cpu")


def test_registered_checkpoints():
    for name in ("granite-speech-3.3-8b", "granite-speech-3.3-2b"):
        spec = MODELS[name]
        assert spec.checkpoint == f"ibm-granite/{name}"
        assert spec.hf_class == "GraniteSpeechForConditionalGeneration"


def test_prompt_is_granites_chat_with_a_fixed_system_turn(granite):
    prompt = granite.build_prompt("Which emotion?")
    assert prompt == (f"<|start_of_role|>system<|end_of_role|>{SYSTEM_PROMPT}<|end_of_text|>\n"
                      "<|start_of_role|>user<|end_of_role|><|audio|>Which emotion?<|end_of_text|>\n"
                      "<|start_of_role|>assistant<|end_of_role|>")
    assert granite.eos_id == granite.tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert granite.max_audio_s is None
    # Why the system turn is given: the checkpoint's own default carries today's date.
    default = granite.processor.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert datetime.date.today().strftime("%B %d, %Y") in default
    assert type(granite.processor).__name__ == "GraniteSpeechProcessor"
    assert all(granite.tokenizer.convert_tokens_to_ids(t) is not None for t in GRANITE_SPECIAL)


def test_each_clip_is_encoded_as_if_it_were_alone(granite, repo):
    """transformers encodes a zero-padded batch without a mask, so a shorter clip's audio
    embeddings would depend on its neighbours; the adapter's are the clip's own."""
    wav = repo / "data" / "demo" / "wav"
    audios = [load_audio(wav / "spk1_sad_s1.wav"), load_audio(wav / "spk3_angry_s1.wav")]
    prompt = granite.build_prompt("Which emotion?")
    encode = granite.model.model.get_audio_features
    batch = granite.processor_inputs([prompt] * 2, audios)
    assert batch["input_features"][1].isnan().any()     # padding marked, not zero
    with torch.no_grad():
        both = encode(batch["input_features"], return_dict=True).pooler_output
        alone = encode(granite.processor_inputs([prompt], audios[1:])["input_features"],
                       return_dict=True).pooler_output[0]
        unmarked = encode(torch.nan_to_num(batch["input_features"]), return_dict=True).pooler_output
    n = int(batch["input_features_mask"][1].sum())
    assert alone.shape[0] == n
    torch.testing.assert_close(both[1, :n], alone, rtol=0, atol=1e-6)
    assert (unmarked[1, :n] - alone).abs().max() > 1e-3      # what the adapter avoids


def test_a_declared_lora_adapter_without_peft_is_an_error(granite):
    from transformers import GraniteSpeechForConditionalGeneration

    config = granite.model.config.__class__.from_dict(
        {**granite.model.config.to_dict(), "has_lora_adapter": True})
    with pytest.raises(ImportError, match="peft"):
        GraniteSpeechAdapter.from_parts(GraniteSpeechForConditionalGeneration(config),
                                        granite.processor, name="g", device="cpu")


@pytest.mark.parametrize("size", ["8b", "2b"])
def test_registered_parameter_count_is_the_published_architecture(size):
    """The capacity axis: encoder + projector + decoder counted on the meta device from the
    published config values, plus the rank-64 LoRA on the decoder's q/v projections."""
    from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

    config = GraniteSpeechConfig(encoder_config=ENCODER, projector_config=PROJECTOR,
                                 text_config=TEXT[size], has_lora_adapter=False)
    with torch.device("meta"):
        model = GraniteSpeechForConditionalGeneration(config)
    n = sum(p.numel() for p in model.parameters())
    lora = sum(LORA_RANK * (m.in_features + m.out_features)
               for name, m in model.model.language_model.named_modules()
               if name.rsplit(".", 1)[-1] in LORA_MODULES)
    assert MODELS[f"granite-speech-3.3-{size}"].n_params == pytest.approx(n + lora, rel=1e-3)
    # The decoder alone is IBM's published granite-3.3-{size}-instruct size.
    decoder = sum(p.numel() for p in model.model.language_model.parameters())
    assert decoder == pytest.approx({"8b": 8.17e9, "2b": 2.53e9}[size], rel=2e-3)
