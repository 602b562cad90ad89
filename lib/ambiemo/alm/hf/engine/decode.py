"""The shared-prefix sampling engine: encode and prefill each clip once, decode N samples.

Jia et al. (2026) draw N responses per clip for every model, corpus, prompt and strategy,
so sampling is the study's cost. `generate(num_return_sequences=N)` copies every clip's
inputs N times before the prefill, so the audio encoder and the prompt run N times per
clip. Here the audio is encoded and the prompt prefilled once per clip (one forward per
batch of clips), and the N samples are decoded from that prefix with a small loop that
keeps `generate()`'s semantics. By default the N rows of a clip read one copy of its
prompt's KV cache (shared-prefix attention, shared.py) instead of N copies
(`prefix_sharing="repeat"`, kept for comparison):

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
`beam_search` (beam.py) is generate()'s beam search from the same prefill.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ambiemo.alm.hf.engine.continuations import SHARING, Continuations, Prefix, forward_logits

__all__ = ["SHARING", "Prefix", "beam_search", "decode", "prefill", "teacher_force", "warpers"]


@torch.inference_mode()
def prefill(model, inputs: dict) -> Prefix:
    """One forward over the prompts (audio features included) of a batch of clips."""
    mask = inputs["attention_mask"]
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    logits, cache = forward_logits(model, last_only=True, position_ids=pos, **inputs)
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
           min_new_tokens: int = 0, prefix_sharing: str = "auto", static_cache: bool = False,
           compile: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` continuations per prefix row, rows in clip order then sample order.

    `allowed(tokens_so_far) -> token ids` restricts each step (constrained decoding);
    `min_new_tokens` masks the stop tokens until that many tokens exist (benchmarks use it
    to force an exact length); `prefix_sharing` is how the rows hold the prompt
    (alm/hf/engine/continuations.py: `auto`, `shared`, `repeat`); `static_cache` preallocates the
    per-sample cache for `max_new_tokens` and `compile` runs each step through
    `torch.compile` (both need shared sharing; meant for GPUs, where the per-step overhead
    dominates). Returns (tokens, token_logp), both
    (B*n, T): the chosen ids (padding after a row's stop token) and each id's
    log-probability under the raw logits. The RNG is torch's global one, seeded by the
    caller as for generate().
    """
    rows_state = Continuations(model, prefix, n, sharing=prefix_sharing, compile=compile,
                               static_capacity=max_new_tokens if static_cache else None)
    logits = prefix.last_logits.repeat_interleave(n, dim=0) if n > 1 else prefix.last_logits
    rows, device = rows_state.rows, logits.device
    stops = torch.tensor(list(stop_ids), device=device)
    warp = [] if greedy else warpers(temperature=temperature, top_k=top_k, top_p=top_p)
    unfinished = torch.ones(rows, dtype=torch.bool, device=device)
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
        logits = rows_state.forward(nxt[:, None])[:, -1]
    return torch.stack(tokens, 1), torch.stack(token_logp, 1)


def _allowed_mask(allowed, prefix: tuple, memo: dict, like: torch.Tensor) -> torch.Tensor:
    """0 on the tokens `allowed(prefix)` permits, -inf elsewhere (memoised per prefix)."""
    if prefix not in memo:
        m = torch.full(like.shape[-1:], -float("inf"), dtype=like.dtype, device=like.device)
        m[allowed(prefix)] = 0
        memo[prefix] = m
    return memo[prefix]


@torch.inference_mode()
def teacher_force(model, prefix: Prefix, sequences: Sequence[Sequence[int]], *,
                  prefix_sharing: str = "auto") -> torch.Tensor:
    """(B, K) log-probability of each of K token sequences after each of B prompts: all
    continuations run from the prefix in one forward (B*K rows). Shorter sequences are
    right-padded; causal attention keeps padding out of the real tokens."""
    b, k = prefix.last_logits.shape[0], len(sequences)
    if k == 0 or any(len(s) == 0 for s in sequences):
        raise ValueError("teacher_force needs at least one sequence, none of them empty")
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
        rows = Continuations(model, prefix, k, sharing=prefix_sharing)
        logits = rows.forward(ids[:, :-1], last_only=False)
        logp.append(torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1))
    logp = torch.cat(logp, dim=1)
    return (logp * valid).sum(1).view(b, k)

