"""Config -> papermill runs: the notebooks of the study, in order, then the HTML report.

What `run_all.sh` calls. Each notebook runs one arrow of the data flow (DESIGN.md) of the
study of Jia et al. (2026): 01_prepare_corpus per corpus, 02_generate per (corpus, model),
03_verify per (corpus, model) when the config has a verifier, 04_score per corpus,
05_capacity_vs_ambiguity once; then `report` builds runs/<config>/report/index.html.

Before anything runs, `validate` checks everything the planned jobs need -- corpus roots,
checkpoints available offline, API keys of hosted models, prompts, notebooks, and that the
strategies have the samples they combine -- and one error lists every problem. A failed
notebook does not stop independent ones; a job whose inputs failed is skipped. The run ends
with a summary per stage of what ran, what came from the cache (a notebook says so through
`write_status`), what was skipped and what failed, and a non-zero exit if anything failed.

    python -m ambiemo.pipeline [CONFIG] [--stage S] [--model M] [--corpus C]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ambiemo.config import ConfigError, ModelEntry, StudyConfig, load_config

STAGES = ("prepare", "generate", "verify", "score", "analyse", "report")
NOTEBOOKS = {"prepare": "01_prepare_corpus", "generate": "02_generate", "verify": "03_verify",
             "score": "04_score", "analyse": "05_capacity_vs_ambiguity"}
# Hosted checkpoints ("openai:<id>", "gemini:<id>") and the variables that hold their keys.
API_KEYS = {"openai": ("OPENAI_API_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}


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


def strategy_problems(cfg: StudyConfig) -> list[str]:
    """Strategies asked for whose inputs the config does not generate."""
    from ambiemo.tts import STRATEGIES

    gen, problems = cfg.generation, []
    for s in cfg.scoring.strategies:
        if s not in STRATEGIES:
            problems.append(f"scoring.strategies: unknown strategy {s!r} "
                            f"(valid: {sorted(STRATEGIES)})")
            continue
        need = STRATEGIES[s]
        if "verifier" in need.needs:
            missing = "a verification: section (the verifier that scores candidates)" \
                if cfg.verification is None else None
        elif need.kind == "greedy":
            missing = "generation.greedy: true" if not gen.greedy else None
        elif need.kind == "cot":
            missing = "generation.cot: {prompt: ..., max_new_tokens: ...}" if gen.cot is None else None
        elif need.kind == "label_score":
            missing = "generation.label_scores: true" if not gen.label_scores else None
        else:
            missing = "generation.n_samples > 0" if gen.n_samples < 1 else None
        if missing:
            problems.append(f"scoring.strategies: {s!r} needs {missing}")
    v = cfg.verification
    if v is not None:
        have = gen.n_samples if v.candidates == "sample" else gen.beams
        if have < 1:
            problems.append(f"verification.candidates: {v.candidates!r} but generation."
                            f"{'n_samples' if v.candidates == 'sample' else 'beams'} is {have}")
    return problems


def checkpoint_problem(checkpoint: str, revision: str | None, root: Path) -> str | None:
    """Why `checkpoint` cannot be used offline on this machine, or None when it can."""
    scheme, sep, _ = checkpoint.partition(":")
    if sep and scheme == "tiny":
        return None                      # built offline on first use
    if sep and scheme in API_KEYS:
        if any(os.environ.get(var) for var in API_KEYS[scheme]):
            return None
        return (f"hosted checkpoint {checkpoint} needs an API key: set "
                f"{' or '.join(API_KEYS[scheme])}")
    path = Path(checkpoint).expanduser()
    path = path if path.is_absolute() else root / path
    if checkpoint.startswith((".", "/", "~")) or path.exists() or checkpoint.count("/") > 1:
        if (path / "config.json").is_file():
            return None
        return f"local checkpoint directory {path} does not exist or has no config.json"
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    try:
        cached = try_to_load_from_cache(checkpoint, "config.json", revision=revision)
    except HFValidationError as e:
        return f"checkpoint {checkpoint!r} is neither a local directory nor a hub id ({e})"
    if isinstance(cached, str):
        return None
    at = f"@{revision}" if revision else ""
    return (f"checkpoint {checkpoint}{at} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); download it (hf download {checkpoint}) or point "
            "the model's checkpoint: to a local copy")


def model_problems(cfg: StudyConfig, name: str, key: str) -> list[str]:
    """Problems loading model `name` (named in the config at `key`) on this machine."""
    from ambiemo.alm import MODELS

    entry = cfg.model_entries.get(name, ModelEntry(name))
    spec = MODELS.get(name)
    if spec is None:
        if entry.checkpoint is None and (Path(name) / "config.json").is_file():
            return []                    # a local checkpoint directory named directly
        return [f"{key}: unknown model {name!r}: not in ambiemo.alm.MODELS, nor a local "
                "checkpoint directory"]
    checkpoint = entry.checkpoint or spec.checkpoint
    if entry.missing_env:
        return [f"{key}: model {name!r}: checkpoint {checkpoint} needs environment "
                f"variable(s) {', '.join(entry.missing_env)}, which are not set"]
    why = checkpoint_problem(checkpoint, entry.revision or spec.revision, cfg.root)
    return [f"{key}: model {name!r}: {why}"] if why else []


def validate(cfg: StudyConfig, jobs: list[Job] | None = None) -> None:
    """Check everything the planned jobs (default: the whole plan) need before anything
    runs; one ConfigError lists every problem."""
    from ambiemo.corpora import LOADERS

    jobs = plan(cfg) if jobs is None else jobs
    stages = {j.stage for j in jobs}
    problems = strategy_problems(cfg)
    for name in dict.fromkeys(j.corpus for j in jobs if j.corpus):
        c = cfg.corpora[name]
        if name not in LOADERS:
            problems.append(f"corpora.{name}: unknown corpus {name!r} (valid: {sorted(LOADERS)})")
        elif stages & {"prepare", "generate", "verify"}:
            if c.missing_env:
                problems.append(f"corpora.{name}.root: {c.root} needs environment variable(s) "
                                f"{', '.join(c.missing_env)}, which are not set")
            elif not c.root.exists():
                problems.append(f"corpora.{name}.root: corpus {name!r}: root {c.root} does "
                                "not exist")
    for name in dict.fromkeys(j.model for j in jobs if j.stage == "generate"):
        problems += model_problems(cfg, name, "models")
    if "verify" in stages:
        problems += model_problems(cfg, cfg.verification.model, "verification.model")
    prompts = {"generate": [("generation.prompt", cfg.generation.prompt)]
               + ([("generation.cot.prompt", cfg.generation.cot.prompt)]
                  if cfg.generation.cot else []),
               "verify": [("verification.prompt", cfg.verification.prompt)]
               if cfg.verification else []}
    for stage in sorted(stages & set(prompts)):
        for key, prompt in prompts[stage]:
            if not (cfg.prompt_dir / f"{prompt}.yaml").is_file():
                problems.append(f"{key}: prompt {prompt!r} not found in {cfg.prompt_dir}")
    for stage in sorted(stages & set(NOTEBOOKS), key=STAGES.index):
        nb = cfg.root / "notebooks" / f"{NOTEBOOKS[stage]}.ipynb"
        if not nb.is_file():
            problems.append(f"stage {stage!r}: notebook {nb} not found")
    if any("unknown model" in p for p in problems):
        from ambiemo.alm import MODELS
        problems.append(f"registered models: {sorted(MODELS)}")
    if problems:
        raise ConfigError(f"{cfg.path}: nothing was run; {len(problems)} problem(s):\n  "
                          + "\n  ".join(problems))


def write_status(cfg: StudyConfig, stage: str, *, corpus: str | None = None,
                 model: str | None = None, ran: int, cached: int = 0, failed: int = 0,
                 note: str = "") -> Path:
    """For notebooks: record how much of this job ran, came from the cache, or failed (units
    of the notebook's choosing, e.g. batches), read into the run summary. `failed > 0` makes
    the job count as failed. Written to runs/<config>/status/<executed notebook stem>.json."""
    counts = {"ran": ran, "cached": cached, "failed": failed}
    bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 0}
    if stage not in NOTEBOOKS or bad:
        raise ValueError(f"write_status: stage must be one of {list(NOTEBOOKS)} (got {stage!r})"
                         f" and counts non-negative ints (bad: {bad})")
    path = Job(stage, corpus, model).status_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**counts, "note": str(note)}, indent=1))
    return path


@dataclass(frozen=True)
class Outcome:
    job: Job
    state: str          # ran | cached | skipped | failed
    seconds: float = 0.0
    note: str = ""

    def row(self) -> dict:
        return {"stage": self.job.stage, "job": self.job.label, "state": self.state,
                "seconds": round(self.seconds, 1), "note": self.note}


def read_status(path: Path) -> tuple[str, str]:
    """(state, note) from a notebook's status file; a notebook without one simply ran."""
    if not path.is_file():
        return "ran", ""
    try:
        s = json.loads(path.read_text())
        ran, cached, failed = (int(s[k]) for k in ("ran", "cached", "failed"))
    except (ValueError, KeyError, TypeError) as e:
        return "failed", f"unreadable status file {path}: {e!r}"
    note = str(s.get("note", ""))
    if failed:
        return "failed", f"{failed} failed, {ran} ran, {cached} cached" + (f": {note}" if note else "")
    return ("cached" if ran == 0 and cached > 0 else "ran"), note


def _execute(job: Job, cfg: StudyConfig) -> Outcome:
    import papermill as pm

    out, status = job.output(cfg), job.status_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)      # a status left by an earlier run must not be read
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(cfg.root / "notebooks" / f"{NOTEBOOKS[job.stage]}.ipynb"),
                            str(out), parameters=job.parameters(cfg),
                            cwd=str(cfg.root / "notebooks"), progress_bar=False,
                            kernel_name="python3")
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's error
        return Outcome(job, "failed", time.perf_counter() - t0,
                       f"{_last_line(e)} (see {out.relative_to(cfg.root)})")
    state, note = read_status(status)
    return Outcome(job, state, time.perf_counter() - t0, note)


