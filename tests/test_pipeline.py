"""run_all.sh end to end on the smoke config, and the pipeline's refusals."""
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline import plan, validate


def fake_repo(tmp_path, text):
    (tmp_path / "lib" / "ambiemo").mkdir(parents=True)
    (tmp_path / "configs" / "prompts").mkdir(parents=True)
    p = tmp_path / "configs" / "c.yaml"
    p.write_text(text)
    return load_config(p)


def test_validation_lists_every_problem_and_runs_nothing(tmp_path):
    cfg = fake_repo(tmp_path, "name: t\ncorpora:\n  crema_d: {root: /nowhere/crema}\n"
                              "  voxceleb: {root: .}\nmodels: [qwen9-audio]\n"
                              "scoring: {strategies: [greedy, best_of_all]}\n")
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    for needle in ["nothing was run", "root /nowhere/crema does not exist",
                   "unknown corpus 'voxceleb'", "model 'qwen9-audio'", "tiny-qwen2-audio",
                   "prompt 'direct_label' not found", "unknown strategy 'best_of_all'"]:
        assert needle in msg
    assert not (tmp_path / "runs").exists()


def test_plan_orders_stages_and_refuses_unknown_names(repo):
    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert [j.stage for j in plan(cfg)] == ["prepare", "generate", "score"]
    assert [j.stage for j in plan(cfg, stages=("score",))] == ["score"]
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]; valid: \['tiny-qwen2-audio'\]"):
        plan(cfg, models=["nope"])


def test_cli_reports_bad_config_without_traceback(repo, tmp_path):
    bad = repo / "configs" / "smoke.yaml"
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(bad), "--corpus", "iemocap"],
                       capture_output=True, text=True, cwd=repo)
    assert r.returncode == 2
    assert "unknown corpus(s) ['iemocap']; valid: ['demo']" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_all_regenerates_the_smoke_study(repo):
    """The README's first command, from a state with no outputs: every stage runs and the
    table and figures come back."""
    for d in ("runs/smoke", "tables/smoke", "figures/smoke"):
        shutil.rmtree(repo / d, ignore_errors=True)
    r = subprocess.run(["./run_all.sh"], cwd=repo, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "summary: 3 notebook(s) ok, 0 failed, 0 skipped" in r.stdout
    for nb in ("01_prepare_corpus__demo", "02_generate__demo__tiny-qwen2-audio", "04_score__demo"):
        assert (repo / "runs" / "smoke" / "executed" / f"{nb}.ipynb").is_file()
    for f in ("demo_js_divergence.png", "demo_human_entropy.png"):
        assert (repo / "figures" / "smoke" / f).stat().st_size > 10_000
    table = pd.read_csv(repo / "tables" / "smoke" / "demo_main.csv")
    assert (repo / "tables" / "smoke" / "demo_main.md").read_text().startswith("| model |")
    rows = set(zip(table["model"], table["strategy"]))
    assert rows == {("prior", "reference"), ("uniform", "reference"), ("rater_ceiling", "reference"),
                    ("tiny-qwen2-audio", "greedy"), ("tiny-qwen2-audio", "majority"),
                    ("tiny-qwen2-audio", "label_logits")}
    t = table.set_index("model")
    assert (table["js_divergence"].between(0, 1)).all()
    assert (table["js_divergence_lo"] <= table["js_divergence"]).all()
    assert (table["js_divergence"] <= table["js_divergence_hi"]).all()
    # the references bracket any sensible model: the ceiling beats the prior beats nothing
    assert t.loc["rater_ceiling", "js_divergence"] < t.loc["prior", "js_divergence"]
    assert t.loc["uniform", "accuracy"] == pytest.approx(0.25)
    # constrained decoding: every answer parsed, no prediction missing
    assert (table["n_missing"] == 0).all()
    # a second run resumes from the sample store and generates nothing new
    r2 = subprocess.run(["./run_all.sh", "--stage", "generate"], cwd=repo, capture_output=True,
                        text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    executed = (repo / "runs/smoke/executed/02_generate__demo__tiny-qwen2-audio.ipynb").read_text()
    assert "rows_written=0" in executed and "batches_run=0" in executed
