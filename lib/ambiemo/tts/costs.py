"""What each test-time-scaling strategy cost per clip, read from the sample store.

Test-time scaling trades compute for quality (Jia et al., 2026), so every (model, strategy,
n) row of the results carries its cost per clip beside its metrics:

- `tokens_per_clip`: generated tokens (the store's `n_tokens`, end of turn included) of the
  answers the strategy reads; NaN when the model does not report token counts (hosted APIs);
- `forward_passes_per_clip`: model forward passes — one per generated token for a text
  answer (the first comes out of the prefill), one for a `label_score` row (one prefill
  scores every class name), and one per candidate the verifier judged;
- `seconds_per_clip`: measured wall time (the store's `seconds`, a batch's time shared by its
  rows), the verifier's included; `verifier_seconds_per_clip` is that share alone.

A strategy over N sampled candidates evaluated at n reads n of them: its cost is n times the
mean cost of one candidate of the clip, exact when n is every candidate and the expected cost
of the random n-subsets of `scaling.scaling_curve` otherwise. Rows that failed (an OOM split,
a truncated answer) still spent their compute and are counted.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ambiemo.tts.strategies import get_strategy

COST_COLUMNS = ["model", "strategy", "n", "n_clips", "tokens_per_clip",
                "forward_passes_per_clip", "seconds_per_clip", "verifier_seconds_per_clip"]


def _per_candidate(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per clip: the mean tokens, forward passes and seconds of one row, and the row count."""
    tokens = pd.to_numeric(rows["n_tokens"], errors="coerce") if "n_tokens" in rows \
        else pd.Series(np.nan, index=rows.index)
    if kind == "label_score":
        passes = pd.Series(1.0, index=rows.index)
        tokens = pd.Series(0.0, index=rows.index)
    elif kind == "verify":
        passes = pd.Series(1.0, index=rows.index)
        tokens = pd.Series(0.0, index=rows.index)    # a verdict is scored, not generated
    else:
        passes = tokens.clip(lower=1)
    seconds = pd.to_numeric(rows["seconds"], errors="coerce") if "seconds" in rows \
        else pd.Series(np.nan, index=rows.index)
    frame = pd.DataFrame({"utt_id": rows["utt_id"].to_numpy(), "tokens": tokens.to_numpy(float),
                          "passes": passes.to_numpy(float), "seconds": seconds.to_numpy(float)})
    # A mean over a clip's rows stays NaN when no row reports the quantity (skipna would
    # turn an all-NULL column into 0 and claim a hosted model cost nothing).
    grouped = frame.groupby("utt_id", sort=False)
    out = grouped[["tokens", "passes", "seconds"]].mean()
    out["rows"] = grouped.size()
    return out


def strategy_costs(samples: pd.DataFrame, verify_samples: pd.DataFrame | None,
                   strategies: Sequence[str], *, model: str,
                   ns: Sequence[int] | None = None) -> pd.DataFrame:
    """Cost per clip of each strategy on one model's samples, at each n.

    `samples` are `SampleStore.read` rows of the model's run (kinds greedy, sample, ...);
    `verify_samples` the rows of its verifier run (kind `verify`), or None when there is
    none (a verifier strategy then raises). Single-answer strategies get one row at n = 1;
    the others one row per n in `ns` their candidates reach, and one at all of them. Columns:
    `COST_COLUMNS`, averaged over the clips the strategy reads.
    """
    need = {"utt_id", "kind", "seconds"} - set(samples.columns)
    if need:
        raise KeyError(f"strategy_costs: samples lack columns {sorted(need)}; pass "
                       "SampleStore.read rows")
    rows = []
    for name in strategies:
        spec = get_strategy(name)
        of_kind = samples[samples["kind"] == spec.kind]
        if of_kind.empty:
            raise ValueError(f"strategy_costs: {model} has no {spec.kind!r} samples, which "
                             f"strategy {name!r} reads")
        per = _per_candidate(of_kind, spec.kind)
        verdicts = None
        if "verifier" in spec.needs:
            if verify_samples is None or not (verify_samples["kind"] == "verify").any():
                raise ValueError(f"strategy_costs: {name!r} needs the verifier's rows "
                                 f"(kind 'verify') for {model}; none were given")
            verdicts = _per_candidate(verify_samples[verify_samples["kind"] == "verify"],
                                      "verify").reindex(per.index)
        n_all = int(per["rows"].min())
        # As the scaling curves: a strategy has the n of `ns` its candidates reach (a beam
        # strategy only its B; a verifier strategy its judged count), and always all of them.
        wanted = [1] if spec.single else sorted({n for n in (ns or []) if 1 <= n <= n_all}
                                                | {n_all})
        for n in wanted:
            k = 1 if spec.single else n
            tokens, passes, seconds = (k * per[c] for c in ("tokens", "passes", "seconds"))
            ver_seconds = pd.Series(0.0, index=per.index)
            if verdicts is not None:
                passes = passes + k * verdicts["passes"].fillna(0)
                ver_seconds = k * verdicts["seconds"].fillna(0)   # nothing to judge: no cost
            rows.append(dict(model=model, strategy=name, n=n, n_clips=len(per),
                             tokens_per_clip=tokens.mean(skipna=False),
                             forward_passes_per_clip=passes.mean(skipna=False),
                             seconds_per_clip=(seconds + ver_seconds).mean(skipna=False),
                             verifier_seconds_per_clip=ver_seconds.mean(skipna=False)))
    return pd.DataFrame(rows, columns=COST_COLUMNS)
