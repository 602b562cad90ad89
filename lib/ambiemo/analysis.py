"""Statistics over Scores: bootstrap CIs, paired comparisons, ambiguity bins, capacity models.

The analyses of Jia et al. (2026): is one strategy better than another on the same
utterances (paired permutation test, Holm-corrected across a table), and how does the gain
depend on ambiguity and model capacity (metric ~ strategy x ambiguity + log parameter count,
with utterances as clusters). Everything is seeded; every p-value can be recomputed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.corpora.manifest import add_ambiguity_bin
from ambiemo.references import REFERENCE_MODELS
from ambiemo.summary import GROUP_KEYS, summary_table  # noqa: F401  (public here)

DEFAULT_N_PERM = 10_000


def bootstrap_ci(values, statistic=np.mean, *, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float, float]:
    """(estimate, lo, hi): percentile bootstrap of `statistic` over the finite `values`."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    boot = np.array([statistic(v[rng.integers(0, len(v), len(v))]) for _ in range(n_boot)])
    a = (1 - confidence) / 2
    return float(statistic(v)), float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN kept."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True)
class PairedComparison:
    """a versus b on the utterances both scored: difference of means, CI and p-value."""
    a: str
    b: str
    metric: str
    direction: str
    n_utts: int
    mean_a: float
    mean_b: float
    diff: float      # mean(a - b)
    diff_lo: float
    diff_hi: float
    p_value: float   # two-sided sign-flip permutation test of mean(a - b) = 0
    a_better: bool


def _select(scores: pd.DataFrame, spec) -> tuple[str, pd.DataFrame]:
    spec = {"strategy": spec} if isinstance(spec, str) else dict(spec)
    rows = scores
    for k, v in spec.items():
        rows = rows[rows[k] == v]
    groups = rows[GROUP_KEYS].drop_duplicates()
    if len(groups) != 1:
        raise ValueError(f"{spec} selects {len(groups)} (model, strategy, n) groups; "
                         f"name model/strategy/n so that it selects exactly one")
    label = "/".join(str(groups.iloc[0][k]) for k in GROUP_KEYS)
    return label, rows


def _per_utterance(rows: pd.DataFrame, metric: str) -> pd.Series:
    # Replicates (scaling subsets, ceiling draws) of one utterance are averaged first, so
    # the utterance stays the unit of the test.
    return rows.groupby("utt_id")[metric].mean()


def paired_comparison(scores: pd.DataFrame, a, b, metric: str = "js_divergence", *,
                      n_perm: int = DEFAULT_N_PERM, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> PairedComparison:
    """Compare a and b (a strategy name, or {model, strategy, n}) on the same utterances.

    `metric` is a per-utterance metric or `correct` (accuracy). Utterances where either side
    is NaN are dropped. The p-value is a seeded sign-flip permutation test (two-sided,
    (1 + #|T*| >= |T|) / (1 + n_perm)); the CI is a percentile bootstrap of mean(a - b).
    """
    direction = "higher" if metric == "correct" else M.get_metric(metric).direction
    label_a, rows_a = _select(scores, a)
    label_b, rows_b = _select(scores, b)
    both = pd.concat([_per_utterance(rows_a, metric), _per_utterance(rows_b, metric)],
                     axis=1, join="inner").dropna()
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()
    if len(d) == 0:
        raise ValueError(f"{label_a} and {label_b} share no utterance with a finite {metric}")
    rng = np.random.default_rng(seed)
    observed = d.mean()
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(d)))
    null = (signs * d).mean(axis=1)
    # A small tolerance keeps exact ties (e.g. all-zero differences) from being floating noise.
    p = (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_perm)
    _, lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed, confidence=confidence)
    better = observed < 0 if direction == "lower" else observed > 0
    return PairedComparison(label_a, label_b, metric, direction, len(d),
                            float(both.iloc[:, 0].mean()), float(both.iloc[:, 1].mean()),
                            float(observed), lo, hi, float(p), bool(better))


