"""Prompt arms (issue #13): the candidates' form is an arm of the study. A config lists
`generation.prompts`; the arm is a column of every Predictions, Scores, summary and table
row, the controls are fitted per arm, the capacity fit never pools arms, and the reported
numbers are set beside the arm they map to."""
import numpy as np
import pandas as pd
import pytest

from ambiemo import analysis, metrics
from ambiemo.config import load_config
from ambiemo.labels import columns
from ambiemo.layout import RunLayout
from ambiemo.outputs.paper_numbers import ReportedError, load_reported, reported_beside
from ambiemo.outputs.tables import capacity_table, main_table
from ambiemo.tts.controls import control_predictions
from ambiemo.tts.references import NO_PROMPT, of_arm, reference_predictions
from test_config import BASE
from test_config import write as write_config



def write(tmp_path, text):
    return write_config(tmp_path, BASE + text)


def test_config_lists_prompt_arms_main_arm_first(tmp_path, repo):
    cfg = load_config(write(tmp_path, "generation: {prompts: [distribution, direct_label]}\n"))
    assert cfg.generation.prompts == ("distribution", "direct_label")
    assert cfg.generation.prompt == "distribution"          # the main arm
    one = load_config(write(tmp_path, "generation: {prompt: distribution}\n")).generation
    assert one.prompts == ("distribution",) and one.prompt == "distribution"
    default = load_config(write(tmp_path, "")).generation
    assert default.prompts == ("direct_label",)
    assert load_config(repo / "configs" / "paper.yaml").generation.prompts == (
        "distribution", "direct_label")


def test_every_arm_has_its_own_pointer(tmp_path):
    cfg = load_config(write(tmp_path, "generation: {prompts: [distribution, direct_label]}\n"))
    lay = RunLayout.of(cfg)
    names = {lay.samples_pointer("m", "demo", a).name for a in cfg.generation.prompts}
    assert names == {"m__demo__distribution.json", "m__demo__direct_label.json"}
    assert lay.verify_pointer("m", "demo", "direct_label").name == "m__demo__direct_label__verify.json"
    assert cfg.samples_pointer("m", "demo") == lay.samples_pointer("m", "demo", "distribution")
    with pytest.raises(FileNotFoundError, match="run the verify stage"):
        lay.read_pointer(lay.verify_pointer("m", "demo", "distribution"))


def test_preflight_refuses_an_arm_that_asks_for_no_answer(repo):
    from ambiemo.pipeline.preflight import arm_prompt_problems

    cfg = load_config(repo / "configs" / "smoke.yaml")
    assert arm_prompt_problems(cfg, "generation.prompts[0]", "distribution") == []
    assert arm_prompt_problems(cfg, "generation.prompts[0]", "direct_label") == []
    for prompt in ("cot", "verifier"):
        [problem] = arm_prompt_problems(cfg, "generation.prompts[1]", prompt)
        assert problem.startswith(f"generation.prompts[1]: prompt {prompt!r} asks for a")


def _arm_predictions(manifest, model, arm, q, strategy="greedy"):
    classes = manifest.attrs["classes"]
    frame = pd.DataFrame({"utt_id": manifest["utt_id"], "model": model, "prompt": arm,
                          "strategy": strategy, "n": 1, "replicate": 0, "n_usable": 1,
                          "n_failed": 0, "missing": False, "params": "{}"})
    frame[columns("p", classes)] = q
    return frame


def _two_arms(manifest):
    """One model answering the demo corpus in two arms: the human majority as one word
    (one-hot) and as the human distribution itself; references with prompt '-'."""
    classes = manifest.attrs["classes"]
    p = manifest[columns("p", classes)].to_numpy(float)
    onehot = np.eye(len(classes))[p.argmax(axis=1)]
    refs = reference_predictions(manifest, seed=0).assign(prompt=NO_PROMPT)
    return pd.concat([refs, _arm_predictions(manifest, "m", "direct_label", onehot),
                      _arm_predictions(manifest, "m", "distribution", p)], ignore_index=True)


def test_the_arm_is_a_column_of_scores_summary_and_main_table(demo_manifest):
    preds = _two_arms(demo_manifest)
    scores = metrics.score(preds, demo_manifest)
    assert list(scores.columns[:6]) == ["utt_id", "model", "prompt", "strategy", "n", "replicate"]
    summary = analysis.summary_table(scores, n_boot=50)
    greedy = summary[summary.model == "m"].set_index("prompt")
    assert set(greedy.index) == {"direct_label", "distribution"}
    # the same top class in both arms, so the same accuracy; the form alone moves JS
    assert greedy.loc["distribution", "accuracy"] == greedy.loc["direct_label", "accuracy"]
    assert greedy.loc["distribution", "js_divergence"] == pytest.approx(0, abs=1e-9)
    assert greedy.loc["direct_label", "js_divergence"] > 0.05
    unavailable = pd.DataFrame([dict(model="m", prompt="direct_label", strategy="dirichlet",
                                     reason="one-hot candidates")])
    table = main_table(summary, unavailable, strategy_order=["greedy", "dirichlet"])
    assert list(table.columns[:4]) == ["row_type", "model", "prompt", "strategy"]
    # first-seen arm order within the model, each arm's strategies in config order,
    # references last with prompt '-'
    assert list(zip(table.model, table.prompt, table.strategy)) == [
        ("m", "direct_label", "greedy"), ("m", "direct_label", "dirichlet"),
        ("m", "distribution", "greedy"),
        ("prior", NO_PROMPT, "reference"), ("uniform", NO_PROMPT, "reference"),
        ("new_raters", NO_PROMPT, "reference")]
    with pytest.raises(KeyError, match="lacks \\['prompt'\\]"):
        main_table(summary, unavailable.drop(columns="prompt"))
    with pytest.raises(ValueError, match="both scored and marked unavailable"):
        main_table(summary, unavailable.assign(strategy="greedy"))
    # one arm and the references: what each arm's figures draw
    arm = of_arm(summary, "distribution")
    assert set(arm.prompt) == {"distribution", NO_PROMPT}


