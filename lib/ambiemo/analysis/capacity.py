"""Capacity x ambiguity x TTS: does a larger model gain more from test-time scaling, and more
so on ambiguous clips? (Jia et al., 2026, relate gains to model size and ambiguity.)

Capacity (log10 parameter count) varies only *between* models, so the evidence about it is
the number of models, not the number of clips. A clip-level regression with clip-clustered
errors called capacity significant in 90% of simulated studies with no capacity effect.
This module fits instead a linear mixed model (statsmodels MixedLM) on the mean of y per
(model, strategy, ambiguity bin) cell:

    y ~ C(strategy, Treatment(baseline)) * C(ambiguity_bin, Sum) * capacity
    random: an intercept per model (`exog_re`), and per-model deviations by strategy (a
            variance component: a model's own TTS gain)

- The per-model random intercept is a real `exog_re` column (k_re = 1): a variance
  component alone (`exog_vc` without `exog_re`) fits *no* model intercept, and the model x
  strategy component then absorbs the model offsets and leaves capacity x strategy with no
  power (protocol v3, docs/design.md).
- The model x strategy component is kept whenever there are two or more strategies: it is
  the variation against which a capacity x strategy slope must be judged (a model's own
  gain), and dropping it when its estimate happens to be small would make those tests
  anti-conservative. Its estimate is reported (`attrs["variance"]`).
- The ambiguity bin is sum (effect) coded, so `capacity` is the baseline's slope and
  `C(strategy)[T.s]:capacity` the difference of strategy s's slope from it, both *averaged
  over the bins*; the bin interactions (`...:C(ambiguity_bin, Sum)[S.low]:capacity`) are each
  bin's deviation from that average, reported separately (`effect`).
- Capacity terms use a t reference with n_models - 2 degrees of freedom (Wald z would be
  anti-conservative with a handful of models) and carry `p_holm`, adjusted over the
  capacity family (every term with capacity in it; `capacity_family_adjusted`: Holm over
  the bin-averaged terms, then the bin interactions behind them as a gate), so that the
  chance of any capacity term significant under no capacity effect stays at alpha.
- With fewer than `MIN_MODELS` models or less than `MIN_SPAN_DECADES` of log10 parameter
  count, the capacity terms are one row "capacity", status "not estimable" (no estimate, no
  p-value), and the model is fitted without them. With a single model: OLS on its clip rows,
  errors clustered by clip, no capacity term. Every result states the number of models and
  the log10 span.
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
RESULT_COLUMNS = ["term", "effect", "estimate", "std_error", "statistic", "p_value", "p_holm",
                  "ci_lo", "ci_hi", "df", "status"]
BIN_TERM = "C(ambiguity_bin, Sum)"


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


def _label(part: str) -> str:
    """A design part in words: `C(strategy, Treatment('greedy'))[T.w_bon]` -> `w_bon`."""
    return part.rsplit("[", 1)[1].rstrip("]").split(".", 1)[-1] if "[" in part else part


def effect_of(term: str, baseline: str | None) -> str:
    """What a fixed-effect term of the fit means, in words (the table's `effect` column)."""
    parts = term.split(":")
    strat = [_label(p) for p in parts if p.startswith("C(strategy")]
    bins = [_label(p) for p in parts if p.startswith("C(ambiguity_bin")]
    base = baseline or "the reference strategy"
    if "capacity" not in parts:
        if term == "Intercept":
            return f"{base}, mean over bins, at the mean capacity"
        if strat and bins:
            return f"{strat[0]} - {base} in bin {bins[0]}, deviation from its bin average"
        if strat:
            return f"{strat[0]} - {base}, averaged over bins"
        return f"bin {bins[0]} - mean over bins ({base})"
    if strat and bins:
        return (f"capacity x {strat[0]} x bin {bins[0]}: deviation of the slope difference "
                "in this bin from its bin average")
    if strat:
        return f"capacity x {strat[0]}: slope of {strat[0]} - slope of {base}, averaged over bins"
    if bins:
        return f"capacity x bin {bins[0]}: {base}'s slope in this bin - its bin average"
    return f"capacity: {base}'s slope per decade of parameter count, averaged over bins"


def is_bin_term(term: str) -> bool:
    return any(p.startswith("C(ambiguity_bin") for p in term.split(":"))


def holm_adjusted(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values of finite `p` (as statsmodels' multipletests
    "holm", which costs a garbage collection per call: too slow inside simulations; the
    test cross-checks the two)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def capacity_family_adjusted(terms, p_values) -> np.ndarray:
    """Adjusted p-values of the capacity family (every term with capacity in it; NaN for
    the others), by serial gatekeeping with Holm inside each family:

    1. primary: `capacity` and each `capacity x strategy`, averaged over bins (the study's
       questions), Holm-adjusted together;
    2. secondary: the bin interactions, Holm-adjusted together, each then raised to the
       largest primary adjusted p: a bin interaction is significant at alpha only when every
       primary term is.

    The family-wise error rate over all capacity terms stays at alpha (a gatekeeping
    procedure closed by Holm), while the primary slopes are not divided among the many bin
    interactions (Holm over all twelve terms of four strategies and three bins would).
    """
    terms = list(terms)
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(terms), np.nan)
    cap = np.array(["capacity" in t.split(":") for t in terms], dtype=bool) & np.isfinite(p)
    secondary = cap & np.array([is_bin_term(t) for t in terms], dtype=bool)
    primary = cap & ~secondary
    gate = 0.0
    if primary.any():
        out[primary] = holm_adjusted(p[primary])
        gate = float(out[primary].max())
    if secondary.any():
        out[secondary] = np.maximum(holm_adjusted(p[secondary]), gate)
    return out


def fit_capacity_mixed(data: pd.DataFrame, log_params: Mapping[str, float], *,
                       y: str = "y", baseline: str | None = "greedy",
                       min_models: int = MIN_MODELS, min_span: float = MIN_SPAN_DECADES,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Mixed-model fit on clip rows `data` (columns model, strategy, ambiguity_bin, `y`).

    `log_params`: log10 parameter count per model. Returns one row per fixed-effect term
    (RESULT_COLUMNS); capacity terms carry `status` "estimated" (with `p_holm` over the
    capacity family) or "not estimable". `attrs`: formula, n_models, log10_span, estimable,
    n_cells, n_obs (clip rows), converged, notes, random_effects, k_re (per-model random
    effects fitted: 1 with two or more models), variance (the random effects' estimates).
    """
    import statsmodels.formula.api as smf
    from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    cells = cell_means(data, y)
    cells["strategy"] = cells["strategy"].astype(str)
    # Keep the bins' own order (low < mid < high); sum coding leaves out the last level.
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
    strat = _levels(cells["strategy"], baseline) if cells["strategy"].nunique() > 1 else None
    if strat and baseline not in set(cells["strategy"]):
        baseline = None
    amb = BIN_TERM if cells["ambiguity_bin"].nunique() > 1 else None
    fixed = [" * ".join(t for t in (strat, amb) if t) or "1"]
    if estimable:
        fixed.append(" * ".join(t for t in (strat, amb, "capacity") if t))
    formula = "y ~ " + " + ".join(fixed)
    frame = cells.rename(columns={y: "y"}).sort_values("model", kind="stable")
    frame = frame.reset_index(drop=True)
    vc_names, variance, k_re = [], {}, 0
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
            # The design is built once with patsy and the random parts by hand (the formula
            # interface rebuilds both per group, most of the cost of a small fit).
            endog = frame["y"].rename("y")
            exog = _fixed_design(formula.split("~", 1)[1], frame)
            # The per-model random intercept: a real random-effects design column.
            exog_re = np.ones((len(frame), 1))
            vc = None
            if strat:
                vc_names = ["model_x_strategy"]
                levels = sorted(frame["strategy"].unique())
                onehot = (frame["strategy"].to_numpy()[:, None] == np.array(levels)[None, :])
                groups = sorted(frame["model"].unique())
                rows_of = [np.flatnonzero(frame["model"].to_numpy() == g) for g in groups]
                vc = VCSpec(vc_names, [[levels for _ in groups]],
                            [[onehot[r].astype(float) for r in rows_of]])
            model = MixedLM(endog, exog, groups=frame["model"], exog_re=exog_re, exog_vc=vc)
            k_re = int(model.k_re)
            fit = model.fit(reml=True, method=["bfgs", "lbfgs"])
            converged = bool(getattr(fit, "converged", True))
            variance = {"model": float(np.asarray(fit.cov_re)[0, 0]),
                        **{n: float(v) for n, v in zip(vc_names, np.atleast_1d(fit.vcomp))},
                        "residual": float(fit.scale)}
    if any(issubclass(w.category, ConvergenceWarning) for w in caught) or not converged:
        notes.append("the mixed model reported convergence problems (a variance component "
                     "at its boundary is common with few models); estimates kept")
    names = [t for t in fit.params.index if t in fit.model.exog_names]
    with warnings.catch_warnings():
        # One model with a saturated design leaves no residual: standard errors are NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        est, se = fit.params[names].to_numpy(float), fit.bse[names].to_numpy(float)
    is_cap = np.array(["capacity" in t.split(":") for t in names], dtype=bool)
    df = np.where(is_cap, max(len(models) - 2, 1), np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = est / se
    p = 2 * stats.t.sf(np.abs(stat), df)
    q = stats.t.ppf(0.5 + confidence / 2, df)
    p_holm = capacity_family_adjusted(names, p)
    table = pd.DataFrame({"term": names, "effect": [effect_of(t, baseline) for t in names],
                          "estimate": est, "std_error": se, "statistic": stat,
                          "p_value": p, "p_holm": p_holm, "ci_lo": est - q * se,
                          "ci_hi": est + q * se, "df": df,
                          "status": np.where(is_cap, "estimated", "")})
    if not estimable:
        table = pd.concat([table, pd.DataFrame([{"term": "capacity", "status": NOT_ESTIMABLE,
                                                 "effect": "capacity (every capacity term)"}])],
                          ignore_index=True)
    table = table.reindex(columns=RESULT_COLUMNS)
    table.attrs.update(formula=formula, n_models=len(models), log10_span=span,
                       estimable=estimable, n_cells=len(cells), n_obs=int(len(data)),
                       converged=converged, notes=notes, k_re=k_re, variance=variance,
                       random_effects=(["model", *vc_names] if k_re else []),
                       n_capacity_terms=int(is_cap.sum()))
    return table


def simulate_study(rng: np.random.Generator, log_params: np.ndarray, *, n_clips: int = 30,
                   strategies=("greedy", "w_bon", "majority"), capacity_slope: float = 0.0,
                   capacity_strategy_slope: float = 0.0, model_sd: float = 0.03,
                   model_strategy_sd: float = 0.01, noise_sd: float = 0.1) -> pd.DataFrame:
    """Clip rows of a simulated study: strategy and ambiguity effects, a random offset per
    model (SD `model_sd`), per-model strategy deviations (SD `model_strategy_sd`), a clip
    effect shared by every model and strategy (SD noise_sd / 2), clip noise (SD
    `noise_sd`), `capacity_slope` per decade of parameter count for every strategy, and
    `capacity_strategy_slope` per decade added for the last strategy only (its slope minus
    the baseline's, the same in every bin). Used to check the false-positive rate and the
    power of `fit_capacity_mixed` (tests) and to size a study."""
    n_models, n_strat = len(log_params), len(strategies)
    bins = np.array(["low", "mid", "high"])[np.arange(n_clips) % 3]
    order = pd.CategoricalDtype(["low", "mid", "high"], ordered=True)
    amb = np.select([bins == "low", bins == "mid"], [0.0, 0.05], 0.1)
    strat_eff = np.linspace(0, -0.03, n_strat)
    offset = rng.normal(0, model_sd, n_models)
    dev = rng.normal(0, model_strategy_sd, (n_models, n_strat))
    clip = rng.normal(0, noise_sd / 2, n_clips)
    centred = np.asarray(log_params, float) - np.mean(log_params)
    slope = np.full(n_strat, capacity_slope)
    slope[-1] += capacity_strategy_slope
    y = (0.4 + amb[None, None, :] + strat_eff[None, :, None] + offset[:, None, None]
         + dev[:, :, None] + clip[None, None, :]
         + (slope[None, :] * centred[:, None])[:, :, None]
         + rng.normal(0, noise_sd, (n_models, n_strat, n_clips)))
    m, s, c = np.meshgrid(np.arange(n_models), np.arange(n_strat), np.arange(n_clips),
                          indexing="ij")
    return pd.DataFrame({"model": [f"m{i}" for i in m.ravel()],
                         "strategy": np.asarray(strategies)[s.ravel()],
                         "utt_id": [f"u{i}" for i in c.ravel()],
                         "ambiguity_bin": pd.Categorical(bins[c.ravel()], dtype=order),
                         "y": y.ravel()})
