"""Beam search from a shared prefill, with generate()'s rules.

Beam search is one of the candidate generators of Jia et al. (2026)'s test-time scaling
study. `generate(num_beams=B)` repeats each clip's inputs B times before its prefill; here
the clip is prefilled once (alm/hf/engine/decode.py) and its B beams continue it
(alm/hf/engine/continuations.py), the prompt cache shared by the beams.

The search is transformers' vectorised beam search (GenerationMixin._beam_search, 5.x)
step for step: log-softmax of the float32 logits, the class-name constraint as
`PrefixConstrainedLogitsProcessor` applies it (a -inf mask, and its fallback when every
allowed token of a clip is -inf), the top 2*B (more with several stop tokens) candidates of
all beams, running beams = the best unfinished candidates, a finished candidate among the
top B enters the kept hypotheses with score sum(logp) / length**length_penalty, the
early-stopping heuristic, and the stopping rule. tests/test_engine.py checks the result
against generate() on the tiny model.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from ambiemo.alm.hf.engine.continuations import Continuations, Prefix

NEG = -1.0e9   # generate()'s "impossible" score


class Beams(NamedTuple):
    """The `beams` best finished hypotheses per clip, clip-major, best first."""
    tokens: torch.Tensor       # (B*beams, T) ids; after a hypothesis ends: the fill id
    token_logp: torch.Tensor   # (B*beams, T) each id's log-prob under the raw logits; 0 after the end
    scores: torch.Tensor       # (B*beams,) generate()'s sequences_scores (length-penalised)


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    while idx.dim() < t.dim():
        idx = idx.unsqueeze(-1)
    return torch.take_along_dim(t, idx, dim=1)


def _constrain(log_probs, tokens_so_far, allowed, clips, beams):
    """`PrefixConstrainedLogitsProcessor` on (R, V) scores for rows' `tokens_so_far`."""
    mask = torch.full_like(log_probs, -float("inf"))
    for r, prefix in enumerate(tokens_so_far.tolist()):
        mask[r, allowed(tuple(prefix))] = 0
    out = log_probs + mask
    stuck = out.amax(-1).isneginf().view(clips, -1).all(-1, keepdim=True)
    return torch.where(stuck.repeat_interleave(beams, dim=0), mask, out)


@torch.inference_mode()
def beam_search(model, prefix: Prefix, *, beams: int, max_new_tokens: int,
                stop_ids: Sequence[int], pad_id: int,
                allowed: Callable[[tuple], list[int]] | None = None, length_penalty: float = 1.0,
                early_stopping: bool | str = True, prefix_sharing: str = "auto") -> Beams:
    """`beams` hypotheses per clip of `prefix`, as generate(num_beams=beams,
    num_return_sequences=beams, do_sample=False, early_stopping=..., length_penalty=...)."""
    if beams < 1 or max_new_tokens < 1:
        raise ValueError(f"beams and max_new_tokens must be >= 1, got {beams}, {max_new_tokens}")
    clips, vocab = prefix.last_logits.shape
    device = prefix.last_logits.device
    stops = torch.tensor(list(stop_ids), device=device)
    keep = max(2, 1 + len(stops)) * beams
    top_b = torch.arange(keep, device=device) < beams
    fill = pad_id if pad_id else int(stops[0])          # generate(): `pad or eos[0]`
    run_seq = torch.full((clips, beams, max_new_tokens), fill, dtype=torch.long, device=device)
    run_tok = torch.zeros(clips, beams, max_new_tokens, device=device)
    run_score = torch.zeros(clips, beams, device=device)
    run_score[:, 1:] = NEG           # only the first beam's tokens count at the first step
    seqs, toks = run_seq.clone(), run_tok.clone()
    lengths = torch.zeros(clips, beams, dtype=torch.long, device=device)
    scores = torch.full((clips, beams), NEG, device=device)
    finished = torch.zeros(clips, beams, dtype=torch.bool, device=device)
    improvable = torch.ones(clips, 1, dtype=torch.bool, device=device)
    offsets = torch.arange(clips, device=device)[:, None] * beams

    rows = Continuations(model, prefix, beams, sharing=prefix_sharing)
    logits = prefix.last_logits.repeat_interleave(beams, dim=0)
    for t in range(max_new_tokens):
        raw = torch.log_softmax(logits, -1)
        log_probs = raw if allowed is None else _constrain(
            raw, run_seq[:, :, :t].reshape(clips * beams, t), allowed, clips, beams)
        acc = (log_probs.view(clips, beams, vocab) + run_score[:, :, None]).view(clips, -1)
        top_lp, top_idx = torch.topk(acc, k=keep)
        src, ids = top_idx // vocab, top_idx % vocab
        top_seq, top_tok = _gather(run_seq, src), _gather(run_tok, src)
        top_seq[:, :, t] = ids
        top_tok[:, :, t] = raw.view(clips, beams, vocab)[
            torch.arange(clips, device=device)[:, None], src, ids]
        hits = torch.isin(ids, stops) | (t + 1 >= max_new_tokens)

        # The best unfinished candidates run on.
        top_running = top_lp + hits.float() * NEG
        nxt = torch.topk(top_running, k=beams)[1]
        run_seq, run_tok = _gather(top_seq, nxt), _gather(top_tok, nxt)
        run_score, run_src = _gather(top_running, nxt), _gather(src, nxt)

        # Finished candidates among the top `beams` may displace kept hypotheses.
        just = hits & top_b[None, :]
        cand = top_lp / ((t + 1) ** length_penalty)
        cand = cand + (finished.all(-1, keepdim=True) & (early_stopping is True)).float() * NEG
        cand = cand + (~improvable).float() * NEG
        cand = cand + (~just) * NEG
        best = torch.topk(torch.cat([scores, cand], 1), k=beams)[1]
        seqs = _gather(torch.cat([seqs, top_seq], 1), best)
        toks = _gather(torch.cat([toks, top_tok], 1), best)
        lengths = _gather(torch.cat([lengths, torch.full_like(ids, t + 1)], 1), best)
        scores = _gather(torch.cat([scores, cand], 1), best)
        finished = _gather(torch.cat([finished, just], 1), best)

        # generate()'s early-stop heuristic and stopping rule.
        best_len = max_new_tokens if (early_stopping == "never" and length_penalty > 0) else t + 1
        best_running = run_score[:, :1] / (best_len ** length_penalty)
        worst_kept = torch.where(finished, scores.min(1, keepdim=True)[0], NEG)
        improvable = improvable & (best_running > worst_kept).any(-1, keepdim=True)
        if not (improvable.any() and not (finished.all() and early_stopping is True)
                and not hits.all()):
            break
        rows.reorder((run_src + offsets).view(-1))
        logits = rows.forward(run_seq[:, :, t].reshape(-1, 1))[:, -1]

    width = int(lengths.max())
    toks = toks.masked_fill(torch.arange(max_new_tokens, device=device) >= lengths[..., None], 0)
    return Beams(seqs[:, :, :width].reshape(clips * beams, width),
                 toks[:, :, :width].reshape(clips * beams, width), scores.reshape(-1))
