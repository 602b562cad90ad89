"""Independent reference computations the tests compare the library against."""
import torch


def full_forward_logits(adapter, clip, prompt: str, continuation: list[int]) -> tuple[torch.Tensor, int]:
    """Logits of one plain forward pass over `prompt` (already chat-formatted, with the
    clip's audio) followed by `continuation`: no cache, no batching, no padding. Returns
    (logits (T, V), prompt length)."""
    inputs = adapter.processor_inputs([prompt], [clip.audio])
    ids = torch.tensor([continuation], dtype=inputs["input_ids"].dtype)
    full = torch.cat([inputs["input_ids"], ids], dim=1)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    for k, v in list(extra.items()):
        # Per-token side inputs (e.g. token type ids) extend over the continuation as text.
        if torch.is_tensor(v) and v.shape[:2] == inputs["input_ids"].shape:
            extra[k] = torch.cat([v, torch.zeros_like(ids, dtype=v.dtype)], dim=1)
    with torch.no_grad():
        logits = adapter.model(input_ids=full, attention_mask=torch.ones_like(full), **extra).logits
    return logits[0].float(), inputs["input_ids"].shape[1]


def teacher_forced_logp(adapter, clip, user_text: str, continuation: list[int]) -> float:
    """Log-likelihood of `continuation` after the clip's prompt, from one full forward."""
    logits, p0 = full_forward_logits(adapter, clip, adapter.build_prompt(user_text), continuation)
    logp = torch.log_softmax(logits[p0 - 1:-1], -1)
    return logp.gather(-1, torch.tensor(continuation)[:, None]).sum().item()


def meta_thinker(full_config_class, thinker_config_class, model_class, arch: dict):
    """An Omni model's thinker on the meta device, its config read back the way transformers
    reads it from a full Omni config.json (thinker + talker + vocoder) with the `arch`
    sub-configs ("text", "audio", "vision"): what the registered parameter count counts."""
    import tempfile

    full = full_config_class(thinker_config={f"{k}_config": arch[k] for k in ("text", "audio", "vision")})
    with tempfile.TemporaryDirectory() as d:
        full.save_pretrained(d)
        thinker = thinker_config_class.from_pretrained(d)
    assert thinker.text_config.num_hidden_layers == arch["text"]["num_hidden_layers"]
    with torch.device("meta"):
        return model_class(thinker)

