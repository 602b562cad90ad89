"""What the metric and strategy registries decide at import time, pinned.

`register_metric(..., direction=, worst=)` and `register_strategy(..., needs=, single=,
kind=, soft=)` run when their module is imported, before mutation testing can switch a
mutant on (docs/testing.md: unmeasured by mutmut), yet they decide which way a table ranks,
what a missing prediction scores and which stored rows a strategy reads. These tests pin
every registered value and, where a value has a meaning that can be computed, compute it.
"""
import numpy as np
import pytest

from ambiemo import metrics as M
from ambiemo.tts import strategies as S

# name -> (direction, worst, level). worst: a missing prediction's score (bounded
# metrics), None: left out and counted.
METRICS = {
    "js_divergence": ("lower", 1.0, "utterance"),
    "js_distance": ("lower", 1.0, "utterance"),
    "bhattacharyya_coefficient": ("higher", 0.0, "utterance"),
    "kl_divergence": ("lower", None, "utterance"),
    "total_variation": ("lower", 1.0, "utterance"),
    "r2_per_clip": ("higher", None, "utterance"),
    "r2": ("higher", None, "corpus"),
    "r2_pooled": ("higher", None, "corpus"),
    "accuracy": ("higher", 0.0, "corpus"),
    "macro_f1": ("higher", 0.0, "corpus"),
    "ece": ("lower", None, "corpus"),
    "entropy_pearson": ("higher", None, "corpus"),
    "entropy_spearman": ("higher", None, "corpus"),
}
# name -> (needs, single, kind, soft)
STRATEGIES = {
    "greedy": ((), True, "greedy", False),
    "cot": ((), True, "cot", False),
    "label_logits": ((), True, "label_score", False),
    "majority": ((), False, "sample", False),
    "vote_share": ((), False, "sample", False),
    "first_parsable": ((), False, "sample", False),
    "bon": (("logprob",), False, "beam", False),
    "w_bon": (("logprob",), False, "beam", False),
    "bon_sample": (("logprob",), False, "sample", False),
    "w_bon_sample": (("logprob",), False, "sample", False),
    "alm_v": (("verifier",), False, "sample", False),
    "w_alm_v": (("verifier",), False, "sample", False),
    "dirichlet": ((), False, "sample", True),
}


def _registered_metrics():
    from ambiemo.metrics.registry import CORPUS_METRICS, METRICS as UTTERANCE
    return {**UTTERANCE, **CORPUS_METRICS}


def test_every_metric_is_registered_with_its_direction_worst_value_and_level():
    got = {n: (m.direction, m.worst, m.level) for n, m in _registered_metrics().items()}
    assert got == METRICS


@pytest.mark.parametrize("name", sorted(n for n, v in METRICS.items()
                                        if v[1] is not None and v[2] == "utterance"))
def test_a_bounded_metrics_worst_value_is_its_value_at_opposite_answers(name):
    """What a missing prediction scores is what the metric gives the worst possible answer
    (all mass on a class the listeners never chose), and it lies on the bad side."""
    spec = _registered_metrics()[name]
    p, q = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    worst = float(np.asarray(spec.fn(p, q)).ravel()[0])
    assert worst == pytest.approx(spec.worst, abs=1e-9)
    same = float(np.asarray(spec.fn(p, p)).ravel()[0])
    assert (same > worst) if spec.direction == "higher" else (same < worst)


def test_a_metrics_direction_is_where_a_perfect_answer_lies():
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    q = np.array([[0.1, 0.3, 0.6], [0.6, 0.2, 0.2]])
    for name in ("js_divergence", "js_distance", "bhattacharyya_coefficient", "total_variation",
                 "kl_divergence"):
        spec = _registered_metrics()[name]
        better = np.mean(spec.fn(p, p)) > np.mean(spec.fn(p, q))
        assert better == (spec.direction == "higher"), name
        assert M.direction(name) == spec.direction


def test_every_strategy_is_registered_with_its_inputs_kind_and_form():
    got = {n: (s.needs, s.single, s.kind, s.soft) for n, s in S.STRATEGIES.items()}
    assert got == STRATEGIES


@pytest.mark.parametrize("name", sorted(n for n, v in STRATEGIES.items() if v[0]))
def test_a_strategy_without_what_it_needs_is_refused(name):
    """`needs` is what the strategy reads besides the answers: without it, an error naming
    it, not an answer from the answers alone."""
    dists = np.eye(3)[[0, 1, 1]][None]                          # (1 clip, 3 candidates, 3)
    need = STRATEGIES[name][0][0]
    with pytest.raises((ValueError, TypeError, KeyError), match=need):
        S.run_batch(name, dists)
    given = {need: np.array([[-1.0, -2.0, -3.0]]) if need == "logprob"
             else np.array([[0.9, 0.2, 0.1]])}
    out, n_usable, _ = S.run_batch(name, dists, **given)
    assert n_usable.tolist() == [3] and np.isfinite(out).all()
