"""Samples -> Predictions: apply the test-time-scaling strategies of tts.py to a sample store.

This is the `tts` arrow of docs/design.md for whole runs (Jia et al., 2026, compare every strategy
on the same generated candidates). It maps each strategy to the kind of sample it reads,
pads each utterance's candidates into one batch, and records with every prediction the
counts and every parameter that shaped it. `predict` is re-exported as `ambiemo.tts.predict`.

A strategy is *unavailable* for a model when the run holds nothing it can read: no rows of
its kind (no CoT run, no class-name scores), no finite log-likelihood for `bon`/`w_bon`
(hosted models give none), no verifier scores for `alm_v`/`w_alm_v` (no 03_verify run).
`unavailable_strategies` says which and why, and `predict(..., skip_unavailable=True)` leaves
them out, so the tables can say "unavailable" instead of scoring an all-missing prediction
(which would read as JS = 1, a result that was never produced). `dirichlet` is unavailable
when every parsed candidate is one-hot (a `direct_label` prompt): it pools distributions.

Verifier strategies (`alm_v`, `w_alm_v`) choose among exactly the candidates the verifier
was asked to judge: the first `n_judged` candidates of the judged kind (the verifier frame's
`kind` and `n_judged` columns, from `verifier_scores`), so the paper's B = 3 gives n = 3.
Candidates beyond those are not part of the strategy (never counted as failed); a judged
candidate that did not parse or got no verdict is a counted failure.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ambiemo.tts import strategies as S
from ambiemo.labels import columns

KEY_COLUMNS = ["utt_id", "model", "strategy", "n", "replicate"]


@dataclass(frozen=True)
class Candidates:
    """Padded candidates of one kind: row u holds utterance `utt_ids[u]`, `counts[u]` real slots."""
    utt_ids: np.ndarray
    dists: np.ndarray     # (U, N, K)
    logprob: np.ndarray   # (U, N)
    n_tokens: np.ndarray  # (U, N)
    verifier: np.ndarray  # (U, N)
    counts: np.ndarray    # (U,)


def strategy_specs(strategies) -> dict[str, dict]:
    """A list of names or {name: params} -> {name: fully resolved params}."""
    if isinstance(strategies, str):
        strategies = [strategies]
    if not isinstance(strategies, Mapping):
        strategies = {name: {} for name in strategies}
    return {name: S.resolve_params(name, **(params or {})) for name, params in strategies.items()}


def params_json(params: Mapping) -> str:
    """Parameters as JSON with sorted keys (numpy scalars become plain numbers)."""
    def plain(x):
        return x.item() if isinstance(x, np.generic) else str(x)
    return json.dumps(dict(params), sort_keys=True, default=plain)


UNAVAILABLE_COLUMNS = ["strategy", "kind", "reason"]
ONE_HOT_ATOL = 1e-9


def strategy_kind(strategy: str, verifier: pd.DataFrame | None = None) -> str:
    """The sample-store kind `strategy` reads: its registered kind, except that verifier
    strategies read the kind the verifier judged (the frame's `kind` column, if any)."""
    st = S.get_strategy(strategy)
    if "verifier" in st.needs and verifier is not None and "kind" in verifier:
        kinds = pd.unique(verifier["kind"].dropna())
        if len(kinds) > 1:
            raise ValueError(f"the verifier frame mixes judged kinds {sorted(kinds)}; "
                             "one verifier run judges one kind")
        if len(kinds):
            return str(kinds[0])
    return st.kind


def n_judged(verifier: pd.DataFrame) -> int:
    """How many candidates per clip the verifier was asked to judge (the first n by idx):
    the frame's `n_judged` column, else the highest judged idx + 1."""
    if "n_judged" in verifier and verifier["n_judged"].notna().any():
        return int(verifier["n_judged"].max())
    return int(verifier["idx"].max()) + 1 if len(verifier) else 0


def _parsed(rows: pd.DataFrame, classes: Sequence[str] | None) -> np.ndarray:
    cols = columns("p", classes) if classes is not None else [c for c in rows if c.startswith("p_")]
    p = rows[cols].to_numpy(dtype=float)
    return p[np.isfinite(p).all(axis=1)]


def unavailable_strategies(samples: pd.DataFrame, strategies, *,
                           verifier: pd.DataFrame | None = None,
                           classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The strategies of `strategies` that `samples` (+ `verifier`) cannot serve, and why.

    Columns: strategy, kind (the sample kind it reads), reason. A strategy whose kind is
    present for some utterances but not others is *not* listed: that is a broken run, and
    `gather` raises for it.
    """
    out = []
    for name in strategy_specs(strategies):
        st = S.get_strategy(name)
        kind = strategy_kind(name, verifier)
        rows = samples[samples["kind"] == kind]
        reason = None
        if rows.empty:
            reason = (f"strategy {name!r} needs samples of kind {kind!r}, "
                      "and the sample store has none for this model")
        elif st.soft and len(p := _parsed(rows, classes)) and (
                np.abs(p.max(axis=1) - 1) <= ONE_HOT_ATOL).all():
            reason = (f"strategy {name!r} pools distribution-form candidates, and every parsed "
                      f"{kind!r} candidate of this model is one-hot (a label prompt, or answers "
                      "naming one class): fitted to one-hot answers it is uniform shrinkage of "
                      "the vote share")
        elif "logprob" in st.needs and not np.isfinite(
                pd.to_numeric(rows.get("logprob"), errors="coerce")).any():
            reason = (f"strategy {name!r} needs log-likelihoods, and no {kind!r} candidate "
                      "of this model has one (the model gives no log-probabilities)")
        elif "verifier" in st.needs and verifier is None:
            reason = (f"strategy {name!r} needs verifier scores, and there is no verifier run "
                      "for this model and corpus (pass verifier=<frame with utt_id, idx, score>)")
        elif "verifier" in st.needs:
            judged = rows[["utt_id", "idx"]].merge(verifier[["utt_id", "idx", "score"]],
                                                   on=["utt_id", "idx"], how="inner")
            if not np.isfinite(pd.to_numeric(judged["score"], errors="coerce")).any():
                reason = (f"strategy {name!r} needs verifier scores, and the verifier run has "
                          f"no finite score for any {kind!r} candidate of this model")
        if reason:
            out.append({"strategy": name, "kind": st.kind, "reason": reason})
    return pd.DataFrame(out, columns=UNAVAILABLE_COLUMNS)


def gather(samples: pd.DataFrame, classes: Sequence[str], strategy: str, *,
           verifier: pd.DataFrame | None = None, utt_ids: np.ndarray | None = None) -> Candidates:
    """The candidates `strategy` reads, for every utterance in `samples` (or `utt_ids`)."""
    kind = strategy_kind(strategy, verifier)
    st = S.get_strategy(strategy)
    utt_ids = pd.unique(samples["utt_id"]) if utt_ids is None else np.asarray(utt_ids)
    rows = samples[samples["kind"] == kind]
    if rows.empty:
        raise ValueError(f"strategy {strategy!r} needs samples of kind {kind!r}, "
                         "and the sample store has none")
    absent = pd.Index(utt_ids).difference(pd.Index(rows["utt_id"].unique()))
    if len(absent):
        raise ValueError(f"{len(absent)} utterances have no samples of kind {kind!r} "
                         f"(needed by {strategy!r}): {list(absent[:5])}")
    rows = rows[rows["utt_id"].isin(utt_ids)].sort_values(["utt_id", "idx"], kind="stable")
    if st.single:
        # greedy / cot / label_score: the first (idx 0) answer is the one the strategy means.
        rows = rows.groupby("utt_id", sort=False).head(1)
    if "verifier" in st.needs:
        if verifier is None:
            raise ValueError(f"strategy {strategy!r} needs verifier scores: pass "
                             "verifier=<frame with utt_id, idx, score>")
        # Only the candidates the verifier was asked to judge: the strategy chooses among them.
        rows = rows[rows["idx"] < n_judged(verifier)]
        # The store's own `score` column is the verifier rows' (NULL on samples): replaced.
        rows = rows.drop(columns="score", errors="ignore").merge(
            verifier[["utt_id", "idx", "score"]], on=["utt_id", "idx"],
                          how="left", validate="one_to_one")
    else:
        rows = rows.assign(score=np.nan)
    p = rows[columns("p", classes)].to_numpy(dtype=float, copy=True)
    if "parse_ok" in rows:
        p[~rows["parse_ok"].fillna(False).to_numpy(dtype=bool)] = np.nan
    order = {u: i for i, u in enumerate(utt_ids)}
    u_pos = rows["utt_id"].map(order).to_numpy()
    slot = rows.groupby("utt_id", sort=False).cumcount().to_numpy()
    counts = np.bincount(u_pos, minlength=len(utt_ids))
    U, N, K = len(utt_ids), int(counts.max()), len(classes)
    dists = np.full((U, N, K), np.nan)
    dists[u_pos, slot] = p
    extra = {}
    for col, name in (("logprob", "logprob"), ("n_tokens", "n_tokens"), ("score", "verifier")):
        arr = np.full((U, N), np.nan)
        if col in rows:
            arr[u_pos, slot] = rows[col].to_numpy(dtype=float)
        extra[name] = arr
    return Candidates(np.asarray(utt_ids), dists, counts=counts, **extra)


def candidate_form(dists: np.ndarray) -> dict[str, np.ndarray]:
    """Per clip of padded (U, N, K) candidates: `n_parsed` (finite rows) and `n_one_hot`
    (of those, one class at probability 1). A one-word answer in the distribution arm parses
    as one-hot, and JS, BC and R² reward a mixture over it by form alone, so every table row
    says how often its candidates were one-hot (`one_hot_share`)."""
    parsed = np.isfinite(dists).all(axis=2)
    with np.errstate(invalid="ignore"):
        one_hot = parsed & (np.abs(np.nanmax(np.where(parsed[..., None], dists, 0.0), axis=2)
                                   - 1) <= ONE_HOT_ATOL)
    return {"n_parsed": parsed.sum(axis=1).astype(int),
            "n_one_hot": one_hot.sum(axis=1).astype(int)}


def apply(strategy: str, params: Mapping, cand: Candidates, *, model: str, n: int,
          replicate: int = 0, classes: Sequence[str], extra_params: Mapping | None = None
          ) -> pd.DataFrame:
    """Run one strategy over padded candidates and lay the result out as Predictions rows."""
    out, n_usable, full = S.run_batch(strategy, cand.dists, logprob=cand.logprob,
                                        n_tokens=cand.n_tokens, verifier=cand.verifier,
                                        **params)
    frame = pd.DataFrame({
        "utt_id": cand.utt_ids, "model": model, "strategy": strategy, "n": n,
        "replicate": replicate, "n_usable": n_usable.astype(int),
        # Absent candidates (a run that stored fewer than n) count as failed too.
        "n_failed": (n - n_usable).astype(int), "missing": n_usable == 0,
        "params": params_json({**full, **(extra_params or {})}),
        **candidate_form(cand.dists),
    })
    frame[columns("p", classes)] = out
    return frame


def predict(samples: pd.DataFrame, classes: Sequence[str], strategies, *, model: str,
            verifier: pd.DataFrame | None = None, skip_unavailable: bool = False
            ) -> pd.DataFrame:
    """Predictions of every strategy for every utterance of `samples`.

    `strategies` is a list of names or {name: params}. `greedy` reads the kind=="greedy" row,
    `cot` the kind=="cot" row (idx 0 if several), `label_logits` the kind=="label_score" row,
    `bon` / `w_bon` every kind=="beam" candidate, `alm_v` / `w_alm_v` the judged candidates
    (see the module docstring) and the others every kind=="sample" candidate; `verifier`
    (utt_id, idx, score[, kind, n_judged]) scores candidates for `alm_v` / `w_alm_v`. `n` is
    the number of candidates the strategy was given (the most any utterance has; for
    verifier strategies the judged count), `replicate` is 0, and `params` holds every
    parameter as JSON. Output columns: utt_id, model, strategy, n, replicate, n_usable,
    n_failed, missing, params, n_parsed, n_one_hot (the candidates' form, `candidate_form`),
    p_<class>...

    A strategy the samples cannot serve (see `unavailable_strategies`) raises a ValueError
    with the reason, or with `skip_unavailable=True` is left out; ask
    `unavailable_strategies` for the list. The frame then has no row for it, never
    all-missing rows.
    """
    classes = list(classes)
    utt_ids = pd.unique(samples["utt_id"])
    specs = strategy_specs(strategies)
    unavailable = unavailable_strategies(samples, specs, verifier=verifier, classes=classes)
    if len(unavailable) and not skip_unavailable:
        raise ValueError("; ".join(unavailable["reason"]) +
                         " (predict(..., skip_unavailable=True) leaves such strategies out)")
    frames = []
    for name, params in specs.items():
        if name in set(unavailable["strategy"]):
            continue
        cand = gather(samples, classes, name, verifier=verifier, utt_ids=utt_ids)
        n = (n_judged(verifier) if "verifier" in S.get_strategy(name).needs
             else cand.dists.shape[1])
        frames.append(apply(name, params, cand, model=model, n=n, classes=classes))
    if not frames:  # every strategy unavailable: an empty frame with the Predictions columns
        return pd.DataFrame(columns=[*KEY_COLUMNS, "n_usable", "n_failed", "missing", "params",
                                     "n_parsed", "n_one_hot",
                                     *columns("p", classes)])
    return pd.concat(frames, ignore_index=True)


def verifier_scores(rows: pd.DataFrame, source: str = "verifier run", *,
                    candidates: str = "sample", n: int | None = None) -> pd.DataFrame:
    """The (utt_id, idx, score, kind, n_judged) frame `predict` takes, from a verifier run
    read from the sample store (rows of kind "verify": idx is the judged candidate's idx).

    `candidates` and `n` are the verification config's (`verification.candidates`, `.n`):
    the kind judged and how many per clip; n None means the highest judged idx + 1.
    """
    lacking = sorted({"utt_id", "kind", "idx", "score"} - set(rows.columns))
    if lacking:
        raise ValueError(f"{source}: verifier rows lack columns {lacking}")
    judged = rows[rows["kind"] == "verify"]
    if judged.empty:
        raise ValueError(f"{source}: no rows of kind 'verify' (kinds present: "
                         f"{sorted(rows['kind'].unique())})")
    dup = judged.duplicated(["utt_id", "idx"])
    if dup.any():
        raise ValueError(f"{source}: {int(dup.sum())} candidates judged twice, e.g. "
                         f"{judged.loc[dup, ['utt_id', 'idx']].head(3).values.tolist()}")
    out = judged[["utt_id", "idx", "score"]].reset_index(drop=True)
    if n is not None and (out["idx"] >= n).any():
        raise ValueError(f"{source}: candidates with idx >= n = {n} were judged; the verifier "
                         "run and the verification config disagree")
    return out.assign(kind=candidates,
                      n_judged=int(n) if n is not None else int(out["idx"].max()) + 1)
