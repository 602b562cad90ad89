"""run_all.sh and the pipeline: the plan, the checks before anything runs, the run summary,
and real runs of the notebooks."""
import json
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pandas as pd
import pytest

from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline.preflight import checkpoint_problem, validate
from ambiemo.pipeline.plan import Job, plan
from ambiemo.pipeline.status import Outcome, read_status, summarise, write_status


def fake_repo(tmp_path, text):
    (tmp_path / "lib" / "ambiemo").mkdir(parents=True, exist_ok=True)
    (tmp_path / "configs" / "prompts").mkdir(parents=True, exist_ok=True)
    p = tmp_path / "configs" / "c.yaml"
    p.write_text(text)
    return load_config(p)


def test_validation_lists_every_problem_and_runs_nothing(tmp_path):
    cfg = fake_repo(tmp_path, "name: t\ncorpora:\n  crema_d: {root: /nowhere/crema}\n"
                              "  voxceleb: {root: .}\n"
                              "  msp_podcast: {root: ., options: {partition: Test1}}\n"
                              "models: [qwen9-audio, sim-human]\n"
                              "scoring: {strategies: [greedy, best_of_all]}\n")
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    for needle in ["nothing was run", "corpora.crema_d.root: corpus 'crema_d': root "
                   "/nowhere/crema does not exist", "unknown corpus 'voxceleb'",
                   "unknown model 'qwen9-audio'", "registered models: [", "tiny-qwen2-audio",
                   "prompt 'direct_label' not found", "unknown strategy 'best_of_all'",
                   "corpora.msp_podcast.options: corpus 'msp_podcast': unknown option(s) "
                   "['partition']; valid: ['split']",
                   "notebook " + str(tmp_path / "notebooks" / "01_prepare_corpus.ipynb")]:
        assert needle in msg
    assert "sim-human" not in msg.split("registered models:")[0]   # simulated: always usable
    assert not (tmp_path / "runs").exists()


def test_strategies_need_what_the_config_generates(tmp_path):
    cfg = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: [tiny-qwen2-audio]\n"
                              "generation: {n_samples: 0, greedy: false, label_scores: true}\nscoring: {strategies: "
                              "[greedy, cot, bon, w_bon, bon_sample, majority, dirichlet, alm_v, w_alm_v]}\n")
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    for s in ("bon_sample", "majority", "dirichlet"):
        assert f"{s!r} needs generation.n_samples > 0" in msg
    for s in ("bon", "w_bon"):
        assert f"{s!r} needs generation.beams > 0" in msg
    for s in ("alm_v", "w_alm_v"):
        assert f"{s!r} needs a verification: section" in msg
    assert "'cot' needs generation.cot:" in msg
    assert "'greedy' needs generation.greedy: true" in msg
    only_greedy = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: "
                                      "[tiny-qwen2-audio]\ngeneration: {n_samples: 0}\n"
                                      "scoring: {strategies: [label_logits]}\n")
    with pytest.raises(ConfigError, match="'label_logits' needs generation.label_scores: true"):
        validate(only_greedy)
    beams = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: [tiny-qwen2-audio]\n"
                                "verification: {model: tiny-qwen2-audio, candidates: beam}\n"
                                "scoring: {strategies: [alm_v]}\n")
    with pytest.raises(ConfigError, match=r"verification.candidates: 'beam' but generation.beams is 0"):
        validate(beams)


