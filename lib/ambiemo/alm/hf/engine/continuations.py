"""Rows that continue one prefill: the state every decoding loop of the engine steps.

Jia et al. (2026) sample N answers, score class names and run beam search per clip; all of
them continue the same prompt. A prefill (alm/hf/engine/decode.py) leaves a `Prefix`; `Continuations`
turns it into B*n rows (clip-major) and runs the model on the rows' next tokens, with the
positions and attention masks generate() would use. Two ways to hold the prompt:

- `shared` (alm/hf/engine/shared.py): the prompt's KV cache stays once per clip and only the
  generated tokens are cached per row; the Prefix is left intact and can be decoded again;
- `repeat`: the prompt's cache is repeated n times (`batch_repeat_interleave`), plain
  transformers attention; this consumes the Prefix.

`auto` (the default) is `shared` whenever it is exact for the model (full-attention cache
layers, SDPA or eager attention), else `repeat`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ambiemo.alm.hf.engine import shared as engine_shared

SHARING = ("auto", "shared", "repeat")


@dataclass
class Prefix:
    """What one prefill of B clips leaves behind. With `repeat` sharing the cache is
    mutated by decoding (`consumed` is then set: the Prefix cannot serve another decode);
    `shared` only reads it, so one Prefix can serve several."""
    cache: object                  # transformers Cache holding the B prompts
    last_logits: torch.Tensor      # (B, V) float32: the logits after the last prompt token
    attention_mask: torch.Tensor   # (B, P) 0 on left padding
    next_pos: torch.Tensor         # (B,) the position of the first generated token
    consumed: bool = False


def forward_logits(model, *, last_only: bool, **inputs):
    """The model's forward returning (logits, cache). With `last_only` the LM head runs on
    the last position only: a prefill's (B, P, V) logits would dwarf its KV cache. Not every
    ALM's forward takes `logits_to_keep` (Qwen2-Audio and the Omni thinkers do not), so the
    output embedding is given the last hidden state through a pre-hook, which works for all.
    A one-token decoding step needs no hook (and a compiled step must not see a new one)."""
    ids = inputs.get("input_ids")
    if not last_only or (ids is not None and ids.shape[1] == 1 and "input_features" not in inputs):
        out = model(**inputs, use_cache=True)
        return out.logits, out.cache
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _m, args: (args[0][:, -1:], *args[1:]))
    try:
        out = model(**inputs, use_cache=True)
    finally:
        handle.remove()
    return out.logits[:, -1:], out.cache


_COMPILED: dict[int, object] = {}


def _compiled(model):
    """One `torch.compile` wrapper per model (compiled graphs are reused across calls).
    dynamic=True: the suffix grows one token per step, which must not recompile."""
    key = id(model)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(model, dynamic=True)
    return _COMPILED[key]


def resolve_sharing(model, prefix: Prefix, sharing: str) -> str:
    if sharing not in SHARING:
        raise ValueError(f"prefix_sharing must be one of {SHARING}, got {sharing!r}")
    if sharing == "repeat":
        return sharing
    why_not = engine_shared.supports_sharing(model, prefix.cache)
    if why_not and sharing == "shared":
        raise ValueError(f"prefix_sharing='shared' is not exact here: {why_not}; use 'repeat'")
    return "repeat" if why_not else "shared"


class Continuations:
    """B*n rows continuing a Prefix of B clips (row r continues clip r // n)."""

    def __init__(self, model, prefix: Prefix, n: int, *, sharing: str = "auto",
                 static_capacity: int | None = None, compile: bool = False):
        """`static_capacity`: preallocate the per-row cache for that many tokens (shared
        sharing only); `compile`: run the decoding forward through `torch.compile`."""
        self.model, self.n = model, n
        self.sharing = resolve_sharing(model, prefix, sharing)
        if (static_capacity or compile) and self.sharing != "shared":
            raise ValueError("a static cache / compiled step needs prefix_sharing='shared' "
                             f"(this model decodes with {self.sharing!r})")
        self._model_call = _compiled(model) if compile else model
        self.rows = prefix.last_logits.shape[0] * n
        self.pos = prefix.next_pos.repeat_interleave(n, dim=0)
        if self.sharing == "shared":
            self.cache = engine_shared.SharedPrefixCache(prefix.cache, prefix.attention_mask, n,
                                                         capacity=static_capacity)
            self.masks = engine_shared.mask_mapping(model)
        else:
            if prefix.consumed:
                raise ValueError("this Prefix's cache was already extended by a decode "
                                 "(repeat sharing); prefill again")
            prefix.consumed = True      # the rows extend this very cache
            if n > 1:
                prefix.cache.batch_repeat_interleave(n)
            self.cache = prefix.cache
            self.mask = prefix.attention_mask.repeat_interleave(n, dim=0)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, *, last_only: bool = True) -> torch.Tensor:
        """Run the rows' next tokens `ids` (R, L) through the model; float32 logits
        (R, 1 or L, V). The cache then holds them."""
        length = ids.shape[1]
        pos = self.pos[:, None] + torch.arange(length, device=ids.device)
        if self.sharing == "shared":
            with engine_shared.shared_attention(self.model):
                logits, _ = forward_logits(self._model_call, last_only=last_only, input_ids=ids,
                                           attention_mask=self.masks, position_ids=pos,
                                           cache=self.cache, shared_prefix=self.cache)
        else:
            # generate() extends the mask with ones for every row, finished rows included.
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.rows, length)], dim=1)
            logits, self.cache = forward_logits(self.model, last_only=last_only, input_ids=ids,
                                                attention_mask=self.mask, position_ids=pos,
                                                cache=self.cache)
        self.pos = self.pos + length
        return logits.float()

    @torch.inference_mode()
    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues from what row `rows[i]` held (beam search). Rows stay within
        their clip, so the prompt part (and its mask) is unaffected."""
        self.cache.reorder_cache(rows)

    def cache_bytes(self) -> int:
        """Bytes of keys/values this state holds: what sharing saves."""
        if self.sharing == "shared":
            return self.cache.prefix_bytes() + self.cache.suffix_bytes()
        return sum(t.numel() * t.element_size() for layer in self.cache.layers
                   if layer.is_initialized for t in (layer.keys, layer.values))
