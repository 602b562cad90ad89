"""The figures (ambiemo.outputs.figures) on small synthetic tables: axes labelled with units, one line
per strategy, corpus in the title, both PNG and PDF written, hosted models left out of the
capacity figure and named."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ambiemo import analysis, metrics, tts
from ambiemo.outputs import figures as plots
from test_analysis import make_manifest, make_scores

STRATEGIES = ["greedy", "majority"]


@pytest.fixture(scope="module")
def data():
    man = make_manifest()
    sc = make_scores(man)
    by_bin = analysis.summary_by_ambiguity(sc, man, metrics=("js_divergence", "accuracy"),
                                           n_boot=30)
    return man, sc, by_bin


def _labels(ax):
    return ax.get_legend_handles_labels()[1]


def test_save_writes_png_and_pdf(tmp_path, data):
    fig = plots.metric_by_ambiguity(data[2], "js_divergence", "demo")
    paths = plots.save(fig, tmp_path / "sub" / "fig")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    plt.close(fig)


def test_metric_by_ambiguity_one_line_per_strategy_per_model(data):
    fig = plots.metric_by_ambiguity(data[2], "js_divergence", "demo")
    assert len(fig.axes) == 2  # one panel per model, references are not a panel
    for ax in fig.axes:
        assert "demo" in ax.get_title() and ax.get_xlabel().startswith("ambiguity bin")
        labels = _labels(ax)
        assert [x for x in labels if x in STRATEGIES] == STRATEGIES
        assert sum("(reference)" in x for x in labels) == 3
    assert "bits" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_gain_vs_ambiguity_plots_every_non_baseline_strategy(data):
    man, sc, _ = data
    gains = analysis.gain_by_ambiguity(sc, man, "js_divergence", n_perm=50, n_boot=30)
    fig = plots.gain_vs_ambiguity(gains, "demo")
    assert len(fig.axes) == 2 and all(_labels(ax) == ["majority"] for ax in fig.axes)
    ylabel = fig.axes[0].get_ylabel()
    assert "over greedy" in ylabel and "positive = better" in ylabel and "bits" in ylabel
    plt.close(fig)


def test_gain_vs_ambiguity_shows_the_controls_dashed(data):
    from ambiemo.tts import controls
    man, sc, _ = data
    greedy = sc[(sc.strategy == "greedy")]
    pred = greedy[["utt_id", "model", "strategy", "n", "replicate",
                   *[c for c in sc if c.startswith("p_") and c != "p_value"]]]
    ctrl = metrics.score(controls.control_predictions(pred, man.assign(
        speaker=[f"s{i % 4}" for i in range(len(man))])), man)
    gains = analysis.gain_by_ambiguity(pd.concat([sc, ctrl], ignore_index=True), man,
                                       "js_divergence", n_perm=50, n_boot=30)
    fig = plots.gain_vs_ambiguity(gains, "demo")
    for ax in fig.axes:
        assert "greedy_smoothed (control)" in _labels(ax)
        styles = {c.get_label(): c.lines[0].get_linestyle() for c in ax.containers}
        assert styles["greedy_smoothed (control)"] == "--" and styles["majority"] == "-"
    plt.close(fig)


def test_capacity_vs_metric_leaves_out_hosted_models_and_names_them(data):
    by_bin = data[2]
    fig = plots.capacity_vs_metric(by_bin, {"small": 1e9, "large": None}, "js_divergence", "demo")
    assert "left out" in fig._suptitle.get_text() and "large" in fig._suptitle.get_text()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "log10 parameter count"
    xs = np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()])
    assert np.allclose(xs[np.isfinite(xs)], 9.0)  # only the 1e9 model is drawn
    plt.close(fig)
    both = plots.capacity_vs_metric(by_bin, {"small": 1e9, "large": 7e9}, "accuracy", "demo")
    assert len(both.axes) == 2 and len(_labels(both.axes[0])) == 3  # one line per bin
    assert "left out" not in both._suptitle.get_text()
    plt.close(both)


def test_entropy_and_reliability_figures(data):
    _, sc, _ = data
    fig = plots.entropy_pred_vs_human(sc, "demo")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "entropy of human votes (bits)"
    assert fig.axes[0].get_ylabel() == "entropy of prediction (bits)"
    assert all(any(lbl.startswith("small (r = ") for lbl in _labels(ax)) for ax in fig.axes)
    plt.close(fig)
    rel = plots.reliability_diagram(analysis.reliability_table(sc), "demo")
    top = rel.axes[0]
    assert [x for x in _labels(top) if x in STRATEGIES] == STRATEGIES
    assert "confidence" in rel.axes[-1].get_xlabel() and "clips" in rel.axes[-1].get_ylabel()
    plt.close(rel)


def test_scaling_curves_log2_axis_and_flat_single_answer_strategies():
    man = make_manifest(n=12)
    rng = np.random.default_rng(0)
    rows = []
    for u in man.utt_id:
        rows.append(dict(utt_id=u, kind="greedy", idx=0, logprob=-1.0, n_tokens=1, parse_ok=True,
                         **dict(zip([f"p_{c}" for c in man.attrs["classes"]], np.eye(4)[0]))))
        for j in range(4):
            rows.append(dict(utt_id=u, kind="sample", idx=j, logprob=-rng.random(), n_tokens=1,
                             parse_ok=True, **dict(zip([f"p_{c}" for c in man.attrs["classes"]],
                                                       np.eye(4)[rng.integers(4)]))))
    curve = tts.scaling_curve(pd.DataFrame(rows), man.attrs["classes"],
                              ["greedy", "majority", "w_bon_sample"], model="m", n_subsets=3)
    table = analysis.summary_table(metrics.score(curve, man), metrics=("js_divergence",),
                                   n_boot=30)
    fig = plots.scaling_curves(table, ["js_divergence"], "demo")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "log2" in ax.get_xlabel()
    assert _labels(ax) == ["greedy (one answer)", "majority", "w_bon_sample"]
    flat = [ln for ln in ax.get_lines() if ln.get_label() == "greedy (one answer)"][0]
    assert len(set(flat.get_ydata())) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    plt.close(fig)
