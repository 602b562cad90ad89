"""One degenerate model never costs the others their rows (issue #25).

The score stage runs on stored samples of `sim-human` beside models that are degenerate in
the ways a real run produces: the same answer to every clip, no answer that parses, one clip
answered, one class only. Every model's rows that can be scored are scored, each row that
cannot be is an `unavailable` row with its reason, the tables are written before any figure,
and the stage returns normally.
"""
from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambiemo import corpora
from ambiemo.config import load_config
from ambiemo.pipeline import stages
from ambiemo.sampling.store import SampleStore

STRATEGIES = ["greedy", "majority", "vote_share"]


@pytest.fixture(scope="module")
def study(repo, tmp_path_factory):
    """A config with sim-human and three degenerate models, sim-human's samples generated
    once (the demo corpus: 32 clips, 4 speakers)."""
    root = tmp_path_factory.mktemp("degenerate")
    (root / "configs").mkdir()
    (root / "lib" / "ambiemo").mkdir(parents=True)
    shutil.copytree(repo / "configs" / "prompts", root / "configs" / "prompts")
    path = root / "configs" / "deg.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: deg
        corpora: {{demo: {{root: {repo / 'data' / 'demo'}}}}}
        models: [sim-human, constant, unparsed, one_clip]
        generation: {{n_samples: 4, batch_size: 8}}
        scoring: {{strategies: {STRATEGIES}, n_boot: 20,
                   references: [prior, uniform, new_raters]}}
        """))
    cfg = load_config(path, root=root)
    manifest = corpora.load("demo", repo / "data" / "demo")
    cfg.manifest_path("demo").parent.mkdir(parents=True)
    manifest.to_parquet(cfg.manifest_path("demo"), index=False)
    stages.generate(cfg, "sim-human", "demo", progress=False)
    return cfg


def store_degenerate(cfg, model: str, rewrite) -> None:
    """Store `model`'s samples as sim-human's, rewritten by `rewrite(rows) -> rows`, under
    its own run key and pointer (what the generate stage would leave)."""
    lay = cfg.layout
    arm = cfg.generation.prompt
    source = lay.read_pointer(lay.samples_pointer("sim-human", "demo", arm))["run_key"]
    key = f"{model}-{abs(hash(model)) % 10**8:08d}"
    with SampleStore(lay.store) as store:
        settings_ = store.settings(source)
        classes = store.read(source, parse=False).attrs["classes"]
        store.conn.execute("DELETE FROM samples WHERE run_key=?", (key,))
        store.conn.execute("DELETE FROM runs WHERE run_key=?", (key,))
        store.conn.commit()
        store.register_run(key, model, settings_, classes)
        rows = pd.read_sql_query("SELECT * FROM samples WHERE run_key=?", store.conn,
                                 params=(source,))
        rows = rewrite(rows.assign(run_key=key))
        store.write(key, [{k: (None if isinstance(v, float) and np.isnan(v) else v)
                           for k, v in r.items()} for r in rows.to_dict("records")])
    lay.write_pointer(lay.samples_pointer(model, "demo", arm), run_key=key, model=model,
                      corpus="demo", prompt=arm)


def constant(rows, label="sad"):
    return rows.assign(text=label)


def unparsed(rows):
    return rows.assign(text="I cannot tell from this recording.")


def one_clip(rows):
    return rows[rows["utt_id"] == rows["utt_id"].min()]


def no_rows(rows):
    return rows.iloc[:0]


def one_class_per_clip(rows):
    # every answer a clip gets is the same class (the clip's first answer): no spread
    first = rows.sort_values(["kind", "idx"]).groupby("utt_id")["text"].transform("first")
    return rows.assign(text=first)


def _main_rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table["model"] == model]


def test_degenerate_models_beside_sim_human_keep_every_row_of_sim_human(study, monkeypatch):
    from ambiemo.outputs import figures
    from ambiemo.outputs.figure_guard import FigureNotDrawn

    cfg = study
    store_degenerate(cfg, "constant", constant)
    store_degenerate(cfg, "unparsed", unparsed)
    store_degenerate(cfg, "one_clip", one_clip)
    alone = _sim_human_alone(cfg)

    def broken(*a, **k):
        raise ValueError("'yerr' must not contain negative values")
    monkeypatch.setattr(figures, "reliability_diagram", broken)
    with pytest.warns(FigureNotDrawn, match="figure demo_reliability not drawn: ValueError"):
        scored = stages.score_corpus(cfg, "demo")
    # a failed figure is a missing figure; the others are drawn
    assert set(scored.missing_figures) == {"demo_reliability"}
    assert not cfg.layout.figure("demo_reliability").with_suffix(".png").exists()
    assert cfg.layout.figure("demo_entropy_pred_vs_human").with_suffix(".png").is_file()
    assert "paper_scaling" in scored.figures
    table = scored.table
    human = _main_rows(table, "sim-human")
    # every strategy and control of sim-human is a scored row, with the numbers it has alone
    assert set(human["strategy"]) == {*STRATEGIES, "greedy_smoothed"}
    assert (human["row_type"] != "unavailable").all()
    assert human["js_divergence"].notna().all()
    # (the `best_` marks compare across models, so they may move)
    same = [c for c in human if not c.startswith("best_")]
    pd.testing.assert_frame_equal(human[same].reset_index(drop=True),
                                  alone[same].reset_index(drop=True), check_dtype=False)
    # the degenerate rows are there, and each one that could not be scored says why
    for model in ("constant", "unparsed", "one_clip"):
        assert model in set(table["model"]), model
    gone = table[table["row_type"] == "unavailable"]
    smoothed = gone[(gone["model"] == "unparsed") & (gone["strategy"] == "greedy_smoothed")]
    assert len(smoothed) == 1 and "no other fold has a scored clip" in smoothed["note"].iat[0]
    one = gone[gone["model"] == "one_clip"]
    assert "greedy_smoothed" in set(one["strategy"])
    # the job's status note (the run summary's line) says which rows are missing and why
    from ambiemo.pipeline.plan import Job
    from ambiemo.pipeline.status import read_status
    state, note = read_status(Job("score", "demo", None).status_path(cfg))
    assert state == "ran" and "unparsed/direct_label/greedy_smoothed unavailable" in note
    assert "figure(s) not drawn: demo_reliability (ValueError" in note
    # tables written; the failures table counts the unparsed model's answers
    lay = cfg.layout
    assert lay.table("demo_main").with_suffix(".csv").is_file()
    failures = scored.failures.set_index(["model", "kind"])
    assert failures.loc[("unparsed", "greedy"), "unparsed"] == 32
    assert failures.loc[("unparsed", "greedy"), "parsed"] == 0


def _sim_human_alone(cfg):
    """sim-human's main-table rows from a config with only sim-human (the same store)."""
    import dataclasses
    alone = dataclasses.replace(cfg, model_entries={"sim-human": cfg.model_entries["sim-human"]},
                                name="deg_alone")
    lay, src = alone.layout, cfg.layout
    lay.run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src.run_dir, lay.run_dir, dirs_exist_ok=True)
    table = stages.score_corpus(alone, "demo", draw_figures=False).table
    return _main_rows(table, "sim-human")