def test_checkpoints_must_be_usable_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for var in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert checkpoint_problem("tiny:qwen2_audio", None, tmp_path) is None
    assert "set OPENAI_API_KEY" in checkpoint_problem("openai:gpt-4o-audio-preview", None, tmp_path)
    assert "set GEMINI_API_KEY or GOOGLE_API_KEY" in checkpoint_problem("gemini:gemini-2.5-pro", None, tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", "k-not-shown")
    assert checkpoint_problem("gemini:gemini-2.5-pro", None, tmp_path) is None
    missing = checkpoint_problem("Org/Audio-7B", "abc123", tmp_path)
    assert "checkpoint Org/Audio-7B@abc123 is not in the Hugging Face cache" in missing
    assert str(tmp_path / "hub") in missing
    # a snapshot in the hub cache, as huggingface_hub lays it out
    snap = tmp_path / "hub" / "models--Org--Audio-7B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert checkpoint_problem("Org/Audio-7B", "abc123", tmp_path) is None
    assert "local checkpoint directory" in checkpoint_problem("./ckpt/q2a", None, tmp_path)
    (tmp_path / "ckpt" / "q2a").mkdir(parents=True)
    (tmp_path / "ckpt" / "q2a" / "config.json").write_text("{}")
    assert checkpoint_problem("./ckpt/q2a", None, tmp_path) is None


def test_remote_code_models_need_a_pinned_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from ambiemo.pipeline.preflight import model_problems

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "c0ffee" * 6 + "c0ff"          # a full commit hash: 40 hex digits
    snap = tmp_path / "hub" / "models--fixie-ai--ultravox-v0_4" / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    unpinned = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: [ultravox-v0_4]\n")
    problems = model_problems(unpinned, "ultravox-v0_4", "models")
    assert len(problems) == 2 and "revision:" in problems[1]   # not cached unpinned, and unpinned
    pinned = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\n"
                                 f"models: [{{name: ultravox-v0_4, revision: {commit}}}]\n")
    assert model_problems(pinned, "ultravox-v0_4", "models") == []
    # models that run transformers' own code need no pin
    assert not any("revision:" in p for p in model_problems(unpinned, "qwen2-audio-7b-instruct", "models"))


def test_packages_a_model_needs_are_named_before_a_run(tmp_path, monkeypatch):
    import importlib.util

    from ambiemo.pipeline import preflight

    real = importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("peft", "mistral_common") else real(name, *a))
    cfg = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels:\n"
                              "  - phi-4-multimodal\n  - voxtral-mini-3b\n  - granite-speech-3.3-2b\n"
                              "  - {name: tiny-granite-speech}\n"
                              "  - {name: tiny-phi-4-multimodal, options: {speech_lora: null}}\n")
    needs = {m: [p for p in preflight.model_problems(cfg, m, "models") if "Python package" in p]
             for m in cfg.models}
    assert "'peft'" in needs["phi-4-multimodal"][0] and "speech_lora: null" in needs["phi-4-multimodal"][0]
    assert "pip install -e .[voxtral]" in needs["voxtral-mini-3b"][0]
    assert "'peft'" in needs["granite-speech-3.3-2b"][0]
    assert needs["tiny-granite-speech"] == needs["tiny-phi-4-multimodal"] == []
    # a pinned revision is part of the download command
    assert "--revision refs/pr/70" in " ".join(preflight.model_problems(cfg, "phi-4-multimodal", "models"))


def test_plan_orders_stages_and_refuses_unknown_names(repo, tmp_path):
    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert [j.stage for j in plan(cfg)] == ["prepare", *["generate"] * 3, *["verify"] * 3, "score",
                                            "analyse", "report"]
    assert plan(cfg, stages=("verify", "analyse")) == [
        Job("verify", "demo", m) for m in ("tiny-qwen2-audio", "sim-human", "sim-constant")
    ] + [Job("analyse")]
    assert Job("analyse").parameters(cfg) == {"config_path": str(cfg.path)}
    assert Job("verify", "demo", "m").output(cfg) == cfg.run_dir / "executed" / "03_verify__demo__m.ipynb"
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['nope'\]; valid: "
                                         r"\['tiny-qwen2-audio', 'sim-human', 'sim-constant'\]"):
        plan(cfg, models=["nope"])
    no_verifier = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: [m]\n")
    assert [j.stage for j in plan(no_verifier)] == ["prepare", "generate", "score", "analyse", "report"]


def test_a_failure_skips_what_depends_on_it_and_nothing_else():
    gen_a, gen_b = Job("generate", "demo", "a"), Job("generate", "demo", "b")
    assert Job("verify", "demo", "a").depends_on(gen_a)
    assert not Job("verify", "demo", "a").depends_on(gen_b)
    assert not Job("generate", "iemocap", "a").depends_on(Job("prepare", "demo"))
    assert Job("score", "demo").depends_on(gen_b)
    assert Job("analyse").depends_on(Job("score", "demo"))
    assert not Job("report").depends_on(Job("score", "demo"))


