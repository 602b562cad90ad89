"""Maximum-likelihood Dirichlet fit over padded batches, for the `dirichlet` strategy of tts.py.

Jia et al. (2026) pool sampled answers into one distribution; the `dirichlet` strategy pools
them through a Dirichlet fitted by maximum likelihood and reports its mean. The fit is
Minka's fixed point (T. Minka, "Estimating a Dirichlet distribution", 2000), vectorised over
utterances so that scaling curves over many subsets stay cheap.
"""
from __future__ import annotations

import numpy as np
from scipy.special import digamma, polygamma

# Candidates closer than this in every class are treated as identical: the likelihood then
# has no finite maximum and the limit of the fitted mean is returned instead.
IDENTICAL_ATOL = 1e-12


def inverse_digamma(y: np.ndarray, n_newton: int = 5) -> np.ndarray:
    """x with digamma(x) = y (Minka's initialisation, then Newton steps)."""
    y = np.asarray(y, dtype=float)
    x = np.where(y >= -2.22, np.exp(y) + 0.5, -1.0 / (y - digamma(1.0)))
    for _ in range(n_newton):
        x = x - (digamma(x) - y) / polygamma(1, x)
    return x


def smooth(p: np.ndarray, epsilon: float) -> np.ndarray:
    """Additive smoothing that keeps rows on the simplex: (p + eps) / (1 + K eps)."""
    k = p.shape[-1]
    return (p + epsilon) / (1.0 + k * epsilon)


def fit_dirichlet(p: np.ndarray, usable: np.ndarray, *, max_iter: int = 1000,
                  tol: float = 1e-10) -> np.ndarray:
    """Fitted alpha (B, K) for strictly positive candidates p (B, N, K); rows not usable ignored.

    Batches with fewer than two distinct usable candidates get NaN (no finite maximum).
    """
    B, _, K = p.shape
    count = usable.sum(axis=1)
    w = usable / np.maximum(count, 1)[:, None]
    logp = np.where(usable[..., None], np.log(np.where(usable[..., None], p, 1.0)), 0.0)
    mean_log = np.einsum("bn,bnk->bk", w, logp)
    mean = np.einsum("bn,bnk->bk", w, np.nan_to_num(p))
    var = np.einsum("bn,bnk->bk", w, (np.nan_to_num(p) - mean[:, None, :]) ** 2)
    # Moment-matching start: precision s from the first class's mean and variance.
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = mean[:, 0] * (1 - mean[:, 0]) / var[:, 0] - 1
    s0 = np.where(np.isfinite(s0) & (s0 > 0), s0, float(K))
    alpha = mean * s0[:, None]
    fit = (count >= 2) & (var.max(axis=1) > IDENTICAL_ATOL)
    active = fit.copy()
    for _ in range(max_iter):
        if not active.any():
            break
        a = alpha[active]
        new = inverse_digamma(digamma(a.sum(axis=1, keepdims=True)) + mean_log[active])
        done = (np.abs(new - a) <= tol * np.maximum(a, 1.0)).all(axis=1)
        alpha[active] = new
        idx = np.flatnonzero(active)
        active[idx[done]] = False
    alpha[~fit] = np.nan
    return alpha


def fit_dirichlet_mean(dists: np.ndarray, usable: np.ndarray, *, epsilon: float,
                       max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Mean of the ML Dirichlet per batch row; the smoothed candidate when the fit degenerates."""
    p = smooth(np.where(usable[..., None], dists, np.nan), epsilon)
    alpha = fit_dirichlet(p, usable, max_iter=max_iter, tol=tol)
    fitted = alpha / alpha.sum(axis=1, keepdims=True)
    count = np.maximum(usable.sum(axis=1), 1)[:, None]
    limit = np.nansum(np.where(usable[..., None], p, 0.0), axis=1) / count
    return np.where(np.isfinite(fitted).all(axis=1, keepdims=True), fitted, limit)
