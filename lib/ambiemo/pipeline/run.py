"""Config -> papermill runs: the notebooks of the study, in order, then the HTML report.

What `run_all.sh` calls. Each notebook runs one arrow of the data flow (docs/design.md) of the
study of Jia et al. (2026): 01_prepare_corpus per corpus, 02_generate per (corpus, model),
03_verify per (corpus, model) when the config has a verifier, 04_score per corpus,
05_capacity_vs_ambiguity once; then `report` builds runs/<config>/report/index.html.

The plan is `ambiemo.pipeline.plan`; before anything runs, `ambiemo.pipeline.preflight.validate` checks
everything it needs and one error lists every problem. A failed notebook does not stop
independent ones; a job whose inputs failed is skipped. The run ends with the summary of
`ambiemo.pipeline.status` (ran / cached / skipped / failed per stage) and a non-zero exit if
anything failed.

Hosted models are probed before the run (the model exists, one tiny request with the run's
parameters succeeds) unless `--no-probe`. `--retry-failed` asks again for every failure row
of the runs (transient failures -- 5xx, timeouts, 429 after retries, quotas -- are asked
again by every rerun anyway; permanent ones, such as a 400, only with this flag).

A run holds a lock on its run folder (a second run of the config exits 2 naming the holder),
shows live progress of generate and verify (`ambiemo.pipeline.progress`), prints its output line
by line (a `tee`, `nohup` or Slurm log is current), and its notebook kernels die with it
(`ambiemo.pipeline.guard`). Ctrl-C ends it with one line and exit 130; rerunning the same command
resumes from the sample store. Operating-system failures (full disk, read-only folder) are
one message naming the path, the cause and the next step, and the summary is always printed.

    python -m ambiemo.pipeline [CONFIG] [--stage S] [--model M] [--corpus C] [--no-probe]
                               [--retry-failed] [--progress-every N]
                               [--executor local|ray] [--address ADDR]
                               [--limit N] [--output-dir DIR]

`--limit N` runs the first N clips of each corpus (a quick try: "a 7B model on 20 IEMOCAP
clips"); the Manifest records it and no stage mixes it with a full run. `--output-dir DIR`
writes runs/, tables/ and figures/ under DIR instead of the repository.

With `--executor ray` (or `executor: {kind: ray}` in the config) each generate job first
samples its (model, corpus) on Ray (ambiemo.sampling.executor_ray); its notebook then finds
every batch stored and writes the pointer and the summary as usual.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

from ambiemo.config import StudyConfig, load_config, with_run_options
from ambiemo.pipeline.run_options import apply as apply_run_options
from ambiemo.pipeline.run_options import export as export_run_options
from ambiemo.pipeline.guard import (RunLock, RunLocked, die_with_parent, explain_os_error,
                                    rows_stored)
from ambiemo.pipeline.plan import NOTEBOOKS, STAGES, Job, plan
from ambiemo.pipeline.preflight import validate
from ambiemo.pipeline.progress import ENV as PROGRESS_ENV
from ambiemo.pipeline.progress import ProgressPrinter
from ambiemo.pipeline.status import (Outcome, arm_notes, audio_error_note, read_status,
                                     summarise)


def execute_notebook(notebook: Path, out: Path, parameters: dict, cwd: Path,
                     kernel_log: Path | None = None) -> None:
    """Run `notebook` with papermill on this Python's kernel, writing `out`; raises
    PapermillExecutionError with the failing cell's error. `kernel_log`: where the kernel's
    own stderr goes (its warnings, and the noise of a kernel cut off by Ctrl-C), so the
    terminal shows the pipeline's lines only; the cells' output is in the notebook."""
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        # The kernel runs on this machine: IPC sockets rather than TCP ports, which also
        # spares every notebook ipykernel's "running over TCP without encryption" warning.
        def __init__(self, **kwargs):
            super().__init__(**{"transport": "ipc", **kwargs})

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # A driver killed with SIGKILL must not leave its kernel sampling into the store.
            kw = {**kw, "preexec_fn": die_with_parent}
            if kernel_log is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with open(kernel_log, "ab") as log:     # the child keeps its own copy of the fd
                return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": log})

    try:
        pm.execute_notebook(str(notebook), str(out), parameters=parameters, cwd=str(cwd),
                            progress_bar=False, kernel_name="python3",
                            kernel_manager_class=LocalKernelManager)
    except KeyboardInterrupt:
        # nbclient's cell task, cut off with its kernel, ends in a DeadKernelError nobody
        # awaits any more; asyncio would log it when the task is collected ("Task exception
        # was never retrieved" and a traceback), burying the one line Ctrl-C prints.
        logging.getLogger("asyncio").disabled = True
        raise


def _execute(job: Job, cfg: StudyConfig, progress_every: float = 30.0) -> Outcome:

    out, status = job.output(cfg), job.status_path(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)      # a status left by an earlier run must not be read
    live = cfg.run_dir / "status" / f"{job.stem}.progress.json"
    live.parent.mkdir(parents=True, exist_ok=True)
    os.environ[PROGRESS_ENV] = str(live)          # inherited by the notebook's kernel
    t0 = time.perf_counter()
    try:
        with ProgressPrinter(live, job.label, every_s=progress_every):
            execute_notebook(cfg.root / "notebooks" / f"{NOTEBOOKS[job.stage]}.ipynb", out,
                             job.parameters(cfg), cfg.root / "notebooks",
                             kernel_log=live.with_name(f"{job.stem}.kernel.log"))
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's error
        return Outcome(job, "failed", time.perf_counter() - t0,
                       f"{_advice(_last_line(e))} (see {cfg.layout.shown(out)})")
    finally:
        os.environ.pop(PROGRESS_ENV, None)
    state, note = read_status(status)
    if job.stage == "generate":
        extra = audio_error_note(cfg, job)
        note = "; ".join(x for x in (note, extra) if x)
    return Outcome(job, state, time.perf_counter() - t0, note)


# Last lines of a failed notebook that have a known next step.
ADVICE = {
    "No space left on device": "free disk space, then rerun the same command to resume",
    "database disk image is malformed": "the sample store is damaged: rerun to see how to "
                                        "move it aside and recover its rows",
    "Read-only file system": "the run folder is read-only: make it writable",
    "Permission denied": "a run folder is not writable: make it writable",
}


def _advice(line: str) -> str:
    return line + "".join(f" -- {step}" for cause, step in ADVICE.items() if cause in line)


def _build_report(cfg: StudyConfig, outcomes: list[Outcome], since: float | None = None
                  ) -> Outcome:
    from ambiemo.outputs.report import build_report

    t0 = time.perf_counter()
    job = Job("report")
    try:
        from ambiemo.outputs.provenance import write_results
        write_results(cfg, [o.row() for o in outcomes], started=since, ended=time.time())
        index = build_report(cfg, [o.row() for o in outcomes], since=since)
    except Exception as e:  # a broken table or notebook must not hide the run summary
        return Outcome(job, "failed", time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    return Outcome(job, "ran", time.perf_counter() - t0, cfg.layout.shown(index))


def _on_ray(job: Job, cfg: StudyConfig, progress_every: float) -> Outcome:
    """A generate job with the Ray executor: the shards on Ray, then the notebook."""
    from ambiemo.sampling import executor_ray

    t0 = time.perf_counter()
    try:
        executor_ray.start_ray(cfg.executor.address)
        reports = executor_ray.run_generate_job(cfg, job.model, job.corpus)
    except Exception as e:  # noqa: BLE001 -- a Ray or model error must not hide the summary
        # e.g. ActorDiedError when Ray's own processes (its dashboard agent) die: every shard
        # merged so far is in the store, and a rerun resumes from it.
        return Outcome(job, "failed", time.perf_counter() - t0,
                       f"ray: {type(e).__name__}: {_last_line(e)}; "
                       f"{_rows_of(cfg, job.model)}; rerun the same command to resume")
    outcome = _execute(job, cfg, progress_every)
    note = "; ".join(x for x in (outcome.note, arm_notes(reports, lambda r: r.note)) if x)
    # The notebook finds every batch stored: it is Ray that ran them.
    ran = any(r.shards_run or r.shards_merged for r in reports.values())
    state = "ran" if outcome.state == "cached" and ran else outcome.state
    return dataclasses.replace(outcome, state=state, seconds=time.perf_counter() - t0, note=note)


def with_executor(cfg: StudyConfig, kind: str | None, address: str | None) -> StudyConfig:
    """`cfg` with the command line's --executor / --address over the config's `executor`."""
    if kind is None and address is None:
        return cfg
    return dataclasses.replace(cfg, executor=dataclasses.replace(
        cfg.executor, kind=kind or cfg.executor.kind, address=address or cfg.executor.address))


def run(config_path: str | Path, *, stages=STAGES, models=None, corpora=None,
        log=print, probe: bool = True, retry_failed: bool = False,
        progress_every: float = 30.0, executor: str | None = None,
        address: str | None = None, limit: int | None = None,
        output_dir: str | Path | None = None) -> int:
    """Validate, lock the run folder, run the plan, log the summary; returns the number of
    failed or skipped jobs. Raises RunLocked when another process runs this config.
    `probe`: probe hosted models before the run; `retry_failed`: the notebooks redo every
    failure row (the environment variable AMBIEMO_RETRY_FAILED=1, which their kernels
    inherit and `ambiemo.sampling.generate.generate_samples` / `verify_samples` read);
    `executor` / `address`: the command line's --executor / --address over the config's;
    `limit`: the first N clips of each corpus; `output_dir`: runs/ tables/ figures/ there
    (ambiemo.pipeline.run_options)."""
    cfg = with_run_options(with_executor(load_config(config_path), executor, address),
                           limit=limit, output_dir=output_dir)
    jobs = plan(cfg, stages, models, corpora)
    validate(cfg, jobs, probe=probe)
    export_run_options(cfg)       # the notebooks' kernels inherit --limit and --output-dir
    if any(j.stage == "generate" for j in jobs):
        from ambiemo.pipeline.input_checks import token_budget_warnings
        for warning in token_budget_warnings(cfg):
            log(f"warning: {warning}")
    if retry_failed:
        os.environ["AMBIEMO_RETRY_FAILED"] = "1"
    else:
        os.environ.pop("AMBIEMO_RETRY_FAILED", None)
    with RunLock(cfg.run_dir):
        return _run_locked(cfg, jobs, log, progress_every)


def _run_locked(cfg: StudyConfig, jobs: list[Job], log, progress_every: float) -> int:
    started = time.time()     # outputs older than this were not remade by this run
    outcomes: list[Outcome] = []
    for job in jobs:
        blockers = [o.job.label for o in outcomes
                    if o.state in ("failed", "skipped") and job.depends_on(o.job)]
        if blockers:
            outcome = Outcome(job, "skipped", note=f"its inputs failed ({', '.join(blockers)})")
        elif job.stage == "report":
            outcome = _build_report(cfg, outcomes, since=started)
        elif job.stage == "generate" and cfg.executor.kind == "ray":
            outcome = _on_ray(job, cfg, progress_every)
        else:
            try:
                outcome = _execute(job, cfg, progress_every)
            except OSError as e:        # the driver's own writes: executed/, status/
                outcome = Outcome(job, "failed", note=explain_os_error(e))
        outcomes.append(outcome)
        log(f"{outcome.state:<8} {job.label} ({outcome.seconds:.1f} s)"
            + (f": {outcome.note}" if outcome.note else ""))
    if cfg.executor.kind == "ray":
        import ray
        try:
            ray.shutdown()      # a no-op when this run did not start or join Ray
        except Exception as e:  # noqa: BLE001 -- Ray's processes may be gone: the summary stays
            log(f"warning: Ray did not shut down cleanly: {type(e).__name__}: {_last_line(e)}")
    summary = cfg.run_dir / "status" / "summary.json"
    try:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps([o.row() for o in outcomes], indent=1))
        (summary.parent / "run.json").write_text(json.dumps({"started": started}))
    except OSError as e:                # a full disk must not hide the summary
        log(f"warning: {explain_os_error(e, summary)}")
    log(summarise(cfg, outcomes, since=started))
    return sum(o.state in ("failed", "skipped") for o in outcomes)


def _rows_of(cfg: StudyConfig, model: str | None) -> str:
    """'<n> rows of <model> stored' (every run key of the model in the store)."""
    import sqlite3
    from contextlib import closing
    try:
        with closing(sqlite3.connect(f"file:{cfg.store_path}?mode=ro", uri=True,
                                     timeout=2)) as conn:
            n = conn.execute("SELECT COUNT(*) FROM samples JOIN runs USING (run_key) WHERE "
                             "runs.model=?", (model,)).fetchone()[0]
    except sqlite3.Error:
        n = rows_stored(cfg.store_path)
        return f"{n} rows stored" if n is not None else "nothing stored yet"
    return f"{n} rows of {model} stored"


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
    ap.add_argument("--no-probe", action="store_true",
                    help="do not probe hosted models (model exists, one tiny request) first")
    ap.add_argument("--retry-failed", action="store_true",
                    help="ask again for every failure row of the runs, permanent ones too")
    ap.add_argument("--executor", choices=("local", "ray"),
                    help="where generation runs (default: the config's executor.kind, local)")
    ap.add_argument("--address", help="Ray cluster to join (auto, host:port); default: start "
                                      "a local Ray on this machine")
    ap.add_argument("--limit", type=_positive, metavar="N",
                    help="only the first N clips of each corpus (a quick try; recorded in "
                    "the run, which then refuses to mix with a full one)")
    ap.add_argument("--output-dir", metavar="DIR",
                    help="write runs/, tables/ and figures/ under DIR instead of the "
                    "repository")
    ap.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                    help="when output is not a terminal: one progress line per this many "
                    "seconds (default 30)")
    args = ap.parse_args(argv)
    # Line by line even into a pipe or a file: a `tee` or batch log shows each job as it ends.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    try:
        n_bad = run(args.config, stages=tuple(args.stage or STAGES), models=args.model,
                    corpora=args.corpus, probe=not args.no_probe,
                    retry_failed=args.retry_failed, progress_every=args.progress_every,
                    executor=args.executor, address=args.address, limit=args.limit,
                    output_dir=args.output_dir)
    except RunLocked as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args.config), file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {explain_os_error(e)}", file=sys.stderr)
        return 2
    return 1 if n_bad else 0


def _positive(text: str) -> int:
    """argparse type of --limit: a whole number >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return n


def _interrupted(config) -> str:
    """The one line a Ctrl-C prints: what is kept and how to go on."""
    try:
        n = rows_stored(apply_run_options(load_config(config)).store_path)
    except Exception:   # noqa: BLE001 -- the message must come out whatever the state
        n = None
    rows = f"{n} rows stored" if n is not None else "nothing stored yet"
    return f"interrupted; {rows}; rerun the same command to resume"

