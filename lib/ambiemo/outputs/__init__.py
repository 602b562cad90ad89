"""Statistics -> what a reader sees: tables (Markdown, CSV, LaTeX), figures, the HTML report,
and the paper's reported numbers set beside the reproduced ones.

The last arrow of the data flow (docs/design.md). `tables` and `figures` write files;
`report` assembles runs/<config>/report/index.html; `paper_numbers` reads
data/reported/jia2026.yaml (what Jia et al., 2026 published, never mixed into results).
"""
