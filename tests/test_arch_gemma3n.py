"""Gemma-3n specifics beyond the shared conformance tests (tests/test_adapters.py run on
`tiny-gemma-3n`): the chat layout, the 30 s audio window, each clip encoded as if alone, the
tokenizer and image tower of the tiny checkpoint, and the registered parameter counts."""
import numpy as np
import pytest
import torch

from ambiemo.alm import MODELS, Clip, load_model
from ambiemo.alm.archs.gemma3n import GEMMA3N_TEXT, WINDOW_S
from ambiemo.alm.audio import TARGET_SR

PROMPT = ("<bos><start_of_turn>user\n<audio_soft_token>Which emotion?<end_of_turn>\n"
          "<start_of_turn>model\n")


@pytest.fixture(scope="module")
def gemma(tiny_cache):
    return load_model("tiny-gemma-3n", cache_dir=tiny_cache, device="cpu")


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, int(seconds * TARGET_SR)).astype(np.float32)


def test_registered_checkpoints():
    for name, hub in (("gemma-3n-e2b", "google/gemma-3n-E2B-it"),
                      ("gemma-3n-e4b", "google/gemma-3n-E4B-it")):
        spec = MODELS[name]
        assert (spec.checkpoint, spec.hf_class) == (hub, "Gemma3nForConditionalGeneration")


def test_prompt_is_the_hub_template_with_one_bos_and_the_expanded_audio(gemma):
    assert gemma.build_prompt("Which emotion?") == PROMPT
    assert type(gemma.processor).__name__ == "Gemma3nProcessor"
    ids = gemma._inputs([Clip("x", noise(2))], "Which emotion?")["input_ids"][0].tolist()
    tok = gemma.tokenizer
    bos, audio = tok.bos_token_id, tok.convert_tokens_to_ids("<audio_soft_token>")
    assert ids[0] == bos and ids[1] != bos
    # The template begins with <bos>; the processor's default call would add a second one.
    plain = gemma.processor(text=[PROMPT], audio=[noise(2)], sampling_rate=TARGET_SR,
                            return_tensors="pt")["input_ids"][0].tolist()
    assert plain[:2] == [bos, bos]
    text = tok.decode(ids)
    assert text == PROMPT.replace("<audio_soft_token>", "\n\n<start_of_audio>"
                                  + "<audio_soft_token>" * 188 + "<end_of_audio>\n\n")
    assert ids.count(audio) == 188
    assert gemma.eos_id == tok.convert_tokens_to_ids("<end_of_turn>")
    assert gemma.stop_ids == sorted(tok.convert_tokens_to_ids(["<eos>", "<end_of_turn>"]))


def test_audio_past_30_s_is_truncated_and_always_fills_188_tokens(gemma):
    assert gemma.max_audio_s == WINDOW_S == 30.0
    long, cut = noise(35), noise(35)[: int(30 * TARGET_SR)]
    a, b = (gemma.processor_inputs([PROMPT], [x]) for x in (long, cut))
    torch.testing.assert_close(a["input_features"], b["input_features"])
    assert a["input_ids"].shape == gemma.processor_inputs([PROMPT], [noise(2)])["input_ids"].shape


def test_each_clip_is_encoded_as_if_it_were_alone(gemma):
    """Batched, the feature extractor counts a shorter clip's padding as frames and the
    subsampling convolutions read past its end; the adapter's encoding is the clip's own."""
    audios = [noise(1.0, 1), noise(1.5, 2)]
    tower = gemma.model.model.audio_tower
    batch = gemma.processor_inputs([PROMPT] * 2, audios)
    alone = gemma.processor_inputs([PROMPT], audios[:1])
    plain = gemma.processor(text=[PROMPT] * 2, audio=audios, sampling_rate=TARGET_SR,
                            return_tensors="pt", add_special_tokens=False)
    assert plain["input_features_mask"][0].sum() > alone["input_features_mask"][0].sum()
    with torch.no_grad():
        own = tower(alone["input_features"], ~alone["input_features_mask"]).last_hidden_state[0]
        both = tower(batch["input_features"], ~batch["input_features_mask"]).last_hidden_state[0]
        unsplit = tower.forward.args[0](batch["input_features"], ~batch["input_features_mask"])
    torch.testing.assert_close(both[:len(own)], own, rtol=0, atol=1e-5)
    assert (unsplit.last_hidden_state[0, :len(own)] - own).abs().max() > 1e-3    # avoided


def test_tiny_tokenizer_spells_prompts_in_gemmas_alphabet(gemma):
    tok = gemma.tokenizer
    text = "Listen to the speech. Which emotion does the speaker express? Answer: sad, happy."
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.unk_token_id not in ids and tok.decode(ids) == text
    assert "▁the" in tok.convert_ids_to_tokens(ids)     # a space is "▁", not byte-level "Ġ"
    # Image and audio tokens open the ids the model embeds through its image / audio tables.
    text_config = gemma.model.config.text_config
    assert tok.convert_tokens_to_ids("<end_of_image>") == text_config.vocab_size_per_layer_input
    audio_config = gemma.model.config.audio_config
    assert tok.convert_tokens_to_ids("<end_of_audio>") == audio_config.vocab_offset
    assert len(tok) == text_config.vocab_size


def test_tiny_image_tower_is_timms_mobilenet_v5_and_gives_256_soft_tokens(gemma):
    """Never used by the study (audio only), but the real encoder class, built through timm
    and loaded with the checkpoint, must accept a 768 px image."""
    from PIL import Image

    assert type(gemma.model.model.vision_tower.timm_model).__name__ == "MobileNetV5Encoder"
    rgb = np.random.default_rng(0).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    pixels = gemma.processor.image_processor(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        soft = gemma.model.model.get_image_features(pixels).pooler_output
    assert soft.shape == (1, 256, gemma.model.config.text_config.hidden_size)


@pytest.mark.parametrize("name, google", [("gemma-3n-e2b", 5.44e9), ("gemma-3n-e4b", 7.85e9)])
def test_registered_parameter_counts_are_the_published_architectures(name, google):
    """The capacity axis: the hub configs counted on the meta device. Google's raw counts
    add the k/v projections of the KV-sharing layers, which transformers never builds."""
    from transformers import Gemma3nConfig, Gemma3nForConditionalGeneration

    text = GEMMA3N_TEXT[name]
    with torch.device("meta"):
        model = Gemma3nForConditionalGeneration(Gemma3nConfig(text_config=text))
    n = sum(p.numel() for p in model.parameters())
    assert MODELS[name].n_params == pytest.approx(n, rel=1e-3)
    c = model.config.text_config
    kv_width = c.num_key_value_heads * c.head_dim
    unused_kv = text["num_kv_shared_layers"] * 2 * c.hidden_size * kv_width
    assert n + unused_kv == pytest.approx(google, rel=1e-3)
