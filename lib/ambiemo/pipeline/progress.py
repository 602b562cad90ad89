"""Live progress of generate and verify in the terminal that runs the pipeline.

The sampling of the study of Jia et al. (2026) runs inside a papermill notebook kernel,
whose tqdm bars go into the executed notebook, not to the terminal: a `nohup`, `tee`, CI or
Slurm log of a GPU-days run would show nothing until a job ends. So the kernel writes a
small JSON file (`ambiemo.sampling.progress.ProgressFile`, at most once a second; the path comes from the environment
variable AMBIEMO_PROGRESS_FILE, set by the pipeline) and the driver polls it
(`ProgressPrinter`): on a terminal one line rewritten in place, otherwise a plain line every
N seconds (default 30) so batch-system logs stay readable.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from ambiemo.sampling.progress import ENV, ProgressFile, read_progress  # noqa: F401

def progress_line(p: dict, label: str) -> str:
    """`label: 120/480 clips (25%), 3.1 clips/s, ETA 1m56s, 2 failures` from a progress dict."""
    done, total = p["done"], max(p["total"], 1)
    elapsed = max(p["updated"] - p["started"], 1e-9)
    rate = done / elapsed
    eta = _duration((total - done) / rate) if rate > 0 else "?"
    return (f"{label}: {done}/{p['total']} {p['what']} ({100 * done / total:.0f}%), "
            f"{rate:.2f} {p['what']}/s, ETA {eta}, {p['failures']} failure(s)")


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class ProgressPrinter:
    """Driver side: while a job runs, show its progress file. On a TTY one line redrawn
    every second; otherwise a plain line every `every_s` seconds (and only when it changed)."""

    def __init__(self, path: Path, label: str, stream=None, every_s: float = 30.0,
                 tty: bool | None = None):
        self.path, self.label = Path(path), label
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = 1.0 if self.tty else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._last = None

    def __enter__(self):
        self.path.unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        if self.tty and self._last is not None:
            self.stream.write("\r\033[K")        # the job's result line replaces the bar
            self.stream.flush()
        self.path.unlink(missing_ok=True)

    def _run(self):
        while not self._stop.wait(self.every_s):
            p = read_progress(self.path)
            if p is None or p == self._last:
                continue
            self._last = p
            line = progress_line(p, self.label)
            self.stream.write(f"\r\033[K{line}" if self.tty else f"{line}\n")
            self.stream.flush()
