"""Corpora as Manifests: human emotion-vote distributions per utterance.

`load(name, root, label_space=None, **options)` is the public entry point (docs/design.md); each
corpus module registers its loader with `@register_corpus` and is discovered (imported
with the package), so adding a corpus is adding one file. Jia et al. (2026) evaluate on
IEMOCAP, MSP-Podcast and CREMA-D; `demo` is the synthetic corpus shipped in `data/demo/`.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ambiemo.corpora.audio_check import MIN_DURATION_S, probe_manifest
from ambiemo.corpora.manifest import add_ambiguity_bin, require_audio
from ambiemo.corpora.registry import (LOADERS, check_options, get_loader, loader_options,
                                      register_corpus)
from ambiemo.labels import get_label_space

# Every module of this package is imported, so a corpus module registers its loader by being
# here: adding a corpus is adding one file (as with alm/archs/).
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["load", "LOADERS", "loader_options", "register_corpus", "renamed", "require_audio"]

log = logging.getLogger("ambiemo.corpora")


def load(name: str, root: str | Path, label_space: str | None = None, *,
         ambiguity_edges: Sequence[float] | None = None,
         min_audio_s: float = MIN_DURATION_S, **options) -> pd.DataFrame:
    """Load corpus `name` from `root` as a Manifest (see corpora/manifest.py).

    `label_space=None` picks the corpus default; `attrs["classes"]` gives the class order and
    `attrs["dropped"]` what was left out and why. `ambiguity_bin` holds entropy tertiles
    (`ambiguity_edges=None`) or bins at fixed edges in bits; other `options` go to the
    corpus's loader (`loader_options(name)` lists them; one it does not know is a
    TypeError naming the valid ones). Audio is not needed:
    missing files are counted in `attrs["missing_audio"]` and reported in one log line.
    Every file present is probed (corpora/audio_check.py): `audio_status` / `audio_reason`
    per clip, clips shorter than `min_audio_s` seconds are `too_short`.
    """
    loader = get_loader(name)
    check_options(name, options)
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"corpus {name!r}: root {root} does not exist")
    manifest = add_ambiguity_bin(loader(root, label_space=label_space, **options),
                                 ambiguity_edges)
    manifest = probe_manifest(manifest, min_audio_s)
    if "merges" not in manifest.attrs:
        # The label space's merges travel with the Manifest, so whoever reads answers against
        # it (the parser) counts a merged label as its class, as the votes were counted.
        try:
            manifest.attrs["merges"] = dict(get_label_space(name, label_space).merges)
        except (KeyError, ValueError):   # a loader with its own classes (hf): none
            manifest.attrs["merges"] = {}
    missing = int((~manifest["has_audio"]).sum())
    manifest.attrs["missing_audio"] = missing
    if missing:
        log.warning("%s: %d of %d clips have no audio file under %s (annotation-only analyses "
                    "work; generation refuses these clips)", name, missing, len(manifest), root)
    bad = manifest[~manifest["audio_status"].isin(["ok", "missing"])]
    manifest.attrs["unusable_audio"] = len(bad)
    if len(bad):
        log.warning("%s: %d clip(s) have audio a model cannot be given (they become audio_error "
                    "failure rows in generation): %s", name, len(bad),
                    "; ".join(bad["audio_reason"].head(3)) + (" ..." if len(bad) > 3 else ""))
    return manifest


def renamed(manifest: pd.DataFrame, corpus: str) -> pd.DataFrame:
    """`manifest` under the name `corpus` (its `corpus` column and attrs): a corpus of the
    config read by another's loader (`loader: votes_table`) is named by its config key."""
    attrs = dict(manifest.attrs)
    out = manifest.assign(corpus=corpus)
    out.attrs = attrs | {"corpus": corpus}
    return out
