"""Tables as people read them: rounding only at the edge, intervals in one cell, the best per
column marked in its metric's direction, unavailable strategies shown as such (never numbers)."""
import numpy as np
import pandas as pd
import pytest

from ambiemo import tts
from ambiemo.outputs import tables
from ambiemo.tts.predictions import unavailable_strategies
from ambiemo.outputs.tables import to_markdown, with_intervals, write_table

METRICS = ("js_divergence", "accuracy")
CLASSES = ("angry", "happy", "neutral", "sad")


def test_markdown_view_keeps_full_precision_in_csv(tmp_path):
    summary = pd.DataFrame({"model": ["m", "prior"], "strategy": ["greedy", "reference"], "n": [1, 1],
                            "js_divergence": [0.123456, np.nan], "js_divergence_lo": [0.1, np.nan],
                            "js_divergence_hi": [0.15, np.nan], "share_missing": [0.25, 0.0]})
    view = with_intervals(summary, ["js_divergence"])
    assert list(view["js_divergence"]) == ["0.123 [0.100, 0.150]", "–"]
    assert list(view["missing"]) == ["25.0%", "0.0%"]
    csv, md, tex = write_table(summary, tmp_path / "t", markdown=view)
    assert pd.read_csv(csv)["js_divergence"].iloc[0] == 0.123456
    lines = md.read_text().splitlines()
    assert lines[0] == "| model | strategy | n | js_divergence | missing |"
    assert lines[2] == "| m | greedy | 1 | 0.123 [0.100, 0.150] | 25.0% |"
    assert r"js\_\\divergence" in tex.read_text() and r"25.0\%" in tex.read_text()  # stacked


def test_numeric_columns_are_right_aligned():
    md = to_markdown(pd.DataFrame({"a": ["x"], "b": [1.5]}), digits=1)
    assert md.splitlines()[1] == "|---|---:|" and md.splitlines()[2] == "| x | 1.5 |"


def test_latex_escapes_specials_and_bolds_cells():
    df = pd.DataFrame({"model": ["w_bon & 50%"], "v": [0.5]})
    bold = pd.DataFrame({"model": [False], "v": [True]})
    tex = tables.to_latex(df, digits=2, bold=bold)
    assert r"w\_bon \& 50\%" in tex and r"\textbf{0.50}" in tex
    assert tex.startswith(r"\begin{tabular}{lr}") and tex.rstrip().endswith(r"\end{tabular}")


def _summary():
    rows = []
    for model, strategy, js, acc in [("a", "greedy", 0.40, 0.30), ("a", "majority", 0.30, 0.35),
                                     ("b", "greedy", 0.35, 0.50), ("prior", "reference", 0.10, 0.90),
                                     ("new_raters", "reference", 0.05, 0.95)]:
        rows.append(dict(model=model, strategy=strategy, n=1, n_utts=10, n_missing=1,
                         share_missing=0.1, n_ties=0, js_divergence=js, js_divergence_lo=js - .05,
                         js_divergence_hi=js + .05, accuracy=acc, accuracy_lo=acc - .1,
                         accuracy_hi=acc + .1))
    return pd.DataFrame(rows)


def test_main_table_marks_best_model_row_in_each_direction_and_lists_unavailable(tmp_path):
    unavailable = pd.DataFrame({"model": ["a"], "strategy": ["w_bon"],
                                "reason": ["no log-probabilities"]})
    table = tables.main_table(_summary(), unavailable, metrics=METRICS,
                              strategy_order=["greedy", "w_bon", "majority"])
    assert list(zip(table.model, table.strategy)) == [
        ("a", "greedy"), ("a", "w_bon"), ("a", "majority"), ("b", "greedy"),
        ("prior", "reference"), ("new_raters", "reference")]
    # JS: lower is better -> a/majority (the references, better still, are never "best")
    assert table.loc[table.best_js_divergence, "strategy"].tolist() == ["majority"]
    # accuracy: higher is better -> b/greedy
    assert table.loc[table.best_accuracy, "model"].tolist() == ["b"]
    row = table[table.row_type == "unavailable"].iloc[0]
    assert np.isnan(row.js_divergence) and row.note == "no log-probabilities"
    assert "missing_share" in table and table.missing_share.iloc[0] == 0.1

    csv, md, tex = tables.write_main_table(table, tmp_path / "demo_main", corpus="demo",
                                           metrics=METRICS)
    text = md.read_text()
    assert "| a | w_bon | – | unavailable | unavailable | – | no log-probabilities |" in text
    assert "**0.300 [0.250, 0.350]**" in text and "**0.500 [0.400, 0.600]**" in text
    assert text.count("**") == 4  # exactly one best cell per metric column
    latex = tex.read_text()   # the value in bold, its interval small below it
    assert r"\textbf{0.300}\\{\scriptsize[0.250, 0.350]}" in latex and r"w\_bon" in latex
    assert latex.count(r"\textbf") == 2
    back = pd.read_csv(csv)
    assert back.loc[back.strategy == "w_bon", "js_divergence"].isna().all()
    assert back.best_accuracy.sum() == 1


