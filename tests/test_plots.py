"""The figures (ambiemo.outputs.figures, paper_figures) on small synthetic tables, looked at
as a paper reader would: sized for one column (3.5 in) or the page (7.2 in), facets wrapped
into a grid of at most four columns, no text under 7 pt, one style per strategy in every
figure, axes labelled with units, the corpus named, PNG and PDF written at the stated size."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ambiemo import analysis, metrics, tts
from ambiemo.outputs import figures as plots
from ambiemo.outputs import paper_figures as paper
from ambiemo.outputs.style import (MAX_COLUMNS, MIN_FONT_PT, STRATEGY_STYLES, grid_shape,
                                   strategy_style)
from ambiemo.tts.costs import strategy_costs
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


def _legend_texts(fig):
    return [t.get_text() for lg in [*fig.legends, *(a.get_legend() for a in fig.axes)]
            if lg is not None for t in lg.get_texts()]


def assert_paper_sized(fig, *, panels=None):
    """Width one column or the page; at most MAX_COLUMNS panels side by side (panels are
    main axes, told apart from their colour bars by a title or y label); every visible text
    at least MIN_FONT_PT; nothing drawn outside the figure."""
    w, h = fig.get_size_inches()
    assert w in (3.5, 7.2), w
    assert h <= 9.5
    fig.canvas.draw()
    main = [ax for ax in fig.axes if ax.get_visible() and ax.get_title() or ax.get_ylabel()]
    lefts = {round(ax.get_position().x0, 3) for ax in main}
    assert len(lefts) <= MAX_COLUMNS, f"{len(lefts)} panel columns"
    if panels is not None:
        assert len([ax for ax in fig.axes if ax.get_title()]) == panels
    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(plt.Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT_PT]
    assert small == []
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())   # inches, drawn artists only
    assert drawn.x0 >= -0.02 and drawn.x1 <= w + 0.02, f"cut off: {drawn} in {w} in"
    assert drawn.y0 >= -0.02 and drawn.y1 <= h + 0.02, f"cut off: {drawn} in {h} in"


def test_grid_wraps_at_four_columns():
    assert [grid_shape(n) for n in (1, 3, 4, 5, 8, 9)] == [(1, 1), (1, 3), (1, 4), (2, 3),
                                                           (2, 4), (3, 3)]


def test_every_registered_strategy_has_its_own_colour_marker_and_line_style():
    styles = [strategy_style(s) for s in tts.STRATEGIES]
    pairs = {(st["marker"], str(st["linestyle"]), st["color"]) for st in styles}
    assert len(pairs) == len(styles)
    assert len({st["marker"] for st in styles}) == len(styles)   # apart even in grey print
    # the three that often coincide in the JS panel differ in colour, marker and line style
    trio = [STRATEGY_STYLES[s] for s in ("majority", "w_bon", "w_alm_v")]
    for key in ("color", "marker", "linestyle"):
        assert len({str(t[key]) for t in trio}) == 3


def test_save_writes_png_and_pdf_at_the_stated_size(tmp_path, data):
    fig = plots.metric_by_ambiguity(data[2], "js_divergence", "demo")
    paths = plots.save(fig, tmp_path / "sub" / "fig")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    width_px = Image.open(paths[0]).size[0]
    assert width_px == round(fig.get_size_inches()[0] * 200)
    plt.close(fig)


def test_metric_by_ambiguity_wraps_many_models_into_a_grid(data):
    by_bin = data[2]
    fig = plots.metric_by_ambiguity(by_bin, "js_divergence", "demo")
    assert_paper_sized(fig, panels=2)
    for ax in fig.axes:
        labels = _labels(ax)
        assert [x for x in labels if x in STRATEGIES] == STRATEGIES
        assert sum("(reference)" in x for x in labels) == 3
    assert "bits" in fig.axes[0].get_ylabel() and "demo" in fig._suptitle.get_text()
    assert set(_legend_texts(fig)) >= {"greedy", "majority", "prior (reference)"}
    plt.close(fig)
    # seven models: two rows, at most four panels in a row
    many = pd.concat([by_bin[by_bin.model == "small"].assign(model=f"m{i}") for i in range(7)]
                     + [by_bin[by_bin.strategy == "reference"]], ignore_index=True)
    fig = plots.metric_by_ambiguity(many, "js_divergence", "demo")
    assert_paper_sized(fig, panels=7)
    assert len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 2
    plt.close(fig)


def test_gain_vs_ambiguity_plots_every_non_baseline_strategy(data):
    man, sc, _ = data
    gains = analysis.gain_by_ambiguity(sc, man, "js_divergence", n_perm=50, n_boot=30)
    fig = plots.gain_vs_ambiguity(gains, "demo")
    assert_paper_sized(fig, panels=2)
    assert all(_labels(ax) == ["majority"] for ax in fig.axes)
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


def test_capacity_drawn_only_with_two_known_sizes_and_hosted_models_named(data):
    by_bin = data[2]
    assert plots.capacity_vs_metric(by_bin, {"small": 1e9, "large": None}, "js_divergence",
                                    "demo") is None
    note = paper.capacity(by_bin, {"small": 1e9, "large": None}, "demo")
    assert note.figure is None and "needs at least two" in note.caption
    assert "large" in note.caption
    fig = plots.capacity_vs_metric(by_bin, {"small": 1e9, "large": 7e9}, "accuracy", "demo")
    assert_paper_sized(fig)
    assert len(_labels(fig.axes[0])) == 3  # one line per bin
    xs = np.concatenate([np.asarray(ln.get_xdata(), float) for ln in fig.axes[0].get_lines()])
    assert np.allclose(sorted(set(np.round(xs[np.isfinite(xs)], 6))), [9.0, np.log10(7e9)])
    assert "left out" not in fig._suptitle.get_text()
    plt.close(fig)
    by3 = pd.concat([by_bin, by_bin[by_bin.model == "small"].assign(model="api")])
    fig = plots.capacity_vs_metric(by3, {"small": 1e9, "large": 7e9, "api": None},
                                   "js_divergence", "demo")
    assert "left out" in fig._suptitle.get_text() and "api" in fig._suptitle.get_text()
    plt.close(fig)


def test_entropy_figure_says_an_undefined_r_in_words(data):
    _, sc, _ = data
    fig = plots.entropy_pred_vs_human(sc, "demo")
    assert_paper_sized(fig, panels=2)
    assert fig.axes[0].get_xlabel() == "human-vote entropy (bits)"
    assert fig.axes[0].get_ylabel() == "prediction entropy (bits)"
    assert set(_legend_texts(fig)) >= {"small", "identity"}   # one legend, below the grid
    assert all(ax.get_legend() is None for ax in fig.axes)
    # greedy answers are one-hot: entropy 0 on every clip, so r is undefined
    panel_texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "r n/a" in panel_texts and any(t.startswith("r 0.") or t.startswith("r -")
                                          or t.startswith("r 1.") for t in panel_texts)
    assert not any("nan" in t for t in panel_texts)
    plt.close(fig)


def test_reliability_diagram_keeps_points_at_confidence_one_and_legend_off_the_data(data):
    _, sc, _ = data
    rel = analysis.reliability_table(sc)
    fig = plots.reliability_diagram(rel, "demo")
    assert_paper_sized(fig)
    top = fig.axes[0]
    assert [x for x in _labels(top) if x in STRATEGIES] == STRATEGIES
    assert top.get_xlim()[1] > 1.0 and top.get_ylim()[1] > 1.0   # greedy sits at (1.0, acc)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert "top-class probability" in fig.axes[1].get_xlabel()
    assert "clips" in fig.axes[1].get_ylabel()
    plt.close(fig)


def _samples(man, n=4, seed=0, seconds=0.5):
    rng = np.random.default_rng(seed)
    cols = [f"p_{c}" for c in man.attrs["classes"]]
    rows = []
    for u in man.utt_id:
        rows.append(dict(utt_id=u, kind="greedy", idx=0, logprob=-1.0, n_tokens=3,
                         seconds=seconds, parse_ok=True, **dict(zip(cols, np.eye(4)[0]))))
        for j in range(n):
            rows.append(dict(utt_id=u, kind="sample", idx=j, logprob=-rng.random(),
                             n_tokens=2 + j, seconds=seconds, parse_ok=True,
                             **dict(zip(cols, np.eye(4)[rng.integers(4)]))))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def curve():
    man = make_manifest(n=12)
    samples = _samples(man)
    pred = tts.scaling_curve(samples, man.attrs["classes"], ["greedy", "majority", "w_bon_sample"],
                             model="m", n_subsets=3)
    table = analysis.summary_table(metrics.score(pred, man), metrics=("js_divergence",),
                                   n_boot=30)
    return man, samples, table


def test_scaling_curves_log2_axis_and_flat_single_answer_strategies(curve):
    fig = plots.scaling_curves(curve[2], ["js_divergence"], "demo")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "log2" in ax.get_xlabel()
    assert _labels(ax) == ["greedy (one answer)", "majority", "w_bon_sample"]
    flat = [ln for ln in ax.get_lines() if ln.get_label() == "greedy (one answer)"][0]
    assert len(set(flat.get_ydata())) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    # a strategy keeps its style across figures
    w_bon = [c for c in ax.containers if c.get_label() == "w_bon_sample"][0].lines[0]
    assert w_bon.get_marker() == STRATEGY_STYLES["w_bon_sample"]["marker"]
    assert w_bon.get_color() == STRATEGY_STYLES["w_bon_sample"]["color"]
    # coinciding strategies are dodged apart on the n axis, and stay near their n
    majority = [c for c in ax.containers if c.get_label() == "majority"][0].lines[0]
    xs_m, xs_w = np.asarray(majority.get_xdata()), np.asarray(w_bon.get_xdata())
    assert (xs_m != xs_w).all() and np.allclose(xs_m, [1, 2, 4], rtol=0.05)
    plt.close(fig)
    # five models x three metrics = fifteen panels, wrapped four to a row
    big = pd.concat([curve[2].assign(model=f"m{i}") for i in range(5)], ignore_index=True)
    for m in ("accuracy", "r2"):
        big = big.assign(**{m: big["js_divergence"], f"{m}_lo": big["js_divergence_lo"],
                            f"{m}_hi": big["js_divergence_hi"]})
    fig = plots.scaling_curves(big, ["js_divergence", "accuracy", "r2"], "demo")
    assert_paper_sized(fig, panels=15)
    plt.close(fig)


def test_strategy_costs_count_tokens_passes_and_seconds_verifier_included(curve):
    man, samples, _ = curve
    verdicts = samples[samples.kind == "sample"][["utt_id", "idx"]].assign(
        kind="verify", n_tokens=None, seconds=0.25, score=0.5)
    costs = strategy_costs(samples, verdicts, ["greedy", "majority", "w_alm_v"], model="m",
                           ns=[1, 2, 4]).set_index(["strategy", "n"])
    assert costs.loc[("greedy", 1), "tokens_per_clip"] == 3
    assert costs.loc[("greedy", 1), "seconds_per_clip"] == 0.5
    # sampled candidates carry 2, 3, 4, 5 tokens: n of them cost n x 3.5 on average
    assert costs.loc[("majority", 2), "tokens_per_clip"] == 7.0
    assert costs.loc[("majority", 4), "forward_passes_per_clip"] == 14.0
    assert costs.loc[("majority", 4), "seconds_per_clip"] == 2.0
    # the verifier judges each of the n candidates once: n more passes, n x 0.25 s more
    assert costs.loc[("w_alm_v", 4), "forward_passes_per_clip"] == 18.0
    assert costs.loc[("w_alm_v", 4), "verifier_seconds_per_clip"] == 1.0
    assert costs.loc[("w_alm_v", 4), "seconds_per_clip"] == 3.0
    assert (costs["n_clips"] == 12).all()
    with pytest.raises(ValueError, match="w_alm_v.*verifier"):
        strategy_costs(samples, None, ["w_alm_v"], model="m")
    # n beyond the candidates a strategy has is not a row (as in the scaling curves);
    # all of them always is
    beyond = strategy_costs(samples, None, ["majority"], model="m", ns=[2, 8])
    assert beyond["n"].tolist() == [2, 4]
    hosted = strategy_costs(samples.assign(n_tokens=None), None, ["majority"], model="m")
    assert np.isnan(hosted["tokens_per_clip"].iloc[0])   # unknown, never zero


def test_paper_figures_one_file_each_with_a_caption(tmp_path, data, curve):
    man, sc, by_bin = data
    _, samples, table = curve
    gains = analysis.gain_by_ambiguity(sc, man, "js_divergence", n_perm=50, n_boot=30)
    costs = strategy_costs(samples, None, ["greedy", "majority", "w_bon_sample"], model="m",
                           ns=[1, 2, 4])
    figs = [paper.metric_by_ambiguity(by_bin, "demo", n_boot=30),
            paper.gain_by_ambiguity(gains, "demo", n_boot=30),
            paper.capacity(by_bin, {"small": 1e9, "large": 7e9}, "demo"),
            paper.scaling(table, "demo", n_subsets=3, seed=0),
            paper.cost(table, costs, "demo")]
    assert [f.name for f in figs] == ["metric_by_ambiguity", "gain_by_ambiguity", "capacity",
                                      "scaling", "cost"]
    for pf in figs:
        assert_paper_sized(pf.figure)
        assert "demo" in pf.caption and len(pf.caption) > 80
        paths = paper.save_paper_figure(pf, tmp_path / f"demo_paper_{pf.name}")
        assert [p.suffix for p in paths] == [".png", ".pdf", ".txt"]
        assert paths[2].read_text().strip() == pf.caption
        plt.close(pf.figure)
    assert "3 random n-subsets" in figs[3].caption and "seed 0" in figs[3].caption
    ax = figs[4].figure.axes[0]
    assert ax.get_xscale() == "log" and "forward passes per clip" in ax.get_xlabel()
    majority = [c for c in ax.containers if c.get_label() == "majority"][0].lines[0]
    assert list(majority.get_xdata()) == [3.5, 7.0, 14.0]   # passes at n = 1, 2, 4


def test_one_panel_figures_fit_one_column(data):
    man, sc, _ = data
    fig = plots.human_entropy(man)
    assert_paper_sized(fig)
    assert fig.get_size_inches()[0] == 3.5 and "demo" in fig.axes[0].get_title()
    plt.close(fig)
    summary = analysis.summary_table(sc, metrics=("js_divergence",), n_boot=30)
    fig = plots.metric_by_row(summary, "js_divergence")
    assert_paper_sized(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "small / greedy" in labels and "prior / reference" in labels
    plt.close(fig)


def text_problems(fig) -> list[str]:
    """Every visible text of `fig` whose box leaves the canvas or overlaps an axes it does
    not belong to (a legend over the next panel, a clipped label), measured with the
    figure's own renderer."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    axes = [(ax, ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible()]
    # Tick labels: only those drawn (a locator's labels beyond the limits are never drawn).
    ticks = {id(lbl) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_major_ticks() + axis.get_minor_ticks()
             for lbl in (t.label1, t.label2)}
    drawn = {id(lbl) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis._update_ticks() for lbl in (t.label1, t.label2)}
    problems = []
    for text in fig.findobj(plt.Text):
        if not text.get_visible() or not text.get_text().strip() or text.figure is None:
            continue
        if id(text) in ticks and id(text) not in drawn:
            continue
        box = text.get_window_extent(renderer)
        if box.width == 0:
            continue
        if (box.x0 < canvas.x0 - 1 or box.x1 > canvas.x1 + 1 or box.y0 < canvas.y0 - 1
                or box.y1 > canvas.y1 + 1):
            problems.append(f"clipped: {text.get_text()!r}")
        owner = text.axes
        if owner is None:       # a legend or title of the figure: inside no axes
            legend = next((lg for lg in fig.legends if text in lg.get_texts()), None)
            if legend is None and text is not getattr(fig, "_suptitle", None):
                continue
        for ax, ab in axes:
            if ax is owner or (owner is not None and ax in (owner.get_shared_x_axes()
                                                            .get_siblings(owner))
                               and ab == owner.get_window_extent(renderer)):
                continue
            if box.overlaps(ab) and (min(box.x1, ab.x1) - max(box.x0, ab.x0) > 2
                                     and min(box.y1, ab.y1) - max(box.y0, ab.y0) > 2):
                problems.append(f"{text.get_text()!r} over another panel")
    return problems


