"""Issue #14: the pipeline tells the truth while it runs and after it fails -- one run per
folder, one clear message (path, cause, next step) per OS failure, the summary always
printed, stale outputs marked, live progress, kernels that die with their driver."""
import errno
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ambiemo.pipeline import run as pipeline
from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline.preflight import validate
from ambiemo.pipeline.guard import RunLock, explain_os_error, store_problem
from ambiemo.pipeline.plan import Job, plan
from ambiemo.pipeline.progress import ProgressFile, ProgressPrinter, progress_line
from ambiemo.pipeline.status import Outcome, audio_error_note


@pytest.fixture()
def config(repo, tmp_path):
    name = f"test-guard-{os.getpid()}"
    p = tmp_path / "c.yaml"
    p.write_text(f"name: {name}\ncorpora:\n  demo: {{root: data/demo}}\n"
                 "models: [tiny-qwen2-audio]\ngeneration: {n_samples: 2}\n"
                 "scoring: {strategies: [greedy, majority], n_boot: 50}\n")
    yield p
    for d in ("runs", "tables", "figures"):
        shutil.rmtree(repo / d / name, ignore_errors=True)


def test_a_second_run_names_the_holder_and_exits_2(repo, config):
    cfg = load_config(config, root=repo)
    with RunLock(cfg.run_dir):
        r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(config), "--stage",
                            "report"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{cfg.run_dir} is in use by process {os.getpid()}" in r.stderr
    assert "Traceback" not in r.stderr
    with RunLock(cfg.run_dir):          # released: the next run gets it
        pass


def test_score_on_a_fresh_config_says_to_prepare_first(repo, config):
    cfg = load_config(config, root=repo)
    with pytest.raises(ConfigError) as err:
        validate(cfg, plan(cfg, ("score",)))
    msg = str(err.value)
    assert f"reads {cfg.manifest_path('demo')}, which does not exist: run `--stage prepare` first" in msg
    assert "run `--stage generate` first" in msg
    validate(cfg, plan(cfg, ("prepare", "generate", "score")))    # producers planned: fine


def test_a_corrupt_store_is_named_with_how_to_recover(repo, config):
    cfg = load_config(config, root=repo)
    cfg.store_path.parent.mkdir(parents=True)
    cfg.store_path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    with pytest.raises(ConfigError) as err:
        validate(cfg, plan(cfg, ("prepare", "generate")))
    msg = str(err.value)
    assert f"sample store {cfg.store_path} is damaged" in msg
    assert f"mv {cfg.store_path} {cfg.store_path}.corrupt" in msg and ".recover" in msg
    assert store_problem(cfg.run_dir / "absent.sqlite") is None


def test_a_read_only_folder_is_one_message(repo, config, monkeypatch, capsys):
    cfg = load_config(config, root=repo)
    import ambiemo.pipeline.preflight
    monkeypatch.setattr(ambiemo.pipeline.preflight.os, "access", lambda p, mode: False)
    with pytest.raises(ConfigError, match=rf"{cfg.run_dir}: cannot be written"):
        validate(cfg, plan(cfg, ("prepare",)))
    monkeypatch.undo()

    def read_only(self):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self.path.parent))
    monkeypatch.setattr(pipeline.RunLock, "acquire", read_only)
    assert pipeline.main([str(config), "--stage", "prepare"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: cannot write {cfg.run_dir}: Read-only file system; make it "
                           "writable (or run from a writable copy of the repository, or change "
                           "the config's name:)")


def test_full_disk_still_prints_the_summary(repo, config, monkeypatch):
    def no_space(job, cfg, every):
        return Outcome(job, "failed", 1.0, pipeline._advice(
            "OSError: [Errno 28] No space left on device"))
    real_write = Path.write_text

    def write_text(self, *a, **k):
        if self.name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *a, **k)
    monkeypatch.setattr(pipeline, "_execute", no_space)
    monkeypatch.setattr(Path, "write_text", write_text)
    lines = []
    assert pipeline.run(config, stages=("prepare",), log=lines.append) == 1
    text = "\n".join(lines)
    assert "No space left on device -- free disk space, then rerun the same command" in text
    assert "warning: cannot write" in text and "summary.json: No space left on device; free " \
        "disk space" in text
    assert "summary: 0 ran, 0 from cache, 0 skipped, 1 failed" in text