def test_main_table_refuses_missing_metric_and_double_listing():
    with pytest.raises(KeyError, match="macro_f1"):
        tables.main_table(_summary(), metrics=("macro_f1",))
    clash = pd.DataFrame({"model": ["a"], "strategy": ["greedy"], "reason": ["x"]})
    with pytest.raises(ValueError, match="greedy"):
        tables.main_table(_summary(), clash, metrics=METRICS)


def _samples(logprob=-1.0):
    rows = []
    for u in range(3):
        rows.append(dict(utt_id=f"u{u}", kind="greedy", idx=0, logprob=logprob, n_tokens=2,
                         parse_ok=True, p_x=1.0, p_y=0.0))
        for j in range(4):
            rows.append(dict(utt_id=f"u{u}", kind="sample", idx=j, logprob=logprob, n_tokens=2,
                             parse_ok=True, p_x=float(j % 2), p_y=float(1 - j % 2)))
    return pd.DataFrame(rows)


def test_unavailable_strategies_are_named_and_skipped_not_scored():
    samples = _samples(logprob=np.nan)  # a hosted model: no log-probabilities at all
    asked = ["greedy", "cot", "majority", "bon_sample", "w_bon_sample", "alm_v", "w_alm_v"]
    lacking = unavailable_strategies(samples, asked).set_index("strategy").reason
    assert sorted(lacking.index) == ["alm_v", "bon_sample", "cot", "w_alm_v", "w_bon_sample"]
    assert "kind 'cot'" in lacking["cot"] and "log-probabilities" in lacking["bon_sample"]
    assert "no verifier run" in lacking["alm_v"]
    pred = tts.predict(samples, ["x", "y"], asked, model="m", skip_unavailable=True)
    assert sorted(pred.strategy.unique()) == ["greedy", "majority"] and not pred.missing.any()
    with pytest.raises(ValueError, match="log-probabilities"):
        tts.predict(samples, ["x", "y"], ["bon_sample"], model="m")
    # no beam run: bon / w_bon (beam-based, as the paper) are unavailable with the kind named
    assert "kind 'beam'" in unavailable_strategies(samples, ["bon"]).reason[0]
    # a verifier run that judged nothing finite still leaves alm_v unavailable
    ver = samples[samples.kind == "sample"][["utt_id", "idx"]].assign(score=np.nan)
    assert "no finite score" in unavailable_strategies(samples, ["alm_v"], verifier=ver).reason[0]
    ver["score"] = 0.5
    assert unavailable_strategies(_samples(), ["bon_sample", "alm_v"], verifier=ver).empty
    only = tts.predict(samples, ["x", "y"], ["bon_sample"], model="m", skip_unavailable=True)
    assert only.empty and "p_x" in only


def latex_widths(text: str) -> tuple[int, int, set[int]]:
    r"""(columns of the column spec, cells of the header, cells of each body row) of a .tex
    table as `tables` writes it: one row a line, `\multicolumn{k}` counted as k cells."""
    import re

    spec = re.search(r"\\begin\{(?:tabular|longtable)\}\{((?:p\{[^}]*\}|[lrc])+)\}", text)
    columns = len(re.findall(r"p\{[^}]*\}|[lrc]", spec.group(1)))
    lines = text[spec.end():].splitlines()
    rows = [ln for ln in lines if ln.endswith(r"\\") and not ln.startswith(r"\caption")]

    def cells(line: str) -> int:
        parts = re.split(r"(?<!\\)&", line)
        return sum(int(m.group(1)) if (m := re.search(r"\\multicolumn\{(\d+)\}", c)) else 1
                   for c in parts)

    return columns, cells(rows[0]), {cells(r) for r in rows[1:]}


