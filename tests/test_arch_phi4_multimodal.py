"""Phi-4-multimodal specifics beyond the shared conformance tests (tests/test_adapters.py run
on `tiny-phi-4-multimodal`): the chat layout, the audio length, each clip encoded as if
alone, the speech-LoRA load, and the registered parameter count."""
import importlib.util

import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.archs.phi4_multimodal import (PHI4_AUDIO, PHI4_CHAT_TEMPLATE, PHI4_SPECIAL,
                                               PHI4_TEXT, SPEECH_LORA, SPEECH_LORA_RANK,
                                               Phi4MultimodalAdapter, load_speech_lora)
from ambiemo.alm.audio import load_audio

SR = 16_000
# Phi-4-mini-instruct's string-only chat template (its tokenizer_config.json, as public copies
# quote it): the multimodal checkpoint's tokenizer may carry this one, not the typed one.
PHI4_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message "
    "and message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] "
    "+ '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")


@pytest.fixture(scope="module")
def phi(tiny_cache):
    return load_model("tiny-phi-4-multimodal", cache_dir=tiny_cache, device="cpu")


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * SR)).astype(np.float32)


def test_registered_checkpoints():
    spec = MODELS["phi-4-multimodal"]
    assert (spec.checkpoint, spec.revision) == ("microsoft/Phi-4-multimodal-instruct", "refs/pr/70")
    assert spec.hf_class == "Phi4MultimodalForCausalLM"
    assert "speech_lora" not in spec.options       # the real model loads its speech LoRA
    assert MODELS["tiny-phi-4-multimodal"].options == {"speech_lora": None}


def test_prompt_is_the_native_template_layout_for_an_audio_part(phi):
    prompt = phi.build_prompt("Which emotion?")
    assert prompt == "<|user|><|audio|>Which emotion?<|end|><|assistant|>"
    typed = [{"role": "user", "content": [{"type": "audio"},
                                          {"type": "text", "text": "Which emotion?"}]}]
    for template, messages in ((PHI4_CHAT_TEMPLATE, typed),
                               (PHI4_MINI_TEMPLATE, phi.messages("Which emotion?"))):
        rendered = phi.tokenizer.apply_chat_template(messages, chat_template=template,
                                                     add_generation_prompt=True, tokenize=False)
        assert rendered == prompt
    # Why the tokenizer renders it: the processor loses its template on loading.
    assert type(phi.processor).__name__ == "Phi4MultimodalProcessor"
    assert phi.processor.chat_template is None
    assert phi.eos_id == phi.tokenizer.convert_tokens_to_ids("<|end|>")
    assert phi.stop_ids == sorted(phi.tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|end|>"]))
    assert all(phi.tokenizer.convert_tokens_to_ids(t) != phi.tokenizer.unk_token_id
               for t in PHI4_SPECIAL[1:])


def test_audio_gets_a_token_per_80_ms_and_long_audio_is_not_cut(phi):
    """Past 40 s the encoder works in independent 40 s chunks; no sample is dropped, so
    there is no window for the runner to report."""
    assert phi.max_audio_s is None
    token = phi.tokenizer.convert_tokens_to_ids("<|audio|>")

    def n_tokens(seconds):
        inputs = phi._inputs([Clip("x", noise(seconds))], "Which emotion?")
        return int((inputs["input_ids"] == token).sum()), inputs

    assert n_tokens(2)[0] == 25
    n, inputs = n_tokens(45)
    assert n == 563 > 500
    with torch.no_grad():
        assert phi.model(**inputs).logits.isfinite().all()


def test_each_clip_is_encoded_as_if_it_were_alone(phi, repo):
    """transformers' encoder lets a shorter clip's frames attend to its padding, so its audio
    embeddings would depend on its batch neighbours; the adapter's are the clip's own."""
    wav = repo / "data" / "demo" / "wav"
    audios = [load_audio(wav / "spk1_sad_s1.wav"), load_audio(wav / "spk3_angry_s1.wav")]
    short = int(np.argmin([len(a) for a in audios]))
    prompt = phi.build_prompt("Which emotion?")
    encoder = phi.model.model.embed_tokens_extend.audio_embed.encoder
    batch = phi.processor_inputs([prompt] * 2, audios)
    features, mask = batch["audio_input_features"], batch["audio_attention_mask"]
    alone = phi.processor_inputs([prompt], [audios[short]])
    with torch.no_grad():
        both = encoder(features, mask)
        own = encoder(alone["audio_input_features"], None)[0]
        batched = encoder.forward.args[0](features, mask)
    assert len(own) == int(alone["audio_embed_sizes"][0])
    torch.testing.assert_close(both[short, :len(own)], own, rtol=0, atol=1e-5)
    assert (batched[short, :len(own)] - own).abs().max() > 1e-3     # what the adapter avoids


class _Recorder:
    """Stands in for a model: records the peft calls."""

    def __init__(self):
        self.calls = []

    def load_adapter(self, *args, **kwargs):
        self.calls.append(("load_adapter", args, kwargs))

    def set_adapter(self, name):
        self.calls.append(("set_adapter", (name,), {}))


@pytest.fixture()
def peft_installed(monkeypatch):
    """Control whether `peft` looks importable, whatever this machine has."""
    real = importlib.util.find_spec

    def set_(installed: bool):
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
            (real("json") if installed else None) if name == "peft" else real(name, *a)))
    return set_


def test_speech_lora_is_loaded_and_activated(peft_installed, tmp_path):
    """From the hub at the model's revision; from a local copy as it is."""
    peft_installed(True)
    for checkpoint, where in (
            ("microsoft/Phi-4-multimodal-instruct", {"subfolder": "speech-lora",
                                                     "revision": "refs/pr/70"}),
            (str(tmp_path), {"subfolder": "speech-lora"})):
        model = _Recorder()
        load_speech_lora(model, checkpoint, SPEECH_LORA, "refs/pr/70")
        assert model.calls == [
            ("load_adapter", (checkpoint,), {"adapter_name": "speech", "adapter_kwargs": where}),
            ("set_adapter", ("speech",), {})]


def test_without_peft_the_speech_lora_is_an_error_not_a_silent_base_model(phi, peft_installed):
    peft_installed(False)
    with pytest.raises(ImportError, match="peft"):
        load_speech_lora(_Recorder(), "x", SPEECH_LORA)
    with pytest.raises(ImportError, match="speech_lora=None"):
        Phi4MultimodalAdapter(phi.checkpoint, name="phi-with-lora", device="cpu")


def test_registered_parameter_count_is_the_model_plus_its_speech_lora():
    """The capacity axis: the native architecture from the hub config, counted on the meta
    device, plus the rank-320 speech LoRA on the decoder's four projections."""
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(
            Phi4MultimodalConfig(**PHI4_TEXT, audio_config=PHI4_AUDIO))
    n = sum(p.numel() for p in model.parameters())
    d, ffn = PHI4_TEXT["hidden_size"], PHI4_TEXT["intermediate_size"]
    layers = PHI4_TEXT["num_hidden_layers"]
    qkv = d + 2 * PHI4_TEXT["num_key_value_heads"] * d // PHI4_TEXT["num_attention_heads"]
    lora = SPEECH_LORA_RANK * layers * ((d + qkv) + (d + d) + (d + 2 * ffn) + (ffn + d))
    assert n == pytest.approx(4.744e9, rel=1e-3)
    assert MODELS["phi-4-multimodal"].n_params == pytest.approx(n + lora, rel=1e-3)
