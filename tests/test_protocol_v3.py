"""Study protocol v3 (issue #24, parts 1-3): missing answers are not gains, intervals and
tests respect speakers and sentences, and the answer's form is reported.

Seeded simulations with a known truth, sized for CI. The cluster simulation runs on the
real CREMA-D speaker x sentence layout when the annotations are at ../shared/data/crema_d
(or $AMBIEMO_SHARED_DATA/crema_d), else on a synthetic layout of the same shape."""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from ambiemo import analysis, metrics
from ambiemo.analysis import clusters as C
from ambiemo.analysis.comparisons import COMPARISON_COLUMNS, comparisons_table, holm_adjust
from ambiemo.corpora.manifest import build_manifest
from ambiemo.labels import columns
from ambiemo.tts import predict

SHARED = Path(os.environ.get("AMBIEMO_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CLASSES = ["angry", "happy", "neutral", "sad"]


# --- part 1: a missing answer is not a gain ----------------------------------------------------

def _missing_answer_study(n_clips: int, n_samples: int, seed: int, p_fail: float = 0.2,
                          concentration: float = 20.0):
    """Clips with a human distribution; greedy and N sampled candidates all drawn alike
    (Dirichlet around the human distribution: equal quality), each failing to parse with
    probability p_fail. Returns (manifest, samples)."""
    rng = np.random.default_rng(seed)
    K = len(CLASSES)
    human = rng.dirichlet(np.full(K, 0.7), size=n_clips)
    human = 0.95 * human + 0.05 / K
    records = pd.DataFrame({"utt_id": [f"u{i:05d}" for i in range(n_clips)], "split": "all",
                            "speaker": [f"s{i % 20}" for i in range(n_clips)],
                            "audio_path": "/nonexistent.wav", "n_raters": 10})
    manifest = build_manifest(records, human * 10, CLASSES, corpus="sim", label_space="4class")
    rows = []
    for kind, n in (("greedy", 1), ("sample", n_samples)):
        cand = np.stack([rng.dirichlet(concentration * h, size=n) for h in human])  # (U, n, K)
        ok = rng.random((n_clips, n)) >= p_fail
        frame = pd.DataFrame({"utt_id": np.repeat(records["utt_id"].to_numpy(), n),
                              "kind": kind, "idx": np.tile(np.arange(n), n_clips),
                              "parse_ok": ok.reshape(-1)})
        frame[columns("p", CLASSES)] = np.where(ok[..., None], cand, np.nan).reshape(-1, K)
        rows.append(frame)
    return manifest, pd.concat(rows, ignore_index=True)


def _true_complete_case_gain(n_samples: int, p_fail: float = 0.2, concentration: float = 20.0,
                             n: int = 200_000, seed: int = 99) -> float:
    """E[JS(greedy) - JS(majority) | both answered], by direct simulation of the same model."""
    rng = np.random.default_rng(seed)
    K = len(CLASSES)
    human = 0.95 * rng.dirichlet(np.full(K, 0.7), size=n) + 0.05 / K
    # Dirichlet(c h) per row via gamma draws, vectorised.
    g = rng.gamma(concentration * human[:, None, :].repeat(n_samples + 1, 1))
    cand = g / g.sum(axis=2, keepdims=True)
    ok = rng.random((n, n_samples)) >= p_fail
    keep = ok.any(axis=1)               # the greedy answer's parse is independent of quality
    maj = (cand[:, 1:] * ok[..., None]).sum(1) / np.maximum(ok.sum(1), 1)[:, None]
    js_g = metrics.js_divergence(human, cand[:, 0])
    js_m = metrics.js_divergence(human, maj)
    return float((js_g - js_m)[keep].mean())


def test_complete_case_gain_is_the_true_gain_and_first_parsable_shows_the_rescue():
    manifest, samples = _missing_answer_study(n_clips=1500, n_samples=4, seed=3)
    pred = predict(samples, CLASSES, ["greedy", "majority", "first_parsable"], model="m")
    scores = metrics.score(pred, manifest)
    missing = scores.groupby("strategy")["missing"].mean()
    assert 0.15 < missing["greedy"] < 0.25 and missing["majority"] < 0.01

    truth = _true_complete_case_gain(4)
    cc = analysis.paired_comparison(scores, "majority", "greedy", n_perm=500, n_boot=200,
                                    form="complete_case")
    assert cc.form == "complete_case" and cc.share_dropped == pytest.approx(
        missing["greedy"], abs=0.02)
    assert abs(-cc.diff - truth) <= 0.01, (cc.diff, truth)

    every = analysis.paired_comparison(scores, "majority", "greedy", n_perm=500, n_boot=200)
    rescue = analysis.paired_comparison(scores, "first_parsable", "greedy", n_perm=500,
                                        n_boot=200)
    # The all-clips "gain" is mostly rescue: first_parsable, one answer and no aggregation,
    # shows most of it; complete-case it gains nothing.
    assert -every.diff > 4 * truth
    assert -rescue.diff >= 0.75 * -every.diff
    fp_cc = analysis.paired_comparison(scores, "first_parsable", "greedy", n_perm=500,
                                       n_boot=200, form="complete_case")
    assert abs(fp_cc.diff) < 0.01


def test_gain_by_ambiguity_reports_both_forms_side_by_side():
    manifest, samples = _missing_answer_study(n_clips=300, n_samples=4, seed=4)
    scores = metrics.score(predict(samples, CLASSES, ["greedy", "majority"], model="m"),
                           manifest)
    gains = analysis.gain_by_ambiguity(scores, manifest, n_perm=200, n_boot=100)
    assert {"gain", "cc_gain", "share_dropped", "p_holm", "cc_p_holm", "scheme"} <= set(gains)
    assert (gains["gain"] > gains["cc_gain"]).all()          # rescue inflates the all-clips gain
    assert ((gains["share_dropped"] > 0.1) & (gains["share_dropped"] < 0.35)).all()
    assert (gains["cc_n_utts"] < gains["n_utts"]).all()
    assert (gains["scheme"] == "speaker").all() and gains.attrs["scheme"] == "speaker"


# --- part 2: cluster-robust intervals and tests ------------------------------------------------

def _crema_d_layout() -> pd.DataFrame:
    """utt_id -> speaker, sentence: CREMA-D's real layout, or a synthetic one of its shape
    (91 speakers x 12 sentences, 7442 clips, 6-7 clips per cell)."""
    root = SHARED / "crema_d"
    if (root / "processedResults" / "tabulatedVotes.csv").is_file():
        from ambiemo.corpora import load
        man = load("crema_d", root)
        return man.set_index("utt_id")[["speaker", "sentence"]]
    rng = np.random.default_rng(0)
    cells = [(s, t) for s in range(91) for t in range(12)]
    per = rng.multinomial(7442 - 6 * len(cells), np.full(len(cells), 1 / len(cells))) + 6
    spk = np.repeat([s for s, _ in cells], per)
    sen = np.repeat([t for _, t in cells], per)
    return pd.DataFrame({"speaker": spk.astype(str), "sentence": sen.astype(str)},
                        index=[f"c{i}" for i in range(len(spk))])


def _null_gain(des: C.Design, rng, sd_speaker: float, sd_sentence: float,
               sd_clip: float = 0.17, shift: float = 0.0) -> np.ndarray:
    """Per-clip gains with speaker and sentence random effects (CREMA-D's ICCs ~.015)."""
    a = rng.normal(0, sd_speaker, des.sizes[0])
    b = rng.normal(0, sd_sentence, des.sizes[1])
    return shift + a[des.codes[0]] + b[des.codes[1]] + rng.normal(0, sd_clip, des.n)


def test_paired_comparison_states_and_uses_the_cluster_scheme():
    layout = _crema_d_layout().iloc[::4]       # a quarter of the clips keeps it quick
    rng = np.random.default_rng(1)
    des = C.design(layout, layout.index, "speaker x sentence")
    d = _null_gain(des, rng, 0.02, 0.02)
    scores = pd.concat([pd.DataFrame({"utt_id": layout.index, "model": "m", "strategy": s,
                                      "n": 1, "missing": False, "js_divergence": v,
                                      "speaker": layout["speaker"].to_numpy(),
                                      "sentence": layout["sentence"].to_numpy()})
                        for s, v in (("a", 0.3 + d), ("b", np.full(len(d), 0.3)))])
    res = analysis.paired_comparison(scores, "a", "b", n_perm=200, n_boot=200)
    assert res.scheme == "speaker x sentence" and res.n_clusters == "91 x 12"
    direct = C.mean_inference(d, des, n_perm=200, n_boot=200, seed=0)
    assert (res.diff_lo, res.diff_hi, res.p_value) == pytest.approx(
        (direct.lo, direct.hi, direct.p_value))
    one_way = analysis.paired_comparison(scores, "a", "b", n_perm=200, n_boot=200,
                                         cluster="speaker")
    assert one_way.scheme == "speaker" and one_way.n_clusters == "91"
    clip = analysis.paired_comparison(scores.drop(columns=["speaker", "sentence"]), "a", "b",
                                      n_perm=200, n_boot=200)
    assert clip.scheme == "clip"
    with pytest.raises(ValueError, match="sentence"):
        analysis.paired_comparison(scores.drop(columns="sentence"), "a", "b",
                                   cluster="speaker x sentence")


# 300 null studies per condition: Monte-Carlo SE of a rate near .05 is .013, of a coverage
# near .95 also .013 (the thresholds .07 and .93 sit ~1.5 SE from the nominal .05 / .95).
N_STUDIES = 300


@pytest.mark.parametrize("sd_sentence", [0.0, 0.02])
def test_cluster_robust_test_keeps_its_level_on_the_crema_d_layout(sd_sentence):
    layout = _crema_d_layout()
    des = C.design(layout, layout.index, "speaker x sentence")
    rng = np.random.default_rng(24)
    reject = cover = clip_reject = 0
    clip_des = C.design(pd.DataFrame(index=layout.index), layout.index, "clip")
    for i in range(N_STUDIES):
        shift = 0.01   # coverage of a non-zero truth; the test is of d - shift = 0
        d = _null_gain(des, rng, 0.02, sd_sentence, shift=shift)
        res = C.mean_inference(d - shift, des, n_perm=200, n_boot=200, seed=i)
        reject += res.p_value < 0.05
        cov = C.mean_inference(d, des, n_perm=10, n_boot=200, seed=i)
        cover += cov.lo <= shift <= cov.hi
        if i < 50:   # the clip scheme, for contrast: it ignores the clusters
            clip_reject += C.sign_flip_p(clip_des, d - shift, 100, rng) < 0.05
    assert reject / N_STUDIES <= 0.07, reject / N_STUDIES
    assert cover / N_STUDIES >= 0.93, cover / N_STUDIES
    # The same data tested as independent clips: far above the level (the old protocol).
    assert clip_reject / 50 > 0.1


def test_one_way_speaker_test_keeps_its_level_without_a_sentence_effect():
    layout = _crema_d_layout()
    des = C.design(layout, layout.index, "speaker")
    two = C.design(layout, layout.index, "speaker x sentence")
    rng = np.random.default_rng(7)
    reject = cover = 0
    for i in range(150):
        d = _null_gain(two, rng, 0.02, 0.0)
        res = C.mean_inference(d, des, n_perm=400, n_boot=300, seed=i)
        reject += res.p_value < 0.05
        cover += res.lo <= 0 <= res.hi
    # 150 studies: Monte-Carlo SE .018 at .05
    assert reject / 150 <= 0.08 and cover / 150 >= 0.92


def test_pigeonhole_weights_and_two_way_variance_match_their_definitions():
    layout = pd.DataFrame({"speaker": list("aabbcc"), "sentence": list("xyxyxy")},
                          index=list("123456"))
    des = C.design(layout, layout.index)
    assert des.scheme == "speaker x sentence" and des.sizes == (3, 2)
    counts = C.draw_counts(des, 50, np.random.default_rng(0))
    w = C.clip_weights(des, counts)
    # a clip's weight is its speaker's count times its sentence's count
    assert np.array_equal(w[:, 0], counts[0][:, 0] * counts[1][:, 0])
    v = np.arange(6.0)
    assert np.allclose(C.boot_ratio(des, counts, v, np.ones(6)), (w @ v) / w.sum(1))
    # two-way variance = V_speaker + V_sentence - V_cell (here every cell is one clip)
    e = v - v.mean()

    def one_way(code):
        s = np.bincount(code, weights=e)
        return len(s) / (len(s) - 1) * (s ** 2).sum() / 36
    expected = one_way(des.codes[0]) + one_way(des.codes[1]) - one_way(np.arange(6))
    assert C.two_way_variance(v, des) == pytest.approx(
        expected if expected > 0 else max(one_way(des.codes[0]), one_way(des.codes[1])))
    # An unknown speaker is a cluster of its own; a single speaker cannot be resampled.
    lone = layout.assign(speaker=["a", None, None, "b", "b", "a"]).drop(columns="sentence")
    assert C.design(lone, lone.index).sizes == (4,)
    assert C.resolve_scheme(layout.assign(speaker="a").drop(columns="sentence")) == "clip"


def test_summary_table_resamples_speakers_and_says_so():
    manifest, samples = _missing_answer_study(n_clips=200, n_samples=4, seed=5)
    scores = metrics.score(predict(samples, CLASSES, ["greedy", "majority"], model="m"),
                           manifest)
    table = analysis.summary_table(scores, metrics=("js_divergence", "r2", "macro_f1"),
                                   n_boot=100)
    assert (table["scheme"] == "speaker").all()
    clip = analysis.summary_table(scores.drop(columns="speaker"), metrics=("js_divergence",),
                                  n_boot=100)
    assert (clip["scheme"] == "clip").all()
    assert (table["js_divergence"].to_numpy() == clip["js_divergence"].to_numpy()).all()
    assert (table["r2_lo"] < table["r2"]).all() and (table["r2"] < table["r2_hi"]).all()


# --- the comparisons table ---------------------------------------------------------------------

def test_comparisons_table_has_every_form_holm_across_it_and_the_scheme():
    manifest, samples = _missing_answer_study(n_clips=120, n_samples=4, seed=6)
    first = (samples["kind"] == "sample") & (samples["idx"] == 0)
    samples.loc[first, columns("p", CLASSES)] = np.eye(len(CLASSES))[0]
    samples.loc[first, "parse_ok"] = True          # one one-hot candidate on every clip
    pred = predict(samples, CLASSES, ["greedy", "majority", "first_parsable"], model="m")
    scores = metrics.score(pred.assign(prompt="distribution"), manifest)
    table = comparisons_table(scores, n_perm=200, n_boot=100)
    assert list(table.columns) == COMPARISON_COLUMNS
    assert set(table["strategy"]) == {"majority", "first_parsable"}
    assert set(table["form"]) == {"all", "complete_case", "no_one_hot"}
    assert set(table.loc[table["form"] == "no_one_hot", "metric"]) == {
        "js_divergence", "bhattacharyya_coefficient", "r2_per_clip"}
    assert "macro_f1" not in set(table["metric"])
    ok = table["p"].notna()
    assert np.allclose(table.loc[ok, "p_holm"], multipletests(table.loc[ok, "p"],
                                                              method="holm")[1])
    assert np.allclose(holm_adjust(table["p"]), analysis.holm(table["p"]), equal_nan=True)
    # majority's sample 0 is one-hot on every clip: no clip is left without one-hot candidates
    nh = table[(table["form"] == "no_one_hot") & (table["strategy"] == "majority")]
    assert (nh["n_clips"] == 0).all() and nh["gain"].isna().all()
    cc = table[(table["form"] == "complete_case") & (table["metric"] == "js_divergence")]
    assert (cc["share_dropped"] > 0.1).all()
    assert (table.loc[ok, "scheme"] == "speaker").all()


def test_one_hot_share_is_the_share_of_parsed_candidates_that_are_one_hot():
    manifest, samples = _missing_answer_study(n_clips=50, n_samples=4, seed=8)
    sample0 = (samples["kind"] == "sample") & (samples["idx"] == 0) & samples["parse_ok"]
    samples.loc[sample0, columns("p", CLASSES)] = np.eye(len(CLASSES))[1]
    pred = predict(samples, CLASSES, ["greedy", "majority"], model="m")
    table = analysis.summary_table(metrics.score(pred, manifest),
                                   metrics=("js_divergence",), n_boot=20)
    share = dict(zip(table["strategy"], table["one_hot_share"]))
    parsed = samples[(samples["kind"] == "sample") & samples["parse_ok"]]
    assert share["majority"] == pytest.approx(sample0.sum() / len(parsed))
    assert share["greedy"] == 0.0


# --- part 3: CoT answers in the arm's form -----------------------------------------------------

def test_cot_ends_in_a_distribution_in_the_distribution_arm_only():
    from ambiemo.alm import load_model
    from ambiemo.config import load_config, repo_root
    from ambiemo.parse import parse_response
    from ambiemo.sampling.generate import settings_from_config

    cfg = load_config("configs/smoke.yaml", root=repo_root())
    dist, label = (settings_from_config(cfg, arm).cot_prompt for arm in
                   ("distribution", "direct_label"))
    assert (dist.id, dist.version, dist.answer) == ("cot_distribution", 1, "cot")
    assert label.id == "cot"   # the label arm's run key does not move
    # the simulated model follows the instruction, and the final line parses as a distribution
    manifest = build_manifest(
        pd.DataFrame({"utt_id": ["a"], "split": "all", "speaker": "s", "audio_path": "/x.wav",
                      "n_raters": 10}), np.array([[6.0, 3.0, 1.0, 0.0]]), CLASSES,
        corpus="sim", label_space="4class")
    from ambiemo.alm.base import Clip, Decoding
    model = load_model("sim-human", manifest=manifest)
    clip = Clip("a", np.zeros(1600, dtype=np.float32))
    text = model.generate([clip], dist.render(CLASSES), n=1, greedy=True, decoding=Decoding(),
                          classes=CLASSES, seed=0)[0].text
    parsed = parse_response(text, CLASSES, answer="cot")
    assert parsed.ok and parsed.dist.max() < 1 and np.allclose(parsed.dist, [0.6, 0.3, 0.1, 0])