def test_status_files_feed_the_summary(repo, tmp_path):
    cfg = fake_repo(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\nmodels: [m]\n")
    gen = Job("generate", "demo", "m")
    path = write_status(cfg, "generate", corpus="demo", model="m", ran=0, cached=3,
                        note="all 3 batches came from the sample store")
    assert path == tmp_path / "runs" / "t" / "status" / "02_generate__demo__m.json"
    assert read_status(path) == ("cached", "all 3 batches came from the sample store")
    write_status(cfg, "verify", corpus="demo", model="m", ran=2, cached=1, failed=1, note="timeout")
    verify = Job("verify", "demo", "m")
    assert read_status(verify.status_path(cfg)) == ("failed", "1 failed, 2 ran, 1 cached: timeout")
    assert read_status(tmp_path / "absent.json") == ("ran", "")
    path.write_text("{not json")
    assert read_status(path)[0] == "failed" and str(path) in read_status(path)[1]
    with pytest.raises(ValueError, match="counts non-negative ints"):
        write_status(cfg, "generate", corpus="demo", model="m", ran=-1)
    text = summarise(cfg, [Outcome(Job("prepare", "demo"), "ran", 1.0),
                           Outcome(gen, "cached", 0.5, "all 3 batches came from the sample store"),
                           Outcome(verify, "failed", 0.5, "boom"),
                           Outcome(Job("score", "demo"), "skipped", 0.0, "its inputs failed")])
    assert "cached   02_generate [demo, m]: all 3 batches came from the sample store" in text
    assert "FAILED   03_verify [demo, m]: boom" in text
    assert "skipped  04_score [demo]: its inputs failed" in text
    assert "summary: 1 ran, 1 from cache, 1 skipped, 1 failed" in text
    assert "  generate          0        1        0        0" in text


def clean_env(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-hub")
    return env


def listing(path):
    return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*")) if path.exists() else None


def test_paper_config_without_corpora_fails_at_once_naming_each(repo, tmp_path, monkeypatch):
    from ambiemo.alm import MODELS

    env = clean_env(tmp_path)
    roots = {v: str(tmp_path / v.lower()) for v in ("IEMOCAP_ROOT", "MSP_PODCAST_ROOT", "CREMA_D_ROOT")}
    before = listing(repo / "runs" / "paper")
    t0 = time.perf_counter()
    r = subprocess.run(["./run_all.sh", "configs/paper.yaml"], cwd=repo, capture_output=True,
                       text=True, timeout=600, env={**env, **roots})
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "nothing was run" in r.stderr and "Traceback" not in r.stderr
    for var, root in roots.items():
        assert f"root {root} does not exist" in r.stderr
    cfg = load_config(repo / "configs" / "paper.yaml")
    lines = r.stderr.splitlines()
    for name in cfg.models:   # one line per model: unknown, or its checkpoint and what is missing
        line = next((ln for ln in lines if ln.strip().startswith("models: ") and f"{name!r}" in ln), "")
        assert f"unknown model {name!r}" in line or "checkpoint " in line, (name, r.stderr)
        if "checkpoint " in line and name in MODELS:
            assert MODELS[name].checkpoint in line
            if MODELS[name].checkpoint.startswith("openai:"):
                assert "set OPENAI_API_KEY" in line
        if name.startswith("ultravox"):   # remote code: loading refuses an unpinned commit
            assert any(f"model {name!r} runs the code shipped with" in ln
                       and "revision:" in ln for ln in lines), r.stderr
    assert listing(repo / "runs" / "paper") == before
    assert time.perf_counter() - t0 < 120
    # the corpora's variables unset: each is named, with the key that needs it
    for var in roots:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as err:
        validate(load_config(repo / "configs" / "paper.yaml"))
    for key, var in (("iemocap", "IEMOCAP_ROOT"), ("msp_podcast", "MSP_PODCAST_ROOT"),
                     ("crema_d", "CREMA_D_ROOT")):
        assert f"corpora.{key}.root: ${{{var}}} needs environment variable(s) {var}" in str(err.value)


def test_cli_reports_bad_config_without_traceback(repo, tmp_path):
    bad = repo / "configs" / "smoke.yaml"
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(bad), "--corpus", "iemocap"],
                       capture_output=True, text=True, cwd=repo)
    assert r.returncode == 2
    assert "unknown corpus(s) ['iemocap']; valid: ['demo']" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture()
