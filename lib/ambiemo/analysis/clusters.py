"""Cluster-robust resampling: which clips share a speaker or a sentence, and the bootstrap
weights and sign flips that respect it (study protocol v3, docs/design.md).

Clips of one speaker, and clips of one sentence (CREMA-D's 12 sentences, IEMOCAP's
scripts), are not independent: on CREMA-D the per-clip gain of smoothing has a speaker ICC
of .014 (design effect 2.2) and a sentence ICC of .016 (design effect 10.8), and a test that
resamples clips rejects a true null in a third of studies. Every interval and test of
`analysis` therefore resamples the clusters the Scores name:

- scheme `clip`: no cluster column, clips resampled (the old behaviour, same draws);
- scheme `speaker` (or `sentence`): one-way cluster bootstrap (clusters drawn with
  replacement, each with all its clips) and a sign-flip test that flips whole clusters;
- scheme `speaker x sentence`: summaries (`summary_table`) use the pigeonhole (two-way)
  bootstrap of Owen (2007): speakers and sentences are drawn independently with replacement
  and a clip's weight is the product of its speaker's and its sentence's counts; it serves
  any statistic (R², macro-F1, ECE) and is conservative (the residual variance is counted
  about three times: on CREMA-D's layout it never rejected a true null in 200 studies).
  Paired tests and gains use the two-way cluster-robust variance of the mean (Cameron,
  Gelbach & Miller, 2011: V_speaker + V_sentence - V_speaker∩sentence) with a t reference
  on min(G_speaker, G_sentence) - 1 degrees of freedom, since crossed clusters admit no
  exact sign-flip group (false positives .04-.06 in 1000 null studies on CREMA-D's 91 x 12
  layout, with and without speaker and sentence effects).

A clip whose speaker (or sentence) is unknown is a cluster of its own. Bootstrap counts are
drawn as multinomial vectors over clusters (B, G) and applied to cluster-cell sums, in
blocks, so memory grows with the number of cells, never with clips x replicates, and no
replicate is a Python loop.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CLUSTER_COLUMNS = ("speaker", "sentence")
CLIP = "clip"
CLUSTER_CHOICES = ("auto", "clip", "speaker", "sentence", "speaker x sentence")
_CELLS = 4_000_000   # weights held at once: replicates per block x cells


def scheme_caption(scheme: str) -> str:
    """The caption fragment that names a resampling scheme (every table caption has one)."""
    what = {CLIP: "clips resampled as independent (no speaker or sentence column)",
            "speaker": "speakers resampled (one-way cluster bootstrap; tests flip signs per "
                       "speaker)",
            "sentence": "sentences resampled (one-way cluster bootstrap; tests flip signs per "
                        "sentence)",
            "speaker x sentence": "speakers and sentences as crossed clusters (summaries: "
                                  "two-way pigeonhole bootstrap; tests and gains: t on the "
                                  "two-way cluster-robust standard error with "
                                  "min(speakers, sentences) - 1 df)"}
    return f"Resampling: {what.get(scheme, scheme)}."


def binning_caption(binning: str | None = None) -> str:
    """The caption fragment naming how ambiguity bins were cut; empty until a binning option
    exists (the hook every caption that shows bins calls)."""
    return "" if not binning else f"Ambiguity bins: {binning}."


def clusters_of(scores: pd.DataFrame) -> pd.DataFrame:
    """utt_id -> the cluster columns the Scores carry (speaker, sentence), one row per clip."""
    cols = [c for c in CLUSTER_COLUMNS if c in scores]
    if not cols:
        return pd.DataFrame(index=pd.Index(pd.unique(scores["utt_id"]), name="utt_id"))
    return scores.groupby("utt_id", sort=False)[cols].first()


def resolve_scheme(clusters: pd.DataFrame, cluster: str = "auto") -> str:
    """The scheme `cluster` asks for on `clusters` (utt_id-indexed): "auto" takes every
    cluster column with at least two known values (one speaker cannot be resampled: the
    clips are then the only unit there is); naming one that is absent is an error."""
    if cluster not in CLUSTER_CHOICES:
        raise ValueError(f"cluster must be one of {CLUSTER_CHOICES}, got {cluster!r}")
    present = [c for c in CLUSTER_COLUMNS if c in clusters and clusters[c].nunique() >= 2]
    if cluster == "auto":
        return " x ".join(present) if present else CLIP
    wanted = [] if cluster == CLIP else cluster.split(" x ")
    lacking = [c for c in wanted if c not in present]
    if lacking:
        raise ValueError(f"cluster={cluster!r}: the scores have no {lacking} column (or only "
                         f"missing values); present: {present or 'none'}")
    return cluster


@dataclass(frozen=True)
class Design:
    """The clusters of U clips: per dimension an int code per clip and the cluster count."""
    scheme: str
    codes: tuple[np.ndarray, ...]   # each (U,)
    sizes: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.codes[0]) if self.codes else 0

    @property
    def df(self) -> int:
        """Degrees of freedom of a cluster t test: the smallest cluster count - 1."""
        return min(self.sizes) - 1

    def subset(self, rows: np.ndarray) -> Design:
        """The design of the clips `rows` (bool mask or indices), codes made dense again."""
        codes = [pd.factorize(c[rows])[0] for c in self.codes]
        return Design(self.scheme, tuple(codes), tuple(int(c.max()) + 1 if len(c) else 0
                                                       for c in codes))


def design(clusters: pd.DataFrame, utts: Sequence, cluster: str = "auto") -> Design:
    """The Design of the clips `utts` (in that order) from utt_id-indexed `clusters`."""
    utts = pd.Index(utts)
    clusters = clusters.reindex(utts) if len(clusters.columns) else clusters
    scheme = resolve_scheme(clusters, cluster)
    if scheme == CLIP:
        return Design(CLIP, (np.arange(len(utts)),), (len(utts),))
    codes = []
    for col in scheme.split(" x "):
        values = clusters[col].reindex(utts)
        code = pd.factorize(values)[0]          # NaN -> -1
        unknown = code < 0
        # An unknown speaker (sentence) is a cluster of its own: never pooled with others.
        code[unknown] = code.max() + 1 + np.arange(unknown.sum())
        codes.append(code)
    return Design(scheme, tuple(codes), tuple(int(c.max()) + 1 if len(c) else 0
                                              for c in codes))


def _cells(des: Design) -> tuple[np.ndarray, np.ndarray]:
    """(cell of each clip, (n_cells, D) cluster codes of each cell)."""
    if len(des.codes) == 1:
        g = des.codes[0]
        return g, np.arange(des.sizes[0])[:, None]
    # One integer per combination (mixed radix), then a 1-D unique: fast on 100k clips.
    flat = np.zeros(des.n, dtype=np.int64)
    for code, g in zip(des.codes, des.sizes):
        flat = flat * g + code
    uniq, cell_of = np.unique(flat, return_inverse=True)
    cells = np.empty((len(uniq), len(des.codes)), dtype=np.int64)
    rest = uniq.copy()
    for d in range(len(des.codes) - 1, -1, -1):
        cells[:, d] = rest % des.sizes[d]
        rest //= des.sizes[d]
    return cell_of.reshape(-1), cells


def _blocks(n_boot: int, width: int) -> list[int]:
    size = max(1, _CELLS // max(width, 1))
    return [min(size, n_boot - i) for i in range(0, n_boot, size)]


def draw_counts(des: Design, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Bootstrap counts per dimension, each (n_boot, G_d): how often each cluster is drawn.

    The clip scheme draws clip indices exactly as the old clip bootstrap did (one
    `integers` call per block), so its intervals are unchanged."""
    out = []
    for g in des.sizes:
        if des.scheme == CLIP:
            counts = np.concatenate([
                np.stack([np.bincount(i, minlength=g) for i in rng.integers(0, g, (k, g))])
                if k else np.zeros((0, g), int) for k in _blocks(n_boot, g)])
        else:
            counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot)
        out.append(counts.astype(float))
    return out


