"""Decoding settings: what changes the text a model generates (temperature, top-p, top-k, the
token budget, the class-name constraint).

Shared by the config (which reads them), the sampling stage (which puts them into the run
key) and the model adapters (which apply them), and free of torch so that reading a config
never loads a model library.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Decoding:
    """Settings that change what a model generates; all enter the run key."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0               # 0: no top-k filtering
    max_new_tokens: int = 16
    constrained: bool = False    # restrict tokens to spell one class name (see alm/hf/constrained.py)

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1:
            raise ValueError("top_k must be >= 0 and max_new_tokens >= 1")

    def as_dict(self) -> dict:
        return asdict(self)
