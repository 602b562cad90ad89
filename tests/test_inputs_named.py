"""Bad input is named before work, with the file, line, key or value and what to do
(issue #25): non-UTF-8 votes files and file names, vote columns outside the label space, a
label space the corpus lacks, a remote-code revision that is not a commit, a token limit
beyond the model's context, and a store emptied under its pointers."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ambiemo import corpora
from ambiemo.config import ConfigError, load_config
from ambiemo.pipeline.plan import plan
from ambiemo.pipeline.preflight import model_problems, validate
from test_config import write as write_config

FULL = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture()
def demo_copy(repo, tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    shutil.copy(repo / "data" / "demo" / "votes.csv", root / "votes.csv")
    return root


def test_a_votes_file_that_is_not_utf8_names_the_file_line_and_what_to_do(demo_copy):
    path = demo_copy / "votes.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",", b",caf\xe9 ", 1)      # latin-1 e-acute, data line 4
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError) as err:
        corpora.load("demo", demo_copy)
    msg = str(err.value)
    assert msg.startswith(f"{path}:4: not UTF-8 text (byte 0xe9 at column")
    assert "iconv -f latin1 -t utf-8" in msg


def test_a_vote_column_outside_the_label_space_is_named_with_the_classes(demo_copy):
    path = demo_copy / "votes.csv"
    table = pd.read_csv(path)
    table["votes_disgust"] = 1
    table["n_raters"] += 1
    table.to_csv(path, index=False)
    with pytest.raises(ValueError) as err:
        corpora.load("demo", demo_copy)
    msg = str(err.value)
    assert "['votes_disgust']" in msg and "['neutral', 'happy', 'sad', 'angry']" in msg
    assert "n_raters" not in msg


IEMOCAP = Path(__file__).parent / "fixtures" / "iemocap"
FILE1 = "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"


def test_a_file_name_that_is_not_utf8_is_named(tmp_path):
    root = tmp_path / "iemocap"
    shutil.copytree(IEMOCAP, root)
    folder = os.fsencode(root / FILE1).rsplit(b"/", 1)[0]
    with open(folder + b"/Ses01F_caf\xe9.txt", "wb") as fh:     # a latin-1 file name
        fh.write((root / FILE1).read_bytes())
    with pytest.raises(ValueError) as err:
        corpora.load("iemocap", root)
    msg = str(err.value)
    assert "file name b'" in msg and "Ses01F_caf\\xe9.txt' (row" in msg
    assert "is not a UTF-8 name; rename the file to UTF-8" in msg


def test_an_annotation_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    root = tmp_path / "iemocap"
    shutil.copytree(IEMOCAP, root)
    path = root / FILE1
    lines = path.read_bytes().split(b"\n")
    lines[5] += b" caf\xe9"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=rf"{path}:6: not UTF-8 text \(byte 0xe9"):
        corpora.load("iemocap", root)


def _cfg(tmp_path, repo, extra="", models="[sim-human]"):
    (tmp_path / "configs" / "prompts").mkdir(parents=True, exist_ok=True)
    for p in (repo / "configs" / "prompts").glob("*.yaml"):
        shutil.copy(p, tmp_path / "configs" / "prompts")
    shutil.copytree(repo / "notebooks", tmp_path / "notebooks", dirs_exist_ok=True)
    return load_config(write_config(tmp_path, f"name: t\ncorpora:\n  demo: {{root: "
                                              f"{repo / 'data' / 'demo'}{extra}}}\n"
                                              f"models: {models}\n"), root=tmp_path)


def test_a_label_space_the_corpus_lacks_is_refused_before_anything_runs(tmp_path, repo):
    cfg = _cfg(tmp_path, repo, ", label_space: 6class")
    with pytest.raises(ConfigError) as err:
        validate(cfg, plan(cfg), probe=False)
    assert "corpora.demo.label_space: unknown label space '6class' for corpus 'demo'; " \
           "valid: ['4class']" in str(err.value)
    assert not cfg.run_dir.exists()            # nothing started, no run folder left


def test_remote_code_refuses_a_branch_or_tag_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for rev in ("main", FULL):
        snap = tmp_path / "hub" / "models--fixie-ai--ultravox-v0_4"
        (snap / "refs").mkdir(parents=True, exist_ok=True)
        (snap / "refs" / "main").write_text(FULL)
        (snap / "snapshots" / FULL).mkdir(parents=True, exist_ok=True)
        (snap / "snapshots" / FULL / "config.json").write_text("{}")
    def cfg(rev):
        return load_config(write_config(tmp_path, "name: t\ncorpora:\n  demo: {root: .}\n"
                                        f"models: [{{name: ultravox-v0_4, revision: {rev}}}]\n"))
    [problem] = model_problems(cfg("main"), "ultravox-v0_4", "models")
    assert "revision 'main' is not a full commit hash" in problem
    assert model_problems(cfg(FULL), "ultravox-v0_4", "models") == []
    from ambiemo.alm import load_model
    with pytest.raises(ValueError, match="'v1.0' is not a full commit hash"):
        load_model("ultravox-v0_4", revision="v1.0", device="cpu")


def test_max_new_tokens_beyond_the_models_context_is_refused_naming_key_value_limit(
        tmp_path, repo):
    from ambiemo.pipeline.input_checks import token_budget_problems, token_budget_warnings

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(
        {"model_type": "qwen2_audio", "text_config": {"max_position_embeddings": 8192},
         "audio_config": {"max_source_positions": 1500}}))
    models = f"[{{name: qwen2-audio-7b-instruct, checkpoint: {ckpt}}}]"
    default = _cfg(tmp_path, repo)      # the prompts and notebooks in place
    huge = load_config(write_config(tmp_path, f"name: t\ncorpora:\n  demo: {{root: "
                                    f"{repo / 'data' / 'demo'}}}\nmodels: {models}\n"
                                    "generation: {decoding: {max_new_tokens: 1000000000}}\n"),
                       root=tmp_path)
    [problem] = token_budget_problems(huge, huge.models)
    assert problem.startswith("generation.decoding.max_new_tokens: 1000000000 exceeds the "
                              "context length of model 'qwen2-audio-7b-instruct' (8192 tokens")
    with pytest.raises(ConfigError, match="max_new_tokens: 1000000000 exceeds"):
        validate(huge, plan(huge), probe=False)
    # within the context but far beyond what a one-word answer needs: a warning
    wordy = load_config(write_config(tmp_path, f"name: t\ncorpora:\n  demo: {{root: "
                                     f"{repo / 'data' / 'demo'}}}\nmodels: {models}\n"
                                     "generation: {decoding: {max_new_tokens: 4000}}\n"),
                        root=tmp_path)
    assert token_budget_problems(wordy, wordy.models) == []
    [warning] = token_budget_warnings(wordy)
    assert "4000 is more than 4x what the prompt arms' answers need" in warning
    assert token_budget_warnings(default) == []     # the default, 16


def test_score_on_an_emptied_store_says_which_stage_to_run(tmp_path, repo):
    cfg = _cfg(tmp_path, repo)
    manifest = corpora.load("demo", repo / "data" / "demo")
    cfg.manifest_path("demo").parent.mkdir(parents=True)
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)
    cfg.layout.write_pointer(cfg.samples_pointer("sim-human", "demo"), run_key="e201f118e1ee5ec5",
                             model="sim-human", corpus="demo", prompt=cfg.generation.prompt)
    cfg.store_path.write_bytes(b"")            # 0 bytes
    with pytest.raises(ConfigError) as err:
        validate(cfg, plan(cfg, ("score",)), probe=False)
    assert ("the sample store " + str(cfg.store_path) + " is empty (0 bytes): run `--stage "
            "generate --model sim-human --corpus demo` first") in str(err.value)
