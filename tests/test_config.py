"""Study configs: every key checked, errors name the file and the key."""
import pytest

from ambiemo.config import ConfigError, load_config


def write(tmp_path, text):
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "lib" / "ambiemo").mkdir(parents=True, exist_ok=True)
    p = tmp_path / "configs" / "c.yaml"
    p.write_text(text)
    return p


BASE = "name: t\ncorpora:\n  demo: {root: data/demo}\nmodels: [tiny-qwen2-audio]\n"


def test_smoke_config_loads(repo):
    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert cfg.name == "smoke"
    assert cfg.models == ("tiny-qwen2-audio", "sim-human", "sim-constant")
    assert cfg.corpora["demo"].root == repo / "data" / "demo"
    assert cfg.generation.decoding.constrained is True
    assert cfg.run_dir == repo / "runs" / "smoke"


@pytest.mark.parametrize("extra, message", [
    ("seeed: 1\n", r"unknown key\(s\) \['seeed'\]"),
    ("generation: {n_sample: 4}\n", r"unknown key\(s\) \['n_sample'\] in generation"),
    ("generation: {decoding: {temp: 0.7}}\n", r"unknown key\(s\) \['temp'\] in generation.decoding"),
    ("generation: {decoding: {temperature: 0}}\n",
     "generation.decoding.temperature: 0: Input should be greater than 0"),
    ("scoring: {strategy: [greedy]}\n", r"unknown key\(s\) \['strategy'\] in scoring"),
    # prompt arms (generation.prompts): one form of naming them, each arm once, a list
    ("generation: {prompt: cot, prompts: [distribution]}\n", "either prompt .* or prompts"),
    ("generation: {prompts: [distribution, distribution]}\n", "listed once"),
    ("generation: {prompts: distribution}\n",
     "generation.prompts: 'distribution': must be a non-empty list"),
    ("generation: {prompts: []}\n", "generation.prompts: .*must be a non-empty list"),
    ("generation: {prompts: ['../x']}\n", r"prompts: '\.\./x'"),
    # issue #14: values are type- and range-checked
    ("generation: {greedy: 'no'}\n", "generation.greedy: 'no': Input should be a valid boolean"),
    ("generation: {n_samples: 2.5}\n", "generation.n_samples: 2.5: Input should be a valid integer"),
    ("generation: {n_samples: eight}\n", "generation.n_samples: 'eight': Input should be a valid integer"),
    ("seed: abc\n", "seed: 'abc': must be a whole number >= 0"),
    ("generation: {n_samples: 0, greedy: false}\n", "generation: nothing to generate"),
    ("generation: {seed: 3}\n", r"unknown key\(s\) \['seed'\] in generation"),
])
def test_bad_keys_and_values_are_named(tmp_path, extra, message):
    p = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(p)
    assert str(p) in str(err.value)


def test_missing_root_and_models(tmp_path):
    with pytest.raises(ConfigError, match="corpora.demo needs a root"):
        load_config(write(tmp_path, "name: t\ncorpora:\n  demo: {}\nmodels: [m]\n"))
    with pytest.raises(ConfigError, match="models must be a non-empty list"):
        load_config(write(tmp_path, "name: t\ncorpora:\n  demo: {root: x}\nmodels: []\n"))


