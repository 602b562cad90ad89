"""Samples -> Predictions: the test-time-scaling strategies and the reference rows.

The `tts` arrow of the data flow (docs/design.md; Jia et al., 2026). `strategies` holds every
strategy as a pure function over arrays (registered once, `aggregate(name, ...)` for one
utterance); `predictions` applies them to a run's samples; `scaling` evaluates them at
n = 1, 2, 4, ... from the same candidates; `references` makes the rows every model is read
against (prior, uniform, new raters); `controls` the cross-fitted controls every gain is
read against (greedy smoothed, label_logits tempered); `dirichlet_fit` is the Dirichlet
pooling's estimator.
Public entry points: `ambiemo.tts.aggregate`, `ambiemo.tts.predict`,
`ambiemo.tts.scaling_curve`, `ambiemo.tts.STRATEGIES`.
"""
from ambiemo.tts.strategies import (STRATEGIES, SUM_TOLERANCE, Aggregated, Batch,  # noqa: F401
                                    Strategy, aggregate, alm_v, bon, bon_sample, combine, cot,
                                    dirichlet, first_parsable, get_strategy, greedy, label_logits, majority,
                                    make_batch, register_strategy, resolve_params, run_batch,
                                    vote_share, w_alm_v, w_bon, w_bon_sample)
from ambiemo.tts.predictions import (Candidates, predict, strategy_specs,  # noqa: F401
                                     unavailable_strategies, verifier_scores)
from ambiemo.tts.scaling import default_ns, scaling_curve  # noqa: F401
from ambiemo.tts.references import REFERENCE_MODELS, reference_predictions  # noqa: F401
