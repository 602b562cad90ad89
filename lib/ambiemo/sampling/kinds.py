"""The answer kinds a run can ask of a model: one table, read by the runner, the store, the
preflight checks and the strategies.

Each kind is a row of the sample store (`kind` column). Adding a kind is adding a row here
(and, for a new capability, the adapter method that produces it): the runner asks
`jobs_for(settings)` which kinds a config turns on, the preflight names the setting that
turns a kind on when a strategy needs it, and the store parses the text kinds on reading.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerKind:
    kind: str                     # the sample store's `kind`
    capability: str               # what the adapter must offer (alm.base.CAPABILITIES)
    switch: str                   # the config setting that turns it on, as a user writes it
    rows: Callable[[object], int]  # rows per clip under generation settings; 0: off
    text: bool                    # a text answer, parsed when read; else a stored distribution


def _cot_on(g) -> bool:
    # The runner's settings carry the loaded prompt, the config's the `cot:` section.
    return getattr(g, "cot_prompt", None) is not None or getattr(g, "cot", None) is not None


# In the order the runner asks for them: every kind but CoT shares one prompt, so an adapter
# reuses one prefill of the batch for all of them (TransformersAdapter._prefill); CoT's
# prompt differs and comes last. Seeds are per kind and batch, so the order changes no sample.
ANSWER_KINDS: tuple[AnswerKind, ...] = (
    AnswerKind("greedy", "greedy", "generation.greedy: true", lambda g: int(bool(g.greedy)), True),
    AnswerKind("sample", "sample", "generation.n_samples > 0", lambda g: int(g.n_samples), True),
    AnswerKind("beam", "beam", "generation.beams > 0", lambda g: int(g.beams), True),
    AnswerKind("label_score", "label_scores", "generation.label_scores: true",
               lambda g: int(bool(g.label_scores)), False),
    AnswerKind("cot", "greedy", "generation.cot: {prompt: ..., max_new_tokens: ...}",
               lambda g: int(_cot_on(g)), True),
)
BY_NAME = {k.kind: k for k in ANSWER_KINDS}
# Rows that are not answers of the judged model: a verifier's verdicts on them.
VERIFY = "verify"


@dataclass(frozen=True)
class AnswerJob:
    """One kind of answer asked of the model for every clip."""
    kind: str        # store kind
    n: int           # rows per clip
    capability: str  # what the adapter must offer


def jobs_for(settings) -> list[AnswerJob]:
    """The kinds `settings` turns on, with their rows per clip, in the runner's order."""
    return [AnswerJob(k.kind, k.rows(settings), k.capability) for k in ANSWER_KINDS
            if k.rows(settings) > 0]


def switch_for(kind: str, settings) -> str | None:
    """The setting that would turn `kind` on, or None when `settings` already produce it."""
    k = BY_NAME[kind]
    return None if k.rows(settings) > 0 else k.switch