def clip_weights(des: Design, counts: list[np.ndarray], rows: slice = slice(None)) -> np.ndarray:
    """(B, U) weight of each clip in each replicate (rows: a block of replicates): the
    product of its clusters' counts. For metrics that are not means (R², macro-F1, ECE)."""
    w = None
    for code, c in zip(des.codes, counts):
        part = c[rows][:, code]
        w = part if w is None else w * part
    return w


def boot_ratio(des: Design, counts: list[np.ndarray], num: np.ndarray,
               den: np.ndarray) -> np.ndarray:
    """(B,) sum_i w_i num_i / sum_i w_i den_i per replicate, from cluster-cell sums, in
    blocks of replicates (a weighted mean when den is the indicator of a finite value)."""
    cell_of, cells = _cells(des)
    n_cells = len(cells)
    s_num = np.bincount(cell_of, weights=num, minlength=n_cells)
    s_den = np.bincount(cell_of, weights=den, minlength=n_cells)
    B = len(counts[0])
    top, bottom = np.empty(B), np.empty(B)
    start = 0
    for k in _blocks(B, n_cells):
        rows = slice(start, start + k)
        w = None
        for d, c in enumerate(counts):
            part = c[rows][:, cells[:, d]]
            w = part if w is None else w * part
        top[rows], bottom[rows] = w @ s_num, w @ s_den
        start += k
    with np.errstate(invalid="ignore", divide="ignore"):
        return top / bottom


