"""The model registry: one decorator, one dict (`MODELS`), one error listing valid names.

Each entry records what the capacity analysis of Jia et al. (2026) needs beside the
adapter: the checkpoint id, the transformers class and the parameter count.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    name: str                 # registry name, as written in configs and Predictions
    checkpoint: str           # hub id, or "tiny:<arch>" for a locally built tiny model
    hf_class: str             # transformers class that loads the checkpoint
    n_params: float | None    # parameter count (the capacity axis); None: not published
                              # (hosted models), left out of the capacity fit and said so
    adapter: str              # adapter class name in ambiemo.alm
    revision: str | None = None   # pinned hub revision, where one is known
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.n_params is not None and self.n_params <= 0:
            raise ValueError(f"model {self.name!r}: n_params must be positive")


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is registered twice")
    MODELS[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {sorted(MODELS)} "
                       "(or a local checkpoint directory)") from None


ADAPTERS: dict[str, Callable] = {}     # adapter class name (ModelSpec.adapter) -> class
MODEL_TYPES: dict[str, Callable] = {}  # a checkpoint's config.json model_type -> adapter class


def register_adapter(*model_types: str):
    """Class decorator: register an adapter under its class name (what `ModelSpec.adapter`
    names) and as the adapter for checkpoints of these `config.model_type`s (what
    `load_model(<local checkpoint dir>)` reads)."""
    def decorate(cls):
        if cls.__name__ in ADAPTERS:
            raise ValueError(f"adapter {cls.__name__!r} is registered twice")
        ADAPTERS[cls.__name__] = cls
        for t in model_types:
            if t in MODEL_TYPES:
                raise ValueError(f"model type {t!r} has two adapters")
            MODEL_TYPES[t] = cls
        return cls
    return decorate
