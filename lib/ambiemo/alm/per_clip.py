"""Audio encoded clip by clip, for encoders whose batched forward lets padding in.

Jia et al. (2026) compare a model's answer distribution per clip with the raters'; that
answer must not depend on which clips happen to share its batch. Several transformers
audio encoders run a zero-padded batch without masking the padding everywhere (Granite's
conformer, Phi-4's encoder, Gemma-3n's subsampling convolutions), so a shorter clip's last
frames see its neighbours' padding. Their adapters (alm/archs/) wrap the encoder with
`wrap_once` so that each row is encoded at its own length, then padded back with
`pad_stack`, which equals encoding the clip alone (tests/test_adapters.py compares every
tiny model with a one-clip forward pass).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence


def wrap_once(owner, name: str, per_clip: Callable) -> None:
    """Make `owner.<name>(...)` call `per_clip(original, ...)`; a second call (the same model
    attached twice) leaves the wrapper as it is."""
    current = getattr(owner, name)
    if not (isinstance(current, functools.partial) and current.func is per_clip):
        setattr(owner, name, functools.partial(per_clip, current))


def pad_time(t, width: int, value=0.0, left: bool = False):
    """`t` (batch, time, ...) padded with `value` to `width` steps, at the end or the start."""
    import torch

    extra = width - t.shape[1]
    return torch.nn.functional.pad(t, (0, 0) * (t.ndim - 2) + ((extra, 0) if left else (0, extra)),
                                   value=value)


def pad_stack(rows: Sequence, value=0.0):
    """Per-clip outputs (time, ...) stacked into (clips, longest time, ...), padded at the end."""
    import torch

    width = max(r.shape[0] for r in rows)
    return torch.cat([pad_time(r[None], width, value) for r in rows])
