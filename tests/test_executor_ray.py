"""The Ray executor stores exactly what one process stores, and survives killed actors and a
killed driver (issue #15). One local Ray (2 CPUs, loopback only) is shared by the module."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

# Before Ray starts: every Ray socket binds 127.0.0.1; no metrics agent is awaited (on a
# loaded 2-core machine the raylet gives up waiting for it); no auth token from ~/.ray, which
# concurrent Ray sessions of the same user would share (loopback only, so nothing is exposed).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_enable_metrics_collection", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ray = pytest.importorskip("ray")

from ambiemo import corpora  # noqa: E402
from ambiemo.alm import Decoding  # noqa: E402
from ambiemo.alm.prompts import load_prompt  # noqa: E402
from ambiemo.sampling.generate import GenerationSettings, generate_samples, plan_batches  # noqa: E402
from ambiemo.sampling.store import SampleStore  # noqa: E402
from ambiemo.config import ExecutorConfig  # noqa: E402
from ambiemo.sampling.executor_ray import generate_on_ray  # noqa: E402
from ambiemo.sampling.shards import plan_shards  # noqa: E402

MODEL = "tiny-qwen2-audio"
SETTINGS = GenerationSettings(n_samples=2, batch_size=2, seed=3,
                              decoding=Decoding(max_new_tokens=4, constrained=True))
SHARD_S = 5.0           # about two batches of demo clips per shard
N_CLIPS = 12


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray with 2 CPUs started here, or the one at $RAY_ADDRESS (e.g. started once
    with `ray start --head --num-cpus=2` on a machine too loaded for Ray's fixed 30 s
    startup timeouts)."""
    for attempt in range(3):
        try:
            if os.environ.get("RAY_ADDRESS"):
                ray.init(logging_level="WARNING")
            else:
                ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def manifest(repo):
    full = corpora.load("demo", repo / "data" / "demo")
    part = full.sort_values("utt_id").iloc[:N_CLIPS].reset_index(drop=True)
    part.attrs = dict(full.attrs)
    return part


@pytest.fixture(scope="module")
def prompt(repo):
    return load_prompt("direct_label", repo / "configs" / "prompts")


@pytest.fixture(scope="module")
def local_rows(tiny_qwen2_audio, manifest, prompt, tmp_path_factory):
    """What the local executor stores."""
    with SampleStore(tmp_path_factory.mktemp("local") / "s.sqlite") as store:
        report = generate_samples(tiny_qwen2_audio, manifest, store, prompt, SETTINGS,
                                  progress=False)
        return report.run_key, _rows(store.read(report.run_key))


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    # Wall time differs between any two runs; everything else must not.
    return df.drop(columns="seconds").reset_index(drop=True)


def _options(tiny_cache) -> dict:
    return {"cache_dir": str(tiny_cache), "device": "cpu"}


def _executor(**kw) -> ExecutorConfig:
    return ExecutorConfig("ray", shard_audio_s=SHARD_S, **{"actors": 2, "max_retries": 1, **kw})


def test_sharded_run_stores_exactly_the_local_rows_and_a_rerun_runs_nothing(
        ray_session, manifest, prompt, local_rows, tiny_cache, tmp_path):
    key, local = local_rows
    n_shards = len(plan_shards(plan_batches(manifest, SETTINGS.batch_size),
                               dict(zip(manifest["utt_id"], manifest["duration_s"])), SHARD_S))
    assert n_shards >= 3
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_on_ray(MODEL, _options(tiny_cache), manifest, store, prompt, SETTINGS,
                                 shard_root=tmp_path / "shards", executor=_executor(),
                                 progress=False)
        assert report.generation.run_key == key
        assert (report.shards, report.shards_run, report.actors) == (n_shards, n_shards, 2)
        assert report.generation.rows_written == len(local) == N_CLIPS * 3
        pd.testing.assert_frame_equal(_rows(store.read(key)), local)
        assert len(list((tmp_path / "shards" / key).glob("*.parquet"))) == n_shards
        again = generate_on_ray(MODEL, _options(tiny_cache), manifest, store, prompt, SETTINGS,
                                shard_root=tmp_path / "shards", executor=_executor(),
                                progress=False)
        assert (again.shards_cached, again.shards_run, again.generation.rows_written) == \
            (n_shards, 0, 0)
        pd.testing.assert_frame_equal(_rows(store.read(key)), local)


