"""Every strategy and control against greedy: the study's comparisons table (protocol v3).

A gain over greedy is the study's claim, so the score stage writes every one of them in one
table, `tables/<config>/<corpus>_comparisons.{csv,md,tex}`: per model and prompt arm, each
strategy and control against greedy of the same model and arm, per metric and per *form*:

- `all`: every clip, a missing answer at the metric's worst value (the main table's rule);
- `complete_case`: only clips both sides answered, with `share_dropped` — a strategy with
  N candidates is almost never missing where greedy often is, so without this form rescue
  of a missing answer reads as a gain;
- `no_one_hot`: complete-case clips where no candidate of either side is one-hot, for the
  form-sensitive metrics (JS, BC, R²): a mixture beats a one-hot answer on these by form
  alone.

Intervals and p-values are cluster-robust (`analysis/clusters.py`, scheme in `scheme`) and
`p_holm` is Holm-corrected across the whole table (statsmodels' `multipletests`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from ambiemo import metrics as M
from ambiemo.analysis.clusters import clusters_of
from ambiemo.analysis.inference import (DEFAULT_N_PERM, FORMS, _compare, _paired,
                                        _per_utterance, per_clip_metric)
from ambiemo.tts.references import is_reference

COMPARISON_COLUMNS = ["model", "prompt", "strategy", "n", "baseline", "metric", "form", "gain",
                      "lo", "hi", "p", "p_holm", "n_clips", "share_dropped", "scheme"]
# Metrics whose value depends on the answer's form (a one-hot answer vs a mixture).
FORM_SENSITIVE = ("js_divergence", "bhattacharyya_coefficient", "r2", "r2_per_clip",
                  "kl_divergence", "total_variation")
# Corpus metrics without a per-clip value are not paired (macro-F1); R² is paired in its
# per-clip form (named in `metric`).
UNPAIRED = ("macro_f1", "ece", "entropy_pearson", "entropy_spearman")


def holm_adjust(p) -> np.ndarray:
    """Holm step-down adjusted p-values (statsmodels), NaN kept where p is NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def comparisons_table(scores: pd.DataFrame, *, metrics: Sequence[str] = M.MAIN_METRICS,
                      baseline: str = "greedy", forms: Sequence[str] = FORMS,
                      n_perm: int = DEFAULT_N_PERM, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95, cluster: str = "auto") -> pd.DataFrame:
    """Every non-reference (model, prompt, strategy, n) against `baseline` of the same model
    and arm: columns COMPARISON_COLUMNS. `gain` is signed so that positive is better
    (baseline - strategy for JS), `lo`/`hi` its cluster-robust interval, `p` the two-sided
    p-value, `p_holm` Holm across every row of the table; `n_clips` the clips compared,
    `share_dropped` the share of the all-clips form's clips the form leaves out.
    `no_one_hot` rows exist for the FORM_SENSITIVE metrics only. A model and arm without a
    `baseline` row has no comparison (named in `attrs["notes"]`); a form that leaves no clip
    is a row with n_clips 0 and no numbers."""
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise ValueError(f"forms {bad} unknown; valid: {FORMS}")
    data = scores[~is_reference(scores)]
    if "prompt" not in data:
        data = data.assign(prompt="")
    clusters = clusters_of(data)
    rows, notes = [], []
    for (model, prompt), of_arm in data.groupby(["model", "prompt"], sort=False,
                                                observed=True, dropna=False):
        base = of_arm[of_arm["strategy"] == baseline]
        if base.empty:
            notes.append(f"{model}/{prompt}: no {baseline!r} row, so no comparison")
            continue
        base_n = int(base["n"].iloc[0])
        base = base[base["n"] == base_n]
        label_b = f"{model}/{prompt}/{baseline}/{base_n}"
        for metric in metrics:
            if metric in UNPAIRED:
                continue
            column, _ = per_clip_metric(metric)
            direction = "higher" if column == "correct" else M.get_metric(column).direction
            sign = -1.0 if direction == "lower" else 1.0
            shown = metric if metric == "accuracy" else column
            its_forms = [f for f in forms
                         if f != "no_one_hot" or column in FORM_SENSITIVE]
            base_of = {f: _per_utterance(base, column, f) for f in its_forms}
            for (strategy, n), rows_s in of_arm.groupby(["strategy", "n"], sort=False):
                if strategy == baseline:
                    continue
                per_all = _per_utterance(rows_s, column)
                n_all = len(_paired(per_all, base_of["all"])) if "all" in base_of else len(
                    _paired(per_all, _per_utterance(base, column)))
                for form in its_forms:
                    per = per_all if form == "all" else _per_utterance(rows_s, column, form)
                    row = dict(model=model, prompt=prompt, strategy=strategy, n=n,
                               baseline=baseline, metric=shown, form=form)
                    n_clips = len(_paired(per, base_of[form]))
                    if n_clips == 0:
                        rows.append({**row, "n_clips": 0, "share_dropped":
                                     1.0 if n_all else np.nan, "scheme": ""})
                        continue
                    res = _compare(f"{model}/{prompt}/{strategy}/{n}", per, label_b,
                                   base_of[form], column, n_perm=n_perm, n_boot=n_boot,
                                   seed=seed, confidence=confidence, clusters=clusters,
                                   cluster=cluster, form=form, n_all=n_all or n_clips)
                    lo, hi = sorted((sign * res.diff_lo, sign * res.diff_hi))
                    rows.append({**row, "gain": sign * res.diff, "lo": lo, "hi": hi,
                                 "p": res.p_value, "n_clips": res.n_utts,
                                 "share_dropped": res.share_dropped, "scheme": res.scheme})
    out = pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)
    out["p_holm"] = holm_adjust(out["p"]) if len(out) else []
    out.attrs.update(notes=notes, baseline=baseline)
    return out


def comparisons_caption(table: pd.DataFrame, corpus: str) -> str:
    """The comparisons table's caption: what a row is, the forms, Holm, the scheme."""
    from ambiemo.analysis.clusters import scheme_caption

    schemes = [s for s in pd.unique(table["scheme"].dropna()) if s] if len(table) else []
    scheme = " ".join(scheme_caption(s) for s in schemes) or scheme_caption("clip")
    return (f"{corpus}: every strategy and control against greedy of the same model and prompt "
            "arm; gain positive = better, with its 95% cluster-robust interval and two-sided "
            "p; p_holm Holm-corrected across the whole table. form all: every clip, a missing "
            "answer at the metric's worst value; complete_case: clips both sides answered "
            "(share_dropped left out), so a rescued missing answer is not a gain; no_one_hot: "
            "complete-case clips with no one-hot candidate on either side (JS, BC, R² only). "
            "R² is paired in its per-clip form (r2_per_clip); macro-F1 has no per-clip value "
            f"and is not paired. {scheme}")
