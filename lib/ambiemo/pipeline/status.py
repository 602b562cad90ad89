"""What each job of a study run did: status files written by notebooks, and the summary.

A notebook of the study of Jia et al. (2026) records through `write_status` how much of its
work ran, came from the sample store's cache, or failed; the pipeline reads that back into an
`Outcome` per job and ends a run with `summarise`: a count per stage of ran / cached /
skipped / failed, then one line per job that did not simply run. A failure is counted and
reported, never hidden.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ambiemo.config import StudyConfig
from ambiemo.pipeline.plan import NOTEBOOKS, Job


def write_status(cfg: StudyConfig, stage: str, *, corpus: str | None = None,
                 model: str | None = None, ran: int, cached: int = 0, failed: int = 0,
                 note: str = "", served: dict | None = None) -> Path:
    """For notebooks: record how much of this job ran, came from the cache, or failed (units
    of the notebook's choosing, e.g. batches), read into the run summary. `failed > 0` makes
    the job count as failed. `served` (hosted generate jobs): {arm: {served model: rows}}.
    Written to runs/<config>/status/<executed notebook stem>.json."""
    counts = {"ran": ran, "cached": cached, "failed": failed}
    bad = {k: v for k, v in counts.items() if not isinstance(v, int) or v < 0}
    if stage not in NOTEBOOKS or bad:
        raise ValueError(f"write_status: stage must be one of {list(NOTEBOOKS)} (got {stage!r})"
                         f" and counts non-negative ints (bad: {bad})")
    path = Job(stage, corpus, model).status_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**counts, "note": str(note),
                                **({"served": served} if served else {})}, indent=1))
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


def arm_notes(reports: dict, line) -> str:
    """A job's note: `line(report)` per prompt arm (`reports`: arm -> report), each named by
    its arm when there are several."""
    return " | ".join((f"{arm}: " if len(reports) > 1 else "") + line(r)
                      for arm, r in reports.items())


def audio_error_note(cfg: StudyConfig, job: Job, shown: int = 3) -> str:
    """For a finished generate job: the clips whose audio could not be given to the model
    (stored as `audio_error` failure rows, corpora/audio_check.py), first few by name, then
    a count and the file holding the full list (written next to the job's status file).
    "" when there are none or the job left no run key."""
    try:
        key = json.loads(cfg.samples_pointer(job.model, job.corpus).read_text())["run_key"]
        with closing(sqlite3.connect(f"file:{cfg.store_path}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT utt_id, MIN(parse_error) FROM samples WHERE run_key=? AND "
                "parse_error LIKE 'audio_error:%' GROUP BY utt_id ORDER BY utt_id",
                (key,)).fetchall()
    except (OSError, ValueError, KeyError, sqlite3.Error):
        return ""
    if not rows:
        return ""
    listing = job.status_path(cfg).with_suffix(".audio_errors.tsv")
    listing.write_text("utt_id\treason\n" + "".join(
        f"{u}\t{why.removeprefix('audio_error: ')}\n" for u, why in rows))
    names = ", ".join(u for u, _ in rows[:shown])
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return (f"{len(rows)} clip(s) with unusable audio stored as audio_error failures: "
            f"{names}{more} (full list: {cfg.layout.shown(listing)})")


def stale_outputs(cfg: StudyConfig, since: float) -> list[Path]:
    """Tables and figures of this config older than `since` (the run's start): left by an
    earlier run, not remade by this one."""
    return sorted(p for d in (cfg.table_dir, cfg.figure_dir) if d.is_dir()
                  for p in d.iterdir() if p.is_file() and p.stat().st_mtime < since)


def summarise(cfg: StudyConfig, outcomes: list[Outcome], since: float | None = None) -> str:
    """The run summary: a count per stage and state, then one line per job not simply ran,
    then (given the run's start `since`) the outputs this run did not remake."""
    states = ("ran", "cached", "skipped", "failed")
    lines = [f"summary of {getattr(cfg, 'run_name', cfg.name)} ({cfg.path}):",
             f"  {'stage':<10}" + "".join(f"{s:>9}" for s in states)]
    for stage in dict.fromkeys(o.job.stage for o in outcomes):
        n = [sum(o.job.stage == stage and o.state == s for o in outcomes) for s in states]
        lines.append(f"  {stage:<10}" + "".join(f"{x:>9}" for x in n))
    lines += [f"  {o.state.upper() if o.state == 'failed' else o.state:<8} {o.job.label}: {o.note}"
              for o in outcomes if o.state != "ran" or (o.note and o.job.stage != "report")]
    stale = stale_outputs(cfg, since) if since is not None else []
    if stale:
        names = ", ".join(p.name for p in stale[:3]) + (" ..." if len(stale) > 3 else "")
        lines.append(f"  {len(stale)} output(s) are from an earlier run, not remade by this one "
                     f"(marked in the report): {names}")
    total = {s: sum(o.state == s for o in outcomes) for s in states}
    lines.append(f"summary: {total['ran']} ran, {total['cached']} from cache, "
                 f"{total['skipped']} skipped, {total['failed']} failed; tables in "
                 f"{cfg.layout.shown(cfg.table_dir)}/, figures in "
                 f"{cfg.layout.shown(cfg.figure_dir)}/, report in "
                 f"{cfg.layout.shown(cfg.run_dir / 'report')}/index.html")
    if getattr(cfg, "limit", None) is not None:   # never read as a full run by mistake
        lines.append(f"limited run: the first {cfg.limit} clips of each corpus (--limit "
                     f"{cfg.limit}); not the study's numbers")
    return "\n".join(lines)