def paired_table(scores: pd.DataFrame, baseline, metric: str = "js_divergence", *,
                 n_perm: int = DEFAULT_N_PERM, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> pd.DataFrame:
    """Every other (model, strategy, n) group against `baseline`, Holm-corrected (`p_holm`)."""
    base_label, _ = _select(scores, baseline)
    out = []
    for key in scores[GROUP_KEYS].drop_duplicates().itertuples(index=False):
        spec = dict(zip(GROUP_KEYS, key))
        if "/".join(str(v) for v in key) == base_label:
            continue
        out.append(asdict(paired_comparison(scores, spec, baseline, metric, n_perm=n_perm,
                                            n_boot=n_boot, seed=seed, confidence=confidence)))
    table = pd.DataFrame(out)
    if len(table):
        table["p_holm"] = holm(table["p_value"])
    return table


def ambiguity_bins(manifest: pd.DataFrame) -> pd.Series:
    """The Manifest's `ambiguity_bin` (corpora.load adds it), else entropy tertiles."""
    if "ambiguity_bin" not in manifest:
        manifest = add_ambiguity_bin(manifest)
    return manifest.set_index("utt_id")["ambiguity_bin"]


def capacity_model(scores: pd.DataFrame, manifest: pd.DataFrame,
                   params_by_model: Mapping[str, float], metric: str = "js_divergence", *,
                   method: str = "cluster_ols") -> pd.DataFrame:
    """Tidy fit of metric ~ strategy x ambiguity_bin + log10(parameter count).

    `method="cluster_ols"` (default): OLS with cluster-robust errors, utterances as clusters;
    `method="mixedlm"`: a random intercept per utterance. Reference rows are left out;
    replicates are averaged per utterance; a term with one level (one model, one strategy,
    one bin) is dropped rather than failing. Columns: term, estimate, std_error, statistic,
    p_value, ci_lo, ci_hi; `attrs` holds formula, notes, n_obs, n_clusters, method.
    """
    import statsmodels.formula.api as smf

    if method not in ("cluster_ols", "mixedlm"):
        raise ValueError(f"method must be 'cluster_ols' or 'mixedlm', got {method!r}")
    notes = []
    refs = scores["model"].isin(REFERENCE_MODELS) | (scores["strategy"] == "reference")
    if refs.any():
        notes.append(f"left out {int(refs.sum())} reference rows")
    data = scores[~refs]
    ns = data.groupby(["model", "strategy"])["n"].nunique()
    if (ns > 1).any():
        raise ValueError("capacity_model needs one n per (model, strategy); filter the scores "
                         f"first (several n for {list(ns[ns > 1].index[:3])})")
    unknown = sorted(set(data["model"]) - set(params_by_model))
    if unknown:
        raise KeyError(f"params_by_model has no parameter count for {unknown}")
    data = (data.groupby(["utt_id", "model", "strategy"], as_index=False, observed=True)[metric]
            .mean())
    dropped = int(data[metric].isna().sum())
    if dropped:
        notes.append(f"dropped {dropped} rows with NaN {metric}")
    data = data.dropna(subset=[metric])
    bins = ambiguity_bins(manifest)
    order = bins.cat.categories if isinstance(bins.dtype, pd.CategoricalDtype) else None
    # Keep the bins' own order (low < mid < high) so that "low" is the reference level.
    data["ambiguity_bin"] = pd.Categorical(bins.reindex(data["utt_id"]).to_numpy(),
                                           categories=order, ordered=order is not None
                                           ).remove_unused_categories()
    data["log_params"] = np.log10([float(params_by_model[m]) for m in data["model"]])
    data = data.rename(columns={metric: "y"})
    terms = []
    n_strat = data["strategy"].nunique()
    n_bins = data["ambiguity_bin"].nunique()
    strat = ("C(strategy, Treatment('greedy'))" if "greedy" in set(data["strategy"])
             else "C(strategy)")
    if n_strat > 1 and n_bins > 1:
        terms.append(f"{strat} * C(ambiguity_bin)")
    elif n_strat > 1:
        terms.append(strat)
        notes.append("one ambiguity bin: ambiguity term dropped")
    elif n_bins > 1:
        terms.append("C(ambiguity_bin)")
        notes.append("one strategy: strategy term dropped")
    if data["log_params"].nunique() > 1:
        terms.append("log_params")
    else:
        notes.append("one model (or one parameter count): capacity term dropped")
    formula = "y ~ " + (" + ".join(terms) if terms else "1")
    groups = data["utt_id"].astype("category").cat.codes.to_numpy()
    if method == "cluster_ols":
        fit = smf.ols(formula, data).fit(cov_type="cluster", cov_kwds={"groups": groups})
    else:
        fit = smf.mixedlm(formula, data, groups=groups).fit()
    ci = fit.conf_int()
    names = [t for t in fit.params.index if t != "Group Var"]
    table = pd.DataFrame({
        "term": names, "estimate": fit.params[names].to_numpy(),
        "std_error": fit.bse[names].to_numpy(), "statistic": fit.tvalues[names].to_numpy(),
        "p_value": fit.pvalues[names].to_numpy(), "ci_lo": ci.loc[names, 0].to_numpy(),
        "ci_hi": ci.loc[names, 1].to_numpy()})
    table.attrs.update(formula=formula.replace("y ~", f"{metric} ~"), notes=notes,
                       n_obs=int(fit.nobs), n_clusters=int(data["utt_id"].nunique()),
                       method=method, metric=metric)
    return table


__all__ = ["bootstrap_ci", "holm", "PairedComparison", "paired_comparison", "paired_table",
           "ambiguity_bins", "capacity_model", "summary_table"]
