"""The corpus registry: one decorator, one dict, one error that lists the valid names.

Modelled on lm-evaluation-harness's early model registry (STYLE.md): a loader registers
under its name once; loading an unknown name raises and lists what exists.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import pandas as pd

Loader = Callable[..., pd.DataFrame]
LOADERS: dict[str, Loader] = {}


def register_corpus(name: str) -> Callable[[Loader], Loader]:
    def decorate(fn: Loader) -> Loader:
        if name in LOADERS:
            raise ValueError(f"corpus {name!r} is registered twice")
        LOADERS[name] = fn
        return fn
    return decorate


def get_loader(name: str) -> Loader:
    try:
        return LOADERS[name]
    except KeyError:
        raise KeyError(f"unknown corpus {name!r}; valid: {sorted(LOADERS)}") from None


def loader_options(name: str) -> tuple[str, ...]:
    """The keyword options corpus `name`'s loader accepts beside root and label_space: its
    keyword-only parameters, or the `options` it declares when it takes **options."""
    loader = get_loader(name)
    if getattr(loader, "options", None) is not None:
        return tuple(loader.options)
    params = inspect.signature(loader).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_options(name: str, options) -> None:
    """TypeError naming the corpus, the unknown option(s) and the valid ones."""
    valid = loader_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"corpus {name!r}: unknown option(s) {unknown}; valid: "
                        f"{list(valid) or 'none (this loader takes no options)'}")
