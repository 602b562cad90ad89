"""The sample store: transactions, no duplicates, and a real SIGKILL mid-run then resume."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from ambiemo.sampling.store import SampleStore


def _row(utt, idx, kind="sample", dist=(1.0, 0.0)):
    return {"utt_id": utt, "kind": kind, "idx": idx, "text": "x", "logprob": -1.0,
            "n_tokens": 2, "dist": dist, "parse_ok": dist is not None, "seconds": 0.1}


def test_roundtrip_and_no_row_written_twice(tmp_path):
    with SampleStore(tmp_path / "s.sqlite") as s:
        s.register_run("k", "m", {"a": 1}, ["sad", "angry"])
        s.write("k", [_row("u1", 0), _row("u1", 1, dist=None)])
        with pytest.raises(sqlite3.IntegrityError):
            s.write("k", [_row("u2", 0), _row("u1", 0)])   # u1/0 exists
        df = s.read("k")
        # the failed transaction wrote nothing, not even u2
        assert list(df["utt_id"]) == ["u1", "u1"]
        assert df.loc[0, "p_sad"] == 1.0 and pd.isna(df.loc[1, "p_sad"])
        assert list(df["parse_ok"]) == [True, False]
        assert s.done_clips("k", "sample", 2) == {"u1"}
        assert s.done_clips("k", "sample", 3) == set()
        with pytest.raises(ValueError, match="other settings"):
            s.register_run("k", "m", {"a": 2}, ["sad", "angry"])


def test_unknown_kind_is_refused(tmp_path):
    with SampleStore(tmp_path / "s.sqlite") as s:
        s.register_run("k", "m", {}, ["sad"])
        with pytest.raises(ValueError, match="unknown sample kind"):
            s.write("k", [_row("u", 0, kind="guess")])


SCRIPT = textwrap.dedent("""
    import sys, time
    from ambiemo import corpora
    from ambiemo.alm import load_model, Decoding
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.generate import GenerationSettings, generate_samples
    from ambiemo.sampling.store import SampleStore
    repo, store_path, cache, slow = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    adapter = load_model("tiny-qwen2-audio", cache_dir=cache, device="cpu")
    if slow:  # give the parent time to kill us between batches
        inner = adapter.generate
        def generate(*a, **k):
            time.sleep(slow)
            return inner(*a, **k)
        adapter.generate = generate
    manifest = corpora.load("demo", repo + "/data/demo")
    settings = GenerationSettings(n_samples=4, batch_size=4, seed=7,
                                  decoding=Decoding(constrained=True))
    with SampleStore(store_path) as store:
        r = generate_samples(adapter, manifest, store, load_prompt("direct_label", repo + "/configs/prompts"),
                             settings, progress=False)
    print(r.run_key, r.rows_written, r.batches_cached)
""")


def _run(repo, store, cache, slow, **kw):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(repo), str(store), str(cache), str(slow)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _count(store):
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def test_sigkill_then_resume_gives_every_sample_exactly_once(repo, tmp_path, tiny_cache):
    killed = tmp_path / "killed.sqlite"
    proc = _run(repo, killed, tiny_cache, slow=0.5)
    deadline = time.time() + 120
    while _count(killed) < 10 and time.time() < deadline:   # at least two batches stored
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = _count(killed)
    n_clips, total = 32, 32 * (1 + 4)
    assert 0 < partial < total, partial

    resumed = _run(repo, killed, tiny_cache, slow=0)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    key, written, cached = out.split()
    assert int(written) == total - partial and int(cached) > 0

    with sqlite3.connect(killed) as c:
        rows = c.execute("SELECT utt_id, kind, idx, text FROM samples").fetchall()
    keys = [(u, k, i) for u, k, i, _ in rows]
    assert len(keys) == len(set(keys)) == total
    expected = {(u, "greedy", 0) for u in {r[0] for r in rows}} | \
               {(u, "sample", i) for u in {r[0] for r in rows} for i in range(4)}
    assert set(keys) == expected and len({r[0] for r in rows}) == n_clips

    # the interrupted-and-resumed run holds the same samples as an uninterrupted one
    clean = tmp_path / "clean.sqlite"
    p = _run(repo, clean, tiny_cache, slow=0)
    assert p.wait(timeout=300) == 0
    with sqlite3.connect(clean) as c:
        assert sorted(c.execute("SELECT utt_id, kind, idx, text FROM samples")) == sorted(rows)