def own_config(repo, tmp_path):
    """A small study config of this test's own (the demo corpus, the tiny model, the
    strategies the plain sampler serves), its outputs removed afterwards."""
    name = f"test-pipeline-{os.getpid()}"

    def make(extra=""):
        p = tmp_path / "c.yaml"
        p.write_text(f"name: {name}\ncorpora:\n  demo: {{root: data/demo{extra}}}\n"
                     "models: [tiny-qwen2-audio]\ngeneration: {n_samples: 2, label_scores: true,"
                     " decoding: {max_new_tokens: 8, constrained: true}}\n"
                     "scoring: {strategies: [greedy, majority, label_logits], n_boot: 50}\n")
        return p
    yield make
    for d in ("runs", "tables", "figures"):
        shutil.rmtree(repo / d / name, ignore_errors=True)


def test_stages_run_the_notebooks_and_build_the_report(repo, own_config):
    """One real notebook and the report over its outputs (the whole chain runs in
    test_run_all_regenerates_the_smoke_study)."""
    config = own_config()
    cfg = load_config(config, root=repo)
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(config), "--stage", "prepare",
                        "--stage", "report"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "summary: 2 ran, 0 from cache, 0 skipped, 0 failed" in r.stdout
    index = cfg.run_dir / "report" / "index.html"
    html = index.read_text()
    assert (cfg.run_dir / "executed" / "01_prepare_corpus__demo.ipynb").is_file()
    assert "href='notebooks/01_prepare_corpus__demo.html'" in html
    page = (index.parent / "notebooks" / "01_prepare_corpus__demo.html").read_text()
    assert "clips" in page
    # Figures show inline in a notebook kernel (papermill's too), not as "<Figure size ...>";
    # the report's notebook page shows them as images.
    executed = nbformat.read(cfg.run_dir / "executed" / "01_prepare_corpus__demo.ipynb", 4)
    outputs = [o for c in executed.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any("<Figure size" in str(o.get("data", {}).get("text/plain", ""))
                   and "image/png" not in o.get("data", {}) for o in outputs)
    assert "<img" in page
    figures = sorted(p.name for p in cfg.figure_dir.glob("*.png"))
    assert figures and all(f"<img src='figures/{f}'" in html for f in figures)
    tables = sorted(p.name for p in cfg.table_dir.glob("*.csv"))
    assert tables and all(f"href='tables/{t}'" in html for t in tables)
    rows = json.loads((cfg.run_dir / "status" / "summary.json").read_text())
    assert [(x["stage"], x["state"]) for x in rows] == [("prepare", "ran"), ("report", "ran")]
    # runs/<name>/results.json: config, packages, git, machine, times; Versions shows the commit
    results = json.loads((cfg.run_dir / "results.json").read_text())
    assert results["config"] == config.read_text()
    assert results["packages"]["pandas"] == pd.__version__
    assert len(results["git"]["commit"]) == 40 and isinstance(results["git"]["dirty"], bool)
    assert results["machine"]["cpu_count"] >= 1 and results["started"] < results["ended"]
    assert [j["stage"] for j in results["jobs"]] == ["prepare"]
    assert results["git"]["commit"] in html


def test_a_failed_notebook_skips_its_dependants_and_exits_non_zero(repo, own_config, tmp_path):
    # A corpus whose votes file names a class outside its label space: only the loader,
    # reading the file, can tell (preflight checks names and paths, not file contents).
    broken = tmp_path / "demo"
    shutil.copytree(repo / "data" / "demo", broken)
    votes = (broken / "votes.csv").read_text().replace("votes_angry", "votes_99class", 1)
    (broken / "votes.csv").write_text(votes)
    config = own_config()
    config.write_text(config.read_text().replace("{root: data/demo}", f"{{root: {broken}}}"))
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(config), "--stage", "prepare",
                        "--stage", "generate", "--stage", "score", "--stage", "report"],
                       cwd=repo, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FAILED   01_prepare_corpus [demo]: " in r.stdout and "99class" in r.stdout
    assert "skipped  02_generate [demo, tiny-qwen2-audio]: its inputs failed (01_prepare_corpus [demo])" in r.stdout
    assert "summary: 1 ran, 0 from cache, 2 skipped, 1 failed" in r.stdout
    index = load_config(config, root=repo).run_dir / "report" / "index.html"
    assert "<tr class='failed'><td>prepare</td>" in index.read_text()