DEGENERATE = {"constant": constant, "unparsed": unparsed, "one_clip": one_clip,
              "no_rows": no_rows, "one_class": one_class_per_clip}


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(sorted(DEGENERATE)), min_size=1, max_size=3))
def test_random_degenerate_models_never_cost_the_normal_models_rows(study, kinds):
    """Property: whatever degenerate models stand beside sim-human, its rows are scored."""
    import dataclasses
    names = [f"deg{i}_{k}" for i, k in enumerate(kinds)]
    entries = {"sim-human": study.model_entries["sim-human"]}
    entries.update({n: dataclasses.replace(study.model_entries["constant"], name=n)
                    for n in names})
    cfg = dataclasses.replace(study, model_entries=entries)
    for name, kind in zip(names, kinds):
        store_degenerate(cfg, name, DEGENERATE[kind])
    table = stages.score_corpus(cfg, "demo", draw_figures=False).table
    human = _main_rows(table, "sim-human")
    assert set(human["strategy"]) == {*STRATEGIES, "greedy_smoothed"}
    assert human["js_divergence"].notna().all() and (human["row_type"] != "unavailable").all()
    for name in names:
        assert name in set(table["model"])


def test_an_error_bar_whose_bound_equals_the_value_up_to_float_noise_is_drawn():
    """A constant answer's bootstrap bound equals its mean up to float noise (y - lo was
    -1.3e-23): matplotlib refuses negative lengths, so lengths are clipped at 0."""
    import matplotlib.pyplot as plt

    from ambiemo.outputs.figures import _errorbar

    fig, ax = plt.subplots()
    y = np.array([0.0, 1e-20])       # e.g. JS of a constant answer on unanimous clips
    bars = _errorbar(ax, [0, 1], y, y + 1.3e-23, y - 1e-21, style={}, label="x")
    segments = bars.lines[2][0].get_segments()
    assert all(np.allclose(s[0], s[1]) for s in segments)   # zero-length bars
    plt.close(fig)
