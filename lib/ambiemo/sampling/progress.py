"""The kernel's side of live progress: a small JSON file the pipeline driver polls.

The sampling stage runs inside a papermill notebook kernel, whose tqdm bars go into the
executed notebook, not to the terminal. So the runner writes `ProgressFile` (at most once a
second, atomically; the path comes from the environment variable AMBIEMO_PROGRESS_FILE, set
by the pipeline) and `ambiemo.pipeline.progress` prints it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV = "AMBIEMO_PROGRESS_FILE"


class ProgressFile:
    """Kernel side: `update(done, total, failures)` writes the file (atomically, throttled).
    Without AMBIEMO_PROGRESS_FILE set (a notebook run by hand) it does nothing."""

    def __init__(self, what: str, total: int, path: str | None = None, every_s: float = 1.0):
        self.path = Path(path or os.environ.get(ENV, "")) if (path or os.environ.get(ENV)) else None
        self.what, self.total, self.every_s = what, int(total), every_s
        self.started, self._last = time.time(), 0.0
        self.update(0, force=True)      # the driver knows the job started, and the kernel's pid

    def update(self, done: int, failures: int = 0, *, force: bool = False) -> None:
        if self.path is None or (not force and time.time() - self._last < self.every_s):
            return
        self._last = time.time()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"what": self.what, "done": int(done), "total": self.total,
                                       "failures": int(failures), "started": self.started,
                                       "updated": self._last, "pid": os.getpid()}))
            os.replace(tmp, self.path)      # the reader never sees half a file
        except OSError:
            pass                            # progress is a courtesy; sampling goes on


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
