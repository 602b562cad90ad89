"""The work of each notebook, one function per stage: what 01-05 call, and what a test or a
script can call without papermill.

Each function reads its inputs from the run layout (`ambiemo.layout.RunLayout`), writes its
outputs there, records the job's status line, and returns what the notebook displays. The
notebooks stay thin: a parameters cell, one call, the figures and tables it returns, and the
summary cell nbval compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ambiemo.config import StudyConfig
from ambiemo.layout import RunLayout
from ambiemo.pipeline.status import arm_notes, write_status


def load(config_path: str) -> StudyConfig:
    """The study config at `config_path` (relative to the repository root)."""
    from ambiemo.config import load_config, repo_root
    return load_config(config_path, root=repo_root())


# --- 01_prepare_corpus --------------------------------------------------------------------

@dataclass
class Prepared:
    manifest: pd.DataFrame
    statistics: pd.DataFrame
    figures: dict = field(default_factory=dict)


def prepare_corpus(cfg: StudyConfig, corpus: str) -> Prepared:
    """Raw corpus -> Manifest (Parquet), corpus statistics table, human-entropy figure."""
    from ambiemo import corpora
    from ambiemo.corpora.stats import corpus_statistics
    from ambiemo.outputs import figures
    from ambiemo.outputs.tables import write_table

    lay = RunLayout.of(cfg)
    cc = cfg.corpora[corpus]
    manifest = corpora.load(corpus, cc.root, cc.label_space, **cc.options)
    out = lay.manifest(corpus)
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(out, index=False)
    stats = corpus_statistics(manifest)
    write_table(stats, lay.table(f"{corpus}_corpus_statistics"))
    fig = figures.human_entropy(manifest)
    figures.save(fig, lay.figure(f"{corpus}_human_entropy"))
    if "egemaps_soft" in cfg.scoring.references:
        # Extracted once per corpus, next to the Manifest; 04_score reads the cache.
        from ambiemo.features.egemaps import extract_egemaps
        extract_egemaps(manifest, lay.features(corpus, "egemaps"), n_jobs=feature_jobs())
    return Prepared(manifest, stats, {"human_entropy": fig})


def feature_jobs() -> int:
    """Worker processes for feature extraction: every core this process may use."""
    import os
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def read_manifest(cfg: StudyConfig, corpus: str) -> pd.DataFrame:
    path = RunLayout.of(cfg).manifest(corpus)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: prepare the corpus first "
                                f"(./run_all.sh CONFIG --stage prepare --corpus {corpus})")
    return pd.read_parquet(path)


# --- 02_generate --------------------------------------------------------------------------

@dataclass
class Generated:
    reports: dict             # prompt arm -> sampling.generate.GenerationReport
    samples: pd.DataFrame     # every arm's samples, with a `prompt` column


def generate(cfg: StudyConfig, model: str, corpus: str, *, progress: bool = True) -> Generated:
    """Manifest -> Samples for one (model, corpus): every answer kind the config asks for, in
    every prompt arm, resumable (the model is loaded once for all arms); writes one samples
    pointer per arm and the job's status line."""
    from ambiemo.alm import load_model
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.generate import generate_samples, settings_from_config
    from ambiemo.sampling.store import SampleStore

    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    adapter = load_model(model, device=cfg.generation.device, **cfg.model_options(model))
    settings = settings_from_config(cfg)
    reports, frames = {}, []
    with SampleStore(lay.store) as store:
        for arm in cfg.generation.prompts:
            prompt = load_prompt(arm, lay.prompt_dir)
            report = generate_samples(adapter, manifest, store, prompt, settings,
                                      progress=progress)
            frames.append(store.read(report.run_key).assign(prompt=arm))
            lay.write_pointer(lay.samples_pointer(model, corpus, arm), run_key=report.run_key,
                              model=model, corpus=corpus, prompt=arm)
            reports[arm] = report
    note = arm_notes(reports, lambda r: (
        f"{r.rows_written} rows, {r.parse_failures} unparsed, {r.unreadable_clips} unreadable, "
        f"{r.truncated_clips} truncated, {r.oom_splits} OOM splits"
        + (f"; unavailable: {'; '.join(r.unavailable)}" if r.unavailable else "")))
    write_status(cfg, "generate", corpus=corpus, model=model,
                 ran=sum(r.batches_run for r in reports.values()),
                 cached=sum(r.batches_cached for r in reports.values()), note=note)
    return Generated(reports, _by_arm(frames))


