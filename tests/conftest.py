"""Shared fixtures: the repository root, the demo Manifest, and tiny checkpoints built once
per test session (offline, through save_pretrained/from_pretrained)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

import cpu_extras

# Before anything imports transformers (it checks for torchvision once, at import).
cpu_extras.install()

REPO = Path(__file__).resolve().parents[1]

# Hypothesis: in CI (CI=true) every run draws the same examples (derandomize, no example
# database), so a red CI run is reproducible and a rare draw cannot flip CI at random; the
# example is printed to reproduce it locally. Elsewhere the default random profile explores.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A cache folder for tiny checkpoints, private to this test session."""
    return tmp_path_factory.mktemp("ambiemo-cache")


@pytest.fixture(scope="session")
def tiny_qwen2_audio(tiny_cache):
    from ambiemo.alm import load_model
    return load_model("tiny-qwen2-audio", cache_dir=tiny_cache, device="cpu")


@pytest.fixture()
def demo_manifest():
    from ambiemo import corpora
    return corpora.load("demo", REPO / "data" / "demo")


def pytest_configure(config):
    # `slow`: minutes, not seconds (the soak test); still run by ./run_tests.sh and CI.
    config.addinivalue_line("markers", "slow: takes minutes; run by ./run_tests.sh and in CI "
                                       "(deselect locally with -m 'not slow')")
