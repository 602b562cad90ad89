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