def test_the_header_names_every_column_of_the_main_table(tmp_path):
    """The issue's defect: with the cost columns, the LaTeX header had 11 cells for 13 row
    cells (tokens/clip and passes/clip missing, `note` over tokens)."""
    summary = _summary().assign(tokens_per_clip=[5.0, 40.0, 5.0, np.nan, np.nan],
                                forward_passes_per_clip=[1.0, 8.0, 1.0, np.nan, np.nan])
    table = tables.main_table(summary, pd.DataFrame({"model": ["a"], "strategy": ["w_bon"],
                                                     "reason": ["no log-probabilities"]}),
                              metrics=METRICS)
    tex = tables.write_main_table(table, tmp_path / "demo_main", corpus="demo",
                                  metrics=METRICS)[2].read_text()
    columns, header, rows = latex_widths(tex)
    assert columns == header and rows == {header}, (columns, header, rows)
    assert "tokens" in tex and "passes" in tex
    with pytest.raises(ValueError, match="2 header cells for 3 columns"):
        tables.to_latex(pd.DataFrame({"a": [1], "b": [2], "c": [3]}), header=["a", "b"])


def test_every_latex_table_compiles_with_pdflatex_without_an_overfull_box(tmp_path):
    """Each .tex the study writes goes into a paper as is: a document that \\input s every
    one (booktabs and longtable loaded, a landscape A4 page with 1 cm margins) compiles with
    pdflatex, with booktabs rules, escaped underscores, the best values in bold, a header
    cell over every column, and no "Overfull" box or "Float too large" in the log. A long
    table (the full main table, the costs) is a longtable; the paper's table per arm is
    short."""
    import re
    import shutil
    import subprocess

    if not shutil.which("pdflatex"):
        pytest.fail("pdflatex is needed: run `scripts/setup.sh test` (as root it installs the "
                    "Debian packages texlive-latex-base and texlive-latex-recommended)")
    # the main table of a study: three models in two arms, every strategy and control, the
    # cost columns, an unavailable row with a long reason, the reference rows
    strategies = [*tts.STRATEGIES, "greedy_smoothed", "label_logits_tempered"]
    rows = []
    for model in ("qwen2-audio-7b-instruct", "sim-human", "sim-constant"):
        for arm in ("distribution", "direct_label"):
            for i, strategy in enumerate(strategies):
                if strategy == "dirichlet":
                    continue
                row = dict(model=model, prompt=arm, strategy=strategy, n=8, n_utts=1000,
                           n_missing=3, share_missing=0.003, n_ties=12, tokens_per_clip=412.5,
                           forward_passes_per_clip=16.0)
                for m in tables.MAIN_METRICS:
                    v = 0.3 + 0.01 * i - (0.6 if m == "r2" else 0)
                    row.update({m: v, f"{m}_lo": v - 0.05, f"{m}_hi": v + 0.05})
                rows.append(row)
    for ref in ("prior", "uniform", "new_raters", "egemaps_soft"):
        row = dict(model=ref, prompt="-", strategy="reference", n=1, n_utts=1000, n_missing=0,
                   share_missing=0.0, n_ties=12)
        row.update({c: 0.2 for m in tables.MAIN_METRICS for c in (m, f"{m}_lo", f"{m}_hi")})
        rows.append(row)
    unavailable = pd.DataFrame({"model": ["qwen2-audio-7b-instruct", "sim-human"],
                                "prompt": ["distribution", "direct_label"],
                                "strategy": ["dirichlet"] * 2,
                                "reason": ["dirichlet pools distributions: the candidates are "
                                           "one-hot (one emotion word each), nothing to pool"] * 2})
    main = tables.main_table(pd.DataFrame(rows), unavailable, strategy_order=strategies)
    fit = pd.DataFrame({"term": ["log10_params",
                                 "C(strategy, Treatment('greedy'))[T.label_logits_tempered]"
                                 ":C(ambiguity_bin)[T.high]"],
                        "estimate": [-0.01, 0.02], "std_error": [0.005, 0.01],
                        "statistic": [-2.0, 2.0], "p_value": [0.04, 0.05],
                        "ci_lo": [-0.02, 0.0], "ci_hi": [0.0, 0.04]})
    fit.attrs.update(formula="js_divergence ~ strategy * ambiguity_bin + log10_params",
                     method="OLS, cluster-robust by utt_id", n_obs=120, n_clusters=60,
                     fitted=True)
    no_fit = pd.DataFrame()
    no_fit.attrs.update(notes=["one model of known size: no capacity trend"], fitted=False)
    main_paths = [*tables.write_main_table(main, tmp_path / "demo_main", corpus="demo_corpus"),
                  *tables.write_paper_tables(main, tmp_path / "demo_main", corpus="demo_corpus")]
    written = [p for p in main_paths if p.suffix == ".tex"] + [
        tables.write_capacity_table(tables.capacity_table(
            {("demo", "distribution", "bhattacharyya_coefficient"): fit,
             ("demo", "distribution", "r2"): no_fit}), tmp_path / "capacity_fit")[2],
        write_table(pd.DataFrame({"corpus": ["crema_d"] * 20, "model": ["qwen2_audio"] * 20,
                                  "metric": ["js_divergence"] * 20, "reported": [0.31] * 20,
                                  "reproduced": [np.nan] * 20,
                                  "status": ["not run: no qwen2-audio-7b-instruct / greedy on "
                                             "the distribution prompt arm on iemocap"] * 20}),
                    tmp_path / "reported_vs_reproduced", digits=4,
                    caption="Reported (Jia et al., 2026) beside this run's; 50% & more.")[2],
        write_table(pd.DataFrame({"model": ["sim-human"] * 90, "prompt": ["distribution"] * 90,
                                  "strategy": ["w_bon_sample"] * 90, "n": range(90),
                                  "tokens_per_clip": [1.5] * 90,
                                  "forward_passes_per_clip": [2.0] * 90,
                                  "verifier_seconds_per_clip": [0.25] * 90}),
                    tmp_path / "demo_costs", caption="demo: cost per clip.")[2],
        # a corpus-statistics row of eighteen columns goes on its side
        write_table(pd.DataFrame({"corpus": ["crema_d"], "label_space": ["6class"],
                                  **{f"vote_share_{c}_{i}": [0.123456] for c in CLASSES
                                     for i in range(4)}}),
                    tmp_path / "crema_d_corpus_statistics")[2],
    ]
    names = [t.stem for t in written]
    assert names[:3] == ["demo_main", "demo_paper__distribution", "demo_paper__direct_label"]
    for tex in written:
        text = tex.read_text()
        assert all(rule in text for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
        assert "_" not in re.sub(r"\\_", "", text), f"{tex.name}: an unescaped underscore"
        columns, header, rows = latex_widths(text)
        assert columns == header and rows == {header}, (tex.name, columns, header, rows)
    main_tex, paper_tex = written[0].read_text(), written[1].read_text()
    assert r"\begin{longtable}" in main_tex and r"\begin{longtable}" in written[-2].read_text()
    assert r"\textbf{0.300}" in main_tex and "[0.250, 0.350]" in main_tex
    assert r"\multicolumn{5}" in main_tex and "one-hot" in main_tex
    assert r"\begin{table}" in paper_tex      # short: a float, the paper's strategies only
    paper_rows = pd.read_csv(tmp_path / "demo_paper__distribution.csv")
    assert set(paper_rows["strategy"]) == {"greedy", "bon", "w_bon", "alm_v", "w_alm_v",
                                           "greedy_smoothed", "label_logits_tempered", "vote_share",
                                           "first_parsable", "reference"}
    assert set(paper_rows["prompt"]) == {"distribution", "-"}
    assert r"label\_logits\_tempered $\times$ high" in written[3].read_text()
    assert r"vote\_share\_angry\_0 & 0.123 \\" in written[-1].read_text()   # transposed
    doc = tmp_path / "paper.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n"
                   "\\usepackage{booktabs,longtable}\n"
                   "\\usepackage[margin=1cm,landscape]{geometry}\n\\begin{document}\n"
                   + "".join(f"\\input{{{t.stem}}}\n\\clearpage\n" for t in written)
                   + "\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                          doc.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    assert (tmp_path / "paper.pdf").read_bytes()[:4] == b"%PDF"
    bad = [ln for ln in log.splitlines() if "Overfull" in ln or "Float too large" in ln]
    assert bad == [], bad


def test_reference_rows_say_what_they_are_and_the_prior_that_it_is_fitted_in_sample():
    from ambiemo.outputs.tables import main_table, main_table_view
    summary = pd.DataFrame([dict(model=m, strategy=s, n=1, js_divergence=0.3,
                                 js_divergence_lo=0.2, js_divergence_hi=0.4, share_missing=0.0,
                                 n_missing=0, n_utts=10, n_ties=0)
                            for m, s in (("m", "greedy"), ("prior", "reference"),
                                         ("new_raters", "reference"))])
    table = main_table(summary, metrics=["js_divergence"]).set_index("model")
    assert "fitted in-sample" in table.loc["prior", "note"]
    assert "split halves" in table.loc["new_raters", "note"]
    assert "bound" not in table.loc["new_raters", "note"].replace("not a bound", "")
    view, _ = main_table_view(main_table(summary, metrics=["js_divergence"]),
                              metrics=["js_divergence"])
    assert view["note"].str.contains("in-sample").any()
