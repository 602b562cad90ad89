"""02_generate and 03_verify run with every architecture: each `tiny-<arch>` registry entry
generates (greedy, samples, beams, class-name scores) and judges its own candidates through
the notebooks, executed by papermill exactly as run_all.sh executes them.

tests/test_adapters.py checks each adapter method against a forward pass; this checks that
the runner, the sample store and the notebooks take any registered model name (#5: "02_generate
and 03_verify run with any registered model name"). Each model gets its own small study
config (the verifier is the model itself) in a scratch repository root, so nothing is written
into the checkout.
"""
import json

import pytest

from ambiemo import corpora
from ambiemo.alm import MODELS
from ambiemo.sampling.store import SampleStore
from ambiemo.config import load_config

TINY = sorted(n for n, s in MODELS.items() if s.checkpoint.startswith("tiny:"))
N_SAMPLES, BEAMS = 2, 2
CONFIG = """name: every-{name}
seed: 0
corpora:
  demo: {{root: data/demo}}
models: [{name}]
generation:
  prompt: direct_label
  n_samples: {n}
  greedy: true
  label_scores: true
  beams: {beams}
  batch_size: 8
  device: cpu
  decoding: {{temperature: 1.0, top_p: 1.0, top_k: 0, max_new_tokens: 8, constrained: true}}
verification: {{model: {name}, prompt: verifier, candidates: sample}}
scoring: {{strategies: [greedy, bon, alm_v, label_logits]}}
"""


@pytest.fixture(scope="module")
def study_root(tmp_path_factory, repo):
    """A scratch repository root: configs, prompts and the demo corpus of the checkout, and
    an IPython startup file that gives every kernel the CPU test extras (tests/cpu_extras.py)."""
    root = tmp_path_factory.mktemp("every-model")
    (root / "lib" / "ambiemo").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "configs" / "prompts").symlink_to(repo / "configs" / "prompts")
    (root / "data").mkdir()
    (root / "data" / "demo").symlink_to(repo / "data" / "demo")
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-cpu-extras.py").write_text(
        f"import sys\nsys.path.insert(0, {str(repo / 'tests')!r})\n"
        "import cpu_extras\ncpu_extras.install()\n")
    return root


@pytest.mark.parametrize("name", TINY)
def test_generate_and_verify_notebooks_run_with_the_model(name, study_root, repo, tiny_cache,
                                                          monkeypatch):
    from ambiemo.pipeline.run import execute_notebook

    monkeypatch.setenv("IPYTHONDIR", str(study_root / "ipython"))
    monkeypatch.setenv("AMBIEMO_CACHE", str(tiny_cache))   # tiny checkpoints built once
    path = study_root / "configs" / f"every-{name}.yaml"
    path.write_text(CONFIG.format(name=name, n=N_SAMPLES, beams=BEAMS))
    cfg = load_config(path, root=study_root)
    manifest = corpora.load("demo", cfg.corpora["demo"].root)
    cfg.manifest_path("demo").parent.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)

    params = {"config_path": f"configs/{path.name}", "corpus": "demo", "model": name}
    for nb in ("02_generate", "03_verify"):
        execute_notebook(repo / "notebooks" / f"{nb}.ipynb", cfg.run_dir / f"{nb}.ipynb",
                         params, study_root)
        status = json.loads((cfg.run_dir / "status" / f"{nb}__demo__{name}.json").read_text())
        assert status["failed"] == 0 and status["ran"] > 0, (nb, status)

    n_clips = len(manifest)
    with SampleStore(cfg.store_path) as store:
        samples = store.read(json.loads(cfg.samples_pointer(name, "demo").read_text())["run_key"])
        verdicts = store.read(json.loads(cfg.verify_pointer(name, "demo").read_text())["run_key"])
    assert samples.groupby("kind").size().to_dict() == {
        "greedy": n_clips, "sample": n_clips * N_SAMPLES, "beam": n_clips * BEAMS,
        "label_score": n_clips}
    # constrained decoding: every answer spells a class name; no clip failed
    assert samples["parse_ok"].all() and (samples["parse_error"] == "").all()
    classes = [f"p_{c}" for c in manifest.attrs["classes"]]
    scores = samples[samples["kind"] == "label_score"][classes]
    assert scores.sum(axis=1).round(6).eq(1).all()
    # the model judged each of its sampled candidates once, with a probability of "Yes"
    assert len(verdicts) == n_clips * N_SAMPLES
    assert verdicts["score"].between(0, 1).all()
    assert not (repo / "runs" / f"every-{name}").exists()   # the checkout is untouched
