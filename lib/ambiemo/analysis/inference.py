"""Statistics over Scores: bootstrap CIs, paired comparisons, ambiguity bins, capacity models.

The analyses of Jia et al. (2026): is one strategy better than another on the same
utterances (paired permutation test, Holm-corrected across a table), and how does the gain
depend on ambiguity and model capacity (a mixed model with the model as random effect,
capacity.py). Everything is seeded; every p-value can be recomputed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.analysis.capacity import MIN_MODELS, MIN_SPAN_DECADES, fit_capacity_mixed
from ambiemo.analysis.capacity import RESULT_COLUMNS as CAPACITY_RESULT_COLUMNS
from ambiemo.analysis.clusters import (CLIP, clusters_of, design, mean_inference,
                                       resolve_scheme, sign_flip_p)
from ambiemo.analysis.summaries import ambiguity_bin_of, group_keys
from ambiemo.tts.references import is_reference

DEFAULT_N_PERM = 10_000
# Corpus metrics with no per-clip value: analyses that pair or regress clips use the named
# per-clip form instead, and say so in their notes and `metric` column.
PER_CLIP_FORM = {"r2": "r2_per_clip", "accuracy": "correct"}


def per_clip_metric(metric: str) -> tuple[str, list[str]]:
    """The Scores column a per-clip analysis of `metric` uses, and a note if it differs."""
    column = PER_CLIP_FORM.get(metric, metric)
    if column == metric or metric == "accuracy":
        return column, []
    return column, [f"{metric} is a corpus metric with no per-clip value; the per-clip form "
                    f"{column} is analysed instead"]


def bootstrap_ci(values, statistic=np.mean, *, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float, float]:
    """(estimate, lo, hi): percentile bootstrap of `statistic` over the finite `values`."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    if statistic is np.mean:
        # The same resamples as one draw per replicate (Generator.integers yields the same
        # stream in one call as in several), taken a block of rows at a time; a row mean may
        # differ from a one-at-a-time mean in the last bit.
        boot = np.concatenate([v[rng.integers(0, len(v), (k, len(v)))].mean(axis=1)
                               for k in _blocks(n_boot, len(v))])
    else:
        boot = np.array([statistic(v[rng.integers(0, len(v), len(v))]) for _ in range(n_boot)])
    a = (1 - confidence) / 2
    return float(statistic(v)), float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))