def _build_report(cfg: StudyConfig, outcomes: list[Outcome]) -> Outcome:
    from ambiemo.report import build_report

    t0 = time.perf_counter()
    job = Job("report")
    try:
        index = build_report(cfg, [o.row() for o in outcomes])
    except Exception as e:  # a broken table or notebook must not hide the run summary
        return Outcome(job, "failed", time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    return Outcome(job, "ran", time.perf_counter() - t0, str(index.relative_to(cfg.root)))


def summarise(cfg: StudyConfig, outcomes: list[Outcome]) -> str:
    """The run summary: a count per stage and state, then one line per job not simply ran."""
    states = ("ran", "cached", "skipped", "failed")
    lines = [f"summary of {cfg.name} ({cfg.path}):",
             f"  {'stage':<10}" + "".join(f"{s:>9}" for s in states)]
    for stage in dict.fromkeys(o.job.stage for o in outcomes):
        n = [sum(o.job.stage == stage and o.state == s for o in outcomes) for s in states]
        lines.append(f"  {stage:<10}" + "".join(f"{x:>9}" for x in n))
    lines += [f"  {o.state.upper() if o.state == 'failed' else o.state:<8} {o.job.label}: {o.note}"
              for o in outcomes if o.state != "ran" or (o.note and o.job.stage != "report")]
    total = {s: sum(o.state == s for o in outcomes) for s in states}
    lines.append(f"summary: {total['ran']} ran, {total['cached']} from cache, "
                 f"{total['skipped']} skipped, {total['failed']} failed; tables in "
                 f"{cfg.table_dir.relative_to(cfg.root)}/, figures in "
                 f"{cfg.figure_dir.relative_to(cfg.root)}/, report in "
                 f"{(cfg.run_dir / 'report').relative_to(cfg.root)}/index.html")
    return "\n".join(lines)


def run(config_path: str | Path, *, stages=STAGES, models=None, corpora=None,
        log=print) -> int:
    """Validate, run the plan, log the summary; returns the number of failed or skipped jobs."""
    cfg = load_config(config_path)
    jobs = plan(cfg, stages, models, corpora)
    validate(cfg, jobs)
    outcomes: list[Outcome] = []
    for job in jobs:
        blockers = [o.job.label for o in outcomes
                    if o.state in ("failed", "skipped") and job.depends_on(o.job)]
        if blockers:
            outcome = Outcome(job, "skipped", note=f"its inputs failed ({', '.join(blockers)})")
        elif job.stage == "report":
            outcome = _build_report(cfg, outcomes)
        else:
            outcome = _execute(job, cfg)
        outcomes.append(outcome)
        log(f"{outcome.state:<8} {job.label} ({outcome.seconds:.1f} s)"
            + (f": {outcome.note}" if outcome.note else ""))
    (cfg.run_dir / "status").mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "status" / "summary.json").write_text(
        json.dumps([o.row() for o in outcomes], indent=1))
    log(summarise(cfg, outcomes))
    return sum(o.state in ("failed", "skipped") for o in outcomes)


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
