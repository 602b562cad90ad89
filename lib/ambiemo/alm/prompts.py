"""Prompt templates, read from `configs/prompts/<id>.yaml`.

The instruction given to an ALM changes its answers, so a prompt's id and version enter
every run key: editing a prompt (and bumping its version) never reuses stale samples.
Jia et al. (2026) ask for a single emotion label; the class list comes from the corpus's
label space so the same template serves every corpus.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

FIELDS = {"id", "version", "answer", "user"}
ANSWERS = {"label", "distribution", "cot", "verify"}


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    answer: str   # what the response is parsed as: label | distribution | cot | verify
    user: str     # instruction text; `{classes}` is replaced by the comma-separated classes

    def __post_init__(self):
        if self.answer not in ANSWERS:
            raise ValueError(f"prompt {self.id!r}: answer must be one of {sorted(ANSWERS)}, "
                             f"got {self.answer!r}")
        if "{classes}" not in self.user:
            raise ValueError(f"prompt {self.id!r}: the user text must contain {{classes}}")

    def render(self, classes: Sequence[str]) -> str:
        return self.user.replace("{classes}", ", ".join(classes))


def load_prompt(prompt_id: str, directory: str | Path) -> PromptTemplate:
    directory = Path(directory)
    path = directory / f"{prompt_id}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in directory.glob("*.yaml"))
        raise FileNotFoundError(f"prompt {prompt_id!r} not found in {directory}; valid: {valid}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys {sorted(FIELDS)}")
    unknown, missing = set(data) - FIELDS, FIELDS - set(data)
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    if data["id"] != prompt_id:
        raise ValueError(f"{path}: id {data['id']!r} does not match the file name")
    return PromptTemplate(id=data["id"], version=int(data["version"]), answer=data["answer"],
                          user=str(data["user"]).strip())
