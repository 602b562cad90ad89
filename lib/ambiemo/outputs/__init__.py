"""Statistics -> what a reader sees: tables (Markdown, CSV, LaTeX), figures, the HTML report,
and the paper's reported numbers set beside the reproduced ones.

The last arrow of the data flow (docs/design.md). `tables` and `figures` (diagnostics) write
files, `paper_figures` the figures of the paper's argument with captions, all in the look of
`style` (two-column paper sizes, one style per strategy); `report` assembles
runs/<config>/report/index.html; `export` writes a run's samples and predictions as a
Hugging Face dataset folder; `paper_numbers` reads
data/reported/jia2026.yaml (what Jia et al., 2026 published, never mixed into results).
"""
