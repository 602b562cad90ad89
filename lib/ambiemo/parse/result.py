"""What a parse returns, the failure kinds a missing prediction is counted under, and the
parser version that decides when stored answers are parsed again.

Jia et al. (2026) score a missing prediction at the metric's worst value, so how many answers
the parser refuses, and why, moves the study's numbers; every refusal therefore carries a kind
(`failure`) and a reason a person can read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Bump on ANY change that can move a parse (a dist, ok, reason, failure, raw_sum or
# dropped_mass of some answer): rules, regular expressions, synonyms in ambiemo.labels,
# tolerances. The pipeline re-parses stored answers whose parser version differs; the answer
# corpus test (tests/data/answers/) fails on any moved case, which is the reminder to bump.
PARSER_VERSION = "3"
# The settings a parse depends on beyond its code, recorded beside PARSER_VERSION with the
# samples read (sampling/store.py): changing one is a parser change, so bump the version.
# max_dropped_share: an answer stating this share of its mass (or more) on classes outside
# the label space is an OUT_OF_SPACE failure, not renormalised (ambiemo.parse.distribution).
PARSER_SETTINGS = {"max_dropped_share": 0.5}

# Why a sample has no prediction. The parser returns UNPARSED or OUT_OF_SPACE; the sampling run
# records the others for answers it could not get or had to cut.
UNPARSED = "unparsed"          # the model answered; the text could not be read
TRUNCATED = "truncated"        # generation stopped at the token limit before the answer ended
API_ERROR = "api_error"        # a hosted model's request failed (after retries)
AUDIO_ERROR = "audio_error"    # the clip could not be read or was refused as model input
OUT_OF_MEMORY = "out_of_memory"  # one clip alone did not fit on the accelerator
SHARD_ERROR = "shard_error"    # a shard of clips kept failing on a Ray cluster
OUT_OF_SPACE = "out_of_space"  # the answer put half its stated mass or more outside the label space
FAILURE_KINDS = (UNPARSED, TRUNCATED, API_ERROR, AUDIO_ERROR, OUT_OF_MEMORY, SHARD_ERROR,
                 OUT_OF_SPACE)
# An OUT_OF_SPACE failure's reason starts with this (parse.failures.failure_kind reads it).
OUTSIDE_PREFIX = "outside the label space: "


@dataclass(frozen=True)
class ParseResult:
    """One parsed answer over the corpus's classes, in label-space order.

    raw_sum: the sum of the stated probabilities on the 0-1 scale (a 0-100 answer is divided
    by 100), out-of-space classes included, before renormalising; NaN when the answer was read
    as a single label. dropped_mass: the part of raw_sum stated for classes outside the label
    space and dropped (0 when none). dropped: the names dropped, as written.
    """
    dist: np.ndarray                 # shape (K,); all NaN when parsing failed
    ok: bool
    reason: str = ""                 # why it failed; empty on success
    failure: str = ""                # one of FAILURE_KINDS when not ok; empty on success
    raw_sum: float = math.nan
    dropped_mass: float = 0.0
    dropped: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if self.ok == bool(self.failure):
            raise ValueError(f"a ParseResult has a failure kind exactly when not ok "
                             f"(ok={self.ok}, failure={self.failure!r})")
        if self.failure and self.failure not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {self.failure!r}; valid: {FAILURE_KINDS}")


def failed(k: int, reason: str, failure: str = UNPARSED) -> ParseResult:
    """A failure over `k` classes: an all-NaN dist, never a guess."""
    return ParseResult(np.full(k, np.nan), False, reason, failure)


def one_hot(k: int, index: int) -> ParseResult:
    """A single-label answer: all mass on `index`; raw_sum is NaN (no probability was stated)."""
    dist = np.zeros(k)
    dist[index] = 1.0
    return ParseResult(dist, True)
