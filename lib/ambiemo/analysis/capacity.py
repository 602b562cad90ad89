"""Capacity x ambiguity x TTS: does a larger model gain more from test-time scaling, and more
so on ambiguous clips? (Jia et al., 2026, relate gains to model size and ambiguity.)

Capacity (log10 parameter count) varies only *between* models, so the evidence about it is
the number of models, not the number of clips. Issue #13 measured what happens otherwise:
`y ~ strategy * ambiguity + log_params` on clip rows with clip-clustered errors called
`log_params` significant in 90% of simulated studies with no capacity effect (the paper
config's open models span 8.27-8.93 B). This module fits instead a linear mixed model
(statsmodels MixedLM) with the model as random effect:

    y ~ C(strategy) * C(ambiguity_bin) * capacity        (capacity: centred log10 params)
    random: intercept per model, and per-model deviations by strategy (a model's own TTS gain)

fitted by REML on the mean of y per (model, strategy, ambiguity bin) cell (with a single
model: OLS on its clip rows, errors clustered by clip, and no capacity term). Capacity terms
are then tested against between-model variation only: p-values use a t reference with
n_models - 2 degrees of freedom (Wald z would be anti-conservative with a handful of
models). When fewer than `MIN_MODELS` models or less than `MIN_SPAN_DECADES` of log10
parameter count are available, the capacity terms are reported *not estimable* (no
estimate, no p-value) and the model is fitted without them. Every result states the number
of models and the log10 span.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

MIN_MODELS = 4
MIN_SPAN_DECADES = 0.5
NOT_ESTIMABLE = "not estimable"
RESULT_COLUMNS = ["term", "estimate", "std_error", "statistic", "p_value", "ci_lo", "ci_hi",
                  "df", "status"]


def cell_means(data: pd.DataFrame, y: str = "y") -> pd.DataFrame:
    """Mean of `y` per (model, strategy, ambiguity_bin), with the count of clips."""
    return (data.groupby(["model", "strategy", "ambiguity_bin"], observed=True)[y]
            .agg(["mean", "size"]).reset_index().rename(columns={"mean": y, "size": "n_clips"}))


def _levels(column: pd.Series, reference: str | None) -> str:
    name = column.name
    if reference is not None and reference in set(column):
        return f"C({name}, Treatment({reference!r}))"
    return f"C({name})"


_DESIGNS: dict = {}


def _fixed_design(rhs: str, frame: pd.DataFrame) -> pd.DataFrame:
    """patsy's design for `rhs`, memoised on the design columns (simulated studies of one
    shape share it; building it is most of a small fit's time)."""
    import patsy

    cols = frame[["model", "strategy", "ambiguity_bin", "capacity"]]
    key = (rhs, tuple(map(tuple, cols.astype(str).to_numpy())),
           tuple(cols["ambiguity_bin"].cat.categories)
           if isinstance(cols["ambiguity_bin"].dtype, pd.CategoricalDtype) else None)
    if key not in _DESIGNS:
        if len(_DESIGNS) > 64:
            _DESIGNS.clear()
        _DESIGNS[key] = patsy.dmatrix(rhs, frame, return_type="dataframe")
    return _DESIGNS[key]


