"""Test-time-scaling strategies: N parsed candidates of one utterance -> one distribution.

Implements the aggregation strategies compared by Jia et al. (2026), "Decoding Ambiguous
Emotions with Test-Time Scaling in Audio-Language Models": the greedy baseline, chain of
thought, self-consistency (`majority`), Best-of-N and its weighted form, verifier selection
and weighting, a Dirichlet fit, and the model's own label probabilities. Everything here is
a pure function over arrays, so every number in the study can be checked without a model.

Each strategy is registered once with `@register_strategy`, and the module-level function of
the same name (`tts.w_bon`) is the public single-utterance call, identical to
`aggregate("w_bon", ...)`. Internally strategies work on padded batches (B, N, K) so that
`predict` and the scaling curves stay fast over tens of thousands of utterances.

Conventions (also written into every Prediction's `params`):
- a candidate is *usable* when its distribution is finite and, where the strategy needs them,
  its log-likelihood / token count / verifier score are finite (token count > 0); unusable
  candidates are excluded and counted, and when none is left the prediction is all-NaN
  ("missing") — never a random or default answer;
- scores within `TIE_RTOL`/`TIE_ATOL` of the best count as tied (a tie must survive the
  rounding of a stored log-likelihood or a parsed verifier score); `bon` returns the mean of
  the tied candidates, so candidate order never matters and `w_bon` with tau -> 0 converges
  to `bon` exactly (the softmax treats tied scores as equal too);
- `alm_v` returns exactly one candidate, as a verifier that picks one answer does: ties of
  the verifier score are broken by the candidate's total log-likelihood, then by its index
  (a tied integer score must not turn the selection into an average);
- a candidate without a verifier score (NaN) was not judged: verifier strategies ignore it
  and do not count it as failed (`combine`), so the strategy chooses among exactly the
  candidates the verifier judged;
- likelihood strategies rank by the *total* answer log-likelihood by default
  (`length_norm=False`): per-token normalisation counts punctuation and end-of-turn tokens,
  so a multi-token class name ("disgusted") would gain from its length over a one-token one.

Best-of-N in the paper selects among beam-search candidates (B = 5): `bon` / `w_bon` read the
sample-store kind "beam"; the same strategies over sampled candidates are `bon_sample` /
`w_bon_sample`.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ambiemo.tts.dirichlet_fit import fit_dirichlet_mean

# Rows of a parsed distribution may carry float noise from the parser; beyond this they are a
# parser bug, not noise, and aggregate refuses them.
SUM_TOLERANCE = 1e-3
# Scores this close to the best are tied: log-likelihoods and verifier scores pass through
# float32 models, JSON and SQLite, so exact equality would make ties depend on rounding.
TIE_RTOL = 1e-9
TIE_ATOL = 1e-9


@dataclass(frozen=True)
class Batch:
    """Padded candidates of B utterances; `usable` marks what a strategy may look at."""
    dists: np.ndarray      # (B, N, K), NaN rows where unusable
    usable: np.ndarray     # (B, N) bool
    logprob: np.ndarray    # (B, N)
    n_tokens: np.ndarray   # (B, N)
    verifier: np.ndarray   # (B, N)


@dataclass(frozen=True)
class Strategy:
    name: str
    core: Callable[..., np.ndarray]  # (Batch, **params) -> (B, K)
    defaults: dict
    needs: tuple[str, ...]           # inputs a candidate must have finite to be usable
    single: bool                     # exactly one candidate (greedy, cot, label_logits)
    kind: str
    soft: bool = False               # pools distribution-form candidates; one-hot ones: unavailable


@dataclass(frozen=True)
class Aggregated:
    """One strategy's output for one utterance, with the counts Predictions record."""
    dist: np.ndarray
    n: int
    n_usable: int
    n_failed: int
    params: dict = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        return self.n_usable == 0


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, *, needs: tuple[str, ...] = (), single: bool = False,
                      kind: str = "sample", soft: bool = False):
    """Register a batched core under `name`; return the single-utterance public function."""
    def decorate(core):
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} registered twice")
        sig = inspect.signature(core)
        defaults = {k: v.default for k, v in sig.parameters.items()
                    if v.kind is inspect.Parameter.KEYWORD_ONLY}
        STRATEGIES[name] = Strategy(name, core, defaults, needs, single, kind, soft)

        @functools.wraps(core)
        def public(dists, *, logprob=None, n_tokens=None, verifier=None, **params):
            return aggregate(name, dists, logprob=logprob, n_tokens=n_tokens,
                             verifier=verifier, **params)
        public.__doc__ = core.__doc__
        return public
    return decorate


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; valid: {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def resolve_params(name: str, **params) -> dict:
    """Every parameter of `name` with defaults filled in, validated; what Predictions record."""
    strategy = get_strategy(name)
    unknown = set(params) - set(strategy.defaults)
    if unknown:
        raise TypeError(f"strategy {name!r} has no parameter(s) {sorted(unknown)}; "
                        f"valid: {sorted(strategy.defaults)}")
    full = {**strategy.defaults, **params}
    if "tau" in full and not (float(full["tau"]) >= 0):
        raise ValueError(f"{name}: tau must be >= 0 (np.inf allowed), got {full['tau']!r}")
    if "epsilon" in full and not (0 < float(full["epsilon"]) < 1):
        raise ValueError(f"{name}: epsilon must lie in (0, 1), got {full['epsilon']!r}")
    if "weighting" in full and full["weighting"] not in ("proportional", "softmax"):
        raise ValueError(f"{name}: weighting must be 'proportional' or 'softmax'")
    return full


def _required(strategy: Strategy, params: dict) -> tuple[str, ...]:
    needs = list(strategy.needs)
    # Token counts matter only when the likelihood is length-normalised.
    if "logprob" in needs and params.get("length_norm"):
        needs.append("n_tokens")
    return tuple(needs)


def make_batch(dists: np.ndarray, needs: tuple[str, ...], *, logprob=None, n_tokens=None,
               verifier=None) -> Batch:
    """Validate padded (B, N, K) candidates and mark the usable ones."""
    dists = np.array(dists, dtype=float)
    B, N, _ = dists.shape
    inputs = {}
    for key, arr in (("logprob", logprob), ("n_tokens", n_tokens), ("verifier", verifier)):
        if arr is None:
            if key in needs:
                raise ValueError(f"this strategy needs {key!r} for every candidate; got None")
            arr = np.full((B, N), np.nan)
        arr = np.asarray(arr, dtype=float).reshape(B, N)
        inputs[key] = arr
    usable = np.isfinite(dists).all(axis=2)
    bad = usable & ((dists < 0).any(axis=2) | (np.abs(dists.sum(axis=2) - 1) > SUM_TOLERANCE))
    if bad.any():
        raise ValueError("candidate distributions must be non-negative and sum to 1 "
                         f"(within {SUM_TOLERANCE}); {int(bad.sum())} rows do not")
    for key in needs:
        usable &= np.isfinite(inputs[key])
        if key == "n_tokens":
            usable &= inputs[key] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        dists = np.where(usable[..., None], dists / dists.sum(axis=2, keepdims=True), np.nan)
    return Batch(dists, usable, **inputs)


def run_batch(name: str, batch_dists: np.ndarray, *, logprob=None, n_tokens=None,
              verifier=None, **params) -> tuple[np.ndarray, np.ndarray, dict]:
    """Apply `name` to padded candidates: returns (B, K) predictions, (B,) usable counts, params.

    Padding slots must be NaN rows in `batch_dists`; they count as unusable, so callers
    subtract their own padding when reporting failures.
    """
    strategy = get_strategy(name)
    full = resolve_params(name, **params)
    batch = make_batch(batch_dists, _required(strategy, full), logprob=logprob,
                       n_tokens=n_tokens, verifier=verifier)
    n_usable = batch.usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.asarray(strategy.core(batch, **full), dtype=float)
    out[n_usable == 0] = np.nan
    return out, n_usable, full


def combine(strategy: str, dists, *, logprob=None, n_tokens=None, verifier=None,
            **params) -> Aggregated:
    """`aggregate` with the counts and resolved parameters that Predictions record."""
    st = get_strategy(strategy)
    dists = np.asarray(dists, dtype=float)
    if dists.ndim != 2:
        raise ValueError(f"dists must have shape (N, K), got {dists.shape}")
    if st.single and dists.shape[0] != 1:
        raise ValueError(f"strategy {strategy!r} takes exactly one candidate, got {dists.shape[0]}")
    if "verifier" in st.needs and verifier is not None:
        # Unjudged candidates (NaN score) are not among those the strategy chooses from, so
        # they are neither used nor counted as failed.
        judged = np.isfinite(np.asarray(verifier, dtype=float).reshape(-1))
        dists, verifier = dists[judged], np.asarray(verifier, dtype=float)[judged]
        logprob = None if logprob is None else np.asarray(logprob, dtype=float)[judged]
        n_tokens = None if n_tokens is None else np.asarray(n_tokens, dtype=float)[judged]
        if not judged.any():
            full = resolve_params(strategy, **params)
            return Aggregated(np.full(dists.shape[1], np.nan), 0, 0, 0, full)
    out, n_usable, full = run_batch(strategy, dists[None], logprob=_row(logprob),
                                    n_tokens=_row(n_tokens), verifier=_row(verifier), **params)
    n = dists.shape[0]
    return Aggregated(out[0], n, int(n_usable[0]), n - int(n_usable[0]), full)


def _row(arr):
    return None if arr is None else np.asarray(arr, dtype=float)[None]


def aggregate(strategy: str, dists, *, logprob=None, n_tokens=None, verifier=None,
              **params) -> np.ndarray:
    """Turn the (N, K) candidates of one utterance into one (K,) distribution (docs/design.md).

    A row of NaN is an unparseable candidate and is excluded; all-NaN comes back when no
    candidate is usable. `logprob`, `n_tokens`, `verifier` have shape (N,).
    """
    return combine(strategy, dists, logprob=logprob, n_tokens=n_tokens, verifier=verifier,
                   **params).dist


# --- helpers over padded batches -------------------------------------------------------------

def _weighted_mean(batch: Batch, weights: np.ndarray) -> np.ndarray:
    w = np.where(batch.usable, weights, 0.0)
    total = w.sum(axis=1, keepdims=True)
    d = np.nan_to_num(batch.dists)
    return np.einsum("bn,bnk->bk", w / total, d)


def _tied_with_best(batch: Batch, score: np.ndarray) -> np.ndarray:
    """(B, N) bool: usable candidates whose score is within the tie tolerance of the best."""
    s = np.where(batch.usable, score, -np.inf)
    top = s.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return batch.usable & (s >= top - (TIE_ATOL + TIE_RTOL * np.abs(top)))


def _select_best(batch: Batch, score: np.ndarray) -> np.ndarray:
    return _weighted_mean(batch, _tied_with_best(batch, score).astype(float))


def _softmax_weights(batch: Batch, score: np.ndarray, tau: float) -> np.ndarray:
    s = np.where(batch.usable, score, -np.inf)
    top = s.max(axis=1, keepdims=True)
    # Tied scores are equal here too, so tau -> 0 lands on exactly the set `_select_best`
    # averages; subtracting the max keeps exp finite.
    s = np.where(_tied_with_best(batch, score), top, s)
    return np.exp((s - top) / tau)


def _likelihood_score(batch: Batch, length_norm: bool) -> np.ndarray:
    return batch.logprob / batch.n_tokens if length_norm else batch.logprob


# --- strategies ------------------------------------------------------------------------------

@register_strategy("greedy", single=True, kind="greedy")
def greedy(batch: Batch) -> np.ndarray:
    """The single greedy answer: the study's baseline."""
    return _weighted_mean(batch, np.ones(batch.usable.shape))


@register_strategy("cot", single=True, kind="cot")
def cot(batch: Batch) -> np.ndarray:
    """The greedy chain-of-thought answer, aggregated exactly like `greedy`."""
    return _weighted_mean(batch, np.ones(batch.usable.shape))


@register_strategy("label_logits", single=True, kind="label_score")
def label_logits(batch: Batch) -> np.ndarray:
    """The model's normalised probability of each class name (computed by the adapter)."""
    return _weighted_mean(batch, np.ones(batch.usable.shape))


@register_strategy("majority")
def majority(batch: Batch) -> np.ndarray:
    """Self-consistency: the mean of the usable candidates (a vote share for one-hot ones)."""
    return _weighted_mean(batch, np.ones(batch.usable.shape))


@register_strategy("vote_share")
def vote_share(batch: Batch) -> np.ndarray:
    """A control (controls.py): the share of the N candidates' top classes, a tied top split
    equally. It uses no likelihood and no verifier, so a strategy that beats `majority` only
    where candidates are distributions must also beat this."""
    d = np.nan_to_num(batch.dists)
    top = batch.usable[..., None] & (d >= d.max(axis=2, keepdims=True) - 1e-9)
    votes = top / np.maximum(top.sum(axis=2, keepdims=True), 1)
    return _weighted_mean(Batch(votes, batch.usable, batch.logprob, batch.n_tokens,
                                batch.verifier), np.ones(batch.usable.shape))


@register_strategy("first_parsable")
def first_parsable(batch: Batch) -> np.ndarray:
    """A control (controls.py): the first of the N sampled candidates that parses, the same
    samples `majority` reads with no aggregation. One of N answers parses far more often
    than the one greedy answer, so a gain over greedy that this also shows is rescue of a
    missing answer, not aggregation."""
    first = np.argmax(batch.usable, axis=1)
    w = np.zeros(batch.usable.shape)
    w[np.arange(len(first)), first] = 1.0
    return _weighted_mean(batch, w)


def _bon(batch: Batch, *, length_norm: bool = False) -> np.ndarray:
    return _select_best(batch, _likelihood_score(batch, length_norm))


def _w_bon(batch: Batch, *, tau: float = 1.0, length_norm: bool = False) -> np.ndarray:
    score = _likelihood_score(batch, length_norm)
    if tau == 0:
        return _select_best(batch, score)
    if np.isinf(tau):
        return _weighted_mean(batch, np.ones(batch.usable.shape))
    return _weighted_mean(batch, _softmax_weights(batch, score, tau))


def _variant(core, doc: str):
    """A copy of `core` with its own docstring, so two registered names keep separate docs."""
    @functools.wraps(core)
    def wrapped(batch, **params):
        return core(batch, **params)
    wrapped.__doc__ = doc
    return wrapped


_BON_DOC = ("Best-of-N over {what}: the candidate with the highest total answer log-likelihood "
            "(per token with length_norm=True); tied candidates are averaged.")
_W_BON_DOC = ("Weighted Best-of-N over {what}: weights softmax(log-likelihood / tau); tau 0 is "
              "the matching BoN, inf the plain mean of the candidates.")

bon = register_strategy("bon", needs=("logprob",), kind="beam")(
    _variant(_bon, _BON_DOC.format(what="the B beam-search candidates (as the paper)")))
w_bon = register_strategy("w_bon", needs=("logprob",), kind="beam")(
    _variant(_w_bon, _W_BON_DOC.format(what="the B beam-search candidates (as the paper)")))
bon_sample = register_strategy("bon_sample", needs=("logprob",))(
    _variant(_bon, _BON_DOC.format(what="the N sampled candidates")))
w_bon_sample = register_strategy("w_bon_sample", needs=("logprob",))(
    _variant(_w_bon, _W_BON_DOC.format(what="the N sampled candidates")))


@register_strategy("alm_v", needs=("verifier",))
def alm_v(batch: Batch) -> np.ndarray:
    """The one candidate the verifier scores highest; ties broken by the candidate's total
    log-likelihood (NaN ranks last), then by the lowest index."""
    tied = _tied_with_best(batch, batch.verifier)
    lp = np.where(tied & np.isfinite(batch.logprob), batch.logprob, -np.inf)
    tied &= np.where(np.isfinite(lp).any(axis=1, keepdims=True),
                     _tied_with_best(Batch(batch.dists, tied, lp, batch.n_tokens,
                                           batch.verifier), lp), True)
    first = np.argmax(tied, axis=1)  # lowest index among what is still tied
    onehot = np.zeros(tied.shape)
    onehot[np.arange(len(first)), first] = 1.0
    return _weighted_mean(batch, np.where(tied.any(axis=1, keepdims=True), onehot, 0.0))


@register_strategy("w_alm_v", needs=("verifier",))
def w_alm_v(batch: Batch, *, weighting: str = "proportional", tau: float = 1.0) -> np.ndarray:
    """Candidates weighted by verifier score: proportional (scores >= 0) or softmax(score / tau).

    `tau` is used only with weighting="softmax". With proportional weights and every usable
    score zero the verifier expresses no preference, so the candidates are weighted equally.
    """
    if weighting == "softmax":
        if tau == 0:
            return _select_best(batch, batch.verifier)
        if np.isinf(tau):
            return _weighted_mean(batch, np.ones(batch.usable.shape))
        return _weighted_mean(batch, _softmax_weights(batch, batch.verifier, tau))
    scores = np.where(batch.usable, batch.verifier, 0.0)
    if (scores < 0).any():
        raise ValueError("w_alm_v with weighting='proportional' needs verifier scores >= 0; "
                         "use weighting='softmax' for log-scores")
    zero = scores.sum(axis=1, keepdims=True) == 0
    return _weighted_mean(batch, np.where(zero, 1.0, scores))


@register_strategy("dirichlet", soft=True)
def dirichlet(batch: Batch, *, epsilon: float = 1e-3, max_iter: int = 1000,
              tol: float = 1e-10) -> np.ndarray:
    """Mean of a Dirichlet fitted by maximum likelihood to distribution-form candidates.

    Over one-hot candidates the fit is no pooling of expressed distributions but uniform
    shrinkage of the vote share ([A,A,A,A,B] -> .515/.184/.15/.15 against the vote share
    .8/.2), so `predict.unavailable_strategies` reports it unavailable for a run whose parsed
    candidates are all one-hot; a single one-hot candidate among soft ones is kept.

    Zeros (one-hot answers) are smoothed first: p -> (p + epsilon) / (1 + K epsilon). The fit is
    Minka's (2000) fixed point psi(alpha_k) = psi(sum alpha) + mean_i log p_ik. When all usable
    candidates are identical (or there is one) the likelihood has no maximum (the precision
    grows without bound) and the limit of the mean, the smoothed candidate, is returned.
    """
    return fit_dirichlet_mean(batch.dists, batch.usable, epsilon=epsilon, max_iter=max_iter,
                              tol=tol)

