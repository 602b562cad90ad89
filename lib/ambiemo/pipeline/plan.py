"""The jobs of a study run: which notebook runs for which corpus and model, in what order.

Each job runs one arrow of the data flow (docs/design.md) of the study of Jia et al. (2026):
01_prepare_corpus per corpus, 02_generate per (corpus, model), 03_verify per (corpus, model)
when the config has a verifier, 04_score per corpus, 05_capacity_vs_ambiguity once, then the
HTML report. `ambiemo.pipeline` runs the plan; `ambiemo.pipeline.preflight` checks it first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ambiemo.config import StudyConfig

STAGES = ("prepare", "generate", "verify", "score", "analyse", "report")
NOTEBOOKS = {"prepare": "01_prepare_corpus", "generate": "02_generate", "verify": "03_verify",
             "score": "04_score", "analyse": "05_capacity_vs_ambiguity"}


@dataclass(frozen=True)
class Job:
    stage: str
    corpus: str | None = None
    model: str | None = None

    @property
    def stem(self) -> str:
        """Name of the executed notebook and of its status file."""
        return "__".join(x for x in (NOTEBOOKS.get(self.stage, self.stage), self.corpus,
                                     self.model) if x)

    @property
    def label(self) -> str:
        where = ", ".join(x for x in (self.corpus, self.model) if x)
        return f"{NOTEBOOKS.get(self.stage, self.stage)}" + (f" [{where}]" if where else "")

    def parameters(self, cfg: StudyConfig) -> dict:
        p = {"config_path": str(cfg.path)}
        if self.corpus:
            p["corpus"] = self.corpus
        if self.model:
            p["model"] = self.model
        return p

    def output(self, cfg: StudyConfig) -> Path:
        return cfg.run_dir / "executed" / f"{self.stem}.ipynb"

    def status_path(self, cfg: StudyConfig) -> Path:
        return cfg.run_dir / "status" / f"{self.stem}.json"

    def depends_on(self, earlier: "Job") -> bool:
        """Whether this job reads what `earlier` writes (so its failure blocks this one)."""
        if self.stage == "report":
            return False            # the report shows failures; it never waits on them
        if self.stage == "analyse":
            return True
        same_model = not (self.model and earlier.model) or self.model == earlier.model
        return earlier.corpus == self.corpus and same_model


def plan(cfg: StudyConfig, stages=STAGES, models=None, corpora=None) -> list[Job]:
    """The jobs to run, in dependency order, restricted to the stages/models/corpora named."""
    for name, valid, what in ((stages, STAGES, "stage"), (models, cfg.models, "model"),
                              (corpora, tuple(cfg.corpora), "corpus")):
        bad = sorted(set(name or ()) - set(valid))
        if bad:
            raise ValueError(f"unknown {what}(s) {bad}; valid: {list(valid)}")
    corpora = [c for c in cfg.corpora if not corpora or c in corpora]
    models = [m for m in cfg.models if not models or m in models]
    jobs = []
    for stage in STAGES:
        if stage not in stages or (stage == "verify" and cfg.verification is None):
            continue
        if stage == "prepare" or stage == "score":
            jobs += [Job(stage, c) for c in corpora]
        elif stage in ("generate", "verify"):
            jobs += [Job(stage, c, m) for c in corpora for m in models]
        else:
            jobs.append(Job(stage))
    return jobs
