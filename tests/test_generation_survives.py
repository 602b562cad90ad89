"""Generation keeps what it has (issue #25): a resumed run completes a batch found partly
stored; the death of Ray's own processes still ends in the summary, the stored rows counted
and a rerun named; `max_new_tokens` is bounded by the model's context before a run."""
from __future__ import annotations

import os
import shutil
import sqlite3
import textwrap

import pandas as pd
import pytest

from ambiemo import corpora
from ambiemo.config import load_config
from ambiemo.pipeline import stages


def _study(repo, root, extra=""):
    (root / "configs").mkdir(exist_ok=True)
    (root / "lib" / "ambiemo").mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / "configs" / "prompts", root / "configs" / "prompts",
                    dirs_exist_ok=True)
    path = root / "configs" / "g.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: g
        corpora: {{demo: {{root: {repo / 'data' / 'demo'}}}}}
        models: [sim-human]
        generation: {{n_samples: 3, batch_size: 8}}
        """) + extra)
    cfg = load_config(path, root=root)
    manifest = corpora.load("demo", repo / "data" / "demo")
    cfg.manifest_path("demo").parent.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)
    return cfg


def _rows(cfg):
    with sqlite3.connect(cfg.store_path) as conn:
        return pd.read_sql_query("SELECT * FROM samples ORDER BY run_key, utt_id, kind, idx",
                                 conn).drop(columns="seconds")


def test_a_batch_found_partly_stored_is_completed_exactly(repo, tmp_path):
    """What `sqlite3 .recover` (README, a damaged store) can leave: some rows of a batch
    gone. The rerun redoes that batch's (clip, kind)s so the store ends as an uninterrupted
    run's, never `IntegrityError: UNIQUE constraint failed`."""
    cfg = _study(repo, tmp_path)
    stages.generate(cfg, "sim-human", "demo", progress=False)
    whole = _rows(cfg)
    with sqlite3.connect(cfg.store_path) as conn:   # rows of one batch lost, others kept
        [utt] = conn.execute("SELECT utt_id FROM samples WHERE kind='sample' "
                             "ORDER BY utt_id LIMIT 1").fetchone()
        conn.execute("DELETE FROM samples WHERE utt_id=? AND kind='sample' AND idx=1", (utt,))
        conn.execute("DELETE FROM samples WHERE kind='greedy' AND utt_id IN "
                     "(SELECT utt_id FROM samples WHERE kind='greedy' ORDER BY utt_id "
                     "LIMIT 2)")
    again = stages.generate(cfg, "sim-human", "demo", progress=False)
    [report] = again.reports.values()
    assert report.rows_written > 0
    pd.testing.assert_frame_equal(_rows(cfg), whole)


def test_a_store_recovered_with_sqlite3_recover_resumes(repo, tmp_path):
    """The README's recovery path itself: `.recover` into a new file, which then resumes."""
    import subprocess

    if shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 command-line tool")
    probe = tmp_path / "probe.sqlite"
    with sqlite3.connect(probe) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    conn.close()
    if subprocess.run(["sqlite3", str(probe), ".recover"], capture_output=True).returncode:
        # e.g. Debian's sqlite3 3.40.1: "sql error: SQL logic error" on any TEXT PRIMARY KEY
        pytest.skip("this sqlite3 command-line tool's .recover fails on a sound database")
    cfg = _study(repo, tmp_path)
    stages.generate(cfg, "sim-human", "demo", progress=False)
    whole = _rows(cfg)
    with sqlite3.connect(cfg.store_path) as conn:
        conn.execute("DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples "
                     "WHERE kind='sample' ORDER BY rowid LIMIT 5)")
    conn.close()
    dump = subprocess.run(["sqlite3", str(cfg.store_path), ".recover"], capture_output=True,
                          text=True, check=True).stdout
    cfg.store_path.rename(cfg.store_path.with_suffix(".damaged"))
    for side in ("-wal", "-shm"):
        cfg.store_path.with_name(cfg.store_path.name + side).unlink(missing_ok=True)
    subprocess.run(["sqlite3", str(cfg.store_path)], input=dump, text=True, check=True)
    stages.generate(cfg, "sim-human", "demo", progress=False)
    pd.testing.assert_frame_equal(_rows(cfg), whole)


def test_the_death_of_rays_processes_still_prints_the_summary(repo, tmp_path, monkeypatch):
    """Ray's dashboard agent dying ends `generate_on_ray` in ActorDiedError (raised here from
    a stand-in, no Ray started) and `ray.shutdown()` may raise too: the run still ends in
    its summary, with the rows stored counted and a rerun named."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray")
    from ambiemo.pipeline import run as pipeline
    from ambiemo.pipeline.plan import Job
    from ambiemo.sampling import executor_ray

    cfg = _study(repo, tmp_path, "executor: {kind: ray}\n")
    stages.generate(cfg, "sim-human", "demo", progress=False)   # rows stored before the death
    n_rows = len(_rows(cfg))

    def dies(*a, **k):
        raise ray.exceptions.ActorDiedError()

    monkeypatch.setattr(executor_ray, "start_ray", lambda *a, **k: True)
    monkeypatch.setattr(executor_ray, "run_generate_job", dies)
    monkeypatch.setattr(ray, "shutdown", dies)
    lines = []
    n_bad = pipeline._run_locked(cfg, [Job("generate", "demo", "sim-human")], lines.append, 30)
    assert n_bad == 1
    [job, summary] = lines[0], lines[-1]
    assert job.startswith("failed   02_generate [demo, sim-human]")
    assert "ActorDiedError" in job and f"{n_rows} rows of sim-human stored" in job
    assert "rerun the same command to resume" in job
    assert "generate" in summary and (cfg.run_dir / "status" / "summary.json").is_file()


def test_the_generate_note_counts_each_row_once_in_the_failures_tables_words(repo, tmp_path):
    """sim-human with two unusable clips: 2 clips x 4 rows are `audio_error`, never also
    `unparsed` (the note said "8 unparsed"); the note's counts are the failures table's."""
    from ambiemo.parse import failure_breakdown
    from ambiemo.pipeline.plan import Job
    from ambiemo.pipeline.status import read_status
    from ambiemo.sampling.store import SampleStore

    cfg = _study(repo, tmp_path)
    manifest = pd.read_parquet(cfg.manifest_path("demo"))
    bad = manifest["utt_id"].iloc[:2].tolist()
    manifest.loc[manifest["utt_id"].isin(bad), ["audio_status", "audio_reason"]] = [
        "unreadable", "not a sound file"]
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)
    out = stages.generate(cfg, "sim-human", "demo", progress=False)
    _, note = read_status(Job("generate", "demo", "sim-human").status_path(cfg))
    assert "128 answers: 120 parsed, 8 audio_error;" in note
    assert "unparsed" not in note and "truncated" not in note
    assert "0 clips over the audio window (cut)" in note
    [report] = out.reports.values()
    with SampleStore(cfg.store_path) as store:
        samples = store.read(report.run_key)
    table = failure_breakdown(samples.assign(model="sim-human", prompt="direct_label"))
    assert (int(table["n"].sum()), int(table["parsed"].sum()),
            int(table["audio_error"].sum()), int(table["unparsed"].sum())) == (128, 120, 8, 0)
