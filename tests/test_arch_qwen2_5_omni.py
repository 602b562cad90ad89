"""Qwen2.5-Omni thinker specifics. Its processor needs torchvision, which this project
cannot install (README), so the tiny thinker is tested here without it: inputs are built
as Qwen2_5OmniProcessor builds them (Whisper features padded to the window, one
<|AUDIO|> per encoder output frame), and the shared-prefix engine, whose 1-D positions stand
in for the model's 3-D M-RoPE positions, is checked against the model's own forward and
generate()."""
import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS
from ambiemo.alm import engine as prefix_engine
from ambiemo.alm.archs.qwen2_5_omni import (OMNI_NAMED_TOKENS, OMNI_THINKERS,
                                            QWEN2_5_OMNI_CHAT_TEMPLATE, tiny_qwen2_5_omni_parts)

SR = 16_000


@pytest.fixture(scope="module")
def parts():
    return tiny_qwen2_5_omni_parts()


def omni_inputs(tok, fe, prompts, audios):
    """What Qwen2_5OmniProcessor returns for audio-only prompts (processing_qwen2_5_omni.py:
    features padded to max_length, the attention mask renamed, <|AUDIO|> repeated once per
    frame after the encoder's two stride-2 stages), batched with left padding."""
    feats = fe(audios, sampling_rate=SR, padding="max_length", return_attention_mask=True,
               return_tensors="pt")
    n = (feats["attention_mask"].sum(-1) - 1) // 2 + 1
    n = (n - 2) // 2 + 1
    audio = OMNI_NAMED_TOKENS["audio_token"]
    texts = [p.replace(audio, audio * int(k)) for p, k in zip(prompts, n)]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    return {**enc, "input_features": feats["input_features"],
            "feature_attention_mask": feats["attention_mask"]}


def prompt(tok, text):
    return tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": text}]}],
        chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False)


def test_prompt_has_the_hub_template_layout(parts):
    _, tok, _ = parts
    assert prompt(tok, "Which emotion?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|audio_bos|><|AUDIO|><|audio_eos|>Which emotion?<|im_end|>\n<|im_start|>assistant\n")


def test_engine_positions_reproduce_m_rope_for_audio_prompts(parts):
    """Prefill + teacher forcing with 1-D positions (left-padded batch) give the same
    continuation log-probabilities as one plain forward per clip, where the model builds
    its own 3-D positions; greedy decoding equals generate() token for token."""
    model, tok, fe = parts
    rng = np.random.default_rng(0)
    audios = [rng.uniform(-0.5, 0.5, int(s * SR)).astype(np.float32) for s in (2.3, 1.1)]
    p = prompt(tok, "Which emotion does the speaker express?")
    inputs = omni_inputs(tok, fe, [p, p], audios)
    assert inputs["attention_mask"][1].min() == 0           # the shorter clip is left-padded
    cont = [tok.encode("happy", add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]]
    lp = prefix_engine.teacher_force(model, prefix_engine.prefill(model, inputs), cont)[:, 0]
    for i, audio in enumerate(audios):
        one = omni_inputs(tok, fe, [p], [audio])
        ids = torch.cat([one["input_ids"], torch.tensor(cont)], dim=1)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           input_features=one["input_features"],
                           feature_attention_mask=one["feature_attention_mask"]).logits[0]
        p0 = one["input_ids"].shape[1]
        ref = torch.log_softmax(logits[p0 - 1:-1].float(), -1).gather(
            -1, torch.tensor(cont[0])[:, None]).sum()
        assert lp[i].item() == pytest.approx(ref.item(), abs=1e-3)

    stop = model.generation_config.eos_token_id
    mine, _ = prefix_engine.decode(model, prefix_engine.prefill(model, inputs), n=1, greedy=True,
                                   max_new_tokens=6, stop_ids=[stop], pad_id=tok.pad_token_id)
    with torch.inference_mode():
        ref = model.generate(**inputs, do_sample=False, max_new_tokens=6, eos_token_id=[stop],
                             pad_token_id=tok.pad_token_id)[:, inputs["input_ids"].shape[1]:]
    assert mine[:, :ref.shape[1]].tolist() == ref.tolist()


@pytest.mark.parametrize("name", sorted(OMNI_THINKERS))
def test_registered_parameter_counts_are_the_thinkers_of_the_published_configs(name):
    """The capacity axis: the thinker (what the adapter loads) of each hub config, counted
    on the meta device, and the thinker config is what transformers reads from the full
    Omni config.json (the hub checkpoints hold thinker, talker and vocoder)."""
    import tempfile

    from transformers import (Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration)

    arch = OMNI_THINKERS[name]
    full = Qwen2_5OmniConfig(thinker_config={"text_config": arch["text"],
                                             "audio_config": arch["audio"],
                                             "vision_config": arch["vision"]})
    with tempfile.TemporaryDirectory() as d:
        full.save_pretrained(d)
        thinker = Qwen2_5OmniThinkerConfig.from_pretrained(d)
    assert thinker.text_config.hidden_size == arch["text"]["hidden_size"]
    assert thinker.text_config.num_hidden_layers == arch["text"]["num_hidden_layers"]
    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(thinker)
    n = sum(p.numel() for p in model.parameters())
    assert MODELS[name].n_params == pytest.approx(n, rel=5e-3)
    assert MODELS[name].hf_class == type(model).__name__
