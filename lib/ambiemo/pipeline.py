"""Config -> papermill runs: the notebooks of the study, in order, for every (model, corpus).

What `run_all.sh` calls. Each notebook runs one arrow of the data flow (DESIGN.md):
01_prepare_corpus per corpus, 02_generate per (model, corpus), 04_score per corpus. Executed
notebooks go to `runs/<config>/executed/`. One line per notebook shows progress; the run
ends with a summary and a non-zero exit if anything failed. A failed notebook does not stop
independent ones; a notebook whose inputs failed is skipped and counted.

    python -m ambiemo.pipeline configs/smoke.yaml [--stage generate] [--model M] [--corpus C]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ambiemo.config import ConfigError, StudyConfig, load_config

STAGES = ("prepare", "generate", "score")
NOTEBOOKS = {"prepare": "01_prepare_corpus", "generate": "02_generate", "score": "04_score"}


@dataclass(frozen=True)
class Job:
    stage: str
    corpus: str
    model: str | None = None

    @property
    def label(self) -> str:
        return f"{NOTEBOOKS[self.stage]} [{self.corpus}{', ' + self.model if self.model else ''}]"

    def parameters(self, cfg: StudyConfig) -> dict:
        p = {"config_path": str(cfg.path), "corpus": self.corpus}
        if self.model:
            p["model"] = self.model
        return p

    def output(self, cfg: StudyConfig) -> Path:
        tag = f"{self.corpus}__{self.model}" if self.model else self.corpus
        return cfg.run_dir / "executed" / f"{NOTEBOOKS[self.stage]}__{tag}.ipynb"


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
    if "prepare" in stages:
        jobs += [Job("prepare", c) for c in corpora]
    if "generate" in stages:
        jobs += [Job("generate", c, m) for c in corpora for m in models]
    if "score" in stages:
        jobs += [Job("score", c) for c in corpora]
    return jobs


def validate(cfg: StudyConfig) -> None:
    """Check everything a run needs before anything runs; one error lists every problem."""
    from ambiemo.alm import MODELS
    from ambiemo.corpora import LOADERS
    from ambiemo.tts import STRATEGIES

    problems = []
    for name, c in cfg.corpora.items():
        if name not in LOADERS:
            problems.append(f"unknown corpus {name!r} (valid: {sorted(LOADERS)})")
        elif not c.root.exists():
            problems.append(f"corpus {name!r}: root {c.root} does not exist")
    for m in cfg.models:
        if m not in MODELS and not (Path(m) / "config.json").is_file():
            problems.append(f"model {m!r} is neither a registered name (valid: {sorted(MODELS)}) "
                            "nor a local checkpoint directory")
    if not (cfg.prompt_dir / f"{cfg.generation.prompt}.yaml").is_file():
        problems.append(f"prompt {cfg.generation.prompt!r} not found in {cfg.prompt_dir}")
    for s in cfg.scoring.strategies:
        if s not in STRATEGIES:
            problems.append(f"unknown strategy {s!r} (valid: {sorted(STRATEGIES)})")
    if problems:
        raise ConfigError(f"{cfg.path}: nothing was run:\n  " + "\n  ".join(problems))


def run(config_path: str | Path, *, stages=STAGES, models=None, corpora=None,
        log=print) -> int:
    """Run the plan; returns the number of failed or skipped notebooks."""
    import papermill as pm

    cfg = load_config(config_path)
    validate(cfg)
    jobs = plan(cfg, stages, models, corpora)
    notebooks = cfg.root / "notebooks"
    failed: dict[str, str] = {}
    status: list[tuple[Job, str, float]] = []
    for job in jobs:
        blockers = [j.label for j, s, _ in status if s != "ok" and j.corpus == job.corpus]
        if blockers:
            status.append((job, "skipped", 0.0))
            log(f"skip  {job.label}: its inputs failed ({', '.join(blockers)})")
            continue
        out = job.output(cfg)
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(notebooks / f"{NOTEBOOKS[job.stage]}.ipynb"), str(out),
                                parameters=job.parameters(cfg), cwd=str(notebooks),
                                progress_bar=False, kernel_name="python3")
            status.append((job, "ok", time.perf_counter() - t0))
            log(f"ok    {job.label} ({time.perf_counter() - t0:.1f} s) -> {out.relative_to(cfg.root)}")
        except Exception as e:  # papermill raises PapermillExecutionError with the cell's error
            status.append((job, "failed", time.perf_counter() - t0))
            failed[job.label] = _last_line(e)
            log(f"FAIL  {job.label}: {failed[job.label]} (see {out.relative_to(cfg.root)})")
    n_ok = sum(s == "ok" for _, s, _ in status)
    n_bad = len(status) - n_ok
    log(f"summary: {n_ok} notebook(s) ok, {sum(s == 'failed' for _, s, _ in status)} failed, "
        f"{sum(s == 'skipped' for _, s, _ in status)} skipped; tables in "
        f"{cfg.table_dir.relative_to(cfg.root)}/, figures in {cfg.figure_dir.relative_to(cfg.root)}/")
    return n_bad


def _last_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return next((ln for ln in reversed(text) if ln.strip()), type(e).__name__)[:300]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ambiemo.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", default="configs/smoke.yaml")
    ap.add_argument("--stage", action="append", choices=STAGES, help="run only this stage (repeatable)")
    ap.add_argument("--model", action="append", help="run only this model (repeatable)")
    ap.add_argument("--corpus", action="append", help="run only this corpus (repeatable)")
    args = ap.parse_args(argv)
    try:
        n_bad = run(args.config, stages=tuple(args.stage or STAGES), models=args.model,
                    corpora=args.corpus)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
