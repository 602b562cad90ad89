"""Scores -> statistics: summary tables with bootstrap intervals, paired comparisons, gains by
ambiguity and the capacity models.

The `analysis` arrow of the data flow (docs/design.md; Jia et al., 2026). `summaries` holds
the per-row summaries (the main table's numbers, by ambiguity bin, reliability); `inference`
the bootstrap, permutation tests, Holm correction, gains by ambiguity and capacity fits;
`clusters` the speaker / sentence resampling every interval uses; `comparisons` the table
of every strategy and control against greedy (all clips, complete-case, no one-hot).
"""
from ambiemo.analysis.summaries import (DEFAULT_METRICS, GROUP_KEYS,  # noqa: F401
                                        ambiguity_bin_of, group_keys, reliability_table,
                                        summary_by_ambiguity, summary_table)
from ambiemo.analysis.inference import (PairedComparison, bootstrap_ci,  # noqa: F401
                                        capacity_analysis, capacity_model, gain_by_ambiguity,
                                        holm, paired_comparison, paired_table)
from ambiemo.analysis.clusters import scheme_caption  # noqa: F401
from ambiemo.analysis.comparisons import (COMPARISON_COLUMNS, comparisons_caption,  # noqa: F401
                                          comparisons_table)