def test_models_take_pinned_checkpoints_and_adapter_options(tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIEMO_TEST_MODELS", "/models")
    cfg = load_config(write(tmp_path, "name: t\ncorpora:\n  demo: {root: data/demo}\nmodels:\n"
                            "  - tiny-qwen2-audio\n"
                            "  - {name: qwen2-audio-7b-instruct, checkpoint: '${AMBIEMO_TEST_MODELS}/q2a',"
                            " revision: 0a1b2c, options: {dtype: bfloat16}}\n"))
    assert cfg.models == ("tiny-qwen2-audio", "qwen2-audio-7b-instruct")
    assert cfg.model_options("tiny-qwen2-audio") == {}
    assert cfg.model_options("qwen2-audio-7b-instruct") == {
        "checkpoint": "/models/q2a", "revision": "0a1b2c", "dtype": "bfloat16"}
    with pytest.raises(KeyError, match="model 'gpt-4o' is not in"):
        cfg.model_options("gpt-4o")


@pytest.mark.parametrize("models, message", [
    ("[{name: m, checkpont: x}]", r"unknown key\(s\) \['checkpont'\] in models\[0\] \(m\)"),
    ("[{checkpoint: x}]", r"models\[0\] must be a model name or a mapping with a name"),
    ("[m, {name: m}]", r"models\[1\]: model 'm' is listed twice"),
    ("[{name: m, options: {revision: x}}]", r"\['revision'\] go beside options"),
])
def test_bad_model_entries_are_named(tmp_path, models, message):
    p = write(tmp_path, f"name: t\ncorpora:\n  demo: {{root: x}}\nmodels: {models}\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_config(p)
    assert str(p) in str(err.value)


def test_unset_environment_variables_are_recorded_not_guessed(tmp_path, monkeypatch):
    monkeypatch.delenv("AMBIEMO_TEST_ROOT", raising=False)
    monkeypatch.setenv("AMBIEMO_TEST_SET", "/corpora")
    cfg = load_config(write(tmp_path, "name: t\ncorpora:\n  iemocap: {root: '${AMBIEMO_TEST_ROOT}/x'}\n"
                            "  crema_d: {root: '${AMBIEMO_TEST_SET}/crema'}\n"
                            "models: [{name: m, checkpoint: '${AMBIEMO_TEST_ROOT}'}]\n"))
    assert cfg.corpora["iemocap"].missing_env == ("AMBIEMO_TEST_ROOT",)
    assert str(cfg.corpora["iemocap"].root) == "${AMBIEMO_TEST_ROOT}/x"
    assert cfg.corpora["crema_d"].root.as_posix() == "/corpora/crema"
    assert cfg.corpora["crema_d"].missing_env == ()
    assert cfg.model_entries["m"].missing_env == ("AMBIEMO_TEST_ROOT",)


def test_beams_cot_and_verification(tmp_path, repo):
    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert cfg.generation.beams == 3
    assert (cfg.generation.cot.prompt, cfg.generation.cot.max_new_tokens) == ("cot", 16)
    v = cfg.verification
    assert (v.model, v.prompt, v.candidates, v.n) == ("tiny-qwen2-audio", "verifier", "sample", None)
    plain = load_config(write(tmp_path, BASE))
    assert plain.verification is None and plain.generation.cot is None and plain.generation.beams == 0


@pytest.mark.parametrize("extra, message", [
    ("verification: {model: m, candidates: greedy}\n",
     "verification.candidates: 'greedy': Input should be 'sample' or 'beam'"),
    ("verification: {model: m, n: 0}\n", "verification.n: 0: Input should be greater than or equal to 1"),
    ("verification: {prompt: verifier}\n", "verification needs a model"),
    ("verification: {model: m, judge: x}\n", r"unknown key\(s\) \['judge'\] in verification"),
    ("generation: {cot: {prompt: cot, tokens: 5}}\n", r"unknown key\(s\) \['tokens'\] in generation.cot"),
    ("generation: {beams: -1}\n", "generation.beams: -1: Input should be greater than or equal to 0"),
])
def test_bad_generation_and_verification_are_named(tmp_path, extra, message):
    p = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize("name", ["paper", "extended"])
def test_study_configs_load(repo, name):
    cfg = load_config(repo / "configs" / f"{name}.yaml")
    assert set(cfg.corpora) == {"iemocap", "msp_podcast", "crema_d"}
    # The corpus protocols: IEMOCAP's standard 4-class consensus set, MSP-Podcast's Test1;
    # every option is one the corpus's loader accepts.
    assert cfg.corpora["iemocap"].options == {"selection": "consensus"}
    assert cfg.corpora["msp_podcast"].options == {"split": "Test1"}
    from ambiemo.corpora import loader_options
    for c in cfg.corpora.values():
        assert set(c.options) <= set(loader_options(c.name))
    # GPT-4o audio (the study's verifier) is retired; its successor judges (configs say so).
    assert cfg.verification.model == "gpt-audio-1.5" and cfg.verification.n == 3
    # A hosted verifier answers with a 1-10 score, not token probabilities of Yes/No.
    assert cfg.verification.prompt == "verifier_score"
    from ambiemo.alm import MODELS
    assert set(cfg.models) <= set(MODELS)          # every model the study names is registered
    assert not [m for m in cfg.models if MODELS[m].retired]   # and none of them is retired
    assert cfg.generation.n_samples >= 5
    paper_models = {"qwen2-audio-7b-instruct", "qwen2.5-omni-7b", "audio-flamingo-3",
                    "ultravox-v0_3", "ultravox-v0_4",
                    # the successors of the study's retired hosted models (paper.yaml)
                    "gpt-audio-1.5", "gemini-3.5-flash", "gemini-3.1-pro-preview"}
    assert paper_models <= set(cfg.models)
    if name == "paper":
        assert set(cfg.models) == paper_models
        # every strategy the paper names, majority and dirichlet included
        assert cfg.scoring.strategies == ("greedy", "cot", "majority", "bon", "w_bon", "alm_v",
                                          "w_alm_v", "dirichlet", "vote_share")
        # BoN over B = 5 beams, the verifier judging B = 3 (issue #13)
        assert cfg.generation.beams == 5
    else:
        # every architecture (adapter) the registry serves has a model in the extended study
        served = {s.adapter for s in MODELS.values()
                  if not s.checkpoint.startswith(("tiny:", "sim:"))}   # test and simulated models
        assert served == {MODELS[m].adapter for m in cfg.models}
        assert {"majority", "label_logits", "dirichlet"} <= set(cfg.scoring.strategies)


def test_every_problem_is_listed_at_once(tmp_path):
    p = write(tmp_path, "name: ../../../tmp/x\nseed: abc\ncorpora:\n  demo: {root: data/demo}\n"
                        "models: [tiny-qwen2-audio]\ngeneration: {greedy: 'no', n_samples: 2.5, "
                        "decoding: {top_p: 2}}\nscoring: {n_boot: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    text = str(err.value)
    assert f"{p}: 6 problem(s)" in text, text
    for key in ("name: '../../../tmp/x': must be a plain folder name", "seed: 'abc'",
                "generation.decoding.top_p: 2: Input should be less than or equal to 1",
                "scoring.n_boot: 0"):
        assert key in text, text


@pytest.mark.parametrize("name", ["../../../tmp/x", "a/b", "..", ".hidden", "", "x" * 101, 7])
def test_name_must_be_a_plain_folder_name(tmp_path, name):
    p = write(tmp_path, BASE.replace("name: t", f"name: {name!r}" if name != 7 else "name: 7"))
    with pytest.raises(ConfigError, match="must be a plain folder name"):
        load_config(p)


def test_generation_settings_are_one_definition(repo):
    """The config's generation section is the sampler's settings (same class, same fields),
    and config imports no torch (the driver reads configs before any model is loaded)."""
    import subprocess
    import sys
    from dataclasses import fields

    from ambiemo.sampling import generate as runner
    from ambiemo.config import COT_MAX_NEW_TOKENS, GenerationConfig, GenerationSettings
    assert runner.GenerationSettings is GenerationSettings
    assert issubclass(GenerationConfig, GenerationSettings)
    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert cfg.generation.seed == cfg.seed and cfg.generation.cot_max_new_tokens == 16
    with pytest.raises(ValueError, match="cot_prompt must be given"):
        cfg.generation.settings()
    plain = GenerationSettings()
    assert plain.cot_max_new_tokens == COT_MAX_NEW_TOKENS == 256
    assert {f.name for f in fields(GenerationSettings)} == {
        "n_samples", "greedy", "decoding", "seed", "batch_size", "label_scores", "beams",
        "cot_prompt", "cot_max_new_tokens"}
    r = subprocess.run([sys.executable, "-c", "import ambiemo.config, sys; "
                        "assert 'torch' not in sys.modules, 'torch imported'"],
                       capture_output=True, text=True, cwd=repo)
    assert r.returncode == 0, r.stderr


def test_the_cluster_config_is_the_paper_config_on_ray(repo):
    """configs/cluster.yaml promises to be paper.yaml but for `name:` and `executor:`."""
    import dataclasses

    paper = load_config(repo / "configs" / "paper.yaml")
    cluster = load_config(repo / "configs" / "cluster.yaml")
    assert cluster.executor.kind == "ray" and cluster.name == "cluster"
    same = ("seed", "corpora", "model_entries", "generation", "verification", "scoring")
    for f in same:
        assert getattr(cluster, f) == getattr(paper, f), f
    # limit and output_dir are the command line's run options, never the file's.
    assert {f.name for f in dataclasses.fields(paper)} - set(same) == {
        "name", "path", "root", "executor", "limit", "output_dir"}
    assert cluster.limit is paper.limit is None and cluster.output_dir is paper.output_dir is None