def test_controls_are_fitted_per_model_and_arm(demo_manifest):
    preds = _two_arms(demo_manifest)
    controls = control_predictions(preds, demo_manifest, seed=0)
    smoothed = controls[controls.strategy == "greedy_smoothed"]
    assert set(smoothed.prompt) == {"direct_label", "distribution"}
    weight = smoothed.groupby("prompt")["params"].first().map(
        lambda s: __import__("json").loads(s)["weight"])
    # answers that already are the human distribution need no smoothing; one-hot ones do
    assert weight["distribution"] < 0.05 < weight["direct_label"]


def test_capacity_is_never_fitted_on_two_arms_pooled(demo_manifest):
    scores = metrics.score(_two_arms(demo_manifest), demo_manifest)
    with pytest.raises(ValueError, match="within one prompt arm"):
        analysis.capacity_analysis(scores, demo_manifest, {"m": 1e9}, "js_divergence")
    fit = analysis.capacity_analysis(of_arm(scores, "direct_label"), demo_manifest,
                                     {"m": 1e9}, "js_divergence")
    table = capacity_table({("demo", "direct_label", "js_divergence"): fit})
    assert list(table.columns[:3]) == ["corpus", "prompt", "metric"]
    assert set(table.prompt) == {"direct_label"}


def test_reported_numbers_are_set_beside_the_distribution_arm():
    rep = load_reported()
    assert rep.attrs["arm"]["prompt"] == "distribution" and (rep.prompt == "distribution").all()
    rows = [dict(corpus="crema_d", model="qwen2-audio-7b-instruct", prompt=arm,
                 strategy="greedy", n=1, accuracy=acc, accuracy_lo=acc - .01,
                 accuracy_hi=acc + .01) for arm, acc in (("direct_label", .30),
                                                         ("distribution", .40))]
    out = reported_beside(pd.DataFrame(rows), rep)
    row = out[(out.corpus == "crema_d") & (out.strategy == "greedy")].iloc[0]
    assert row.status == "reproduced" and row.reproduced == .40 and row.prompt == "distribution"
    assert row.mapping == "baseline -> greedy on the distribution prompt arm"
    missing = out[(out.corpus == "crema_d") & (out.strategy == "w_bon")].iloc[0]
    assert missing.status.startswith("not run: no qwen2-audio-7b-instruct / w_bon on the "
                                     "distribution prompt arm")


def _reported_file(tmp_path, arm, entry_extra=""):
    path = tmp_path / "r.yaml"
    path.write_text("source: {title: T, authors: A, year: 2026, kind: summary}\n" + arm
                    + "numbers:\n  - {model: m, model_as_published: M, corpus: c, strategy: "
                      "greedy, strategy_as_published: baseline, metric: accuracy, value: 40, "
                      f"unit: percent, claim: x{entry_extra}}}\n")
    return path


def test_a_reported_file_names_its_arm_or_leaves_it_to_a_one_arm_run(tmp_path):
    rows = pd.DataFrame([dict(corpus="c", model="m", prompt=a, strategy="greedy", n=1,
                              accuracy=v) for a, v in (("distribution", .5), ("x", .2))])
    no_arm = load_reported(_reported_file(tmp_path, ""))
    assert no_arm.prompt.isna().all()
    assert reported_beside(rows[rows.prompt == "x"], no_arm).reproduced.iloc[0] == .2
    with pytest.raises(ValueError, match="prompt arms \\['distribution', 'x'\\]"):
        reported_beside(rows, no_arm)
    own = load_reported(_reported_file(tmp_path, "arm: {prompt: distribution, why: w}\n",
                                       ", prompt: x"))
    assert reported_beside(rows, own).reproduced.iloc[0] == .2   # the entry's own arm
    with pytest.raises(ReportedError, match="arm must be a mapping"):
        load_reported(_reported_file(tmp_path, "arm: distribution\n"))
    with pytest.raises(ReportedError, match=r"numbers\[0\]: unknown key\(s\) \['arm'\]"):
        load_reported(_reported_file(tmp_path, "", ", arm: x"))


def test_the_report_keeps_the_papers_order_with_each_arm_after_the_main_one():
    from ambiemo.outputs.report import _paper_rank

    stems = ["demo_paper_scaling__direct_label", "demo_paper_scaling",
             "demo_paper_metric_by_ambiguity__direct_label", "demo_paper_metric_by_ambiguity"]
    assert sorted(stems, key=_paper_rank) == [
        "demo_paper_metric_by_ambiguity", "demo_paper_metric_by_ambiguity__direct_label",
        "demo_paper_scaling", "demo_paper_scaling__direct_label"]
