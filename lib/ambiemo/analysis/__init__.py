"""Scores -> statistics: summary tables with bootstrap intervals, paired comparisons, gains by
ambiguity and the capacity models.

The `analysis` arrow of the data flow (docs/design.md; Jia et al., 2026). `summaries` holds
the per-row summaries (the main table's numbers, by ambiguity bin, reliability); `inference`
the bootstrap, permutation tests, Holm correction, gains by ambiguity and capacity fits.
"""
from ambiemo.analysis.summaries import (DEFAULT_METRICS, GROUP_KEYS,  # noqa: F401
                                        ambiguity_bin_of, group_keys, reliability_table,
                                        summary_by_ambiguity, summary_table)
from ambiemo.analysis.inference import (PairedComparison, bootstrap_ci,  # noqa: F401
                                        capacity_analysis, capacity_model, gain_by_ambiguity,
                                        holm, paired_comparison, paired_table)
