"""Using the study as an evaluation harness is used: `--limit N`, `--output-dir DIR`, the
cross-corpus leaderboard, and the Hugging Face export on the command line -- ending with the
whole study run on a lab's votes CSV with no code."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ambiemo import corpora
from ambiemo.config import load_config, with_run_options
from ambiemo.outputs.leaderboard import leaderboard, write_leaderboard
from ambiemo.pipeline.run_options import limit_manifest, limit_problem

REPO = Path(__file__).resolve().parents[1]


def test_limit_takes_the_first_clips_speaker_by_speaker_and_always_the_same():
    m = corpora.load("demo", REPO / "data" / "demo")
    six = limit_manifest(m, 6)
    # Each speaker's first clip, then each one's second: four speakers in six clips (the
    # first six rows would be one speaker, and the cross-fitted controls need two).
    assert six["utt_id"].tolist() == ["spk1_neutral_s1", "spk1_neutral_s2", "spk2_neutral_s1",
                                      "spk2_neutral_s2", "spk3_neutral_s1", "spk4_neutral_s1"]
    assert six.attrs["limit"] == 6 and six.attrs["clips_before_limit"] == 32
    assert six.attrs["classes"] == m.attrs["classes"]
    assert limit_manifest(m, 6)["utt_id"].tolist() == six["utt_id"].tolist()
    assert len(limit_manifest(m, 100)) == 32 and limit_manifest(m, None).attrs["limit"] is None


def test_limit_and_output_dir_move_every_output(tmp_path):
    cfg = load_config(REPO / "configs" / "smoke.yaml")
    assert cfg.run_dir == REPO / "runs" / "smoke"
    lim = with_run_options(cfg, limit=20, output_dir=tmp_path / "out")
    # A limited run is a run of its own: it never shares a store or a table with the full one.
    assert lim.run_dir == tmp_path / "out" / "runs" / "smoke__limit20"
    assert lim.table_dir == tmp_path / "out" / "tables" / "smoke__limit20"
    assert lim.figure_dir == tmp_path / "out" / "figures" / "smoke__limit20"
    assert lim.store_path.parent == lim.run_dir and lim.prompt_dir == cfg.prompt_dir
    assert lim.layout.shown(lim.table_dir) == str(lim.table_dir)     # outside the repository
    assert cfg.layout.shown(cfg.table_dir) == "tables/smoke"
    why = limit_problem({"limit": 20}, cfg, "m.parquet")
    assert "m.parquet was prepared with --limit 20 (the first 20 clips), but this run asks " \
           "for all clips (no --limit)" in why and "Rerun with --limit 20" in why
    assert limit_problem({"limit": 20}, lim, "m.parquet") is None


def summary_rows(corpus, rows):
    return pd.DataFrame([{"corpus": corpus, "model": m, "prompt": p, "strategy": s, "n": n,
                          "js_divergence": v} for m, p, s, n, v in rows])


def test_the_leaderboard_has_one_row_per_model_and_arm(tmp_path):
    summary = pd.concat([
        summary_rows("a", [("m1", "dist", "greedy", 1, .30), ("m1", "dist", "majority", 8, .20),
                           ("m1", "dist", "bon", 8, .20), ("m1", "dist", "greedy_smoothed", 1, .10),
                           ("m1", "label", "greedy", 1, .50), ("m1", "label", "vote_share", 8, .40),
                           ("prior", "-", "reference", 1, .25)]),
        summary_rows("b", [("m1", "dist", "greedy", 1, .60), ("m1", "dist", "cot", 1, .55),
                           ("prior", "-", "reference", 1, .35)])])
    t = leaderboard(summary, strategies=["greedy", "bon", "majority", "cot"])
    assert t[["model", "prompt"]].values.tolist() == [["m1", "dist"], ["m1", "label"],
                                                      ["prior", "-"]]
    row = t.iloc[0]
    assert row["a:greedy"] == .30 and row["a:best"] == .20
    assert row["a:best_strategy"] == "bon@8"      # tied with majority: the config's order wins
    assert row["a:greedy_smoothed"] == .10        # a control is never the best strategy
    assert row["b:best_strategy"] == "cot" and np.isnan(row["b:greedy_smoothed"])
    label = t.iloc[1]
    assert label["a:best_strategy"] == "greedy" and label["a:vote_share"] == .40
    assert np.isnan(label["b:greedy"]) and label["b:best_strategy"] == ""
    assert t.iloc[2][["a:best", "b:best"]].tolist() == [.25, .35]
    # The page, with names as long as real ones, on the page the other tables are checked on.
    summary["model"] = summary["model"].replace({"m1": "qwen2-audio-7b-instruct"})
    summary["prompt"] = summary["prompt"].replace({"dist": "distribution"})
    summary.loc[summary["strategy"] == "bon", "strategy"] = "w_bon_sample"
    write_leaderboard(summary, tmp_path / "leaderboard", limit=20)
    assert "first 20 clips" in (tmp_path / "leaderboard.md").read_text()
    tex = (tmp_path / "leaderboard.tex").read_text()
    assert tex.count(r"\multicolumn{8}{l}") == 2      # one block of rows per corpus
    header = next(ln for ln in tex.splitlines() if ln.startswith("model"))
    body = [ln for ln in tex.splitlines() if ln.startswith("qwen2")]
    assert all(ln.count("&") == header.count("&") for ln in body)   # no cell left over
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n"
                       "\\usepackage{booktabs}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
                       "\\begin{document}\n" + tex + "\\end{document}\n")
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout[-2000:]
        assert "Overfull" not in (tmp_path / "doc.log").read_text()


def test_limit_must_be_a_whole_number_of_at_least_one():
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", "configs/smoke.yaml",
                        "--limit", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--limit: '0' is not a whole number >= 1" in r.stderr


def test_the_whole_study_on_a_votes_csv_with_no_code(tmp_path):
    """A lab's votes, one corpus per layout (votes as rows, counts as columns in Parquet),
    the demo audio, simulated models: one config entry each, `--limit` to keep it short,
    `--output-dir` to keep the repository clean; then the leaderboard across both corpora,
    a full run refused on the limited run's folder, and the export read by `load_dataset`."""
    from tests.test_votes_table import demo_votes

    demo_votes(tmp_path)
    name = "lab-votes"
    config = tmp_path / "lab.yaml"
    config.write_text(f"""name: {name}
corpora:
  lab_rows:
    loader: votes_table
    root: {REPO / 'data' / 'demo'}
    label_space: {{classes: [neutral, happy, sad, angry], merges: {{excited: happy}}}}
    options: {{votes: {tmp_path / 'long.csv'}}}
  lab_counts:
    loader: votes_table
    root: {REPO / 'data' / 'demo'}
    label_space: {{classes: [neutral, happy, sad, angry]}}
    options: {{votes: {tmp_path / 'wide.parquet'}}}
models: [sim-human]
generation: {{prompts: [direct_label], n_samples: 2, label_scores: true}}
scoring: {{strategies: [greedy, majority, label_logits], n_boot: 20,
          references: [prior, uniform]}}
""")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(config), "--limit", "6",
                        "--output-dir", str(out)], cwd=REPO, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "limited run: the first 6 clips of each corpus (--limit 6)" in r.stdout
    run = out / "runs" / f"{name}__limit6"
    assert not any((REPO / d / f"{name}__limit6").exists() for d in ("runs", "tables", "figures"))
    for corpus in ("lab_rows", "lab_counts"):
        m = pd.read_parquet(run / "manifests" / f"{corpus}.parquet")
        assert len(m) == 6 and m.attrs["limit"] == 6 and set(m["corpus"]) == {corpus}
        assert m["speaker"].nunique() == 4
        assert (out / "tables" / f"{name}__limit6" / f"{corpus}_main.csv").is_file()
    board = pd.read_csv(out / "tables" / f"{name}__limit6" / "leaderboard.csv")
    assert board[["model", "prompt"]].values.tolist() == [
        ["sim-human", "direct_label"], ["prior", "-"], ["uniform", "-"]]
    # The two layouts hold the same votes: the same numbers in both blocks.
    np.testing.assert_allclose(board["lab_rows:best"], board["lab_counts:best"])
    assert board.loc[0, "lab_rows:greedy"] == board.loc[0, "lab_counts:greedy"] > 0
    # sim-human's label_logits is the human distribution itself (JS 0): the best strategy.
    assert board.loc[0, "lab_rows:best_strategy"] == "label_logits"
    assert board.loc[0, "lab_rows:best"] < 1e-6
    # A full run never reads the limited run's folder.
    r = subprocess.run([sys.executable, "-m", "ambiemo.pipeline", str(config), "--stage",
                        "score", "--output-dir", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "run `--stage prepare` first" in r.stderr
    # The export: one split per corpus, read back by datasets.load_dataset.
    from datasets import load_dataset

    exported = tmp_path / "export"
    r = subprocess.run([sys.executable, "-m", "ambiemo.outputs.export", str(run), str(exported)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    preds = load_dataset(str(exported), "predictions", cache_dir=str(tmp_path / "cache"))
    assert sorted(preds) == ["lab_counts", "lab_rows"]
    stored = pd.read_parquet(run / "predictions_lab_rows.parquet")
    got = preds["lab_rows"].to_pandas()
    assert len(got) == len(stored) and set(got["utt_id"]) == set(stored["utt_id"])
    samples = load_dataset(str(exported), "samples", cache_dir=str(tmp_path / "cache"))
    assert samples["lab_rows"].to_pandas()["text"].str.len().gt(0).any()
    clips = load_dataset(str(exported), "clips", cache_dir=str(tmp_path / "cache"))
    assert len(clips["lab_counts"]) == 6 and "audio_path" not in clips["lab_counts"].features
    meta = json.loads((exported / "ambiemo_export.json").read_text())
    assert meta["corpora"]["lab_rows"]["limit"] == 6
    assert meta["corpora"]["lab_rows"]["merges"] == {"excited": "happy"}


def test_a_7b_model_on_20_iemocap_clips_is_one_command(tmp_path, monkeypatch):
    """configs/try.yaml --limit 20: everything checks but the checkpoint (not downloaded
    here), and the prepare stage keeps 20 clips of IEMOCAP (the fixture has 5)."""
    from ambiemo.config import ConfigError
    from ambiemo.pipeline import stages
    from ambiemo.pipeline.plan import plan
    from ambiemo.pipeline.preflight import validate

    monkeypatch.setenv("IEMOCAP_ROOT", str(REPO / "tests" / "fixtures" / "iemocap"))
    cfg = with_run_options(load_config(REPO / "configs" / "try.yaml"), limit=20,
                           output_dir=tmp_path)
    assert cfg.models == ("qwen2-audio-7b-instruct",) and list(cfg.corpora) == ["iemocap"]
    with pytest.raises(ConfigError) as e:
        validate(cfg, probe=False)
    assert "1 problem(s)" in str(e.value) and "not in the Hugging Face cache" in str(e.value)
    validate(cfg, plan(cfg, stages=("prepare",)), probe=False)
    manifest = stages.prepare_corpus(cfg, "iemocap").manifest
    assert manifest.attrs["limit"] == 20 and len(manifest) == 5
    assert (tmp_path / "runs" / "try__limit20" / "manifests" / "iemocap.parquet").is_file()