def _kill_first_shard_worker(killed: list, stop: threading.Event) -> None:
    """SIGKILL the first actor process seen running a shard (Ray titles it with the method)."""
    import psutil

    while not stop.is_set() and not killed:
        for p in psutil.process_iter(["pid", "cmdline"]):
            if "ShardSampler.run_shard" in " ".join(p.info["cmdline"] or []):
                os.kill(p.info["pid"], signal.SIGKILL)
                killed.append(p.info["pid"])
                return
        time.sleep(0.05)


def test_an_actor_killed_mid_shard_is_restarted_and_nothing_is_lost_or_doubled(
        ray_session, manifest, prompt, local_rows, tiny_cache, tmp_path):
    key, local = local_rows
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_shard_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        with SampleStore(tmp_path / "s.sqlite") as store:
            report = generate_on_ray(MODEL, _options(tiny_cache), manifest, store, prompt,
                                     SETTINGS, shard_root=tmp_path / "shards",
                                     executor=_executor(actors=1, max_retries=2),
                                     progress=False)
            rows = _rows(store.read(key))
    finally:
        stop.set()
        killer.join()
    assert killed, "no shard worker was seen to kill"
    assert report.failed == ()
    pd.testing.assert_frame_equal(rows, local)


DRIVER = textwrap.dedent("""
    import sys
    import ray
    from ambiemo import corpora
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.store import SampleStore
    from ambiemo.sampling.executor_ray import generate_on_ray
    import test_executor_ray as t

    repo, cache, out, address = sys.argv[1:]
    ray.init(address=address, logging_level="WARNING")
    full = corpora.load("demo", repo + "/data/demo")
    part = full.sort_values("utt_id").iloc[:t.N_CLIPS].reset_index(drop=True)
    part.attrs = dict(full.attrs)
    with SampleStore(out + "/s.sqlite") as store:
        generate_on_ray(t.MODEL, t._options(cache), part, store,
                        load_prompt("direct_label", repo + "/configs/prompts"), t.SETTINGS,
                        shard_root=out + "/shards", executor=t._executor(actors=1),
                        progress=False)
""")


def test_a_killed_driver_resumes_from_finished_shards(
        ray_session, repo, manifest, prompt, local_rows, tiny_cache, tmp_path):
    key, local = local_rows
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(repo / "lib"), str(repo / "tests"), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(repo), str(tiny_cache),
                               str(tmp_path), ray_session], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = tmp_path / "shards" / key
    deadline = time.monotonic() + 240
    while not list(shards.glob("*.parquet")) and driver.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert driver.poll() is None, f"the driver ended early: {driver.stderr.read().decode()[-2000:]}"
    assert list(shards.glob("*.parquet")), "no shard finished within 240 s"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished = len(list(shards.glob("*.parquet")))
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_on_ray(MODEL, _options(tiny_cache), manifest, store, prompt, SETTINGS,
                                 shard_root=tmp_path / "shards", executor=_executor(),
                                 progress=False)
        rows = _rows(store.read(key))
    # The shards the killed driver finished were merged or cached, not run again.
    assert report.shards_cached + report.shards_merged >= finished >= 1
    assert report.shards_run == report.shards - report.shards_cached - report.shards_merged
    pd.testing.assert_frame_equal(rows, local)


def test_a_shard_of_unreadable_clips_is_counted_once(
        ray_session, repo, manifest, prompt, tiny_cache, tmp_path):
    demo = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", demo)
    first = plan_shards(plan_batches(manifest, SETTINGS.batch_size),
                        dict(zip(manifest["utt_id"], manifest["duration_s"])), SHARD_S)[0]
    import soundfile as sf
    for u in first.utt_ids:     # a WAV header with no samples: read fine, decodes to nothing
        sf.write(demo / "wav" / f"{u}.wav", [], 16000)
    broken = manifest.copy()
    broken["audio_path"] = [str(demo / "wav" / Path(p).name) for p in manifest["audio_path"]]
    broken.attrs = dict(manifest.attrs)
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_on_ray(MODEL, _options(tiny_cache), broken, store, prompt, SETTINGS,
                                 shard_root=tmp_path / "shards", executor=_executor(),
                                 progress=False)
        rows = store.read(report.generation.run_key)
    assert report.failed == ()          # failure rows from the shard, not a failed shard
    assert report.generation.unreadable_clips == first.n_clips
    bad = rows[rows["utt_id"].isin(first.utt_ids)]
    assert len(bad) == first.n_clips * 3 and not bad["parse_ok"].any()
    # named failure rows: unusable audio, with the reason (found when the Manifest was built)
    assert (bad["failure"] == "audio_error").all() and bad["parse_error"].str.contains("empty").all()
    assert rows[~rows["utt_id"].isin(first.utt_ids)]["parse_ok"].all()


