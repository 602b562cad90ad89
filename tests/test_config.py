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
    assert cfg.name == "smoke" and cfg.models == ("tiny-qwen2-audio",)
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
