"""Predictions -> Scores: how close each prediction is to the human distribution.

The `metrics` arrow of the data flow (docs/design.md). `registry` holds each metric with its
direction, missing-prediction value, level and labels; `distribution` the per-utterance
distribution metrics (JS, BC, KL, TV, R²); `classification` the label metrics against the
majority label, calibration and entropy correlation; `scoring` scores a Predictions frame.
Public entry points: `ambiemo.metrics.<metric>(p, q)` and `ambiemo.metrics.score(...)`.
"""
from ambiemo.metrics.registry import (CORPUS_METRICS, MAIN_METRICS, METRICS, Metric,  # noqa: F401
                                      axis_label, direction, get_metric, register_metric,
                                      short_label, table_header)
from ambiemo.metrics.distribution import (KL_EPSILON, R2_FOOTNOTE,  # noqa: F401
                                          bhattacharyya_coefficient, entropy, js_distance,
                                          js_divergence, kl_divergence, r2_per_clip, r2_pooled,
                                          r2_score, r2_weighted, total_variation)
from ambiemo.metrics.classification import (ECE_BINS, TOP_TIE_ATOL, _is_label,  # noqa: F401
                                            accuracy, credit, ece, entropy_correlation,
                                            entropy_pearson, entropy_spearman, macro_f1,
                                            top_labels)
from ambiemo.metrics.scoring import SCORE_KEYS, score  # noqa: F401
