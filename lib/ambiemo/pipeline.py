"""Config -> papermill runs: the notebooks of the study, in order, then the HTML report.

What `run_all.sh` calls. Each notebook runs one arrow of the data flow (DESIGN.md) of the
study of Jia et al. (2026): 01_prepare_corpus per corpus, 02_generate per (corpus, model),
03_verify per (corpus, model) when the config has a verifier, 04_score per corpus,
05_capacity_vs_ambiguity once; then `report` builds runs/<config>/report/index.html.

The plan is `ambiemo.run_plan`; before anything runs, `ambiemo.preflight.validate` checks
everything it needs and one error lists every problem. A failed notebook does not stop
independent ones; a job whose inputs failed is skipped. The run ends with the summary of
`ambiemo.run_status` (ran / cached / skipped / failed per stage) and a non-zero exit if
anything failed.

    python -m ambiemo.pipeline [CONFIG] [--stage S] [--model M] [--corpus C]
                               [--executor local|ray] [--address ADDR]

With `--executor ray` (or `executor: {kind: ray}` in the config) each generate job first
samples its (model, corpus) on Ray (ambiemo.executor_ray); its notebook then finds every batch
stored and writes the pointer and the summary as usual.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from ambiemo.config import StudyConfig, load_config
from ambiemo.preflight import validate
from ambiemo.run_plan import NOTEBOOKS, STAGES, Job, plan
from ambiemo.run_status import Outcome, read_status, summarise


def execute_notebook(notebook: Path, out: Path, parameters: dict, cwd: Path) -> None:
    """Run `notebook` with papermill on this Python's kernel, writing `out`; raises
    PapermillExecutionError with the failing cell's error."""
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        # The kernel runs on this machine: IPC sockets rather than TCP ports, which also
        # spares every notebook ipykernel's "running over TCP without encryption" warning.
        def __init__(self, **kwargs):
            super().__init__(**{"transport": "ipc", **kwargs})

    pm.execute_notebook(str(notebook), str(out), parameters=parameters, cwd=str(cwd),
                        progress_bar=False, kernel_name="python3",
                        kernel_manager_class=LocalKernelManager)


def _execute(job: Job, cfg: StudyConfig) -> Outcome:

    out, status = job.output(cfg), job.status_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)      # a status left by an earlier run must not be read
    t0 = time.perf_counter()
    try:
        execute_notebook(cfg.root / "notebooks" / f"{NOTEBOOKS[job.stage]}.ipynb", out,
                         job.parameters(cfg), cfg.root / "notebooks")
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


def _on_ray(job: Job, cfg: StudyConfig) -> Outcome:
    """A generate job with the Ray executor: the shards on Ray, then the notebook."""
    from ambiemo import executor_ray

    t0 = time.perf_counter()
    try:
        executor_ray.start_ray(cfg.executor.address)
        report = executor_ray.run_generate_job(cfg, job.model, job.corpus)
    except Exception as e:  # a Ray or model error must not hide the run summary
        return Outcome(job, "failed", time.perf_counter() - t0,
                       f"ray: {type(e).__name__}: {_last_line(e)}")
    outcome = _execute(job, cfg)
    note = "; ".join(x for x in (outcome.note, report.note) if x)
    # The notebook finds every batch stored: it is Ray that ran them.
    state = "ran" if outcome.state == "cached" and (report.shards_run or report.shards_merged) \
        else outcome.state
    return dataclasses.replace(outcome, state=state, seconds=time.perf_counter() - t0, note=note)


def with_executor(cfg: StudyConfig, kind: str | None, address: str | None) -> StudyConfig:
    """`cfg` with the command line's --executor / --address over the config's `executor`."""
    if kind is None and address is None:
        return cfg
    return dataclasses.replace(cfg, executor=dataclasses.replace(
        cfg.executor, kind=kind or cfg.executor.kind, address=address or cfg.executor.address))


def run(config_path: str | Path, *, stages=STAGES, models=None, corpora=None,
        executor: str | None = None, address: str | None = None, log=print) -> int:
    """Validate, run the plan, log the summary; returns the number of failed or skipped jobs."""
    cfg = with_executor(load_config(config_path), executor, address)
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
        elif job.stage == "generate" and cfg.executor.kind == "ray":
            outcome = _on_ray(job, cfg)
        else:
            outcome = _execute(job, cfg)
        outcomes.append(outcome)
        log(f"{outcome.state:<8} {job.label} ({outcome.seconds:.1f} s)"
            + (f": {outcome.note}" if outcome.note else ""))
    if cfg.executor.kind == "ray":
        import ray
        ray.shutdown()      # a no-op when this run did not start or join Ray
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
    ap.add_argument("--executor", choices=("local", "ray"),
                    help="where generation runs (default: the config's executor.kind, local)")
    ap.add_argument("--address", help="Ray cluster to join (auto, host:port); default: start "
                                      "a local Ray on this machine")
    args = ap.parse_args(argv)
    try:
        n_bad = run(args.config, stages=tuple(args.stage or STAGES), models=args.model,
                    corpora=args.corpus, executor=args.executor, address=args.address)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
