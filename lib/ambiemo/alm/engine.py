"""The shared-prefix sampling engine: encode and prefill each clip once, decode N samples.

Jia et al. (2026) draw N responses per clip for every model, corpus, prompt and strategy,
so sampling is the study's cost. `generate(num_return_sequences=N)` copies every clip's
inputs N times before the prefill, so the audio encoder and the prompt run N times per
clip. Here the audio is encoded and the prompt prefilled once per clip (one forward per
batch of clips), the prefix KV cache is repeated N times, and the N samples are decoded
from it with a small loop that keeps `generate()`'s semantics:

- logits processing in `generate()`'s order: the class-name constraint (a -inf mask, as
  `PrefixConstrainedLogitsProcessor`), the min-new-tokens stop mask, then the sampling
  warpers temperature, top-k, top-p (transformers' own classes); softmax + multinomial
  for sampling, argmax for greedy, float32 logits, finished rows padded;
- positions from the attention mask (left padding), as `generate()` builds them;
- each token's log-probability under the raw logits (temperature 1, unconstrained), which
  is what the adapters report as a response's log-likelihood.

Greedy output equals `generate()` token for token, and sampled class frequencies match it
within sampling error (tests/test_engine.py). `teacher_force` scores fixed continuations
(the class names) from the same prefill: `label_logits` in one batched forward.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Prefix:
    """What one prefill of B clips leaves behind. `cache` is mutated by decoding, so a
    Prefix is used once."""
    cache: object                  # transformers Cache holding the B prompts
    last_logits: torch.Tensor      # (B, V) float32: the logits after the last prompt token
    attention_mask: torch.Tensor   # (B, P) 0 on left padding
    next_pos: torch.Tensor         # (B,) the position of the first generated token


def _forward(model, *, last_only: bool, **inputs):
    """The model's forward returning (logits, cache). With `last_only` the LM head runs on
    the last position only: a prefill's (B, P, V) logits would dwarf its KV cache."""
    if last_only and hasattr(model, "model") and hasattr(model, "lm_head"):
        out = model.model(**inputs, use_cache=True)
        return model.lm_head(out.last_hidden_state[:, -1:]), out.cache
    out = model(**inputs, use_cache=True)
    return (out.logits[:, -1:] if last_only else out.logits), out.cache


@torch.inference_mode()
def prefill(model, inputs: dict) -> Prefix:
    """One forward over the prompts (audio features included) of a batch of clips."""
    mask = inputs["attention_mask"]
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    logits, cache = _forward(model, last_only=True, position_ids=pos, **inputs)
    return Prefix(cache, logits[:, -1].float(), mask, pos[:, -1] + 1)


def warpers(*, temperature: float, top_k: int, top_p: float) -> list[Callable]:
    """generate()'s sampling warpers for these settings, in generate()'s order."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
    out = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p))
    return out


@torch.inference_mode()
def decode(model, prefix: Prefix, *, n: int, greedy: bool, max_new_tokens: int,
           stop_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, allowed: Callable[[tuple], list[int]] | None = None,
           min_new_tokens: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` continuations per prefix row, rows in clip order then sample order.

    `allowed(tokens_so_far) -> token ids` restricts each step (constrained decoding);
    `min_new_tokens` masks the stop tokens until that many tokens exist (benchmarks use it
    to force an exact length). Returns (tokens, token_logp), both (B*n, T): the chosen ids
    (padding after a row's stop token) and each id's log-probability under the raw logits.
    The RNG is torch's global one, seeded by the caller as for generate().
    """
    cache, logits = prefix.cache, prefix.last_logits
    rows = logits.shape[0] * n
    device = logits.device
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
    mask = prefix.attention_mask.repeat_interleave(n, dim=0)
    pos = prefix.next_pos.repeat_interleave(n, dim=0)
    stops = torch.tensor(list(stop_ids), device=device)
    warp = [] if greedy else warpers(temperature=temperature, top_k=top_k, top_p=top_p)
    unfinished = torch.ones(rows, dtype=torch.bool, device=device)
    ones = torch.ones(rows, 1, dtype=mask.dtype, device=device)
    tokens, token_logp, mask_cache = [], [], {}
    for step in range(max_new_tokens):
        scores = logits
        if allowed is not None:
            so_far = torch.stack(tokens, 1).tolist() if tokens else [[]] * rows
            scores = scores + torch.stack([_allowed_mask(allowed, tuple(t), mask_cache, scores)
                                           for t in so_far])
        if step < min_new_tokens:
            scores = scores.index_fill(-1, stops, -float("inf"))
        for w in warp:
            scores = w(None, scores)
        if greedy:
            nxt = scores.argmax(-1)
        else:
            nxt = torch.multinomial(torch.softmax(scores, -1), 1).squeeze(1)
        nxt = torch.where(unfinished, nxt, pad_id)
        tokens.append(nxt)
        token_logp.append(torch.log_softmax(logits, -1).gather(-1, nxt[:, None]).squeeze(1))
        unfinished &= ~torch.isin(nxt, stops)
        if step + 1 == max_new_tokens or not unfinished.any():
            break
        mask = torch.cat([mask, ones], dim=1)
        out, cache = _forward(model, last_only=True, input_ids=nxt[:, None], attention_mask=mask,
                              position_ids=pos[:, None], cache=cache)
        logits = out[:, -1].float()
        pos = pos + 1
    return torch.stack(tokens, 1), torch.stack(token_logp, 1)


def _allowed_mask(allowed, prefix: tuple, memo: dict, like: torch.Tensor) -> torch.Tensor:
    """0 on the tokens `allowed(prefix)` permits, -inf elsewhere (memoised per prefix)."""
    if prefix not in memo:
        m = torch.full(like.shape[-1:], -float("inf"), dtype=like.dtype, device=like.device)
        m[allowed(prefix)] = 0
        memo[prefix] = m
    return memo[prefix]


@torch.inference_mode()
def teacher_force(model, prefix: Prefix, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, K) log-probability of each of K token sequences after each of B prompts: the
    prefix cache is repeated K times and all continuations run in one forward. Shorter
    sequences are right-padded; causal attention keeps padding out of the real tokens."""
    b, k = prefix.last_logits.shape[0], len(sequences)
    longest = max(len(s) for s in sequences)
    device = prefix.last_logits.device
    ids = torch.zeros(k, longest, dtype=torch.long, device=device)
    valid = torch.zeros(k, longest, dtype=torch.bool, device=device)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = torch.tensor(list(s), device=device)
        valid[i, :len(s)] = True
    ids, valid = ids.repeat(b, 1), valid.repeat(b, 1)          # row b*K + k
    first = torch.log_softmax(prefix.last_logits, -1).repeat_interleave(k, dim=0)
    logp = [first.gather(-1, ids[:, :1])]
    if longest > 1:
        prefix.cache.batch_repeat_interleave(k)
        mask = prefix.attention_mask.repeat_interleave(k, dim=0)
        mask = torch.cat([mask, torch.ones_like(ids[:, :-1], dtype=mask.dtype)], dim=1)
        pos = prefix.next_pos.repeat_interleave(k, dim=0)[:, None] + torch.arange(longest - 1, device=device)
        logits, _ = _forward(model, last_only=False, input_ids=ids[:, :-1], attention_mask=mask,
                             position_ids=pos, cache=prefix.cache)
        logp.append(torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1))
    logp = torch.cat(logp, dim=1)
    return (logp * valid).sum(1).view(b, k)
