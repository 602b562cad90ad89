"""The adapter interface every ALM implements, and the records it exchanges.

Jia et al. (2026) compare many ALMs under the same test-time-scaling strategies; the
strategies only need, per clip, N candidate responses with their sequence log-likelihoods
and token counts. Everything a caller uses is declared here, so a new model is one
subclass and nothing else changes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Decoding is defined with the study config (one definition, importable without torch);
# re-exported here because every adapter takes it.
from ambiemo.config import Decoding  # noqa: F401


@dataclass(frozen=True)
class Clip:
    utt_id: str
    audio: np.ndarray            # 16 kHz mono float32


@dataclass(frozen=True)
class Generation:
    """One response: text, log-likelihood under the model (temperature 1, unconstrained
    logits), and the number of generated tokens including the end-of-turn token.

    `logprob` / `n_tokens` are None where the model does not expose them (a hosted API
    without log-probabilities): the strategies that need them are then unavailable for that
    model. `error` is set when no response could be obtained (an API error after retries);
    such a row is stored as a failure with this reason and never parsed into an answer.
    `served_model` is the model a hosted service says it answered with (None for a local
    model), stored beside the row so that a service routing a retired id to another model
    cannot pass that model's answers off as the requested one's.
    """
    utt_id: str
    idx: int
    text: str
    logprob: float | None
    n_tokens: int | None
    error: str = ""
    served_model: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one candidate answer for one clip (ALM-v, W-ALM-v).

    `score` is in [0, 1]: P("Yes") renormalised over {"Yes", "No"} for open models, or a
    1-10 score divided by 10 for hosted ones (proportional weighting is scale-free, so W-ALM-v
    weights equal the raw 1-10 scores). `score` is None when judging failed; `error` says why.
    """
    utt_id: str
    idx: int            # the judged candidate's idx in the run it came from
    score: float | None
    text: str = ""      # the verifier's raw output ("" when scored from logits)
    error: str = ""
    served_model: str | None = None   # hosted: the model the service says judged


# What an adapter can do; callers ask before they call, and a strategy whose inputs an
# adapter cannot give is reported unavailable for that model, never filled in.
CAPABILITIES = ("sample", "greedy", "logprob", "beam", "label_scores", "verify")


class ALMAdapter(ABC):
    """What the pipeline calls on a model. `identity()` enters every run key."""

    name: str
    max_audio_s: float | None = None   # longer clips are truncated by the model's processor
    capabilities: frozenset[str] = frozenset(CAPABILITIES)

    @abstractmethod
    def identity(self) -> dict:
        """Model name, checkpoint and revision: what makes two runs' samples comparable."""

    def bind_manifest(self, manifest) -> None:
        """Called by the runners with the Manifest they are about to sample or verify, before
        the run key is computed. Real models ignore it; simulated ones (alm/sim.py) answer
        from each clip's human distribution and take it from here."""

    @abstractmethod
    def build_prompt(self, user_text: str) -> str:
        """The model's chat-formatted prompt for one clip and one instruction."""

    @abstractmethod
    def generate(self, clips: Sequence[Clip], user_text: str, *, n: int, greedy: bool,
                 decoding: Decoding, classes: Sequence[str], seed: int) -> list[Generation]:
        """`n` responses per clip (greedy: n must be 1), in clip order then idx order."""

    def label_scores(self, clips: Sequence[Clip], user_text: str,
                     classes: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        """Per clip, the model's probability of answering each class name (the name's tokens
        followed by the end-of-turn token, so "sad" is not credited with "sadness"),
        normalised over `classes`: the `label_logits` strategy's exact distribution."""
        raise NotImplementedError(f"{type(self).__name__} does not score class names")

    def beam(self, clips: Sequence[Clip], user_text: str, *, beams: int, decoding: Decoding,
             classes: Sequence[str]) -> list[Generation]:
        """The `beams` best beam-search candidates per clip, idx = rank (0 best), with
        log-likelihoods as in `generate` (raw logits, summed over tokens)."""
        raise NotImplementedError(f"{type(self).__name__} has no beam search")

    def verify(self, clips: Sequence[Clip], candidates: Sequence[Sequence[tuple[int, str]]],
               verifier_text: str) -> list[Verdict]:
        """Judge candidate answers given the audio: `candidates[i]` lists (idx, answer text)
        for `clips[i]`; `verifier_text` is the rendered verifier prompt with an `{answer}`
        slot. One Verdict per candidate, in clip then candidate order."""
        raise NotImplementedError(f"{type(self).__name__} cannot act as a verifier")
