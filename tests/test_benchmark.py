"""benchmarks/bench_sampling.py runs end to end on the CPU with the tiny model: a correctness
run (every path produces N responses of the forced length; scores sum to 1; beams come
back; the shared prompt cache is smaller than the repeated one), not a timing."""
import json
import subprocess
import sys


def test_bench_sampling_runs_on_cpu(repo, tmp_path, tiny_cache):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "bench_sampling.py"), "--model", "tiny",
         "--device", "cpu", "--clips", "3", "--n", "2", "--new-tokens", "4", "--batch", "2",
         "--naive-clips", "2", "--cache-dir", str(tiny_cache), "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for field in ("naive", "engine", "engine_repeat", "label_scores", "beam_search",
                  "engine / naive", "clips/s", "peak", "KV cache repeat / shared"):
        assert field in proc.stdout
    r = json.loads(out.read_text())
    assert r["n"] == 2 and r["new_tokens"] == 4 and r["ratio"] > 0
    for phase in ("naive", "engine", "engine_repeat", "label_scores", "beam_search"):
        assert r[phase]["clips_per_s"] > 0 and r[phase]["peak_gib"] > 0
    # batch 2, N = 2: the repeated cache holds each prompt twice, the shared one once.
    assert 1.2 < r["kv_cache_repeat / shared"] < 2.0
