"""Shared-prefix ("cascade") attention: N continuations of a clip read one copy of its prompt.

Jia et al. (2026) draw N answers per clip; decoding them from one prefill (alm/hf/engine/decode.py)
is what makes that affordable. Repeating the prefill's KV cache N times costs N copies of
the prompt (audio tokens included) per clip: for Qwen2-Audio-7B, 32 clips x N = 16 would
hold ~58 GiB of cache. Here the prompt's keys and values stay once per clip, (B, Hkv, P, D),
and only what the N continuations generate is cached per row, (B*N, Hkv, T, D). Each
attention call scores the B*N queries against their clip's prompt (the N rows and the G
query heads of a key/value head folded into the matrix dimension, so nothing is broadcast
into a copy) and against their own suffix, and takes one softmax over both parts: the same
attention, exact up to floating-point summation order.

It plugs into transformers' own decoder: `SharedPrefixCache` is a `Cache` whose layers hold
only the suffix; `shared_prefix_attention` is registered with `AttentionInterface` and
reads the prompt part from the cache passed as the `shared_prefix` forward kwarg (kwargs
reach the attention function unchanged); `shared_attention(model)` switches the decoder to
it for the duration of a call. The model's own mask construction is skipped by passing the
attention mask as a ready mapping (as generate() may); the prompt's left padding is an
additive bias kept in the cache.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ATTENTION_NAME = "ambiemo_shared_prefix"
# The decoders' own attention implementations this module stands in for during decoding.
REPLACEABLE = ("sdpa", "eager")


class SuffixBuffer(DynamicLayer):
    """A suffix cache layer allocated once for `capacity` tokens and written in place: no
    per-step concatenation (which copies the whole suffix every step and briefly holds it
    twice), and fixed shapes and addresses for torch.compile / CUDA graphs. `update`
    returns the whole buffer; the attention masks what is not written yet (`end`)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.end = torch.zeros((), dtype=torch.long)

    def lazy_initialization(self, key_states, value_states):
        rows, heads, _, dim = key_states.shape
        self.device = key_states.device
        self.keys = key_states.new_zeros(rows, heads, self.capacity, dim)
        self.values = value_states.new_zeros(rows, heads, self.capacity, value_states.shape[-1])
        self.end = self.end.to(self.device)
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        at = self.end + torch.arange(key_states.shape[-2], device=self.device)
        self.keys.index_copy_(2, at, key_states)
        self.values.index_copy_(2, at, value_states)
        self.end.add_(key_states.shape[-2])
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return int(self.end)

    def reorder_cache(self, beam_idx):
        if self.is_initialized:
            self.keys.copy_(self.keys.index_select(0, beam_idx))
            self.values.copy_(self.values.index_select(0, beam_idx))


class SharedPrefixCache(Cache):
    """The prefill's keys/values once per clip plus a growing suffix cache per row.

    `prefix_cache` (B rows, any transformers Cache of full-attention DynamicLayers) is only
    read, so the same prefill can be decoded from again. Rows are clip-major: row r
    continues clip r // n. With `capacity` the suffix is preallocated (`SuffixBuffer`)."""

    def __init__(self, prefix_cache: Cache, prefix_mask: torch.Tensor, n: int,
                 capacity: int | None = None):
        super().__init__(layers=[SuffixBuffer(capacity) if capacity else DynamicLayer()
                                 for _ in prefix_cache.layers])
        self.prefix_keys = [layer.keys for layer in prefix_cache.layers]
        self.prefix_values = [layer.values for layer in prefix_cache.layers]
        self.n = n
        # (B, 1, 1, P) float32: 0 on prompt tokens, -inf on the left padding.
        bias = torch.zeros(prefix_mask.shape, dtype=torch.float32, device=prefix_mask.device)
        self.prefix_bias = bias.masked_fill(prefix_mask == 0, -float("inf"))[:, None, None, :]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.prefix_keys[layer_idx].shape[-2] + self.layers[layer_idx].get_seq_length()

    def suffix_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.layers if layer.is_initialized
                   for t in (layer.keys, layer.values))

    def prefix_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.prefix_keys, *self.prefix_values))


def supports_sharing(model, prefix_cache) -> str | None:
    """None when the shared path is exact for this model and cache, else the reason not."""
    for i, layer in enumerate(getattr(prefix_cache, "layers", [])):
        if type(layer) is not DynamicLayer:
            return f"cache layer {i} is a {type(layer).__name__} (only full-attention layers)"
    impls = {c._attn_implementation for c in _decoder_configs(model)}
    if not impls:
        return "no decoder attention layer with a layer_idx found"
    if not impls <= set(REPLACEABLE):
        return f"decoder attention is {sorted(impls)}, not one of {REPLACEABLE}"
    return None


def _decoder_configs(model) -> list:
    """The configs the decoder's attention modules read `_attn_implementation` from."""
    seen = {}
    for m in model.modules():
        if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups") and hasattr(m, "config"):
            seen[id(m.config)] = m.config
    return list(seen.values())


