"""Simulated ALMs (alm/sim.py) through the real runner, sample store, strategies and scoring
on the demo corpus: what must come out of a model with a known answer distribution does."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import comb
from scipy.stats import multinomial

from ambiemo.alm import MODELS, Decoding, load_model
from ambiemo.alm.prompts import load_prompt
from ambiemo.sampling.generate import GenerationSettings, generate_samples
from ambiemo.alm.sim import (FLOOR, answer_distribution, answer_form, count_vectors,
                             decoding_filter, multinomial_logpmf)
from ambiemo.sampling.store import SampleStore
from ambiemo.sampling.verify import verify_samples
from ambiemo.labels import columns
from ambiemo.tts.predictions import predict, verifier_scores
from ambiemo.tts.references import REFERENCE_MODELS, reference_predictions, rescore_new_raters
from ambiemo.metrics.scoring import score

NEW_RATERS = next(m for m in REFERENCE_MODELS if m in ("new_raters", "rater_ceiling"))


@pytest.fixture
def prompts(repo):
    return lambda pid: load_prompt(pid, repo / "configs" / "prompts")


def run(name, manifest, store, prompt, **settings):
    report = generate_samples(load_model(name), manifest, store, prompt,
                              GenerationSettings(**settings), progress=False)
    return report, store.read(report.run_key)


def human(manifest) -> np.ndarray:
    return manifest[columns("p", manifest.attrs["classes"])].to_numpy(dtype=float)


def expected_js(p: np.ndarray, n: int) -> tuple[float, float]:
    """Exact mean and variance of JS(vote share of n draws from p, p), by enumerating every
    count vector with scipy (independent of the code under test)."""
    counts = np.array(list(_compositions(n, len(p))))
    pmf = multinomial.pmf(counts, n, p)
    js = jensenshannon(counts / n, np.broadcast_to(p, counts.shape), axis=1, base=2) ** 2
    mean = float(pmf @ js)
    return mean, float(pmf @ (js - mean) ** 2)


def _compositions(n: int, k: int):
    if k == 1:
        yield (n,)
        return
    for first in range(n + 1):
        for rest in _compositions(n - first, k - 1):
            yield (first, *rest)


def test_registry_says_they_are_simulated_and_sizes_differ():
    sims = {n: s for n, s in MODELS.items() if n.startswith("sim-")}
    assert set(sims) == {"sim-human", "sim-sharp", "sim-flat", "sim-constant"}
    assert all(s.hf_class == "simulated" and s.checkpoint.startswith("sim:")
               for s in sims.values())
    sizes = sorted(s.n_params for s in sims.values())
    assert len(set(sizes)) == 4 and np.log10(sizes[-1] / sizes[0]) > 1


def test_answer_forms_of_the_shipped_prompts(prompts):
    classes = ["neutral", "happy", "sad", "angry"]
    assert answer_form(prompts("direct_label").render(classes)) == "label"
    assert answer_form(prompts("distribution").render(classes)) == "distribution"
    assert answer_form(prompts("cot").render(classes)) == "cot"


def test_answer_distributions_and_the_multinomial():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    assert answer_distribution(p) == pytest.approx((1 - FLOOR) * p + FLOOR / 4)
    sharp = answer_distribution(p, power=3)
    assert sharp[0] == pytest.approx(0.125 / 0.16, rel=1e-5)
    flat = answer_distribution(p, mix=0.5)
    assert flat[3] == pytest.approx(0.125, rel=1e-5)
    assert answer_distribution(p, label_index=2)[2] == pytest.approx(1 - 0.75 * FLOOR)
    counts = count_vectors(4, 10)
    assert len(counts) == comb(13, 3, exact=True) and (counts.sum(axis=1) == 10).all()
    assert len({tuple(c) for c in counts}) == len(counts)
    q = answer_distribution(p)
    assert multinomial_logpmf(counts, q) == pytest.approx(multinomial.logpmf(counts, 10, q))


def test_decoding_settings_act_on_the_answer_distribution():
    q = np.array([0.2, 0.5, 0.3])
    assert decoding_filter(q, Decoding()) == pytest.approx(q)
    assert decoding_filter(q, Decoding(temperature=0.5)) == pytest.approx(q ** 2 / (q ** 2).sum())
    assert decoding_filter(q, Decoding(top_k=1)).tolist() == [0, 1, 0]
    assert decoding_filter(q, Decoding(top_p=0.7)) == pytest.approx([0, 0.625, 0.375])
    assert decoding_filter(q, Decoding(top_p=0.8)) == pytest.approx([0, 0.625, 0.375])
    assert decoding_filter(q, Decoding(top_p=0.81)) == pytest.approx(q)


def test_sampling_the_human_distribution(demo_manifest, tmp_path, prompts):
    """sim-human: label_logits is the human distribution; the vote share of N samples is
    N redrawn votes, so at N = 8 (about the demo's rater count) it already beats new_raters
    (a second panel, split-half estimate) -- which is therefore not a bound."""
    m = demo_manifest
    classes = m.attrs["classes"]
    store = SampleStore(tmp_path / "s.sqlite")
    report, samples = run("sim-human", m, store, prompts("direct_label"), n_samples=32,
                          label_scores=True)
    assert report.parse_failures == 0
    preds = predict(samples, classes, ["greedy", "majority", "label_logits"], model="sim-human")
    at8 = predict(samples[samples["idx"] < 8], classes, ["majority"], model="sim-human")
    scores = score(pd.concat([preds, at8.assign(strategy="majority@8")]), m)
    js = scores.groupby("strategy")["js_divergence"].mean()
    assert js["label_logits"] < 1e-5
    # Greedy is the human majority class: every non-tied clip is right.
    assert scores.loc[scores["strategy"] == "greedy", "correct"].mean() == 1.0

    p = human(m)
    for n, strategy in ((8, "majority@8"), (32, "majority")):
        moments = np.array([expected_js(row, n) for row in p])
        se = np.sqrt(moments[:, 1].sum()) / len(p)
        assert abs(js[strategy] - moments[:, 0].mean()) < 3 * se

    # new_raters is the split-half estimate of a second panel of each clip's size
    # (tts.references.rescore_new_raters); a redrawn panel's exact expectation is its scale.
    refs = rescore_new_raters(score(reference_predictions(m, seed=0), m), m, seed=0)
    raters = refs.loc[refs["model"] == NEW_RATERS, "js_divergence"].mean()
    exact = np.array([expected_js(row, int(k)) for row, k in zip(p, m["n_raters"])])
    # Two finite panels disagree more than one panel and the votes it is scored against
    # (here .099 against a redraw's .043), so N redrawn votes already beat it.
    assert exact[:, 0].mean() < raters < 4 * exact[:, 0].mean()
    assert js["majority@8"] < raters
    assert js["majority"] < 0.5 * raters


def test_constant_label_scores_its_class_share(demo_manifest, tmp_path, prompts):
    m = demo_manifest
    classes = m.attrs["classes"]
    store = SampleStore(tmp_path / "s.sqlite")
    _, samples = run("sim-constant", m, store, prompts("direct_label"), n_samples=8,
                     label_scores=True, beams=2)
    assert set(samples.loc[samples["kind"].isin(["greedy", "sample"]), "text"]) == {"neutral"}
    assert samples.loc[samples["kind"] == "beam"].groupby("idx")["text"].first().tolist() == \
        ["neutral", "happy"]   # then the floor's classes, in class order
    scores = score(predict(samples, classes, ["greedy", "majority", "bon", "label_logits"],
                           model="sim-constant"), m)
    labels = m["majority"].dropna()
    share = float((labels == "neutral").mean())
    onehot = np.eye(len(classes))[classes.index("neutral")]
    js = np.mean([jensenshannon(onehot, row, base=2) ** 2 for row in human(m)])
    for strategy, g in scores.groupby("strategy"):
        assert g["correct"].mean() == pytest.approx(share), strategy
        assert g["js_divergence"].mean() == pytest.approx(js, abs=1e-4), strategy


def test_distribution_answers_have_their_own_likelihood(demo_manifest, tmp_path, prompts):
    m = demo_manifest.head(6).copy()
    m.attrs = demo_manifest.attrs
    classes = m.attrs["classes"]
    store = SampleStore(tmp_path / "s.sqlite")
    report, s = run("sim-sharp", m, store, prompts("distribution"), n_samples=6, beams=3,
                    cot_prompt=prompts("cot"))
    assert report.parse_failures == 0
    q = {u: answer_distribution(row, power=3) for u, row in zip(m["utt_id"], human(m))}
    rows = s[s["kind"].isin(["greedy", "sample", "beam"])]
    assert len(rows) == len(m) * (1 + 6 + 3)
    for u, dist, logprob in zip(rows["utt_id"], rows[columns("p", classes)].to_numpy(),
                                rows["logprob"]):
        counts = np.rint(dist * 10)
        assert counts.sum() == 10 and np.allclose(counts / 10, dist)
        assert logprob == pytest.approx(multinomial.logpmf(counts, 10, q[u]))
    for u, g in s.groupby("utt_id"):
        beam = g[g["kind"] == "beam"].sort_values("idx")
        greedy = g[g["kind"] == "greedy"].iloc[0]
        assert (np.diff(beam["logprob"]) <= 0).all()
        assert greedy["text"] == beam["text"].iloc[0]           # greedy = the mode
        assert greedy["logprob"] >= g.loc[g["kind"] == "sample", "logprob"].max()
        cot = g[g["kind"] == "cot"].iloc[0]
        assert cot["text"].endswith(f"Answer: {classes[int(np.argmax(q[u]))]}")


def test_more_beams_than_classes_are_failures_not_repeats(demo_manifest, tmp_path, prompts):
    m = demo_manifest.head(2).copy()
    m.attrs = demo_manifest.attrs
    _, s = run("sim-human", m, SampleStore(tmp_path / "s.sqlite"), prompts("direct_label"),
               n_samples=0, greedy=False, beams=5)
    beam = s[s["utt_id"] == m["utt_id"].iloc[0]].sort_values("idx")
    assert beam["parse_ok"].tolist() == [True] * 4 + [False]
    assert sorted(beam["text"].iloc[:4]) == sorted(m.attrs["classes"])
    assert "only 4 distinct label answers" in beam["parse_error"].iloc[4]


def test_sim_verifier_scores_the_human_share(demo_manifest, tmp_path, prompts):
    m = demo_manifest
    store = SampleStore(tmp_path / "s.sqlite")
    report, _ = run("sim-constant", m, store, prompts("direct_label"), n_samples=3)
    v = verify_samples(load_model("sim-human"), m, store, report.run_key, prompts("verifier"),
                       progress=False)
    scores = verifier_scores(store.read(v.run_key))
    assert len(scores) == 3 * len(m) and v.failures == 0
    p_neutral = m.set_index("utt_id")["p_neutral"]
    assert scores["score"].to_numpy() == pytest.approx(
        (1 - FLOOR) * p_neutral.loc[scores["utt_id"]].to_numpy() + FLOOR / 4)


def test_seeded_reproducible_and_keyed_to_the_annotations(demo_manifest, tmp_path, prompts):
    m = demo_manifest
    prompt = prompts("direct_label")
    a, sa = run("sim-flat", m, SampleStore(tmp_path / "a.sqlite"), prompt, n_samples=4)
    b, sb = run("sim-flat", m, SampleStore(tmp_path / "b.sqlite"), prompt, n_samples=4)
    assert a.run_key == b.run_key
    key = ["utt_id", "kind", "idx"]
    assert sa.sort_values(key)["text"].tolist() == sb.sort_values(key)["text"].tolist()
    c, sc = run("sim-flat", m, SampleStore(tmp_path / "c.sqlite"), prompt, n_samples=4, seed=1)
    assert sa.sort_values(key)["text"].tolist() != sc.sort_values(key)["text"].tolist()
    changed = m.copy()
    changed.attrs = m.attrs
    changed.loc[0, columns("p", m.attrs["classes"])] = 0.25
    d, _ = run("sim-flat", changed, SampleStore(tmp_path / "d.sqlite"), prompt, n_samples=4)
    assert d.run_key != a.run_key


def test_bad_use_is_named(demo_manifest):
    sim = load_model("sim-human")
    with pytest.raises(RuntimeError, match="no Manifest bound"):
        sim.label_scores([_clip("spk1_neutral_s1")], "", ["neutral"])
    bound = load_model("sim-constant", label="fearful", manifest=demo_manifest)
    with pytest.raises(ValueError, match=r"constant label 'fearful' is not a class"):
        bound.label_scores([_clip("spk1_neutral_s1")], "", demo_manifest.attrs["classes"])
    with pytest.raises(KeyError, match="'nowhere' is not in the bound Manifest"):
        bound.label_scores([_clip("nowhere")], "", demo_manifest.attrs["classes"])
    with pytest.raises(TypeError, match="temperature"):
        load_model("sim-flat", temperature=2)
    with pytest.raises(ValueError, match="mix"):
        load_model("sim-flat", mix=2)


def _clip(utt_id):
    from ambiemo.alm import Clip
    return Clip(utt_id, np.zeros(160, dtype=np.float32))


def test_sharp_and_flat_bracket_the_human_entropy(demo_manifest):
    """sim-sharp is more confident than the raters wherever their votes are uneven, sim-flat
    less confident on every clip."""
    m = demo_manifest
    classes = m.attrs["classes"]
    clips = [_clip(u) for u in m["utt_id"]]
    entropy = {}
    for name in ("sim-sharp", "sim-human", "sim-flat"):
        q = np.array([d for _, d in load_model(name, manifest=m).label_scores(clips, "", classes)])
        entropy[name] = -(q * np.log2(q)).sum(axis=1)
    # Sharpening lowers the entropy unless the voted classes share the votes equally.
    p = human(m)
    uneven = np.array([np.ptp(row[row > 0]) > 1e-9 for row in p])
    assert uneven.sum() > 10
    assert (entropy["sim-sharp"][uneven] < entropy["sim-human"][uneven]).all()
    assert (entropy["sim-human"] < entropy["sim-flat"]).all()
