"""Where a run writes: every artifact path of a study config, and the pointer files, in one place.

A config named `smoke` writes everything under `runs/smoke/` (manifests, the sample store,
predictions, scores, executed notebooks, status files, the report), `tables/smoke/` and
`figures/smoke/` (docs/design.md, "Run layout"), in the repository or, with `--output-dir
DIR`, in DIR. Stages, notebooks, the pipeline and the
report ask this class for a path instead of building one; a pointer file names the run key a
stage wrote for a (model, corpus, prompt arm), so the next stage reads exactly that run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    root: Path   # the repository root
    name: str    # the config's `name:` (a plain folder name)
    out: Path | None = None   # where runs/ tables/ figures/ go (`--output-dir`); None: root

    @classmethod
    def of(cls, cfg) -> RunLayout:
        """The layout of a loaded `StudyConfig`."""
        layout = getattr(cfg, "layout", None)
        return layout if isinstance(layout, RunLayout) else cls(Path(cfg.root), cfg.name)

    @property
    def base(self) -> Path:
        """The folder holding runs/, tables/ and figures/."""
        return Path(self.out) if self.out is not None else self.root

    def shown(self, path: Path) -> str:
        """`path` as a message shows it: relative to the repository when inside it."""
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    # --- folders ---------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.base / "runs" / self.name

    @property
    def table_dir(self) -> Path:
        return self.base / "tables" / self.name

    @property
    def figure_dir(self) -> Path:
        return self.base / "figures" / self.name

    @property
    def prompt_dir(self) -> Path:
        return self.root / "configs" / "prompts"

    @property
    def executed_dir(self) -> Path:
        return self.run_dir / "executed"

    @property
    def status_dir(self) -> Path:
        return self.run_dir / "status"

    @property
    def report_dir(self) -> Path:
        return self.run_dir / "report"

    # --- tables of the data flow -----------------------------------------------------------
    def manifest(self, corpus: str) -> Path:
        return self.run_dir / "manifests" / f"{corpus}.parquet"

    @property
    def store(self) -> Path:
        return self.run_dir / "samples.sqlite"

    def predictions(self, corpus: str) -> Path:
        return self.run_dir / f"predictions_{corpus}.parquet"

    def scores(self, corpus: str) -> Path:
        return self.run_dir / f"scores_{corpus}.parquet"

    def summary(self, corpus: str) -> Path:
        return self.run_dir / f"summary_{corpus}.parquet"

    @property
    def features_dir(self) -> Path:
        return self.run_dir / "features"

    def features(self, corpus: str, feature_set: str) -> Path:
        return self.features_dir / f"{corpus}__{feature_set}.parquet"

    def shards(self, run_key: str) -> Path:
        return self.run_dir / "shards" / run_key

    @property
    def summary_json(self) -> Path:
        return self.status_dir / "summary.json"

    def executed(self, stem: str) -> Path:
        return self.executed_dir / f"{stem}.ipynb"

    def status(self, stem: str) -> Path:
        return self.status_dir / f"{stem}.json"

    # --- outputs ---------------------------------------------------------------------------
    def table(self, stem: str) -> Path:
        """A table's stem (writers add .md/.csv/.tex)."""
        return self.table_dir / stem

    def figure(self, stem: str) -> Path:
        """A figure's stem (writers add .png/.pdf)."""
        return self.figure_dir / stem

    # --- pointers: which run key a stage wrote for (model, corpus, prompt arm) -------------
    def samples_pointer(self, model: str, corpus: str, prompt: str) -> Path:
        return self.run_dir / "samples" / f"{model}__{corpus}__{prompt}.json"

    def verify_pointer(self, model: str, corpus: str, prompt: str) -> Path:
        return self.run_dir / "samples" / f"{model}__{corpus}__{prompt}__verify.json"

    def write_pointer(self, path: Path, **fields) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(fields, indent=1))
        tmp.replace(path)   # a reader never sees half a pointer

    def read_pointer(self, path: Path) -> dict:
        """A pointer's fields; a missing one names the stage that writes it."""
        if not path.is_file():
            stage = "verify" if path.name.endswith("__verify.json") else "generate"
            raise FileNotFoundError(f"{path} does not exist: run the {stage} stage for it first "
                                    f"(./run_all.sh CONFIG --stage {stage})")
        return json.loads(path.read_text())