def _by_arm(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Every arm's rows (each frame with its `prompt`) in one frame, the store's attrs kept."""
    out = pd.concat(frames, ignore_index=True)
    out.attrs = dict(frames[0].attrs)
    return out



# --- 03_verify ----------------------------------------------------------------------------

@dataclass
class Verified:
    reports: dict             # prompt arm -> sampling.verify.VerifyReport
    verdicts: pd.DataFrame    # every arm's verdicts, with a `prompt` column


def verify(cfg: StudyConfig, model: str, corpus: str, *, progress: bool = True) -> Verified:
    """The config's verifier judges `model`'s candidates on `corpus` in every prompt arm
    (for alm_v / w_alm_v); writes one verify pointer per arm."""
    from ambiemo.alm import load_model
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.store import SampleStore
    from ambiemo.sampling.verify import verify_samples

    ver = cfg.verification
    if ver is None:
        raise ValueError(f"{cfg.path}: no `verification` section, so there is nothing to verify")
    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    sources = {arm: lay.read_pointer(lay.samples_pointer(model, corpus, arm))["run_key"]
               for arm in cfg.generation.prompts}   # every arm generated before loading
    options = cfg.model_options(ver.model) if ver.model in cfg.models else {}
    verifier = load_model(ver.model, device=cfg.generation.device, **options)
    prompt = load_prompt(ver.prompt, lay.prompt_dir)
    reports, frames = {}, []
    with SampleStore(lay.store) as store:
        for arm, source in sources.items():
            report = verify_samples(verifier, manifest, store, source, prompt,
                                    candidates=ver.candidates, n=ver.n,
                                    batch_size=cfg.generation.batch_size, progress=progress)
            frames.append(store.read(report.run_key).assign(prompt=arm))
            lay.write_pointer(lay.verify_pointer(model, corpus, arm), run_key=report.run_key,
                              verifier=ver.model, source_run=source, model=model,
                              corpus=corpus, prompt=arm)
            reports[arm] = report
    note = arm_notes(reports, lambda r: f"{r.failures} verdicts failed, "
                      f"{r.clips_without_candidates} clips had nothing to judge")
    write_status(cfg, "verify", corpus=corpus, model=model,
                 ran=sum(r.rows_written for r in reports.values()),
                 cached=sum(r.clips_cached for r in reports.values()), note=note)
    return Verified(reports, _by_arm(frames))


# --- 04_score -----------------------------------------------------------------------------

@dataclass
class Scored:
    predictions: pd.DataFrame
    scores: pd.DataFrame
    unavailable: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame
    curve: pd.DataFrame
    figures: dict = field(default_factory=dict)
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)   # tts.costs.strategy_costs
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)  # parse.failure_breakdown


def score_corpus(cfg: StudyConfig, corpus: str) -> Scored:
    """Samples -> Predictions -> Scores for every model and prompt arm on `corpus`, beside the
    reference rows: the main table (CSV/MD/LaTeX; one block of rows per model and arm), the
    cost per clip of each strategy, the by-ambiguity, gain, entropy, reliability and scaling
    figures of the main arm, and the paper figures with captions of every arm."""
    from ambiemo import analysis, metrics
    from ambiemo.outputs import tables
    from ambiemo.parse import failure_breakdown
    from ambiemo.sampling.kinds import ANSWER_KINDS
    from ambiemo.sampling.store import SampleStore
    from ambiemo.tts import (default_ns, predict, reference_predictions, scaling_curve,
                             unavailable_strategies, verifier_scores)
    from ambiemo.tts.controls import control_predictions
    from ambiemo.tts.costs import strategy_costs
    from ambiemo.tts.references import NO_PROMPT
    from ambiemo.tts.soft_reference import supervised_references

    text_kinds = [k.kind for k in ANSWER_KINDS if k.text]
    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    classes = manifest.attrs["classes"]
    strategies = list(cfg.scoring.strategies)
    main_metrics = metrics.MAIN_METRICS
    scaling_ns = default_ns(cfg.generation.n_samples)  # n = 1, 2, 4, ..., N

    refs = reference_predictions(manifest, seed=cfg.seed)
    refs = refs[refs["model"].isin(cfg.scoring.references)]
    supervised = supervised_references(manifest, cfg.scoring.references,
                                       features_dir=lay.features_dir,
                                       corpus=corpus, seed=cfg.seed, n_jobs=1)
    # Reference rows ask no model, so they belong to no prompt arm (and are drawn in each).
    predictions = [refs.assign(prompt=NO_PROMPT), supervised.assign(prompt=NO_PROMPT)]
    curves, unavailable, answers, costs = [], [], [], []
    ver = cfg.verification
    with SampleStore(lay.store) as store:
        for model in cfg.models:
            for arm in cfg.generation.prompts:
                samples = store.read(
                    lay.read_pointer(lay.samples_pointer(model, corpus, arm))["run_key"])
                answers.append(samples[samples["kind"].isin(text_kinds)]
                               .assign(model=model, prompt=arm))
                pointer = lay.verify_pointer(model, corpus, arm)
                verdicts = (store.read(lay.read_pointer(pointer)["run_key"])
                            if pointer.is_file() and ver is not None else None)
                verifier = (verifier_scores(verdicts, str(pointer), candidates=ver.candidates,
                                            n=ver.n) if verdicts is not None else None)
                lacking = unavailable_strategies(samples, strategies, verifier=verifier)
                unavailable.append(lacking.assign(model=model, prompt=arm))
                predictions.append(predict(samples, classes, strategies, model=model,
                                           verifier=verifier, skip_unavailable=True)
                                   .assign(prompt=arm))
                usable = [s for s in strategies if s not in set(lacking["strategy"])]
                if usable:
                    curves.append(scaling_curve(samples, classes, usable, model=model,
                                                ns=scaling_ns, seed=cfg.seed,
                                                verifier=verifier).assign(prompt=arm))
                    costs.append(strategy_costs(samples, verdicts, usable, model=model,
                                                ns=scaling_ns).assign(prompt=arm))
    unavailable = pd.concat(unavailable, ignore_index=True)
    unavailable = unavailable[["model", "prompt", *[c for c in unavailable
                                                    if c not in ("model", "prompt")]]]
    failures = failure_breakdown(pd.concat(answers, ignore_index=True),
                                 by=("model", "prompt", "kind"))
    tables.write_table(failures, lay.table(f"{corpus}_failures"), caption=(
        f"{corpus}: every answer by what became of it: parsed, or why not (unparsed, truncated "
        "at the token limit, API error, unusable audio, out of memory, a failed Ray shard); "
        "renormalised: stated probabilities rescaled to sum to 1; dropped: mass on classes "
        "outside the label space removed."))
    predictions = pd.concat(predictions, ignore_index=True)
    # The controls every strategy's gain is read against (greedy smoothed towards uniform,
    # label_logits at a temperature), cross-fitted over speaker folds, per model and arm.
    predictions = pd.concat([predictions, control_predictions(predictions, manifest,
                                                              seed=cfg.seed, classes=classes)],
                            ignore_index=True)
    scores = metrics.score(predictions, manifest, classes=classes)
    predictions.to_parquet(lay.predictions(corpus), index=False)
    scores.to_parquet(lay.scores(corpus), index=False)

    summary = analysis.summary_table(scores, metrics=main_metrics, n_boot=cfg.scoring.n_boot,
                                     seed=cfg.seed, classes=classes)
    summary.assign(corpus=corpus).to_parquet(lay.summary(corpus), index=False)
    costs = pd.concat(costs, ignore_index=True) if costs else pd.DataFrame()
    if len(costs):   # the arm beside the model, as in every other table
        costs = costs[["model", "prompt", *[c for c in costs if c not in ("model", "prompt")]]]
    if len(costs):
        tables.write_table(costs, lay.table(f"{corpus}_costs"), caption=(
            f"{corpus}: cost per clip of each strategy at each n and prompt arm (generated "
            "tokens, forward passes, measured seconds with the verifier's included)."))
    keys = ["model", "prompt", "strategy", "n"]
    with_costs = (summary.merge(costs[[*keys, *tables.COST_COLUMNS]], on=keys, how="left")
                  if len(costs) else summary)
    table = tables.main_table(with_costs, unavailable, metrics=main_metrics,
                              strategy_order=strategies)
    tables.write_main_table(table, lay.table(f"{corpus}_main"), corpus=corpus,
                            metrics=main_metrics)
    tables.write_paper_tables(table, lay.table(f"{corpus}_main"), corpus=corpus,
                              metrics=main_metrics)
    curve = (analysis.summary_table(metrics.score(pd.concat(curves, ignore_index=True), manifest,
                                                  classes=classes),
                                    metrics=main_metrics, n_boot=cfg.scoring.n_boot,
                                    seed=cfg.seed, classes=classes)
             if curves else pd.DataFrame(columns=[*keys, *main_metrics]))
    curve.to_csv(lay.table(f"{corpus}_scaling").with_suffix(".csv"), index=False)

    figs = {}
    for arm in cfg.generation.prompts:
        figs.update(_arm_figures(cfg, corpus, arm, scores, summary, curve, costs, manifest))
    return Scored(predictions, scores, unavailable, summary, table, curve, figs, costs, failures)


def arm_title(cfg: StudyConfig, corpus: str, arm: str) -> str:
    """A figure's title and caption prefix: the corpus, and the prompt arm when several run."""
    return corpus if len(cfg.generation.prompts) == 1 else f"{corpus}, {arm} prompt"


def arm_stem(cfg: StudyConfig, stem: str, arm: str) -> str:
    """A figure's file stem: the main arm keeps the plain stem, another arm adds `__<arm>`."""
    return stem if arm == cfg.generation.prompt else f"{stem}__{arm}"


def _arm_figures(cfg: StudyConfig, corpus: str, arm: str, scores: pd.DataFrame,
                 summary: pd.DataFrame, curve: pd.DataFrame, costs: pd.DataFrame,
                 manifest: pd.DataFrame) -> dict:
    """The figures of one prompt arm (its rows and the reference rows): the paper figures for
    every arm, the diagnostic ones for the main arm only (the tables hold every arm)."""
    from ambiemo import analysis, metrics
    from ambiemo.outputs import figures, paper_figures
    from ambiemo.tts.references import is_reference, of_arm
    from ambiemo.tts.scaling import DEFAULT_N_SUBSETS

    lay = RunLayout.of(cfg)
    main_metrics = metrics.MAIN_METRICS
    n_boot = cfg.scoring.n_boot
    title = arm_title(cfg, corpus, arm)
    scores, summary, curve = of_arm(scores, arm), of_arm(summary, arm), of_arm(curve, arm)
    costs = of_arm(costs, arm) if len(costs) else costs
    refs_summary = summary[is_reference(summary)]
    by_bin = analysis.summary_by_ambiguity(scores, manifest, metrics=main_metrics,
                                           n_boot=n_boot, seed=cfg.seed,
                                           classes=manifest.attrs["classes"])
    figs = {}
    if arm == cfg.generation.prompt:
        for metric in main_metrics:
            figs[f"by_ambiguity_{metric}"] = figures.metric_by_ambiguity(by_bin, metric, title)
        for metric in [m for m in main_metrics if m != "macro_f1"]:  # no per-clip value to pair
            gains = analysis.gain_by_ambiguity(scores, manifest, metric, baseline="greedy",
                                               n_boot=n_boot, seed=cfg.seed)
            figs[f"gain_vs_ambiguity_{metric}"] = figures.gain_vs_ambiguity(gains, title)
        figs["entropy_pred_vs_human"] = figures.entropy_pred_vs_human(scores, title)
        figs["reliability"] = figures.reliability_diagram(analysis.reliability_table(scores),
                                                          title)
        figs["scaling_curves"] = figures.scaling_curves(curve, main_metrics, title,
                                                        references=refs_summary)
        for name, fig in figs.items():
            figures.save(fig, lay.figure(f"{corpus}_{name}"))
    primary = paper_figures.PRIMARY_METRIC
    paper = [paper_figures.metric_by_ambiguity(by_bin, title, n_boot=n_boot),
             paper_figures.gain_by_ambiguity(
                 analysis.gain_by_ambiguity(scores, manifest, primary, baseline="greedy",
                                            n_boot=n_boot, seed=cfg.seed),
                 title, n_boot=n_boot),
             paper_figures.scaling(curve, title, n_subsets=DEFAULT_N_SUBSETS, seed=cfg.seed,
                                   references=refs_summary, n_boot=n_boot)]
    if len(costs) and len(curve):
        paper.append(paper_figures.cost(curve, costs, title, n_boot=n_boot))
    for pf in paper:
        stem = arm_stem(cfg, f"{corpus}_paper_{pf.name}", arm)
        paper_figures.save_paper_figure(pf, lay.figure(stem))
        if pf.figure is not None:
            figs[stem.removeprefix(f"{corpus}_")] = pf.figure
    return figs


# --- 05_capacity_vs_ambiguity -------------------------------------------------------------

@dataclass
class Analysed:
    n_params: dict
    capacity: pd.DataFrame
    reported: pd.DataFrame
    figures: dict = field(default_factory=dict)


def analyse(cfg: StudyConfig) -> Analysed:
    """Across corpora: the capacity x ambiguity fits and figures, and the paper's reported
    numbers beside this run's."""
    from ambiemo import analysis, metrics
    from ambiemo.alm.registry import MODELS
    from ambiemo.outputs import figures, paper_figures, tables
    from ambiemo.outputs.paper_numbers import load_reported, reported_beside
    from ambiemo.tts.references import of_arm

    lay = RunLayout.of(cfg)
    # Parameter count per model: the registry's; None for hosted models and unregistered
    # checkpoints.
    n_params = {m: (MODELS[m].n_params if m in MODELS else None) for m in cfg.models}
    fit_metrics = ("js_divergence", "bhattacharyya_coefficient", "r2", "correct")
    main_metrics = metrics.MAIN_METRICS
    fits, by_bins = {}, {}
    arms = cfg.generation.prompts
    for corpus in cfg.corpora:
        scores = pd.read_parquet(lay.scores(corpus))
        manifest = read_manifest(cfg, corpus)
        for arm in arms:   # capacity is compared within an arm: the candidates' form differs
            of_this_arm = of_arm(scores, arm)
            for metric in fit_metrics:
                fits[corpus, arm, metric] = analysis.capacity_analysis(of_this_arm, manifest,
                                                                       n_params, metric)
            by_bins[corpus, arm] = analysis.summary_by_ambiguity(
                of_this_arm, manifest, metrics=main_metrics, n_boot=cfg.scoring.n_boot,
                seed=cfg.seed, classes=manifest.attrs["classes"])
    capacity = tables.capacity_table(fits)
    tables.write_capacity_table(capacity, lay.table("capacity_fit"))
    figs = {}
    for (corpus, arm), by_bin in by_bins.items():
        title = arm_title(cfg, corpus, arm)
        if arm == cfg.generation.prompt:   # the diagnostic figures: the main arm's
            for metric in main_metrics:
                fig = figures.capacity_vs_metric(by_bin, n_params, metric, title)
                if fig is not None:   # None: fewer than two model sizes, nothing to show
                    figures.save(fig, lay.figure(f"{corpus}_capacity_{metric}"))
                    figs[f"{corpus}_capacity_{metric}"] = fig
        pf = paper_figures.capacity(by_bin, n_params, title, n_boot=cfg.scoring.n_boot)
        stem = arm_stem(cfg, f"{corpus}_paper_capacity", arm)
        paper_figures.save_paper_figure(pf, lay.figure(stem))
        if pf.figure is not None:
            figs[stem] = pf.figure
    reproduced = pd.concat([pd.read_parquet(lay.summary(c)) for c in cfg.corpora],
                           ignore_index=True)
    reported = load_reported()
    beside = reported_beside(reproduced, reported)
    # The page version keeps the numbers and the status; the mapping, claim and source stay
    # in CSV/MD, and the caption states the arm every number is set beside.
    page = beside.drop(columns=[c for c in ("reported_as_published", "unit_note", "claim",
                                            "source", "mapping") if c in beside]).rename(
        columns={"reproduced_lo": "lo", "reproduced_hi": "hi",
                 "reproduced_minus_reported": "difference"})
    arm = reported.attrs["arm"]
    tables.write_table(beside, lay.table("reported_vs_reproduced"), digits=4, latex=page,
                       caption="Reported numbers (Jia et al., 2026; public summaries of the "
                               "paper) beside this run's; never mixed into the results."
                               + (f" Each is set beside the {arm['prompt']} prompt arm "
                                  f"(column mapping): {' '.join(arm['why'].split())}"
                                  if arm["prompt"] else ""))
    return Analysed(n_params, capacity, beside, figs)
