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
