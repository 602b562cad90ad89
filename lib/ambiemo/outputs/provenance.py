"""What produced a run's numbers, kept beside them: runs/<name>/results.json.

lm-evaluation-harness users expect one machine-readable file per run with the results and
everything needed to say where they came from. `results_record` gathers the config as
written, every installed package's version, the git commit of the repository and whether
its working tree had uncommitted changes, the machine (CPU, GPU), the run's start and end,
and each row of every main table; `write_results` writes it. The report's Versions section
shows the same commit (`git_state`).
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pandas as pd


def git_state(where: Path) -> dict:
    """{commit, dirty} of the git repository holding `where`; both None outside one (a
    release unpacked without .git) or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True,
                              text=True, timeout=30)
    if shutil.which("git") is None:
        return {"commit": None, "dirty": None}
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def package_versions() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[name] = dist.version
    return dict(sorted(versions.items(), key=lambda kv: kv[0].lower()))


def machine() -> dict:
    """The CPU and GPUs of this machine (GPU names from nvidia-smi, when there is one)."""
    gpus = []
    if shutil.which("nvidia-smi"):
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                            "--format=csv,noheader"], capture_output=True, text=True,
                           timeout=30)
        gpus = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()] if r.returncode == 0 \
            else []
    return {"hostname": platform.node(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "gpus": gpus}


def _when(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def results_record(cfg, summary: list[dict] | None = None, started: float | None = None,
                   ended: float | None = None) -> dict:
    """The record of study config `cfg`'s run: config, versions, git, machine, times, the
    jobs' summary and every main-table row (`tables/<name>/<corpus>_main.csv`)."""
    main = {}
    for csv in sorted(Path(cfg.table_dir).glob("*_main.csv")):
        rows = pd.read_csv(csv)
        main[csv.stem.removesuffix("_main")] = json.loads(rows.to_json(orient="records"))
    return {"name": cfg.name, "config_file": str(cfg.path),
            "config": Path(cfg.path).read_text(),
            "git": git_state(Path(getattr(cfg, "root", None) or Path(cfg.path).parent)),
            "started": _when(started), "ended": _when(ended), "machine": machine(),
            "packages": package_versions(), "jobs": summary or [], "main_tables": main}


def write_results(cfg, summary: list[dict] | None = None, started: float | None = None,
                  ended: float | None = None) -> Path:
    """Write runs/<name>/results.json (`results_record`); returns its path."""
    path = Path(cfg.run_dir) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_record(cfg, summary, started, ended), indent=1,
                               default=str))
    return path
