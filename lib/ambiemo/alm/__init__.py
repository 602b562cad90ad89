"""Audio-language models: the registry and `load_model` (the models only; running them over a
corpus is `ambiemo.sampling`).

`load_model(name_or_checkpoint, **options)` returns an adapter (alm/base.py) for a
registered name (`MODELS`) or a local checkpoint directory. Jia et al. (2026) evaluate
Qwen2-Audio-7B-Instruct among eight ALMs; `tiny-qwen2-audio` is the same architecture at
toy size, built offline, so the pipeline runs on a CPU with nothing downloaded; the `sim-*`
models (alm/sim.py) answer from known distributions, so what must come out is known.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ambiemo.alm.base import ALMAdapter, Clip, Decoding, Generation
from ambiemo.alm.registry import ADAPTERS, MODEL_TYPES, MODELS, ModelSpec, get_spec, register_model
from ambiemo.alm import archs  # noqa: F401  (registers every architecture in alm/archs/)
from ambiemo.alm import hosted  # noqa: F401  (registers the hosted API models)
from ambiemo.alm import sim  # noqa: F401  (registers the simulated models sim-*)

__all__ = ["ALMAdapter", "Clip", "Decoding", "Generation", "MODELS", "ModelSpec",
           "load_model", "register_model"]

def cache_dir() -> Path:
    return Path(os.environ.get("AMBIEMO_CACHE", Path.home() / ".cache" / "ambiemo"))


def ensure_tiny(arch: str, root: Path | None = None) -> Path:
    """The tiny checkpoint of `arch`, built once into the cache. The build goes to a
    temporary folder renamed into place, so a killed build never leaves half a model."""
    from ambiemo.alm import tiny

    if arch not in tiny.TINY_BUILDERS:
        raise KeyError(f"no tiny builder for {arch!r}; valid: {sorted(tiny.TINY_BUILDERS)}")
    build, version = tiny.TINY_BUILDERS[arch]
    target = (root or cache_dir()) / "tiny" / f"{arch}-v{version}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{arch}-"))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; theirs is identical (seeded)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_model(name_or_checkpoint: str, **options) -> ALMAdapter:
    """An adapter for a registered model name or a local checkpoint directory.

    Options go to the adapter (`device`, `dtype`, `revision`, `engine`, API options);
    `checkpoint` replaces a registered model's checkpoint (a config pinning a local copy or
    another hub id, `StudyConfig.model_options`); `cache_dir` says where tiny checkpoints
    are built.
    """
    cache = options.pop("cache_dir", None)
    override = options.pop("checkpoint", None)
    if name_or_checkpoint in MODELS:
        spec = get_spec(name_or_checkpoint)
        checkpoint: str | Path = override or spec.checkpoint
        if str(checkpoint).startswith("tiny:"):
            checkpoint = ensure_tiny(str(checkpoint).removeprefix("tiny:"),
                                     Path(cache) if cache else None)
        # The registry's adapter options (e.g. a thinking budget) under the caller's.
        options = {**spec.options, **options}
        options.setdefault("revision", spec.revision)
        return ADAPTERS[spec.adapter](checkpoint, name=spec.name, **options)
    path = Path(name_or_checkpoint)
    if (path / "config.json").is_file():
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if model_type not in MODEL_TYPES:
            raise KeyError(f"{path}: no adapter for model_type {model_type!r}; supported: "
                           f"{sorted(MODEL_TYPES)}")
        return MODEL_TYPES[model_type](path, name=path.name, **options)
    get_spec(name_or_checkpoint)  # raises with the list of valid names
    raise AssertionError("unreachable")
