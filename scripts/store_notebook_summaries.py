"""Copy the checked summary outputs of the executed smoke notebooks into notebooks/.

nbval (`--nbval-lax`) compares only cells marked `# NBVAL_CHECK_OUTPUT`, so the committed
notebooks carry those outputs (with their execution counts, which nbval needs) and nothing
else. After a change that moves a smoke number on purpose:

    ./run_all.sh && .venv/bin/python scripts/store_notebook_summaries.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

MARK = "# NBVAL_CHECK_OUTPUT"
REPO = Path(__file__).resolve().parents[1]


def default_run(notebook: Path) -> str:
    """The executed notebook's name for the notebook's own parameter defaults
    (<stem>__<corpus>[__<model>]), which is what nbval runs."""
    params = next(c for c in nbformat.read(notebook, as_version=4).cells
                  if "parameters" in c.metadata.get("tags", []))
    values = dict(re.findall(r'^(corpus|model) = "([^"]+)"', params.source, flags=re.M))
    return "__".join([notebook.stem] + [values[k] for k in ("corpus", "model") if k in values])


def main(config: str = "smoke") -> None:
    executed_dir = REPO / "runs" / config / "executed"
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        # Per-corpus notebooks are saved as <stem>__<corpus>[__<model>]; once-per-config ones as <stem>.
        runs = sorted(executed_dir.glob(f"{path.stem}__*.ipynb")) or sorted(executed_dir.glob(f"{path.stem}.ipynb"))
        if len(runs) > 1:   # several models: nbval runs the notebook with its defaults
            runs = [r for r in runs if r.stem == default_run(path)]
        if len(runs) != 1:
            raise SystemExit(f"{path.name}: expected one executed notebook in {executed_dir}, "
                             f"found {len(runs)}; run ./run_all.sh first")
        executed = {c.source: c for c in nbformat.read(runs[0], as_version=4).cells
                    if c.cell_type == "code"}
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if cell.source.startswith(MARK):
                done = executed[cell.source]
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
            else:
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, path)
        print(f"{path.relative_to(REPO)}: summary output from {runs[0].relative_to(REPO)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