@contextmanager
def shared_attention(model):
    """Route the decoder's attention through `shared_prefix_attention` inside the block."""
    configs = _decoder_configs(model)
    before = [c._attn_implementation for c in configs]
    # The internal field, not the property: the property's setter would also overwrite
    # sub-configs (an audio encoder's), which must keep their own implementation.
    for c in configs:
        c._attn_implementation_internal = ATTENTION_NAME
    try:
        yield
    finally:
        for c, impl in zip(configs, before):
            c._attn_implementation_internal = impl


def mask_mapping(model) -> dict:
    """What to pass as `attention_mask`: one entry per layer type, so the model builds no
    mask of its own (the prompt's padding bias travels in the cache)."""
    types = set()
    for c in _decoder_configs(model):
        types.update(getattr(c, "layer_types", None) or ["full_attention"])
    return {t: None for t in types}


def shared_prefix_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                            scaling: float | None = None, shared_prefix: SharedPrefixCache | None = None,
                            **kwargs):
    """An `AttentionInterface` function. Without a `shared_prefix` kwarg it is plain SDPA."""
    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    for unsupported in ("sliding_window", "softcap"):
        if kwargs.get(unsupported) is not None:
            raise ValueError(f"shared-prefix attention does not implement {unsupported}="
                             f"{kwargs[unsupported]!r}; decode with prefix_sharing='repeat'")
    if dropout:
        raise ValueError("shared-prefix attention is for inference (dropout must be 0)")
    i = module.layer_idx
    layer = shared_prefix.layers[i]
    out = cascade_attention(query, key, value, shared_prefix.prefix_keys[i],
                            shared_prefix.prefix_values[i], shared_prefix.prefix_bias,
                            scaling if scaling is not None else query.shape[-1] ** -0.5,
                            suffix_end=layer.end if isinstance(layer, SuffixBuffer) else None)
    return out, None


def cascade_attention(query, key, value, prefix_keys, prefix_values, prefix_bias, scaling,
                      suffix_end=None):
    """Attention of R = B*n rows of L queries over their clip's prompt and their own suffix.

    query (R, H, L, D); key/value (R, Hkv, T, D), the suffix, whose first `suffix_end`
    positions are written (all T when None), the L new ones last of those (causal among
    them); prefix_keys/values (B, Hkv, P, D); prefix_bias (B, 1, 1, P).
    Returns (R, L, H, D), the layout transformers' attention functions return."""
    rows, heads, length, dim = query.shape
    clips, kv_heads, plen, _ = prefix_keys.shape
    n, groups, tlen = rows // clips, heads // kv_heads, key.shape[2]
    # Head h reads key/value head h // groups (transformers' repeat_kv), so (H) = (Hkv, G).
    q = query.reshape(clips, n, kv_heads, groups * length, dim)
    # Prompt part: per clip and kv head one (n*G*L, D) x (D, P) product.
    q_clip = q.transpose(1, 2).reshape(clips, kv_heads, n * groups * length, dim)
    s_pre = torch.matmul(q_clip, prefix_keys.transpose(-1, -2)).float() * scaling + prefix_bias
    # Suffix part: per row.
    s_suf = torch.matmul(q.reshape(rows, kv_heads, groups * length, dim),
                         key.transpose(-1, -2)).float() * scaling          # (R, Hkv, G*L, T)
    if length > 1 or suffix_end is not None:
        # query l sits at suffix index end - L + l and sees suffix indices up to it.
        end = tlen if suffix_end is None else suffix_end
        qi = torch.arange(length, device=query.device)[:, None] + (end - length)
        future = torch.arange(tlen, device=query.device)[None, :] > qi     # (L, T)
        s_suf = s_suf.view(rows, kv_heads, groups, length, tlen).masked_fill(future, -float("inf"))
    s_suf = s_suf.reshape(clips, n, kv_heads, groups * length, tlen).transpose(1, 2) \
        .reshape(clips, kv_heads, n * groups * length, tlen)
    p = torch.softmax(torch.cat([s_pre, s_suf], dim=-1), dim=-1).to(value.dtype)
    out = torch.matmul(p[..., :plen], prefix_values)                       # (B, Hkv, n*G*L, D)
    p_suf = p[..., plen:].reshape(clips, kv_heads, n, groups * length, tlen).transpose(1, 2) \
        .reshape(rows, kv_heads, groups * length, tlen)
    out_suf = torch.matmul(p_suf, value)                                   # (R, Hkv, G*L, D)
    out = out.view(clips, kv_heads, n, groups * length, dim) \
        + out_suf.view(clips, n, kv_heads, groups * length, dim).transpose(1, 2)
    out = out.view(clips, kv_heads, n, groups, length, dim).permute(0, 2, 4, 1, 3, 5)
    return out.reshape(rows, length, heads, dim)


AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