def test_outputs_of_an_earlier_run_are_marked(repo, config, monkeypatch):
    cfg = load_config(config, root=repo)
    cfg.table_dir.mkdir(parents=True)
    old = cfg.table_dir / "demo_main.csv"
    old.write_text("model,strategy\nx,greedy\n")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    monkeypatch.setattr(pipeline, "_execute",
                        lambda job, c, every: Outcome(job, "failed", 0.1, "boom"))
    lines = []
    pipeline.run(config, stages=("prepare", "report"), log=lines.append)
    text = "\n".join(lines)
    assert "1 output(s) are from an earlier run, not remade by this one (marked in the " \
           "report): demo_main.csv" in text
    html = (cfg.run_dir / "report" / "index.html").read_text()
    assert "<h3 id='table-demo_main'>" in html and "From an earlier run" in html


def test_progress_lines_in_plain_mode(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    monkeypatch.setenv("AMBIEMO_PROGRESS_FILE", str(path))
    out = io.StringIO()
    with ProgressPrinter(path, "02_generate [demo, m]", stream=out, every_s=0.2, tty=False):
        live = ProgressFile("clips", 40, every_s=0)
        for done in (10, 20):
            live.update(done, failures=done // 10)
            time.sleep(0.5)
    lines = out.getvalue().splitlines()
    assert lines and all(ln.startswith("02_generate [demo, m]: ") for ln in lines)
    assert any("20/40 clips (50%)" in ln and "2 failure(s)" in ln and "ETA" in ln
               and "clips/s" in ln for ln in lines), lines
    assert not path.exists()
    p = {"what": "clips", "done": 30, "total": 120, "failures": 0, "started": 0, "updated": 10}
    assert progress_line(p, "x") == "x: 30/120 clips (25%), 3.00 clips/s, ETA 0m30s, 0 failure(s)"
    monkeypatch.delenv("AMBIEMO_PROGRESS_FILE")
    ProgressFile("clips", 3).update(1, force=True)      # a notebook run by hand: nothing


def test_audio_errors_are_listed_with_the_file_holding_all(repo, config):
    from ambiemo.sampling.store import SampleStore

    cfg = load_config(config, root=repo)
    job = Job("generate", "demo", "tiny-qwen2-audio")
    cfg.store_path.parent.mkdir(parents=True)
    with SampleStore(cfg.store_path) as store:
        store.register_run("k1", "tiny-qwen2-audio", {}, ["a", "b"])
        store.write("k1", [{"utt_id": f"u{i}", "kind": "greedy", "idx": 0, "text": "",
                            "logprob": None, "n_tokens": None, "seconds": None, "dist": None,
                            "parse_ok": False, "parse_error": f"audio_error: too_short: u{i}.wav"}
                           for i in range(5)])
    pointer = cfg.samples_pointer("tiny-qwen2-audio", "demo")
    pointer.parent.mkdir(parents=True)
    pointer.write_text('{"run_key": "k1"}')
    job.status_path(cfg).parent.mkdir(parents=True)
    note = audio_error_note(cfg, job)
    listing = job.status_path(cfg).with_suffix(".audio_errors.tsv")
    assert note == ("5 clip(s) with unusable audio stored as audio_error failures: u0, u1, u2 "
                    f"and 2 more (full list: {listing.relative_to(repo)})")
    assert listing.read_text().splitlines()[1:] == [f"u{i}\ttoo_short: u{i}.wav" for i in range(5)]


def test_a_child_dies_with_its_parent(tmp_path):
    """What the pipeline's kernels get (preexec_fn): SIGKILL when their parent dies."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from ambiemo.pipeline.guard import die_with_parent\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=die_with_parent, start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
        "time.sleep(60)\n")])
    end = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < end
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    end = time.time() + 10
    while time.time() < end:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state in ("Z", "X"):
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the child outlived its parent")


def test_explain_os_error_names_path_cause_and_step():
    msg = explain_os_error(OSError(errno.ENOSPC, "No space left on device", "/r/x.sqlite"))
    assert msg.startswith("cannot write /r/x.sqlite: No space left on device; free disk space")
    assert "make it writable" in explain_os_error(PermissionError(errno.EACCES, "Permission denied", "/r"))
