"""Independent reference computations the tests compare the library against."""
import torch


def teacher_forced_logp(adapter, clip, user_text: str, continuation: list[int]) -> float:
    """Log-likelihood of `continuation` after the clip's prompt, from one plain forward pass
    of the whole sequence (no cache, no batching, no padding)."""
    inputs = adapter.processor(text=[adapter.build_prompt(user_text)], audio=[clip.audio],
                               sampling_rate=16000, return_tensors="pt")
    ids = torch.tensor([continuation])
    full = torch.cat([inputs["input_ids"], ids], dim=1)
    with torch.no_grad():
        logits = adapter.model(input_ids=full, attention_mask=torch.ones_like(full),
                               input_features=inputs["input_features"],
                               feature_attention_mask=inputs["feature_attention_mask"]).logits
    p0 = inputs["input_ids"].shape[1]
    logp = torch.log_softmax(logits[0, p0 - 1:-1].float(), -1)
    return logp.gather(-1, ids[0, :, None]).sum().item()