def _blocks(n_boot: int, n: int, cells: int = 2_000_000) -> list[int]:
    """Replicates per block so that a block holds at most about `cells` indices."""
    size = max(1, cells // max(n, 1))
    return [min(size, n_boot - i) for i in range(0, n_boot, size)]


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
    # Protocol v3: which clips (form), how they were resampled (scheme), what was dropped.
    form: str = "all"            # all | complete_case | no_one_hot (see FORMS)
    scheme: str = "clip"         # clip | speaker | sentence | speaker x sentence
    n_clusters: str = ""         # clusters per dimension, e.g. "91 x 12"
    method: str = "percentile bootstrap; sign flips per clip"
    n_all: int = 0               # clips of the all-clips form
    share_dropped: float = 0.0   # 1 - n_utts / n_all


def _select(scores: pd.DataFrame, spec) -> tuple[str, pd.DataFrame]:
    spec = {"strategy": spec} if isinstance(spec, str) else dict(spec)
    rows = scores
    for k, v in spec.items():
        rows = rows[rows[k] == v]
    keys = group_keys(rows)
    groups = rows[keys].drop_duplicates()
    if len(groups) != 1:
        raise ValueError(f"{spec} selects {len(groups)} ({', '.join(keys)}) groups; "
                         f"name {'/'.join(keys)} so that it selects exactly one")
    label = "/".join(str(groups.iloc[0][k]) for k in keys)
    return label, rows


FORMS = ("all", "complete_case", "no_one_hot")


def _per_utterance(rows: pd.DataFrame, metric: str, form: str = "all") -> pd.Series:
    """Per-utterance mean of `metric` over replicates (scaling subsets, new-rater draws), so
    the utterance stays the unit of the test, in one of the FORMS:

    - `all`: every clip, a missing prediction at the metric's worst value (as scored);
    - `complete_case`: only answered rows (a clip with no answer drops out, so pairing drops
      it from both sides: a missing answer never counts as a gain or a loss);
    - `no_one_hot`: complete-case clips none of whose parsed candidates is one-hot (the
      Predictions' `n_one_hot`; NaN rows, e.g. references, count as not one-hot), so
      a comparison is not decided by the answers' form alone.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if form != "all" and "missing" in rows:
        rows = rows[~rows["missing"].astype(bool).to_numpy()]
    if form == "no_one_hot":
        if "n_one_hot" not in rows:
            raise ValueError("form='no_one_hot' needs the Scores' n_one_hot column "
                             "(metrics.score copies it from Predictions)")
        one_hot = rows.groupby("utt_id")["n_one_hot"].sum() > 0
        rows = rows[~rows["utt_id"].map(one_hot).to_numpy(dtype=bool)]
    return rows.groupby("utt_id")[metric].mean()


def paired_comparison(scores: pd.DataFrame, a, b, metric: str = "js_divergence", *,
                      n_perm: int = DEFAULT_N_PERM, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95, cluster: str = "auto",
                      form: str = "all") -> PairedComparison:
    """Compare a and b (a strategy name, or {model, strategy, n}) on the same utterances.

    `metric` is a per-utterance metric or `correct` (accuracy). Utterances where either side
    is NaN are dropped; `form` (FORMS) says which clips enter (`complete_case`: only clips
    both sides answered; `share_dropped` says how many left). `cluster` ("auto": every
    cluster column the Scores carry, speaker and sentence; or "clip", "speaker",
    "sentence", "speaker x sentence") decides the resampling (analysis/clusters.py): with
    clusters the interval is est ± t x the cluster-robust SE and the p-value flips signs per
    cluster (one-way) or is the two-way t test; without, the p-value is a seeded sign-flip
    permutation test per clip ((1 + #|T*| >= |T|) / (1 + n_perm)) and the interval a
    percentile bootstrap of mean(a - b). `scheme` and `method` say which.
    """
    label_a, rows_a = _select(scores, a)
    label_b, rows_b = _select(scores, b)
    return _compare(label_a, _per_utterance(rows_a, metric, form), label_b,
                    _per_utterance(rows_b, metric, form), metric, n_perm=n_perm, n_boot=n_boot,
                    seed=seed, confidence=confidence, clusters=clusters_of(scores),
                    cluster=cluster, form=form,
                    n_all=len(_paired(_per_utterance(rows_a, metric),
                                      _per_utterance(rows_b, metric)))
                    if form != "all" else None)


def _paired(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """The utterances both per-utterance series score finitely, side by side."""
    return pd.concat([a, b], axis=1, join="inner").dropna()


def _compare(label_a: str, per_a: pd.Series, label_b: str, per_b: pd.Series, metric: str, *,
             n_perm: int, n_boot: int, seed: int, confidence: float,
             clusters: pd.DataFrame | None = None, cluster: str = "auto", form: str = "all",
             n_all: int | None = None) -> PairedComparison:
    """`paired_comparison` on per-utterance values already selected; `clusters` (utt_id ->
    speaker, sentence) decides the scheme, `n_all` is the all-clips count (share dropped)."""
    direction = "higher" if metric == "correct" else M.get_metric(metric).direction
    both = _paired(per_a, per_b)
    d = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()
    if len(d) == 0:
        raise ValueError(f"{label_a} and {label_b} share no utterance with a finite {metric}")
    n_all = len(d) if n_all is None else n_all
    clusters = pd.DataFrame(index=both.index) if clusters is None else clusters
    des = design(clusters, both.index, cluster)
    observed = d.mean()
    if des.scheme == CLIP:
        rng = np.random.default_rng(seed)
        p = sign_flip_p(des, d, n_perm, rng)
        _, lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed, confidence=confidence)
        method, groups = "percentile bootstrap; sign flips per clip", str(len(d))
    else:
        res = mean_inference(d, des, n_perm=n_perm, n_boot=n_boot, seed=seed,
                             confidence=confidence)
        lo, hi, p, method, groups = res.lo, res.hi, res.p_value, res.method, res.n_clusters
    better = observed < 0 if direction == "lower" else observed > 0
    return PairedComparison(label_a, label_b, metric, direction, len(d),
                            float(both.iloc[:, 0].mean()), float(both.iloc[:, 1].mean()),
                            float(observed), float(lo), float(hi), float(p), bool(better),
                            form=form, scheme=des.scheme, n_clusters=groups, method=method,
                            n_all=int(n_all),
                            share_dropped=float(1 - len(d) / n_all) if n_all else 0.0)


def paired_table(scores: pd.DataFrame, baseline, metric: str = "js_divergence", *,
                 n_perm: int = DEFAULT_N_PERM, n_boot: int = 1000, seed: int = 0,
                 confidence: float = 0.95, cluster: str = "auto",
                 form: str = "all") -> pd.DataFrame:
    """Every other (model, strategy, n) group against `baseline`, Holm-corrected (`p_holm`);
    `cluster` and `form` as in `paired_comparison` (the `scheme` column says which)."""
    base_label, _ = _select(scores, baseline)
    out = []
    keys = group_keys(scores)
    for key in scores[keys].drop_duplicates().itertuples(index=False):
        spec = dict(zip(keys, key))
        if "/".join(str(v) for v in key) == base_label:
            continue
        out.append(asdict(paired_comparison(scores, spec, baseline, metric, n_perm=n_perm,
                                            n_boot=n_boot, seed=seed, confidence=confidence,
                                            cluster=cluster, form=form)))
    table = pd.DataFrame(out)
    if len(table):
        table["p_holm"] = holm(table["p_value"])
    return table



def _require_one_arm(data: pd.DataFrame, caller: str) -> None:
    """One-hot and distribution candidates are different studies: never pooled here."""
    if "prompt" in data and data["prompt"].nunique() > 1:
        raise ValueError(f"{caller} works within one prompt arm; the scores hold "
                         f"{sorted(data['prompt'].unique())}: pass "
                         "tts.references.of_arm(scores, arm)")


def _clip_means(data: pd.DataFrame, column: str, caller: str, notes: list) -> pd.DataFrame:
    """utt_id, model, strategy and the mean of `column` per clip: replicates (scaling
    subsets, draws) of one clip are averaged, so the clip is the unit; NaN rows are dropped
    and counted in `notes`. Needs one n per (model, strategy)."""
    ns = data.groupby(["model", "strategy"])["n"].nunique()
    if (ns > 1).any():
        raise ValueError(f"{caller} needs one n per (model, strategy); filter the scores "
                         f"first (several n for {list(ns[ns > 1].index[:3])})")
    data = (data.groupby(["utt_id", "model", "strategy"], as_index=False, observed=True)[column]
            .mean())
    dropped = int(data[column].isna().sum())
    if dropped:
        notes.append(f"dropped {dropped} rows with NaN {column}")
    return data.dropna(subset=[column])


GAIN_COLUMNS = ["model", "strategy", "n", "ambiguity_bin", "gain", "gain_lo", "gain_hi",
                "p_value", "n_utts", "cc_gain", "cc_gain_lo", "cc_gain_hi", "cc_p_value",
                "cc_n_utts", "share_dropped", "scheme"]


def gain_by_ambiguity(scores: pd.DataFrame, manifest: pd.DataFrame,
                      metric: str = "js_divergence", *, baseline: str = "greedy",
                      n_perm: int = 2000, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95, cluster: str = "auto") -> pd.DataFrame:
    """Gain of every strategy over the same model's `baseline`, per ambiguity bin.

    The gain is signed so that positive means better (baseline - strategy for a
    lower-is-better metric such as JS), with the cluster-robust interval and p-value of
    `paired_comparison` on the bin's utterances, twice: on all clips (`gain`, a missing
    answer at the metric's worst value) and complete-case (`cc_gain`: clips both sides
    answered), with `share_dropped` the share of the bin's clips the second leaves out, and
    `p_holm` / `cc_p_holm` Holm-corrected across the table. Models without a `baseline`
    row are left out and named in `attrs["notes"]`. Columns: GAIN_COLUMNS, p_holm,
    cc_p_holm, metric, direction; `attrs["scheme"]` the resampling scheme.
    """
    column, mapped = per_clip_metric(metric)
    metric = column if mapped else metric
    direction = "higher" if metric in ("correct", "accuracy") else M.get_metric(metric).direction
    sign = -1.0 if direction == "lower" else 1.0
    bins = ambiguity_bin_of(manifest)
    data = scores[~is_reference(scores)]
    data = data.assign(ambiguity_bin=bins.reindex(data["utt_id"]).to_numpy())
    _require_one_arm(data, "gain_by_ambiguity")
    clusters = clusters_of(data)
    rows, notes = [], list(mapped)
    for model, of_model in data.groupby("model", sort=False):
        base = of_model[of_model["strategy"] == baseline]
        if base.empty:
            notes.append(f"{model}: no {baseline!r} row, so no gain over it")
            continue
        base_n = int(base["n"].iloc[0])
        base = base[base["n"] == base_n]
        base_label = f"{model}/{baseline}/{base_n}"
        in_bin = {b: of_model["ambiguity_bin"] == b for b in bins.cat.categories}
        # Each side's per-utterance values once per bin, not once per comparison.
        base_of = {(b, form): _per_utterance(base[base["ambiguity_bin"] == b], column, form)
                   for b in bins.cat.categories for form in ("all", "complete_case")}
        for (strategy, n), of_strategy in of_model.groupby(["strategy", "n"], sort=False):
            if strategy == baseline:
                continue
            for b in bins.cat.categories:
                if not in_bin[b].any():
                    continue
                in_b = of_strategy[of_strategy["ambiguity_bin"] == b]
                per = _per_utterance(in_b, column)
                if _paired(per, base_of[b, "all"]).empty:
                    # e.g. a strategy whose every prediction is missing has no R2 to pair.
                    notes.append(f"{model}/{strategy}/{n}, {b} ambiguity: no utterance with a "
                                 f"finite {column} for both it and {baseline}; no gain")
                    continue
                label = f"{model}/{strategy}/{n}"
                res = _compare(label, per, base_label, base_of[b, "all"], column,
                               n_perm=n_perm, n_boot=n_boot, seed=seed, confidence=confidence,
                               clusters=clusters, cluster=cluster)
                lo, hi = sorted((sign * res.diff_lo, sign * res.diff_hi))
                row = dict(model=model, strategy=strategy, n=n, ambiguity_bin=b,
                           gain=sign * res.diff, gain_lo=lo, gain_hi=hi,
                           p_value=res.p_value, n_utts=res.n_utts, scheme=res.scheme)
                per_cc = _per_utterance(in_b, column, "complete_case")
                n_cc = len(_paired(per_cc, base_of[b, "complete_case"]))
                row.update(cc_n_utts=n_cc, share_dropped=1 - n_cc / res.n_utts)
                if n_cc:
                    cc = _compare(label, per_cc, base_label, base_of[b, "complete_case"],
                                  column, n_perm=n_perm, n_boot=n_boot, seed=seed,
                                  confidence=confidence, clusters=clusters, cluster=cluster)
                    cc_lo, cc_hi = sorted((sign * cc.diff_lo, sign * cc.diff_hi))
                    row.update(cc_gain=sign * cc.diff, cc_gain_lo=cc_lo, cc_gain_hi=cc_hi,
                               cc_p_value=cc.p_value)
                rows.append(row)
    out = pd.DataFrame(rows, columns=GAIN_COLUMNS)
    out["p_holm"] = holm(out["p_value"]) if len(out) else []
    out["cc_p_holm"] = holm(out["cc_p_value"]) if len(out) else []
    out["ambiguity_bin"] = pd.Categorical(out["ambiguity_bin"], categories=bins.cat.categories,
                                          ordered=True)
    out = out.assign(metric=metric, direction=direction)
    out.attrs.update(baseline=baseline, notes=notes,
                     scheme=out["scheme"].iloc[0] if len(out) else resolve_scheme(clusters,
                                                                                 cluster))
    return out


def capacity_analysis(scores: pd.DataFrame, manifest: pd.DataFrame,
                      n_params: Mapping[str, float | None], metric: str = "js_divergence", *,
                      min_models: int = MIN_MODELS,
                      min_span: float = MIN_SPAN_DECADES) -> pd.DataFrame:
    """Capacity x ambiguity x TTS over the models whose parameter count is known: the mixed
    model of `capacity.fit_capacity_mixed` (model as random effect; capacity interacting
    with strategy and ambiguity bin), on `metric` per clip.

    Models with `n_params` None (hosted, unpublished size) are left out and named in
    `attrs["notes"]`. With fewer than `min_models` known models or less than `min_span`
    decades between the smallest and the largest, the capacity terms are one row
    "capacity" with status "not estimable" and no numbers; the strategy x ambiguity part is
    still fitted. A corpus metric (R²) is analysed in its per-clip form (noted). Columns:
    term, effect (the term in words), estimate, std_error, statistic, p_value, p_holm (over
    the capacity family), ci_lo, ci_hi, df, status; `attrs`: fitted, notes, metric, method,
    formula, n_obs, n_models, log10_span, estimable, k_re, variance.
    """
    data = scores[~is_reference(scores)]
    _require_one_arm(data, "capacity_analysis")
    models = list(pd.unique(data["model"]))
    unknown = [m for m in models if m not in n_params]
    if unknown:
        raise KeyError(f"n_params has no entry for {unknown} (None marks an unknown size)")
    hosted = [m for m in models if n_params[m] is None]
    known = {m: float(n_params[m]) for m in models if n_params[m] is not None}
    notes = ([f"left out (parameter count not published): {', '.join(hosted)}"]
             if hosted else [])
    column, mapped = per_clip_metric(metric)
    notes += mapped
    method = ("mixedlm: model random intercept (exog_re) + model x strategy variance "
              "component, REML on cell means; bins sum-coded; capacity family adjusted "
              "(Holm, bin interactions gated)")
    if not known:
        empty = pd.DataFrame(columns=CAPACITY_RESULT_COLUMNS)
        notes.append("no fit: no model with a known parameter count")
        empty.attrs.update(fitted=False, notes=notes, metric=metric, method=method,
                           formula=None, n_obs=0, n_clusters=0, n_models=0,
                           log10_span=float("nan"), estimable=False)
        return empty
    data = _clip_means(data[data["model"].isin(known)], column, "capacity_analysis", notes)
    bins = ambiguity_bin_of(manifest)
    data["ambiguity_bin"] = pd.Categorical(bins.reindex(data["utt_id"]).to_numpy(),
                                           categories=bins.cat.categories, ordered=True)
    fit = fit_capacity_mixed(data.rename(columns={column: "y"}),
                             {m: np.log10(v) for m, v in known.items()},
                             min_models=min_models, min_span=min_span)
    fit.attrs.update(fitted=True, notes=notes + fit.attrs["notes"], metric=metric,
                     method=method, formula=fit.attrs["formula"].replace("y ~", f"{column} ~"),
                     n_clusters=fit.attrs["n_models"])
    return fit


def capacity_model(scores: pd.DataFrame, manifest: pd.DataFrame,
                   params_by_model: Mapping[str, float], metric: str = "js_divergence", *,
                   method: str = "cluster_ols") -> pd.DataFrame:
    """Tidy fit of metric ~ strategy x ambiguity_bin + log10(parameter count), on clip rows.

    Superseded for the study by `capacity_analysis` (the mixed model of capacity.py): with
    clip rows the capacity term is tested as if every clip were evidence about model size,
    which gave false positives in 90% of simulated studies with no capacity effect (issue
    #13). Kept for comparison.

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
    refs = is_reference(scores)
    if refs.any():
        notes.append(f"left out {int(refs.sum())} reference rows")
    data = scores[~refs]
    _require_one_arm(data, "capacity_model")
    unknown = sorted(set(data["model"]) - set(params_by_model))
    if unknown:
        raise KeyError(f"params_by_model has no parameter count for {unknown}")
    data = _clip_means(data, metric, "capacity_model", notes)
    bins = ambiguity_bin_of(manifest)
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

