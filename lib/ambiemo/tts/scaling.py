"""Test-time-scaling curves: every strategy at n = 1, 2, 4, ..., N from the same candidates.

Jia et al. (2026) ask how each strategy improves with test-time compute. Rather than
generating again for every budget, the N stored candidates are subsampled (as the
search-and-learn recipes do): for each n, `n_subsets` seeded random subsets per utterance,
the same subsets for every strategy so that strategies are compared on equal candidates.

Each subset is its own Predictions row (`replicate` = subset index) and metrics are averaged
over replicates *after* scoring (analysis.summary_table does this). Averaging the predicted
distributions first would be wrong: by convexity the mean prediction scores better than the
average subset, so small n would look better than any single run of n candidates is.
Re-exported as `ambiemo.tts.scaling_curve`.

Candidate pools: strategies reading the same candidates (the sampled ones; the judged ones
of a verifier run; beams) share their subsets. Verifier strategies choose among the judged
candidates only, so their curve stops at the judged count (n = 3 for the paper's B = 3) and
never scores a subset with no judged candidate as missing. Beam strategies (`bon`, `w_bon`)
appear once, at n = B: a subset of B beams is not a beam search of width n.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ambiemo.tts import strategies as S
from ambiemo.tts.predictions import (Candidates, apply, gather, n_judged, predict, strategy_kind,
                                     strategy_specs)

DEFAULT_N_SUBSETS = 10


def default_ns(n_max: int) -> list[int]:
    """1, 2, 4, ... up to `n_max`, and `n_max` itself when it is not a power of two."""
    ns = [1 << i for i in range(int(np.log2(n_max)) + 1)] if n_max >= 1 else []
    return ns + ([n_max] if ns and ns[-1] != n_max else [])


def subsample(cand: Candidates, positions: np.ndarray) -> Candidates:
    """The candidates at `positions` (U, n) of each utterance."""
    rows = np.arange(len(cand.utt_ids))[:, None]
    return Candidates(cand.utt_ids, cand.dists[rows, positions], cand.logprob[rows, positions],
                      cand.n_tokens[rows, positions], cand.verifier[rows, positions],
                      np.full(len(cand.utt_ids), positions.shape[1]))


def scaling_curve(samples: pd.DataFrame, classes: Sequence[str], strategies, *, model: str,
                  ns: Sequence[int] | None = None, n_subsets: int = DEFAULT_N_SUBSETS,
                  seed: int = 0, verifier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predictions of every strategy at every n, one row per (utt, strategy, n, replicate).

    Strategies over sampled candidates get `n_subsets` random subsets of size n per
    utterance (one when n is every candidate, since all subsets are then the same set);
    `greedy`, `cot` and `label_logits` do not depend on n and appear once, at n = 1.
    `ns` defaults to 1, 2, 4, ..., N with N the fewest candidates any utterance has; an
    explicit n above that raises. Verifier strategies take the ns below their judged count
    and the judged count itself; beam strategies appear once, at n = B. `params` records `subsets` and `seed` besides the
    strategy's own parameters.
    """
    classes = list(classes)
    specs = strategy_specs(strategies)
    single = {k: v for k, v in specs.items() if S.get_strategy(k).single}
    pooled = {k: v for k, v in specs.items() if not S.get_strategy(k).single}
    frames = [predict(samples, classes, single, model=model, verifier=verifier)] if single else []
    utt_ids = pd.unique(samples["utt_id"])
    pools: dict[tuple, dict] = {}
    for name, params in pooled.items():
        st = S.get_strategy(name)
        judged = "verifier" in st.needs
        key = (strategy_kind(name, verifier), judged)
        pools.setdefault(key, {})[name] = params
    requested = None if ns is None else sorted({int(n) for n in ns})
    for (kind, judged), members in pools.items():
        cands = {name: gather(samples, classes, name, verifier=verifier, utt_ids=utt_ids)
                 for name in members}
        counts = next(iter(cands.values())).counts
        n_min, n_max = int(counts.min()), int(counts.max())
        if judged:
            top = n_judged(verifier)
            # Up to and including the judged count, never past it.
            pool_ns = (default_ns(top) if requested is None
                       else [n for n in requested if n < top] + [top])
            n_min = n_max = top  # absent judged candidates are padding: counted as failed
        elif kind == "beam":
            pool_ns = [n_max]
        else:
            pool_ns = default_ns(n_min) if requested is None else requested
            if not pool_ns or pool_ns[0] < 1 or pool_ns[-1] > n_min:
                short = utt_ids[counts < (pool_ns[-1] if pool_ns else 1)][:5].tolist()
                raise ValueError(f"scaling ns must lie in 1..{n_min} (the fewest sampled "
                                 f"candidates of any utterance, e.g. {short}); got {pool_ns}")
        rng = np.random.default_rng(seed)
        for n in pool_ns:
            # Every subset of all N candidates is the same set, so one replicate suffices.
            n_rep = 1 if n == n_min == n_max else n_subsets
            for r in range(n_rep):
                # Random keys with padding slots last; the first n of each row are a uniform
                # random n-subset of that utterance's own candidates.
                width = next(iter(cands.values())).dists.shape[1]
                keys = rng.random((len(utt_ids), width))
                keys[np.arange(width)[None, :] >= counts[:, None]] = np.inf
                positions = np.argsort(keys, axis=1)[:, :n]
                extra = {"subsets": n_rep, "seed": seed}
                for name, params in members.items():
                    frames.append(apply(name, params, subsample(cands[name], positions),
                                        model=model, n=n, replicate=r, classes=classes,
                                        extra_params=extra))
    return pd.concat(frames, ignore_index=True)