def _crowded(frame, models=("qwen2-audio-7b-instruct", "sim-human", "sim-constant")):
    """`frame` as a real study has it: three models of long names, and besides the
    fixture's strategies the controls and the paper's strategies (copies of its rows)."""
    frames = []
    for m in models:
        for s in ("greedy", "majority", "bon", "w_bon", "alm_v", "w_alm_v", "cot",
                  "label_logits", "dirichlet", "bon_sample", "w_bon_sample", "vote_share",
                  "greedy_smoothed", "label_logits_tempered"):
            base = frame[frame["strategy"] == ("greedy" if s == "greedy" else "majority")]
            base = base[base["model"] == base["model"].iloc[0]]
            frames.append(base.assign(model=m, strategy=s))
    out = pd.concat(frames, ignore_index=True)
    out.attrs = dict(frame.attrs)
    return out


def test_no_figure_clips_a_text_or_lays_it_over_another_panel(data, curve):
    """The issue's defects: the entropy figure's legends over the neighbouring panels and
    its x label cut ("an-vote entropy"), the reliability figure's right title cut, every
    figure checked the same way, crowded as a real study (three models, fourteen
    strategies and controls)."""
    man, sc, by_bin = data
    sc3, by3 = _crowded(sc), _crowded(by_bin)
    gains = analysis.gain_by_ambiguity(sc3[sc3["strategy"].isin(["greedy", "majority",
                                                                  "vote_share"])],
                                       man, "js_divergence", n_boot=20)
    curve3 = _crowded(curve[2])
    figures = {
        "human_entropy": plots.human_entropy(man),
        "metric_by_ambiguity": plots.metric_by_ambiguity(by3, "js_divergence", "demo"),
        "gain_vs_ambiguity": plots.gain_vs_ambiguity(gains, "demo"),
        "entropy_pred_vs_human": plots.entropy_pred_vs_human(sc3, "demo, distribution prompt"),
        "reliability": plots.reliability_diagram(analysis.reliability_table(sc3),
                                                 "demo, distribution prompt"),
        "scaling_curves": plots.scaling_curves(curve3, ["js_divergence"], "demo"),
        "paper_metric_by_ambiguity": paper.metric_by_ambiguity(by3, "demo").figure,
        "paper_scaling": paper.scaling(curve3, "demo").figure,
    }
    for name, fig in figures.items():
        assert text_problems(fig) == [], name
        plt.close(fig)


def test_paper_figures_draw_at_most_ten_series_and_one_vocabulary(data):
    man, sc, by_bin = data
    pf = paper.metric_by_ambiguity(_crowded(by_bin), "demo")
    for ax in pf.figure.axes:
        labels = [x for x in _labels(ax) if "(reference)" not in x]
        assert len(labels) <= 10, labels
    assert "greedy_smoothed, vote_share, first_parsable, label_logits_tempered" in pf.caption
    assert "bound" not in pf.caption.replace("not a bound", "")
    assert "Left out here (in the tables): bon_sample, cot, dirichlet" in pf.caption
    gain = analysis.gain_by_ambiguity(sc, man, "js_divergence", n_boot=20)
    fig = plots.gain_vs_ambiguity(gain, "demo")
    assert "(bits) (bits)" not in fig.axes[0].get_ylabel()
    g, smoothed = strategy_style("greedy"), strategy_style("greedy_smoothed")
    assert g["color"] != smoothed["color"]
    plt.close(fig)
    plt.close(pf.figure)
