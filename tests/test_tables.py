"""Tables as people read them: rounding only at the edge, intervals in one cell."""
import numpy as np
import pandas as pd

from ambiemo.tables import to_markdown, with_intervals, write_table


def test_markdown_view_keeps_full_precision_in_csv(tmp_path):
    summary = pd.DataFrame({"model": ["m", "prior"], "strategy": ["greedy", "reference"], "n": [1, 1],
                            "js_divergence": [0.123456, np.nan], "js_divergence_lo": [0.1, np.nan],
                            "js_divergence_hi": [0.15, np.nan], "share_missing": [0.25, 0.0]})
    view = with_intervals(summary, ["js_divergence"])
    assert list(view["js_divergence"]) == ["0.123 [0.100, 0.150]", "–"]
    assert list(view["missing"]) == ["25.0%", "0.0%"]
    csv, md = write_table(summary, tmp_path / "t", markdown=view)
    assert pd.read_csv(csv)["js_divergence"].iloc[0] == 0.123456
    lines = md.read_text().splitlines()
    assert lines[0] == "| model | strategy | n | js_divergence | missing |"
    assert lines[2] == "| m | greedy | 1 | 0.123 [0.100, 0.150] | 25.0% |"


def test_numeric_columns_are_right_aligned():
    md = to_markdown(pd.DataFrame({"a": ["x"], "b": [1.5]}), digits=1)
    assert md.splitlines()[1] == "|---|---:|" and md.splitlines()[2] == "| x | 1.5 |"
