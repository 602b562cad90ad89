"""Scores -> the study's summary table, with seeded bootstrap confidence intervals.

One row per (model, prompt arm, strategy, n), as the tables of Jia et al. (2026). Utterances are the
resampling unit: replicates of one utterance (scaling-curve subsets, new-rater draws)
are averaged per utterance for mean metrics, and label metrics are computed per replicate
and then averaged, so that each replicate is a real answer and never a blend of several.
Re-exported as `ambiemo.analysis.summary_table`.

The tables' R² (`r2`) is a corpus metric, scikit-learn's r2_score over the group's clips
(per class across clips, uniform average), computed per replicate from the Scores'
`p_<class>` / `human_p_<class>` columns and averaged over replicates; its bootstrap reuses
the clip weights of every other metric (`weighted_r2`, cross-checked against scikit-learn's
`sample_weight`). Never the mean of per-clip values (that is `r2_per_clip`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ambiemo import metrics as M
from ambiemo.analysis.clusters import (CLIP, boot_ratio, clip_weights, clusters_of, design,
                                       draw_counts)

# A summary row's identity; `prompt` (the prompt arm) where the Scores carry it.
GROUP_KEYS = ["model", "prompt", "strategy", "n"]
DEFAULT_METRICS = M.MAIN_METRICS
LABEL_METRICS = ("macro_f1", "ece", "entropy_pearson", "entropy_spearman")
CLIP_SET_METRICS = ("r2",)  # computed over the group's clips from both distributions
HUMAN_PREFIX = "human_p"


def group_keys(frame: pd.DataFrame) -> list[str]:
    """The GROUP_KEYS `frame` has (Scores built without prompt arms have no `prompt`)."""
    return [k for k in GROUP_KEYS if k in frame]


def _check(names: Sequence[str]) -> None:
    valid = [*M.METRICS, "correct", "accuracy", *LABEL_METRICS, *CLIP_SET_METRICS]
    bad = [m for m in names if m not in valid]
    if bad:
        raise KeyError(f"summary_table cannot summarise {bad}; valid: {sorted(valid)}")


def _wide(group: pd.DataFrame, column: str, utts: pd.Index) -> np.ndarray:
    """(U, R) array of `column` per utterance and replicate."""
    return group.pivot(index="utt_id", columns="replicate", values=column).reindex(utts).to_numpy()


def _row_mean(a: np.ndarray) -> np.ndarray:
    """Mean of the finite entries of each row; NaN for a row with none (no warning)."""
    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(1), np.where(ok, a, 0).sum(1) / ok.sum(1), np.nan)


def _f1_counts(majority: np.ndarray, pred: np.ndarray, classes: list[str]):
    """One-hot reference (U, C) and tied-prediction weights (U, C); tied references zero."""
    ref = np.zeros((len(majority), len(classes)))
    pw = np.zeros_like(ref)
    index = {c: i for i, c in enumerate(classes)}
    for u, (m, p) in enumerate(zip(majority, pred)):
        if not M._is_label(m):
            continue
        ref[u, index[m]] = 1
        tied = p.split("|") if M._is_label(p) else []
        for c in tied:
            pw[u, index[c]] = 1.0 / len(tied)
    return ref, pw


def _macro_f1_weighted(ref, pw, w):
    """Macro-F1 (as metrics.macro_f1) for each bootstrap weight vector in w (B, U)."""
    tp = w @ (ref * pw)
    denom = w @ ref + w @ pw
    present = denom > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / denom, 0.0)
    return f1.sum(1) / np.maximum(present.sum(1), 1) if present.any() else np.full(len(w), np.nan)


def _ece_weighted(conf, corr, w, n_bins=M.ECE_BINS):
    keep = np.isfinite(conf) & np.isfinite(corr)
    bins = np.clip(np.ceil(np.where(keep, conf, 1) * n_bins).astype(int) - 1, 0, n_bins - 1)
    onehot = np.zeros((len(conf), n_bins))
    onehot[np.arange(len(conf)), bins] = keep
    gap = w @ (onehot * np.where(keep, corr - conf, 0)[:, None])
    # sum_b n_b |acc_b - conf_b| = sum_b |sum (correct - confidence)| over the bin.
    return np.abs(gap).sum(1) / (w @ keep.astype(float))


# The tables' R² and its bootstrap: one implementation, in metrics (`metrics.r2_score`).
weighted_r2 = M.r2_weighted


def _class_columns(group: pd.DataFrame, classes) -> list[str]:
    if classes is not None:
        return list(classes)
    prefix = HUMAN_PREFIX + "_"
    found = [c[len(prefix):] for c in group.columns if c.startswith(prefix)]
    if not found:
        raise KeyError("summary_table: R² over clips needs the Scores' p_<class> and "
                       "human_p_<class> columns (metrics.score writes them)")
    return found


def _entropy_corr(h, g, idx, which):
    return M.entropy_correlation(h[idx], g[idx])[which]


def one_hot_share(group: pd.DataFrame) -> float:
    """Share of a row's parsed candidates that are one-hot (Predictions' n_one_hot /
    n_parsed summed over clips); NaN where nothing was parsed or the Scores lack them."""
    if "n_one_hot" not in group or "n_parsed" not in group:
        return np.nan
    parsed = group["n_parsed"].sum(min_count=1)
    return float(group["n_one_hot"].sum(min_count=1) / parsed) if parsed and parsed > 0 \
        else np.nan


def summary_table(scores: pd.DataFrame, *, metrics: Sequence[str] = DEFAULT_METRICS,
                  n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                  classes: Sequence[str] | None = None, cluster: str = "auto") -> pd.DataFrame:
    """Per (model, prompt, strategy, n) (`prompt` where the Scores have it): each metric with percentile bootstrap CI.

    Columns: model, [prompt,] strategy, n, n_utts, n_missing, share_missing (of prediction rows),
    n_ties (utterances with a tied majority, excluded from accuracy and macro-F1),
    one_hot_share (of parsed candidates; NaN for rows without candidates), scheme (how the
    bootstrap resampled: `cluster` "auto" resamples the speakers, or speakers and sentences
    (pigeonhole), that the Scores carry, analysis/clusters.py; "clip" resamples clips), and
    for each metric `<m>`, `<m>_lo`, `<m>_hi`. Every group is resampled with the same seed.
    Missing predictions follow metrics.py's rule (bounded metrics at their worst value).
    """
    _check(metrics)
    alpha = (1 - confidence) / 2
    scores = scores if "replicate" in scores else scores.assign(replicate=0)
    rows = []
    keys = group_keys(scores)
    clusters = clusters_of(scores)
    # dropna=False: a key left empty (e.g. hand-built rows without an arm) is still a group.
    for key, group in scores.groupby(keys, sort=False, observed=True, dropna=False):
        utts = pd.Index(pd.unique(group["utt_id"]))
        U = len(utts)
        rng = np.random.default_rng(seed)
        des = design(clusters, utts, cluster)
        if des.scheme == CLIP:   # the old clip bootstrap, draw for draw
            idx = rng.integers(0, U, size=(n_boot, U))
            w = np.stack([np.bincount(i, minlength=U) for i in idx]).astype(float)
            counts = [w]
        else:
            counts = draw_counts(des, n_boot, rng)
            w = idx = None   # (B, U) clip weights only for the metrics that are not means
        majority = group.groupby("utt_id", sort=False)["majority"].first().reindex(utts)
        maj = np.array([m if M._is_label(m) else None for m in majority], dtype=object)
        row = dict(zip(keys, key), n_utts=U, n_missing=int(group["missing"].sum()),
                   share_missing=float(group["missing"].mean()),
                   n_ties=int(sum(m is None for m in maj)),
                   one_hot_share=one_hot_share(group), scheme=des.scheme)
        for m in metrics:
            is_mean = m in M.METRICS or m in ("accuracy", "correct")
            if not is_mean and w is None:   # cluster weights per clip, made once per group
                w = clip_weights(des, counts)
                idx = [np.repeat(np.arange(U), b.astype(int)) for b in w]
            if is_mean:
                col = "correct" if m in ("accuracy", "correct") else m
                per_utt = _row_mean(_wide(group, col, utts))
                ok = np.isfinite(per_utt)
                v = np.where(ok, per_utt, 0.0)
                est = v[ok].mean() if ok.any() else np.nan
                boot = boot_ratio(des, counts, v, ok.astype(float))
            elif m == "r2":
                cls = _class_columns(group, classes)
                P = np.stack([_wide(group, f"{HUMAN_PREFIX}_{c}", utts) for c in cls], axis=-1)
                Q = np.stack([_wide(group, f"p_{c}", utts) for c in cls], axis=-1)
                R = P.shape[1]
                est = _row_mean(np.array([[weighted_r2(P[:, r], Q[:, r], np.ones(U))[0]
                                           for r in range(R)]]))[0]
                boot = _row_mean(np.stack([weighted_r2(P[:, r], Q[:, r], w)
                                           for r in range(R)], axis=1))
            elif m == "macro_f1":
                if classes is None:
                    labels = {c for p in group["pred_label"].dropna() for c in p.split("|")}
                    cls = sorted(labels | {x for x in maj if x is not None})
                else:
                    cls = list(classes)
                preds = _wide(group, "pred_label", utts)
                counts = [_f1_counts(maj, preds[:, r], cls) for r in range(preds.shape[1])]
                est = np.mean([_macro_f1_weighted(ref, pw, np.ones((1, U)))[0]
                               for ref, pw in counts])
                boot = np.mean([_macro_f1_weighted(ref, pw, w) for ref, pw in counts], axis=0)
            elif m == "ece":
                conf, corr = _wide(group, "top_prob", utts), _wide(group, "correct", utts)
                R = conf.shape[1]
                est = np.mean([_ece_weighted(conf[:, r], corr[:, r], np.ones((1, U)))[0]
                               for r in range(R)])
                boot = np.mean([_ece_weighted(conf[:, r], corr[:, r], w) for r in range(R)],
                               axis=0)
            else:  # entropy correlations: rank statistics, resampled one draw at a time
                which = m.split("_")[1]
                h = group.groupby("utt_id", sort=False)["entropy_human"].first().reindex(utts)
                g = _wide(group, "entropy_pred", utts)
                h = h.to_numpy()
                est = _row_mean(np.array([[_entropy_corr(h, g[:, r], np.arange(U), which)
                                           for r in range(g.shape[1])]]))[0]
                boot = _row_mean(np.array([[_entropy_corr(h, g[:, r], i, which)
                                            for r in range(g.shape[1])] for i in idx]))
            boot = boot[np.isfinite(boot)]
            row[m] = float(est)
            row[f"{m}_lo"] = float(np.quantile(boot, alpha)) if len(boot) else np.nan
            row[f"{m}_hi"] = float(np.quantile(boot, 1 - alpha)) if len(boot) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def ambiguity_bin_of(manifest: pd.DataFrame) -> pd.Series:
    """utt_id -> ambiguity bin: the Manifest's `ambiguity_bin` (corpora.load adds it), else
    entropy tertiles computed here."""
    from ambiemo.corpora.manifest import add_ambiguity_bin

    if "ambiguity_bin" not in manifest:
        manifest = add_ambiguity_bin(manifest)
    return manifest.set_index("utt_id")["ambiguity_bin"]


def summary_by_ambiguity(scores: pd.DataFrame, manifest: pd.DataFrame, *,
                         metrics: Sequence[str] = DEFAULT_METRICS, n_boot: int = 1000,
                         seed: int = 0, confidence: float = 0.95,
                         classes: Sequence[str] | None = None) -> pd.DataFrame:
    """`summary_table` within each ambiguity bin of the Manifest (Jia et al., 2026, ask how
    each strategy fares on clear versus ambiguous clips): the same columns plus
    `ambiguity_bin` (ordered low < mid < high). Empty bins are left out."""
    bins = ambiguity_bin_of(manifest)
    of_row = pd.Categorical(bins.reindex(scores["utt_id"]).to_numpy(),
                            categories=bins.cat.categories, ordered=True)
    frames = []
    for b in bins.cat.categories:
        part = scores[of_row == b]
        if len(part):
            frames.append(summary_table(part, metrics=metrics, n_boot=n_boot, seed=seed,
                                        confidence=confidence, classes=classes)
                          .assign(ambiguity_bin=b))
    out = pd.concat(frames, ignore_index=True)
    out["ambiguity_bin"] = pd.Categorical(out["ambiguity_bin"], categories=bins.cat.categories,
                                          ordered=True)
    return out


def reliability_table(scores: pd.DataFrame, n_bins: int = M.ECE_BINS) -> pd.DataFrame:
    """Top-class confidence against accuracy (vs the majority label) in equal-width bins on
    (0, 1], the bins of `metrics.ece`, per (model, [prompt,] strategy, n).

    Columns: model, [prompt,] strategy, n, bin, bin_lo, bin_hi, confidence (mean top-class
    probability), accuracy (mean credit), count. Tied references and missing predictions
    are left out, as in ECE; empty bins have no row.
    """
    keep = np.isfinite(scores["top_prob"].to_numpy(float)) & np.isfinite(
        scores["correct"].to_numpy(float))
    keys = group_keys(scores)
    data = scores.loc[keep, [*keys, "top_prob", "correct"]].copy()
    conf = data["top_prob"].to_numpy(float)
    data["bin"] = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    out = (data.groupby([*keys, "bin"], sort=False, observed=True, dropna=False)
           .agg(confidence=("top_prob", "mean"), accuracy=("correct", "mean"),
                count=("correct", "size")).reset_index())
    out.insert(len(keys) + 1, "bin_lo", out["bin"] / n_bins)
    out.insert(len(keys) + 2, "bin_hi", (out["bin"] + 1) / n_bins)
    # Groups in their first-seen order (the models as the config lists them, as in every
    # other figure and table), bins ascending within each.
    group = out.groupby(keys, sort=False, dropna=False).ngroup()
    return (out.assign(_group=group).sort_values(["_group", "bin"], kind="stable")
            .drop(columns="_group").reset_index(drop=True))
