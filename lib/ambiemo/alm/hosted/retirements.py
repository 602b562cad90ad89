"""The retired hosted models, read from `retirements.yaml`: one data file holds every
shutdown date, replacement and the source of each (issue #26), so a provider's new notice is
one edit there, and conflicting sources stay side by side (`reported_routing`).

Jia et al. (2026) ran GPT-4o audio and Gemini models that the providers have since shut
down; they stay registered as retired `ModelSpec`s so that a config naming them -- by
registry name or through a `checkpoint:` -- is refused with the replacement named.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ambiemo.alm.registry import ModelSpec, Retirement

REQUIRED = ("checkpoint", "shutdown", "replacement", "source")
ADAPTERS = {"openai": "OpenAIChatAdapter", "gemini": "GeminiAdapter"}


def read_retirements(path: Path) -> dict[str, dict]:
    """{registry name: entry} of `path`; raises ValueError naming the file, entry and key."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model name -> entry")
    for name, entry in data.items():
        missing = [k for k in REQUIRED if not isinstance(entry, dict) or not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: entry {name!r} lacks {missing}")
        prefix = str(entry["checkpoint"]).partition(":")[0]
        if prefix not in ADAPTERS:
            raise ValueError(f"{path}: entry {name!r}: checkpoint {entry['checkpoint']!r} must "
                             f"start with one of {[p + ':' for p in ADAPTERS]}")
        for r in entry.get("reported_routing") or []:
            if not isinstance(r, dict) or not r.get("model") or not r.get("source"):
                raise ValueError(f"{path}: entry {name!r}: each reported_routing needs a "
                                 f"model and a source, got {r!r}")
    return data


def retired_specs(path: Path) -> tuple[ModelSpec, ...]:
    """A retired ModelSpec per entry of `path`."""
    specs = []
    for name, e in read_retirements(path).items():
        routed = tuple((str(r["model"]), str(r.get("from", "")), str(r["source"]))
                       for r in e.get("reported_routing") or [])
        specs.append(ModelSpec(
            name=name, checkpoint=str(e["checkpoint"]), hf_class="hosted", n_params=None,
            adapter=ADAPTERS[str(e["checkpoint"]).partition(":")[0]],
            options=dict(e.get("options") or {}),
            retired=Retirement(str(e["shutdown"]), str(e["replacement"]), str(e["source"]),
                               str(e.get("note", "")), routed)))
    return tuple(specs)
