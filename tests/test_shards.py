"""Shards of a generation run (ambiemo.sampling.shards): whole batches, Parquet files that keep every
value, merged into the store whole or not at all. No Ray needed."""
from __future__ import annotations

import pytest

from ambiemo.sampling.store import SampleStore
from ambiemo.config import ConfigError, load_config
from ambiemo.sampling.shards import merge_shard, plan_shards, read_shard, shard_exists, write_shard

ROWS = [
    {"utt_id": "a", "kind": "sample", "idx": 0, "text": "sad", "logprob": -0.1234567890123,
     "n_tokens": 2, "dist": [0.0, 1.0], "parse_ok": True, "parse_error": "", "seconds": 0.5},
    {"utt_id": "a", "kind": "sample", "idx": 1, "text": "", "logprob": None, "n_tokens": None,
     "dist": None, "parse_ok": False, "parse_error": "audio: empty", "seconds": None},
    {"utt_id": "b", "kind": "label_score", "idx": 0, "text": "", "logprob": None,
     "n_tokens": 0, "dist": [0.25, 0.75], "parse_ok": True, "parse_error": "", "seconds": 0.1},
]


def test_shards_are_whole_consecutive_batches_cut_by_audio_seconds():
    batches = [["a", "b"], ["c", "d"], ["e", "f"], ["g"]]
    durations = {u: 2.0 for u in "abcdefg"} | {"g": None}
    shards = plan_shards(batches, durations, shard_audio_s=7.0)
    assert [s.batches for s in shards] == [(("a", "b"), ("c", "d")), (("e", "f"), ("g",))]
    assert [s.utt_ids for s in shards][1] == ["e", "f", "g"]
    # The id names the clips: another cut never reuses a shard file.
    assert shards[0].id != plan_shards(batches[1:], durations, 7.0)[0].id
    assert plan_shards(batches, durations, 7.0) == shards
    with pytest.raises(ValueError, match="shard_audio_s must be positive"):
        plan_shards(batches, durations, 0)


def test_a_shard_file_keeps_every_value_and_is_written_atomically(tmp_path):
    uri = str(tmp_path / "run" / "00000-x.parquet")
    assert not shard_exists(uri)
    write_shard(uri, ROWS)
    assert shard_exists(uri)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["00000-x.parquet"]  # no .tmp-
    back = read_shard(uri)
    assert back == [{"score": None, "failure": "", "served_model": None, **r} for r in ROWS]


def test_merge_is_whole_once_and_refuses_rows_written_by_another_run(tmp_path):
    uri = str(tmp_path / "s1.parquet")
    write_shard(uri, ROWS)
    with SampleStore(tmp_path / "s.sqlite") as store:
        store.register_run("k", "m", {}, ["happy", "sad"])
        assert merge_shard(store, "k", uri) == 3
        assert merge_shard(store, "k", uri) == 0          # a rerun merges nothing twice
        df = store.read("k")
        assert df.loc[df["idx"].eq(0) & df["kind"].eq("sample"), "logprob"].item() == \
            ROWS[0]["logprob"]
        other = str(tmp_path / "s2.parquet")
        write_shard(other, ROWS[:1] + [{**ROWS[0], "utt_id": "c"}])
        with pytest.raises(ValueError, match=r"s2.parquet: 1 of its 2 rows are already in the "
                                             r"store \(run k\)"):
            merge_shard(store, "k", other)
        assert len(store.read("k")) == 3


def test_an_unreadable_shard_file_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="bad.parquet: not a readable shard file"):
        read_shard(str(bad))


def test_executor_section_is_checked(tmp_path, repo):
    cfg = load_config(repo / "configs" / "cluster.yaml")
    assert (cfg.executor.kind, cfg.executor.address, cfg.executor.max_retries) == ("ray", "auto", 2)
    assert load_config(repo / "configs" / "smoke.yaml").executor.kind == "local"
    text = (repo / "configs" / "smoke.yaml").read_text()
    for bad, message in (("{kind: slurm}", "executor.kind: 'slurm': Input should be 'local' or 'ray'"),
                         ("{kind: ray, actors: 0}", "executor.actors: 0: Input should be greater than or equal to 1"),
                         ("{kind: ray, retries: 2}",
                          r"unknown key\(s\) \['retries'\] in executor")):
        path = tmp_path / "c.yaml"
        path.write_text(text + f"executor: {bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path, root=repo)


def test_the_command_line_executor_overrides_the_config(repo):
    from ambiemo.pipeline.run import with_executor

    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert with_executor(cfg, None, None) is cfg
    ray_cfg = with_executor(cfg, "ray", "127.0.0.1:6379")
    assert (ray_cfg.executor.kind, ray_cfg.executor.address) == ("ray", "127.0.0.1:6379")
    assert ray_cfg.executor.max_retries == cfg.executor.max_retries
    assert ray_cfg.generation == cfg.generation
    cluster = load_config(repo / "configs" / "cluster.yaml")
    assert with_executor(cluster, None, "head:6379").executor.kind == "ray"
