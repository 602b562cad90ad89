"""The model registry: one decorator, one dict (`MODELS`), one error listing valid names.

Each entry records what the capacity analysis of Jia et al. (2026) needs beside the
adapter: the checkpoint id, the transformers class and the parameter count. A hosted model
the provider has shut down stays registered as *retired* (its shutdown date, the model that
replaces it, and where the date comes from), so that a config naming it is refused before
anything runs, with the replacement named, rather than producing one 404 failure row per
request -- and so that the study's own models stay on record.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Retirement:
    """A hosted model the provider has shut down (or routes to another model)."""
    shutdown: str             # ISO date from which requests fail or go to another model
    replacement: str          # registry name of the model used in its place now
    source: str               # where the date is stated
    note: str = ""            # what happens to requests after `shutdown`
    # Other sources' claims about the model answering instead: (model, from date, source).
    reported_routing: tuple[tuple[str, str, str], ...] = ()

    def message(self, name: str) -> str:
        what = f"; {self.note}" if self.note else ""
        others = "".join(f"; also reported: routed to {m}" + (f" from {d}" if d else "")
                         + f" ({src})" for m, d, src in self.reported_routing)
        return (f"model {name!r} was retired on {self.shutdown} ({self.source}){what}{others}; "
                f"use {self.replacement!r} instead")


class RetiredModelError(ValueError):
    """A retired model was asked for; the message names its date and replacement."""


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
    retired: Retirement | None = None   # set once the provider has shut the model down

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
    """The spec of a model that can be run; a retired one raises RetiredModelError."""
    try:
        spec = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {sorted(MODELS)} "
                       "(or a local checkpoint directory)") from None
    if spec.retired is not None:
        raise RetiredModelError(spec.retired.message(name))
    return spec


def _api_id(checkpoint: str) -> str:
    """'openai:gpt-4o-audio-preview' -> 'gpt-4o-audio-preview' (and Gemini's 'models/x' -> 'x')."""
    prefix, sep, rest = str(checkpoint).partition(":")
    return (rest if sep and prefix in ("openai", "gemini") else str(checkpoint)) \
        .removeprefix("models/")


def retired_checkpoint(checkpoint: str) -> tuple[str, Retirement] | None:
    """(registry name, retirement) of the retired model whose API id `checkpoint` requests
    (a config may name a retired id as another entry's `checkpoint:`); None otherwise."""
    wanted = _api_id(checkpoint)
    for spec in MODELS.values():
        if spec.retired is not None and _api_id(spec.checkpoint) == wanted:
            return spec.name, spec.retired
    return None


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
