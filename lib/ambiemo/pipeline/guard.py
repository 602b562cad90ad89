"""Guards around a study run: one run per folder, kernels that die with the driver, and one
clear message (path, cause, next step) for the operating-system failures a long run meets.

A full run of the study of Jia et al. (2026) samples for GPU-days; what goes wrong then is
rarely the code: a second run of the same config, a full disk, a read-only folder, a store
corrupted by a crash, a driver killed while its notebook kernel goes on sampling. Each has a
check or a message here, used by `ambiemo.pipeline` and `ambiemo.pipeline.preflight`.
"""
from __future__ import annotations

import ctypes
from contextlib import closing
import errno
import fcntl
import os
import signal
import sqlite3
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1        # linux/prctl.h


class RunLocked(RuntimeError):
    """Another process holds the run folder; the message names it."""


class RunLock:
    """An exclusive lock on a run folder (`<run_dir>/.lock`, flock: released by the kernel
    when the holder dies, even by SIGKILL, so a stale lock never blocks a rerun)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(f"{self.path.parent} is in use by {holder}; wait for that run to "
                            "end (or stop it), then rerun this command") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} (started {time.strftime('%Y-%m-%d %H:%M:%S')})"
                 .encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def die_with_parent() -> None:
    """For `Popen(preexec_fn=...)`: the child gets SIGKILL when the process that started it
    dies (Linux prctl PR_SET_PDEATHSIG), so a killed driver never leaves a kernel sampling
    into the store. Elsewhere a no-op (ipykernel's own parent poller remains)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:          # the parent died before the signal was armed
        os._exit(1)


def explain_os_error(e: OSError, path: Path | str | None = None) -> str:
    """One line: which path, what went wrong, what to do next."""
    where = path or e.filename or "a run folder"
    cause = e.strerror or str(e)
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        step = ("free disk space (or point the run elsewhere), then rerun the same command: "
                "what is stored is kept and the run resumes")
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        step = ("make it writable (or run from a writable copy of the repository, or change "
                "the config's name:)")
    else:
        step = "fix the cause, then rerun the same command to resume"
    return f"cannot write {where}: {cause}; {step}"


def store_problem(path: Path) -> str | None:
    """Why the sample store at `path` cannot be used, or None (absent or intact)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        result = str(e)
    if result == "ok":
        return None
    aside = path.with_name(path.name + ".corrupt")
    return (f"sample store {path} is damaged ({result}). Move it aside (mv {path} {aside}) "
            f"and rerun: what is missing is sampled again. The rows it still holds can be "
            f"recovered first with: sqlite3 {aside} .recover | sqlite3 {path}")


def rows_stored(path: Path) -> int | None:
    """Rows in the sample store at `path` (None when absent or unreadable)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.Error:
        return None
