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
ANSWERS = {"label", "distribution", "cot", "verify", "score"}
VERIFIER_ANSWERS = {"verify", "score"}   # judge a candidate: the text needs an {answer} slot


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    answer: str   # what the response is parsed as: label | distribution | cot (text after
                  # the last "Answer:") | verify (P(Yes), open models) | score (1-10, hosted)
    user: str     # instruction text; `{classes}` is replaced by the comma-separated classes

    def __post_init__(self):
        if self.answer not in ANSWERS:
            raise ValueError(f"prompt {self.id!r}: answer must be one of {sorted(ANSWERS)}, "
                             f"got {self.answer!r}")
        if "{classes}" not in self.user:
            raise ValueError(f"prompt {self.id!r}: the user text must contain {{classes}}")
        if (self.answer in VERIFIER_ANSWERS) != ("{answer}" in self.user):
            raise ValueError(f"prompt {self.id!r}: an {{answer}} slot belongs in verifier "
                             f"prompts (answer: verify|score) and only there")

    def render(self, classes: Sequence[str]) -> str:
        """The instruction for a corpus; a verifier prompt keeps its {answer} slot."""
        return self.user.replace("{classes}", ", ".join(classes))

    @property
    def is_verifier(self) -> bool:
        return self.answer in VERIFIER_ANSWERS


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