def boot_mean(des: Design, values: np.ndarray, n_boot: int,
              rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) bootstrap means of the finite `values` under the design."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    return boot_ratio(des, draw_counts(des, n_boot, rng), np.where(ok, v, 0.0), ok.astype(float))


def sign_flip_p(des: Design, d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip p-value of mean(d) = 0, whole clusters flipped together (one-way
    designs; the clip scheme flips clips, with the old draws): (1 + #|T*| >= |T|) / (1 + n_perm)."""
    if len(des.codes) != 1:
        raise ValueError("crossed clusters have no sign-flip group; use the t test")
    d = np.asarray(d, dtype=float)
    observed = d.mean()
    if des.scheme == CLIP:
        signs = rng.choice([-1.0, 1.0], size=(n_perm, len(d)))
        null = (signs * d).mean(axis=1)
    else:
        sums = np.bincount(des.codes[0], weights=d, minlength=des.sizes[0])
        null = np.empty(n_perm)
        start = 0
        for k in _blocks(n_perm, des.sizes[0]):
            signs = rng.choice([-1.0, 1.0], size=(k, des.sizes[0]))
            null[start:start + k] = signs @ sums / len(d)
            start += k
    # A small tolerance keeps exact ties (e.g. all-zero differences) from being floating noise.
    return float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_perm))


@dataclass(frozen=True)
class MeanInference:
    estimate: float
    lo: float
    hi: float
    p_value: float
    scheme: str
    n_clusters: str      # e.g. "91 x 12"
    method: str          # how the interval and p were made


def _one_way_variance(e: np.ndarray, code: np.ndarray, g: int, n: int) -> float:
    """Cluster-robust variance of a mean from centred values e: G/(G-1) sum_g (sum e)^2 / n^2."""
    sums = np.bincount(code, weights=e, minlength=g)
    return g / max(g - 1, 1) * float((sums ** 2).sum()) / n ** 2


def two_way_variance(d: np.ndarray, des: Design) -> float:
    """The two-way cluster-robust variance of mean(d) (Cameron, Gelbach & Miller, 2011):
    V_speaker + V_sentence - V_cell, each with its G/(G-1) factor; where that is not
    positive (possible in small samples), the larger one-way variance, as they advise."""
    d = np.asarray(d, dtype=float)
    e, n = d - d.mean(), len(d)
    cell_of, cells = _cells(des)
    ways = [_one_way_variance(e, c, g, n) for c, g in zip(des.codes, des.sizes)]
    v = sum(ways) - _one_way_variance(e, cell_of, len(cells), n)
    return v if v > 0 else max(ways)


def mean_inference(d: np.ndarray, des: Design, *, n_perm: int, n_boot: int, seed: int,
                   confidence: float = 0.95) -> MeanInference:
    """Interval and two-sided p-value for mean(d) = 0 under the design (d finite).

    One-way clusters: est ± t(G - 1) x the cluster-bootstrap SE (speakers resampled) and
    sign flips per cluster; two-way: est ± t(min G - 1) x the two-way cluster-robust SE and
    the p of the same t (see the module doc)."""
    if des.scheme == CLIP:
        raise ValueError("mean_inference is for cluster designs; the clip scheme keeps "
                         "inference.bootstrap_ci and clip sign flips")
    d = np.asarray(d, dtype=float)
    est = float(d.mean())
    a = (1 - confidence) / 2
    groups = " x ".join(str(g) for g in des.sizes)
    rng = np.random.default_rng(seed)
    df = max(des.df, 1)
    q = stats.t.ppf(1 - a, df)
    if len(des.codes) == 1:
        boot = boot_mean(des, d, n_boot, np.random.default_rng([seed, 1]))
        se = float(np.std(boot, ddof=1)) if len(boot) > 1 else np.nan
        p = sign_flip_p(des, d, n_perm, rng)
        method = f"t({df}) x cluster-bootstrap SE; sign flips per {des.scheme}"
    else:
        se = float(np.sqrt(two_way_variance(d, des)))
        t = abs(est) / se if se > 0 else (0.0 if est == 0 else np.inf)
        p = float(2 * stats.t.sf(t, df))
        method = f"t({df}) x two-way cluster-robust SE; t test"
    lo, hi = est - q * se, est + q * se
    return MeanInference(est, float(lo), float(hi), float(p), des.scheme, groups, method)
