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


ADAPTERS: dict[str, Callable] = {}


def register_adapter(*model_types: str):
    """Class decorator: the adapter that serves checkpoints of these `config.model_type`s."""
    def decorate(cls):
        for t in model_types:
            if t in ADAPTERS:
                raise ValueError(f"model type {t!r} has two adapters")
            ADAPTERS[t] = cls
        ADAPTERS[cls.__name__] = cls
        return cls
    return decorate