def fit_capacity_mixed(data: pd.DataFrame, log_params: Mapping[str, float], *,
                       y: str = "y", baseline: str | None = "greedy",
                       min_models: int = MIN_MODELS, min_span: float = MIN_SPAN_DECADES,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Mixed-model fit on clip rows `data` (columns model, strategy, ambiguity_bin, `y`).

    `log_params`: log10 parameter count per model. Returns one row per fixed-effect term
    (RESULT_COLUMNS); capacity terms carry `status` "estimated" or "not estimable". `attrs`:
    formula, n_models, log10_span, estimable, n_cells, n_obs (clip rows), converged, notes.
    """
    import statsmodels.formula.api as smf
    from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    cells = cell_means(data, y)
    cells["strategy"] = cells["strategy"].astype(str)
    # Keep the bins' own order (low < mid < high) so that "low" is the reference level.
    bins = cells["ambiguity_bin"]
    cells["ambiguity_bin"] = (bins.cat.remove_unused_categories()
                              if isinstance(bins.dtype, pd.CategoricalDtype) else bins.astype(str))
    models = list(pd.unique(cells["model"]))
    lp = np.array([float(log_params[m]) for m in models])
    span = float(lp.max() - lp.min()) if len(lp) else 0.0
    estimable = len(models) >= min_models and span >= min_span
    notes = [f"{len(models)} models, log10 parameter count spanning {span:.2f} decades "
             f"({lp.min() if len(lp) else float('nan'):.2f}..{lp.max() if len(lp) else float('nan'):.2f})"]
    if not estimable:
        notes.append(f"capacity {NOT_ESTIMABLE}: needs at least {min_models} models spanning "
                     f"at least {min_span} decades of parameter count")
    cells["capacity"] = cells["model"].map(dict(zip(models, lp - lp.mean())))
    fixed = []
    strat = _levels(cells["strategy"], baseline) if cells["strategy"].nunique() > 1 else None
    amb = "C(ambiguity_bin)" if cells["ambiguity_bin"].nunique() > 1 else None
    design = " * ".join(t for t in (strat, amb) if t)
    fixed.append(design or "1")
    if estimable:
        fixed.append(" * ".join(t for t in (strat, amb, "capacity") if t))
    formula = "y ~ " + " + ".join(fixed)
    frame = cells.rename(columns={y: "y"}).sort_values("model", kind="stable")
    frame = frame.reset_index(drop=True)
    vc_names = []
    if len(models) < 2:
        notes.append("one model: no random effect to fit; OLS on clip rows with errors "
                     "clustered by clip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        if len(models) < 2:
            # Cell means of one model leave no residual; its clips are the replication.
            clips = data.assign(strategy=data["strategy"].astype(str))
            groups = clips["utt_id"].astype("category").cat.codes.to_numpy() \
                if "utt_id" in clips else np.arange(len(clips))
            fit = smf.ols(formula, clips.rename(columns={y: "y"})).fit(
                cov_type="cluster", cov_kwds={"groups": groups})
            converged = True
        else:
            # The design is built once with patsy and the variance component by hand (the
            # formula interface rebuilds both per group, most of the cost of a small fit).
            endog = frame["y"].rename("y")
            exog = _fixed_design(formula.split("~", 1)[1], frame)
            vc = None
            if strat:
                vc_names = ["model_x_strategy"]
                levels = sorted(frame["strategy"].unique())
                onehot = (frame["strategy"].to_numpy()[:, None] == np.array(levels)[None, :])
                groups = sorted(frame["model"].unique())
                rows_of = [np.flatnonzero(frame["model"].to_numpy() == g) for g in groups]
                vc = VCSpec(vc_names, [[levels for _ in groups]],
                            [[onehot[r].astype(float) for r in rows_of]])
            fit = MixedLM(endog, exog, groups=frame["model"], exog_vc=vc).fit(
                reml=True, method=["bfgs", "lbfgs"])
            converged = bool(getattr(fit, "converged", True))
    if any(issubclass(w.category, ConvergenceWarning) for w in caught) or not converged:
        notes.append("the mixed model reported convergence problems (a variance component "
                     "at its boundary is common with few models); estimates kept")
    names = [t for t in fit.params.index if t in fit.model.exog_names]
    with warnings.catch_warnings():
        # One model with a saturated design leaves no residual: standard errors are NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        est, se = fit.params[names].to_numpy(float), fit.bse[names].to_numpy(float)
    is_cap = np.array(["capacity" in t for t in names])
    df = np.where(is_cap, max(len(models) - 2, 1), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = est / se
    p = 2 * stats.t.sf(np.abs(stat), df)
    q = stats.t.ppf(0.5 + confidence / 2, df)
    table = pd.DataFrame({"term": names, "estimate": est, "std_error": se, "statistic": stat,
                          "p_value": p, "ci_lo": est - q * se, "ci_hi": est + q * se,
                          "df": df, "status": np.where(is_cap, "estimated", "")})
    if not estimable:
        table = pd.concat([table, pd.DataFrame([{"term": "capacity", "status": NOT_ESTIMABLE}])],
                          ignore_index=True)
    table = table.reindex(columns=RESULT_COLUMNS)
    table.attrs.update(formula=formula, n_models=len(models), log10_span=span,
                       estimable=estimable, n_cells=len(cells), n_obs=int(len(data)),
                       converged=converged, notes=notes,
                       random_effects=["model", *vc_names])
    return table


def simulate_study(rng: np.random.Generator, log_params: np.ndarray, *, n_clips: int = 30,
                   strategies=("greedy", "w_bon", "majority"), capacity_slope: float = 0.0,
                   model_sd: float = 0.03, model_strategy_sd: float = 0.01,
                   noise_sd: float = 0.1) -> pd.DataFrame:
    """Clip rows of a simulated study: strategy and ambiguity effects, a random offset per
    model (SD `model_sd`), per-model strategy deviations, clip noise, and `capacity_slope`
    per decade of parameter count (0: no capacity effect). Used to check the false-positive
    rate of `fit_capacity_mixed` (tests) and to size a study."""
    n_models, n_strat = len(log_params), len(strategies)
    bins = np.array(["low", "mid", "high"])[np.arange(n_clips) % 3]
    order = pd.CategoricalDtype(["low", "mid", "high"], ordered=True)
    amb = np.select([bins == "low", bins == "mid"], [0.0, 0.05], 0.1)
    strat_eff = np.linspace(0, -0.03, n_strat)
    offset = rng.normal(0, model_sd, n_models)
    dev = rng.normal(0, model_strategy_sd, (n_models, n_strat))
    clip = rng.normal(0, noise_sd / 2, n_clips)
    y = (0.4 + amb[None, None, :] + strat_eff[None, :, None] + offset[:, None, None]
         + dev[:, :, None] + clip[None, None, :]
         + capacity_slope * (log_params - log_params.mean())[:, None, None]
         + rng.normal(0, noise_sd, (n_models, n_strat, n_clips)))
    m, s, c = np.meshgrid(np.arange(n_models), np.arange(n_strat), np.arange(n_clips),
                          indexing="ij")
    return pd.DataFrame({"model": [f"m{i}" for i in m.ravel()],
                         "strategy": np.asarray(strategies)[s.ravel()],
                         "utt_id": [f"u{i}" for i in c.ravel()],
                         "ambiguity_bin": pd.Categorical(bins[c.ravel()], dtype=order),
                         "y": y.ravel()})