class _Exploding:
    """The tiny model, except that any batch holding `bad` raises (and leaves a mark)."""

    def __init__(self, adapter, bad: str, marks: str):
        self._adapter, self._bad, self._marks = adapter, bad, Path(marks)

    def __getattr__(self, name):
        return getattr(self._adapter, name)

    def generate(self, clips, *args, **kwargs):
        if any(c.utt_id == self._bad for c in clips):
            (self._marks / f"{os.getpid()}-{time.monotonic_ns()}").touch()
            raise RuntimeError(f"model crashed on {self._bad}")
        return self._adapter.generate(clips, *args, **kwargs)


def _exploding_factory(bad: str, marks: str):
    def factory(model, **options):
        from ambiemo.alm import load_model
        return _Exploding(load_model(model, **options), bad, marks)
    return factory


def test_a_shard_that_keeps_failing_is_retried_a_bounded_number_of_times_then_counted(
        ray_session, manifest, prompt, tiny_cache, tmp_path):
    # The failing factory lives in this test module, which Ray's workers cannot import:
    # ship it by value (Ray pickles with its own vendored cloudpickle).
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    shards = plan_shards(plan_batches(manifest, SETTINGS.batch_size),
                         dict(zip(manifest["utt_id"], manifest["duration_s"])), SHARD_S)
    bad_shard = shards[1]
    marks = tmp_path / "marks"
    marks.mkdir()
    with SampleStore(tmp_path / "s.sqlite") as store:
        report = generate_on_ray(MODEL, _options(tiny_cache), manifest, store, prompt, SETTINGS,
                                 shard_root=tmp_path / "shards",
                                 executor=_executor(max_retries=2),
                                 factory=_exploding_factory(bad_shard.utt_ids[0], str(marks)),
                                 progress=False)
        rows = store.read(report.generation.run_key)
    assert len(list(marks.iterdir())) == 3          # the first try and max_retries retries
    assert [f.shard for f in report.failed] == [bad_shard.id]
    assert bad_shard.id in report.note and "model crashed" in report.note
    failed = rows[rows["utt_id"].isin(bad_shard.utt_ids)]
    assert len(failed) == bad_shard.n_clips * 3 and not failed["parse_ok"].any()
    assert failed["parse_error"].str.contains(f"ray shard {bad_shard.id} failed").all()
    others = rows[~rows["utt_id"].isin(bad_shard.utt_ids)]
    assert len(others) == (N_CLIPS - bad_shard.n_clips) * 3 and others["parse_ok"].all()


def test_the_generate_job_on_ray_runs_every_prompt_arm_as_one_process_would(
        ray_session, manifest, repo, tmp_path):
    """`run_generate_job` (what `--executor ray` runs) samples each prompt arm of a config
    into its own run key; the local generate stage then finds every row stored."""
    from ambiemo.config import load_config
    from ambiemo.pipeline import stages
    from ambiemo.sampling.executor_ray import run_generate_job

    (tmp_path / "configs").mkdir()
    (tmp_path / "lib" / "ambiemo").mkdir(parents=True)
    shutil.copytree(repo / "configs" / "prompts", tmp_path / "configs" / "prompts")
    path = tmp_path / "configs" / "arms.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: arms
        corpora: {{demo: {{root: {repo / 'data' / 'demo'}}}}}
        models: [sim-human]
        generation: {{prompts: [distribution, direct_label], n_samples: 2, batch_size: 4}}
        executor: {{kind: ray, address: {ray_session}, actors: 1, shard_audio_s: {SHARD_S}}}
        """))
    cfg = load_config(path, root=tmp_path)
    cfg.manifest_path("demo").parent.mkdir(parents=True)
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)
    by_arm = run_generate_job(cfg, "sim-human", "demo", progress=False)
    assert list(by_arm) == ["distribution", "direct_label"]
    reports = list(by_arm.values())
    assert len(reports) == 2 and all(not r.failed and r.shards_run for r in reports)
    keys = [r.generation.run_key for r in reports]
    assert len(set(keys)) == 2
    local = stages.generate(cfg, "sim-human", "demo", progress=False)
    assert [r.run_key for r in local.reports.values()] == keys
    assert all(r.rows_written == 0 and r.batches_run == 0 for r in local.reports.values())
    # the arms differ in form: stated distributions against one-word answers
    by_arm = local.samples[local.samples["kind"] == "sample"].groupby("prompt")["text"]
    assert by_arm.apply(lambda t: t.str.contains(":").all()).to_dict() == {
        "direct_label": False, "distribution": True}
