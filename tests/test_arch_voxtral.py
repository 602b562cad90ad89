"""Voxtral specifics beyond the shared conformance tests (tests/test_adapters.py): the
prompt mistral-common builds, the text path against the processor's own
`apply_chat_template`, control tokens, the audio window, the tiny checkpoint's layout and
the registered parameter counts."""
import json
import sys

import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.archs.voxtral import (VOXTRAL_ENCODER, VOXTRAL_MINI_TEXT, VOXTRAL_SMALL_TEXT,
                                       VoxtralAdapter, require_mistral_common)
from ambiemo.alm.audio import TARGET_SR, load_audio

Q = "Which emotion does the speaker express?"


@pytest.fixture(scope="module")
def vox(tiny_cache):
    return load_model("tiny-voxtral", cache_dir=tiny_cache, device="cpu")


@pytest.fixture(scope="module")
def clips(repo):
    # 2.1 s, 0.7 s and 1.0 s: two 2 s chunks for the first, one for the others.
    ids = ["spk1_sad_s1", "spk2_happy_s2", "spk3_angry_s1"]
    out = [Clip(u, load_audio(repo / "data" / "demo" / "wav" / f"{u}.wav")) for u in ids]
    return [out[0], Clip(out[1].utt_id, out[1].audio[: len(out[1].audio) // 2]), out[2]]


def test_prompt_is_mistral_commons_chat_with_one_audio_placeholder(vox):
    assert vox.build_prompt(Q) == f"<s>[INST][BEGIN_AUDIO][AUDIO]{Q}[/INST]"


def test_text_prompts_give_exactly_the_processors_own_inputs(vox, clips):
    """processor_inputs (verify's prefix, the tests' references) against
    VoxtralProcessor.apply_chat_template (generate, beam, label scores): same ids, padding
    and mel windows, one [AUDIO] per 80 ms of each clip padded to whole chunks."""
    real = vox._inputs(clips, Q)
    text = vox.processor_inputs([vox.build_prompt(Q)] * len(clips), [c.audio for c in clips])
    assert set(real) == set(text) == {"input_ids", "attention_mask", "input_features"}
    for key in real:
        assert torch.equal(real[key], text[key]), key
    cfg = vox.audio_encoder.audio_config
    per_chunk = int(cfg.chunk_length_s * cfg.frame_rate)
    n_audio = (real["input_ids"] == vox.processor.audio_token_id).sum(1).tolist()
    assert n_audio == [2 * per_chunk, per_chunk, per_chunk]
    assert real["input_features"].shape == (4, 128, vox.audio_kwargs()["max_source_positions"])
    assert (real["attention_mask"][1:, :per_chunk] == 0).all()      # left padding


def test_only_the_adapters_tokenizer_reads_control_tokens_in_text(vox):
    backend = vox.processor.tokenizer
    assert vox.tokenizer.encode("[/INST]", add_special_tokens=False) == [4]
    assert backend.encode("[/INST]", add_special_tokens=False) != [4]   # mistral-common's rule
    assert vox.tokenizer.encode("sad", add_special_tokens=False) == \
        backend.encode("sad", add_special_tokens=False)
    ids = vox.tokenizer.encode("x</s>", add_special_tokens=True)
    assert (ids[0], ids[-1]) == (1, 2)            # <s> added, </s> read as end of sequence
    assert (vox.eos_id, vox.stop_ids, vox.pad_id) == (2, [2], 11)


def test_audio_past_the_window_is_cut(vox, clips, monkeypatch):
    """The model card's 40 min of audio understanding; the processor itself cuts nothing."""
    assert vox.max_audio_s == 40 * 60
    monkeypatch.setattr(vox, "max_audio_s", 1.0)
    long = clips[0].audio                                               # 2.1 s
    prompt = vox.build_prompt(Q)
    cut = vox.processor_inputs([prompt], [long])
    first_second = vox.processor_inputs([prompt], [long[:TARGET_SR]])
    assert torch.equal(cut["input_ids"], first_second["input_ids"])
    assert torch.equal(vox._inputs([clips[0]], Q)["input_features"], cut["input_features"])


def test_generate_copies_misorder_a_multi_chunk_clips_audio_and_merged_inputs_do_not(vox, clips):
    """Why generate() on the processor's inputs is the odd one out for Voxtral samples and
    beams (the engine equals generate() on `generate_inputs`: tests/test_engine_paths.py).
    generate() copies every input tensor row by row (repeat_interleave), but
    `input_features` holds one mel window per 2 s chunk: the 2-chunk clip's windows
    [a0, a1] copied 3 times become a0 a0 a0 a1 a1 a1, so its copies read (a0, a0), (a0, a1)
    and (a1, a1). Exactly copies 0 and 2 of that clip get other first-step logits than the
    clip's own prefill; with the audio merged into the embeddings first, none does (raw
    logits: what sampling then draws from)."""
    from ambiemo.alm.hf import engine

    inp = vox._inputs([clips[0], clips[2]], Q)                  # 2 chunks, 1 chunk
    assert inp["input_features"].shape[0] == 3
    own = engine.prefill(vox.model, inp).last_logits.repeat_interleave(3, dim=0)

    def first_step(inputs):
        out = vox.model.generate(**inputs, num_return_sequences=3, do_sample=True,
                                 max_new_tokens=1, return_dict_in_generate=True,
                                 output_logits=True, pad_token_id=vox.pad_id)
        return out.logits[0].float()

    off = (first_step(inp) - own).abs().amax(-1)
    assert (off[[0, 2]] > 1e-3).all(), off                      # (a0, a0) and (a1, a1)
    assert (off[[1, 3, 4, 5]] < 1e-5).all(), off                # (a0, a1) and the 1-chunk clip
    torch.testing.assert_close(first_step(vox.generate_inputs(inp, 3)), own,
                               atol=1e-5, rtol=0)
    assert vox.generate_inputs(inp, 1) is inp                   # no copies: features as they are


def test_tiny_checkpoint_has_the_released_file_layout(vox, tiny_cache):
    from transformers import MistralCommonBackend, VoxtralProcessor

    path = next((tiny_cache / "tiny").glob("voxtral-v*"))
    assert (path / "tekken.json").is_file() and not (path / "tokenizer.json").exists()
    assert isinstance(vox.processor, VoxtralProcessor)
    assert isinstance(vox.processor.tokenizer, MistralCommonBackend)
    tekken = json.loads((path / "tekken.json").read_text())
    rank = {t["token_str"]: t["rank"] for t in tekken["special_tokens"]}
    assert rank["[AUDIO]"] == vox.processor.audio_token_id == vox.model.config.audio_token_id == 24
    assert (rank["<s>"], rank["</s>"], rank["[INST]"], rank["[/INST]"], rank["<pad>"],
            rank["[BEGIN_AUDIO]"]) == (1, 2, 3, 4, 11, 25)
    assert tekken["config"]["default_vocab_size"] == vox.model.config.text_config.vocab_size
    audio = tekken["audio"]
    assert (audio["sampling_rate"], audio["frame_rate"]) == (TARGET_SR, 12.5)
    assert audio["audio_encoding_config"] == {"num_mel_bins": 128, "hop_length": 160,
                                              "window_size": 400}


def test_a_tokenizer_whose_chunk_the_encoder_cannot_take_is_refused(vox):
    from transformers import VoxtralForConditionalGeneration

    config = vox.model.config.__class__.from_dict(vox.model.config.to_dict())
    config.audio_config.max_source_positions *= 2
    with pytest.raises(ValueError, match="mel frames"):
        VoxtralAdapter.from_parts(VoxtralForConditionalGeneration(config), vox.processor,
                                  name="mismatched", device="cpu")


def test_missing_mistral_common_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mistral_common", None)
    with pytest.raises(ImportError, match=r"pip install -e \.\[voxtral\]"):
        require_mistral_common()


@pytest.mark.parametrize("name, text", [("voxtral-mini-3b", VOXTRAL_MINI_TEXT),
                                        ("voxtral-small-24b", VOXTRAL_SMALL_TEXT)])
def test_registered_parameter_counts_are_the_published_architectures(name, text):
    """The capacity axis, counted on the meta device (no weights)."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    config = VoxtralConfig(audio_config=VOXTRAL_ENCODER, text_config=text, audio_token_id=24)
    with torch.device("meta"):
        model = VoxtralForConditionalGeneration(config)
    assert MODELS[name].n_params == sum(p.numel() for p in model.parameters())
    assert MODELS[name].hf_class == type(model).__name__
    reported = {"voxtral-mini-3b": 4.7e9, "voxtral-small-24b": 24.3e9}[name]   # arXiv 2507.13264
    assert np.isclose(MODELS[name].n_params, reported, rtol=0.01)