def test_run_all_regenerates_the_smoke_study(repo):
    """The README's first command, from a state with no outputs: every stage runs and the
    tables, figures and report come back; a rerun takes its samples from the store."""
    for d in ("runs/smoke", "tables/smoke", "figures/smoke"):
        shutil.rmtree(repo / d, ignore_errors=True)
    r = subprocess.run(["./run_all.sh"], cwd=repo, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # prepare, 3 x generate, 3 x verify (tiny-qwen2-audio, sim-human, sim-constant), score,
    # analyse, report
    assert "summary: 10 ran, 0 from cache, 0 skipped, 0 failed" in r.stdout
    for nb in ("01_prepare_corpus__demo", "02_generate__demo__tiny-qwen2-audio",
               "03_verify__demo__tiny-qwen2-audio", "02_generate__demo__sim-human",
               "03_verify__demo__sim-constant", "04_score__demo", "05_capacity_vs_ambiguity"):
        assert (repo / "runs" / "smoke" / "executed" / f"{nb}.ipynb").is_file()
        assert (repo / "runs" / "smoke" / "report" / "notebooks" / f"{nb}.html").is_file()
    # Every figure of the study, as PNG and PDF (issue: one function each in ambiemo.outputs.figures).
    figures = ["demo_human_entropy", "demo_entropy_pred_vs_human", "demo_reliability",
               "demo_scaling_curves"]
    figures += [f"demo_by_ambiguity_{m}" for m in ("js_divergence", "bhattacharyya_coefficient",
                                                    "r2", "accuracy", "macro_f1")]
    figures += [f"demo_gain_vs_ambiguity_{m}" for m in ("js_divergence", "accuracy")]
    # the paper figures, one file each with its caption; the smoke study has three models
    # of known (two of them made-up) size, so capacity is drawn -- and its fit is "not
    # estimable" (fewer than 4 models), which the table says instead of a p-value
    figures += [f"demo_paper_{f}" for f in ("metric_by_ambiguity", "gain_by_ambiguity",
                                            "gain_by_ambiguity_complete_case",
                                            "scaling", "cost", "capacity")]
    figures += [f"demo_capacity_{m}" for m in ("js_divergence", "accuracy")]
    # the second prompt arm (direct_label) has its own paper figures; the main arm
    # (distribution) keeps the plain stems
    figures += [f"demo_paper_{f}__direct_label" for f in (
        "metric_by_ambiguity", "gain_by_ambiguity", "scaling", "cost", "capacity")]
    for stem in figures:
        if stem.startswith("demo_paper_"):
            assert (repo / "figures" / "smoke" / f"{stem}.txt").read_text().strip(), stem
    assert "not estimable" in (repo / "tables" / "smoke" / "capacity_fit.md").read_text()
    for stem in figures:
        for ext, least in (("png", 10_000), ("pdf", 5_000)):
            assert (repo / "figures" / "smoke" / f"{stem}.{ext}").stat().st_size > least, stem
    for stem in ("demo_main", "capacity_fit", "reported_vs_reproduced", "demo_corpus_statistics",
                 "demo_comparisons", "demo_gain_by_ambiguity"):
        for ext in ("csv", "md", "tex"):
            assert (repo / "tables" / "smoke" / f"{stem}.{ext}").is_file(), (stem, ext)
    # protocol v3: every strategy and control against greedy, in every form, clusters named
    from ambiemo.analysis.comparisons import COMPARISON_COLUMNS
    comparisons = pd.read_csv(repo / "tables" / "smoke" / "demo_comparisons.csv")
    assert list(comparisons.columns) == COMPARISON_COLUMNS
    assert set(comparisons["form"]) == {"all", "complete_case", "no_one_hot"}
    assert {"first_parsable", "greedy_smoothed"} <= set(comparisons["strategy"])
    assert set(comparisons["scheme"].dropna()) == {"speaker x sentence"}
    assert "Resampling: speakers and sentences as crossed clusters" in (
        repo / "tables" / "smoke" / "demo_main.md").read_text()
    table = pd.read_csv(repo / "tables" / "smoke" / "demo_main.csv")
    assert "| model | prompt | strategy |" in (repo / "tables" / "smoke" / "demo_main.md").read_text()
    cfg = load_config(repo / "configs" / "smoke.yaml")
    arms, strategies = cfg.generation.prompts, cfg.scoring.strategies
    assert arms == ("distribution", "direct_label")
    for m in ("tiny-qwen2-audio", "sim-human", "sim-constant"):   # one pointer per arm
        for arm in arms:
            assert (repo / "runs/smoke/samples" / f"{m}__demo__{arm}.json").is_file()
    rows = set(zip(table["model"], table["prompt"], table["strategy"]))
    models = ("tiny-qwen2-audio", "sim-human", "sim-constant")
    references = {(r, "-", "reference") for r in ("prior", "uniform", "new_raters",
                                                  "egemaps_soft")}
    controls = {"greedy_smoothed", "label_logits_tempered"}   # cross-fitted, per model and arm
    assert rows == references | {(m, a, s) for m in models for a in arms
                                 for s in (*strategies, *controls)}
    # dirichlet pools distributions: unavailable wherever the candidates are one-hot (every
    # direct_label arm; the tiny model, constrained to class names, in both arms), scored
    # for sim-human's distribution arm
    gone = table[table["row_type"] == "unavailable"]
    assert set(gone["strategy"]) == {"dirichlet"} and gone["note"].str.contains("one-hot").all()
    assert set(zip(gone["model"], gone["prompt"])) == {(m, a) for m in models for a in arms} - {
        ("sim-human", "distribution")}
    table = table[table["row_type"] != "unavailable"]
    t = table.set_index("model")
    assert (table["js_divergence"].between(0, 1)).all()
    assert (table["js_divergence_lo"] <= table["js_divergence"]).all()
    assert (table["js_divergence"] <= table["js_divergence_hi"]).all()
    # a second rater panel agrees with the first better than the prior does
    assert t.loc["new_raters", "js_divergence"] < t.loc["prior", "js_divergence"]
    assert t.loc["uniform", "accuracy"] == pytest.approx(0.25)
    # constrained decoding: every sampled, beam and verified answer parsed, none missing;
    # only CoT (unconstrained; the random model never writes "Answer:") is all missing.
    for arm in arms:
        by = table[(table["model"] == "tiny-qwen2-audio") & (table["prompt"] == arm)]
        by = by.set_index("strategy")
        assert (by.drop(index="cot")["missing_share"] == 0).all(), arm
        assert by.loc["cot", "missing_share"] == 1, arm
    # the simulated models' numbers are known: sim-constant answers "neutral" everywhere, so
    # every strategy's accuracy in either arm is the share of neutral majorities; sim-human's
    # label_logits is the human distribution itself
    from ambiemo import corpora
    majority = corpora.load("demo", repo / "data" / "demo")["majority"].dropna()
    share = float((majority == "neutral").mean())
    const = table[table["model"] == "sim-constant"]
    assert len(const) == 2 * (len(strategies) + len(controls) - 1)
    assert const["accuracy"].to_numpy() == pytest.approx(share)
    human = table[table["model"] == "sim-human"].set_index(["prompt", "strategy"])
    for arm in arms:
        assert human.loc[(arm, "label_logits"), "js_divergence"] < 1e-5
    assert (human[["missing_share"]] == 0).all().all()
    # the candidates' form decides by itself: the same sim-human greedy answer as a stated
    # distribution (the most likely of 10 listeners' count vectors) is far closer to the
    # humans than as one word, with the same top class
    dist, word = (human.loc[(a, "greedy")] for a in arms)
    assert dist["js_divergence"] < 0.05 < 0.1 < word["js_divergence"]
    assert dist["accuracy"] == word["accuracy"] == 1
    # protocol v3: CoT answers in the arm's form (a distribution final line in the
    # distribution arm), and every row says how often its candidates were one-hot
    assert human.loc[("distribution", "cot"), "js_divergence"] < 0.05
    # (a unanimous clip's most likely 10-listener split is one-hot: greedy and cot alike)
    assert human.loc[("distribution", "cot"), "one_hot_share"] == pytest.approx(
        human.loc[("distribution", "greedy"), "one_hot_share"])
    assert 0 < human.loc[("distribution", "greedy"), "one_hot_share"] < 0.5
    words = human.loc["direct_label"].drop(index=["label_logits", "label_logits_tempered"])
    assert (words["one_hot_share"].dropna() == 1).all()   # class-name scores are no answer
    # a second run resumes from the sample store, generates nothing new and says so
    r2 = subprocess.run(["./run_all.sh", "--stage", "generate", "--stage", "verify"], cwd=repo,
                        capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-3000:]
    assert "cached   02_generate [demo, tiny-qwen2-audio]" in r2.stdout
    assert "cached   03_verify [demo, tiny-qwen2-audio]" in r2.stdout
    executed = (repo / "runs/smoke/executed/02_generate__demo__tiny-qwen2-audio.ipynb").read_text()
    assert "rows_written=0" in executed and "batches_run=0" in executed
