"""Issue #14 soak test: a pipeline killed (SIGKILL) at random points of generate and rerun,
five times, then run to the end, loses no sample, stores none twice, and gives the same
tables as a run never interrupted. Also: Ctrl-C prints one line and exits 130, and the
notebook kernel ends when the pipeline does."""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ambiemo.config import load_config

pytestmark = pytest.mark.slow

N_SAMPLES, CLIPS = 4, 32


@pytest.fixture()
def configs(repo, tmp_path):
    """Two configs with the same settings (same run key) and their own output folders."""
    base = f"soak-{os.getpid()}"
    paths = []
    for tag in ("plain", "killed"):
        p = tmp_path / f"{tag}.yaml"
        p.write_text(f"name: {base}-{tag}\nseed: 3\ncorpora:\n  demo: {{root: data/demo}}\n"
                     f"models: [tiny-qwen2-audio]\ngeneration: {{n_samples: {N_SAMPLES}, "
                     "batch_size: 2, decoding: {max_new_tokens: 8, constrained: true}}\n"
                     "scoring: {strategies: [greedy, majority], n_boot: 50}\n")
        paths.append(p)
    yield paths
    for d in ("runs", "tables", "figures"):
        for tag in ("plain", "killed"):
            shutil.rmtree(repo / d / f"{base}-{tag}", ignore_errors=True)


def start(repo, config, *stages):
    args = [a for s in stages for a in ("--stage", s)]
    return subprocess.Popen([sys.executable, "-m", "ambiemo.pipeline", str(config), *args],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def rows(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for_more_rows(store: Path, than: int, proc, timeout=300) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if rows(store) > than:
            return True
        if proc.poll() is not None:
            return False                   # it finished (or failed) before storing more
        time.sleep(0.2)
    raise AssertionError(f"no new rows in {store} within {timeout} s")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")         # a zombie has ended; only its entry is left


def samples(store: Path) -> pd.DataFrame:
    with sqlite3.connect(store) as c:
        return pd.read_sql("SELECT run_key, utt_id, kind, idx, text, logprob, n_tokens, dist, "
                           "parse_ok FROM samples ORDER BY run_key, utt_id, kind, idx", c)


def test_killed_and_resumed_equals_uninterrupted(repo, configs):
    plain, killed = configs
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(plain), "--stage",
                        "prepare", "--stage", "generate", "--stage", "score"],
                       cwd=repo, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = load_config(plain, root=repo), load_config(killed, root=repo)
    shutil.copytree(a.run_dir / "manifests", b.run_dir / "manifests")   # same Manifest
    store, rng, before = b.store_path, random.Random(14), 0

    # Ctrl-C: one line, exit 130, and what is stored is kept.
    p = start(repo, killed, "generate")
    assert wait_for_more_rows(store, before, p)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 130, out
    assert out.strip().splitlines()[-1] == (f"interrupted; {rows(store)} rows stored; rerun "
                                             "the same command to resume"), out
    assert "Traceback" not in out, out
    before = rows(store)

    live = b.run_dir / "status" / "02_generate__demo__tiny-qwen2-audio.progress.json"
    for cycle in range(5):
        p = start(repo, killed, "generate")
        if not wait_for_more_rows(store, before, p):
            break                          # generate ended before this cycle could kill it
        time.sleep(rng.uniform(0, 1.5))    # a random point of the sampling
        kernel = json.loads(live.read_text())["pid"]
        p.kill()
        p.wait()
        end = time.time() + 15
        while alive(kernel) and time.time() < end:
            time.sleep(0.2)
        assert not alive(kernel), f"cycle {cycle}: kernel {kernel} outlived its pipeline"
        now = rows(store)
        assert now >= before, f"cycle {cycle}: rows were lost ({before} -> {now})"
        before = now
        time.sleep(0.5)                    # the killed kernel's last write is settled

    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(killed), "--stage",
                        "generate", "--stage", "score"],
                       cwd=repo, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got, want = samples(b.store_path), samples(a.store_path)
    assert len(got) == CLIPS * (1 + N_SAMPLES)                       # nothing lost
    assert not got.duplicated(["run_key", "utt_id", "kind", "idx"]).any()   # nothing twice
    pd.testing.assert_frame_equal(got, want)                          # bit-identical samples
    tables = sorted(p.name for p in b.table_dir.glob("*.csv"))
    assert "demo_main.csv" in tables
    for name in tables:                    # (prepare's table exists only in the plain run)
        got_t, want_t = pd.read_csv(b.table_dir / name), pd.read_csv(a.table_dir / name)
        # measured wall time (the costs table's seconds) is a measurement, not a result
        timed = [c for c in want_t if "seconds" in c]
        pd.testing.assert_frame_equal(got_t.drop(columns=timed), want_t.drop(columns=timed),
                                      obj=name)
