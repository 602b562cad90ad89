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
    ("generation: {decoding: {temperature: 0}}\n", "temperature must be > 0"),
    ("scoring: {strategy: [greedy]}\n", r"unknown key\(s\) \['strategy'\] in scoring"),
])
def test_bad_keys_are_named(tmp_path, extra, message):
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
    ("verification: {model: m, candidates: greedy}\n", "candidates must be 'sample' or 'beam'"),
    ("verification: {model: m, n: 0}\n", "n must be >= 1"),
    ("verification: {prompt: verifier}\n", "verification needs a model"),
    ("verification: {model: m, judge: x}\n", r"unknown key\(s\) \['judge'\] in verification"),
    ("generation: {cot: {prompt: cot, tokens: 5}}\n", r"unknown key\(s\) \['tokens'\] in generation.cot"),
    ("generation: {beams: -1}\n", "n_samples and beams must be >= 0"),
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
        assert cfg.scoring.strategies == ("greedy", "cot", "bon", "w_bon", "alm_v", "w_alm_v",
                                          "vote_share")
        # BoN over B = 5 beams, the verifier judging B = 3 (issue #13)
        assert cfg.generation.beams == 5
    else:
        # every architecture (adapter) the registry serves has a model in the extended study
        served = {s.adapter for s in MODELS.values()
                  if not s.checkpoint.startswith(("tiny:", "sim:"))}   # test and simulated models
        assert served == {MODELS[m].adapter for m in cfg.models}
        assert {"majority", "label_logits", "dirichlet"} <= set(cfg.scoring.strategies)
