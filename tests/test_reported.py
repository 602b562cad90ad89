"""The reported numbers of Jia et al. (2026): one data file with its source, checked on load,
printed beside reproduced numbers in separate columns, percent converted explicitly."""
import numpy as np
import pandas as pd
import pytest

from ambiemo.outputs.paper_numbers import ReportedError, load_reported, reported_beside


def test_shipped_file_holds_the_public_numbers_with_source():
    rep = load_reported()
    assert len(rep) == 14
    key = rep.set_index(["corpus", "strategy", "metric"])
    assert key.loc[("iemocap", "greedy", "js_divergence"), "value"] == 0.3592
    assert key.loc[("iemocap", "w_bon", "r2"), "value"] == 0.3742
    crema = key.loc[("crema_d", "w_alm_v", "accuracy")]
    assert crema.value == 52.30 and crema.unit == "percent" and np.isclose(crema.reported, 0.523)
    assert (rep.model == "qwen2-audio-7b-instruct").all()
    assert rep.source.str.contains("Jia et al. \\(2026\\)").all()
    assert rep.attrs["source"]["title"].startswith("Decoding Ambiguous Emotions")


def test_reported_beside_keeps_columns_apart_and_says_what_was_not_run():
    rep = load_reported()
    reproduced = pd.DataFrame([dict(corpus="crema_d", model="qwen2-audio-7b-instruct",
                                    strategy="w_bon", n=8, accuracy=0.50, accuracy_lo=0.45,
                                    accuracy_hi=0.55)])
    out = reported_beside(reproduced, rep)
    assert len(out) == len(rep)
    row = out[(out.corpus == "crema_d") & (out.strategy == "w_bon")].iloc[0]
    assert row.status == "reproduced" and row.reproduced == 0.50
    assert np.isclose(row.reported, 0.5324) and np.isclose(row.reproduced_minus_reported, -0.0324)
    assert row.reported_as_published.startswith("53.24%")
    assert row.unit_note == "published in percent, divided by 100"
    other = out[out.status != "reproduced"]
    assert len(other) == len(rep) - 1 and other.reproduced.isna().all()
    assert other.reported.notna().all() and other.status.str.startswith("not run").all()
    with pytest.raises(KeyError, match="corpus"):
        reported_beside(reproduced.drop(columns="corpus"), rep)


def _write(tmp_path, numbers, source=True):
    src = ("source: {title: T, authors: A, year: 2026, kind: summary}\n" if source else "")
    path = tmp_path / "r.yaml"
    path.write_text(src + "numbers:\n" + "".join(f"  - {n}\n" for n in numbers))
    return path


GOOD = ("{model: m, model_as_published: M, corpus: c, strategy: greedy, "
        "strategy_as_published: baseline, metric: accuracy, value: 40, unit: percent, claim: x}")


def test_bad_files_are_refused_naming_file_entry_and_value(tmp_path):
    assert len(load_reported(_write(tmp_path, [GOOD]))) == 1
    with pytest.raises(ReportedError, match="source"):
        load_reported(_write(tmp_path, [GOOD], source=False))
    with pytest.raises(ReportedError, match=r"numbers\[0\].*outside 0..1 "):
        load_reported(_write(tmp_path, [GOOD.replace("unit: percent", "unit: fraction")]))
    with pytest.raises(ReportedError, match=r"numbers\[1\].*unit 'pct'"):
        load_reported(_write(tmp_path, [GOOD, GOOD.replace("percent", "pct")]))
    with pytest.raises(ReportedError, match="unknown strategy 'wbon'"):
        load_reported(_write(tmp_path, [GOOD.replace("greedy", "wbon")]))
    with pytest.raises(ReportedError, match="unknown metric 'acc'"):
        load_reported(_write(tmp_path, [GOOD.replace("accuracy", "acc")]))
    with pytest.raises(ReportedError, match="twice"):
        load_reported(_write(tmp_path, [GOOD, GOOD]))
    with pytest.raises(ReportedError, match="not found"):
        load_reported(tmp_path / "nope.yaml")


def test_the_mapping_names_the_verifier_and_capacity_names_the_stand_in():
    """The study's verifier (GPT-4o) is shut down: each verifier row's mapping says which
    model judged instead; Audio Flamingo 3 (8.27 B) stands in for the study's 3 B Audio
    Flamingo 2, and the capacity caveat says so with the open models' span."""
    from ambiemo.outputs.paper_numbers import capacity_caveats
    rep = load_reported()
    assert rep.attrs["substitutions"]["verifier"]["used"] == "gpt-audio-1.5"
    reproduced = pd.DataFrame([dict(corpus="crema_d", model="qwen2-audio-7b-instruct",
                                    strategy="alm_v", n=3, accuracy=0.5)])
    out = reported_beside(reproduced, rep).set_index(["corpus", "strategy", "metric"])
    assert "verifier GPT-4o -> gpt-audio-1.5" in out.loc[("crema_d", "alm_v", "accuracy"),
                                                        "mapping"]
    assert "verifier" not in out.loc[("crema_d", "w_bon", "accuracy"), "mapping"]
    mine = reported_beside(reproduced, rep, verifier="sim-human").set_index(
        ["corpus", "strategy", "metric"])
    assert "verifier GPT-4o -> sim-human" in mine.loc[("crema_d", "w_alm_v", "accuracy"),
                                                     "mapping"]
    paper = {"qwen2-audio-7b-instruct": 8.4e9, "audio-flamingo-3": 8.27e9,
             "qwen2.5-omni-7b": 8.93e9, "gpt-audio-1.5": None}
    (caveat,) = capacity_caveats(paper, rep)
    assert caveat.startswith("audio-flamingo-3 (8.27 B) stands in for the study's 3 B "
                             "Audio Flamingo 2") and "span 0.03 decades" in caveat
    assert capacity_caveats({"qwen2-audio-7b-instruct": 8.4e9}, rep) == []


def test_a_bad_substitution_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path, ["{model: m, model_as_published: M, corpus: c, strategy: greedy, "
                             "strategy_as_published: b, metric: js_divergence, value: 0.3, "
                             "unit: fraction, claim: x}"])
    path.write_text(path.read_text() + "substitutions:\n  models:\n    - {published: X, "
                    "used: m, why: w}\n")
    with pytest.raises(ReportedError, match=r"r\.yaml: substitutions.models\[0\]"):
        load_reported(path)
