"""Response text -> a distribution over the corpus's classes, or a recorded parse failure.

Jia et al. (2026) read an ALM's answer as an emotion label (a one-hot distribution) and,
with the distribution prompt, as a probability per class. `parse_response` routes an answer
to the reader for its prompt's kind: `label` and `cot` answers are read as one label
(ambiemo.parse.label_answer) unless they state probabilities for two or more classes;
`distribution` answers are read as stated probabilities (ambiemo.parse.distribution) and,
when they state none, as one label. Anything else is a failure with a reason and the
failure kind UNPARSED; a failure is never turned into an answer. `parse_generation` adds
what only the sampling run knows: whether the generation was cut at its token limit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ambiemo.labels import merges_for
from ambiemo.parse.distribution import (MAX_DROPPED_SHARE, OUT_OF_SPACE_MODES, SUM_TOLERANCE,
                                         Refused, from_pairs, read_pairs)
from ambiemo.parse.label_answer import final_answer, from_label
from ambiemo.parse.result import TRUNCATED, ParseResult, failed

SUM_EXACT = 1e-6   # a stated sum closer than this to 1 is 1 (0.1 + 0.2 is not 0.3 in floats)

ANSWERS = ("label", "distribution", "cot")
VERIFIER_ANSWERS = ("verify", "score")


def parse_response(text: str, classes: Sequence[str], *, answer: str = "label",
                   out_of_space: str = "drop",
                   sum_tolerance: tuple[float, float] = SUM_TOLERANCE,
                   max_dropped_share: float = MAX_DROPPED_SHARE,
                   merges: dict[str, str] | None = None) -> ParseResult:
    """Parse one response into a distribution over `classes` (in that order).

    answer: the prompt's answer kind, "label" | "distribution" | "cot" ("cot": only the line
    after the last "Answer:" is read). out_of_space: "drop" (default) drops the mass of classes
    outside `classes` and renormalises; "refuse" makes such an answer a failure.
    sum_tolerance: (low, high) multiples of the scale within which a sum is renormalised.
    max_dropped_share: the share of the stated mass on classes outside `classes` at which a
    distribution is an OUT_OF_SPACE failure instead of being renormalised.
    merges: {part: class of `classes`} merged as the corpus merges its votes; None (default)
    takes the merges of the label space `classes` is (ambiemo.labels.merges_for).
    Verifier replies are read by `parse_score` / `parse_yes_no`, not here.
    """
    if answer in VERIFIER_ANSWERS:
        raise ValueError(f"answer {answer!r} is a verifier reply: read it with "
                         f"ambiemo.parse.parse_score / parse_yes_no, not parse_response")
    if answer not in ANSWERS:
        raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
    if out_of_space not in OUT_OF_SPACE_MODES:
        raise ValueError(f"out_of_space must be one of {OUT_OF_SPACE_MODES}, got {out_of_space!r}")
    if not 0 < max_dropped_share <= 1:
        raise ValueError(f"max_dropped_share must be in (0, 1], got {max_dropped_share!r}")
    lo, hi = sum_tolerance
    if not 0 < lo <= 1 <= hi:
        raise ValueError(f"sum_tolerance must be (low, high) with 0 < low <= 1 <= high, "
                         f"got {sum_tolerance!r}")
    classes = list(classes)
    k = len(classes)
    merges = merges_for(classes) if merges is None else merges
    unknown = sorted(set(merges.values()) - set(classes))
    if unknown:
        raise ValueError(f"merges name classes {unknown} that are not in {classes}")
    if answer == "cot" and text and text.strip():
        text = final_answer(text)
        if text is None:
            return failed(k, 'no final "Answer:" line in the reasoning')
        if not text:
            return failed(k, 'nothing after the final "Answer:"')
    if not text or not text.strip():
        return failed(k, "empty response")
    try:
        pairs = read_pairs(text)
    except Refused as e:
        return failed(k, str(e))
    if isinstance(pairs, str):             # {"emotion": "sad"}
        return from_label(pairs, classes, out_of_space=out_of_space, merges=merges)
    stated = {p.cls or p.name.lower() for p in pairs}
    if pairs and (answer == "distribution" or len(stated) > 1):
        return from_pairs(pairs, classes, out_of_space=out_of_space, sum_tolerance=sum_tolerance,
                          merges=merges, max_dropped_share=max_dropped_share)
    return from_label(text, classes, out_of_space=out_of_space, merges=merges)


def parse_generation(text: str, classes: Sequence[str], *, answer: str,
                     n_tokens: int | None = None, max_new_tokens: int | None = None,
                     **options) -> ParseResult:
    """`parse_response` for a generation that may have been cut at the token limit: when it
    used all `max_new_tokens` and either cannot be read, or is a distribution whose stated
    sum falls short of 1 (the cut-off lines held the rest), it is a TRUNCATED failure rather
    than an unparsed or renormalised answer. `options` go to `parse_response`."""
    r = parse_response(text, classes, answer=answer, **options)
    cut = n_tokens is not None and max_new_tokens is not None and n_tokens >= max_new_tokens
    short = r.ok and not math.isnan(r.raw_sum) and r.raw_sum < 1 - SUM_EXACT
    if cut and (not r.ok or (answer == "distribution" and short)):
        why = r.reason or f"stated probabilities sum to {r.raw_sum:g}"
        return failed(len(r.dist), f"cut at max_new_tokens={max_new_tokens}: {why}", TRUNCATED)
    return r
