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
from ambiemo.pipeline.status import write_status


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
    report: object            # sampling.generate.GenerationReport
    samples: pd.DataFrame


def generate(cfg: StudyConfig, model: str, corpus: str, *, progress: bool = True) -> Generated:
    """Manifest -> Samples for one (model, corpus): every answer kind the config asks for,
    resumable; writes the samples pointer and the job's status line."""
    from ambiemo.alm import load_model
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.generate import generate_samples, settings_from_config
    from ambiemo.sampling.store import SampleStore

    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    adapter = load_model(model, device=cfg.generation.device, **cfg.model_options(model))
    prompt = load_prompt(cfg.generation.prompt, lay.prompt_dir)
    with SampleStore(lay.store) as store:
        report = generate_samples(adapter, manifest, store, prompt, settings_from_config(cfg),
                                  progress=progress)
        samples = store.read(report.run_key)
    lay.write_pointer(lay.samples_pointer(model, corpus), run_key=report.run_key, model=model,
                      corpus=corpus)
    note = (f"{report.rows_written} rows, {report.parse_failures} unparsed, "
            f"{report.unreadable_clips} unreadable, {report.truncated_clips} truncated, "
            f"{report.oom_splits} OOM splits"
            + (f"; unavailable: {'; '.join(report.unavailable)}" if report.unavailable else ""))
    write_status(cfg, "generate", corpus=corpus, model=model, ran=report.batches_run,
                 cached=report.batches_cached, note=note)
    return Generated(report, samples)


# --- 03_verify ----------------------------------------------------------------------------

@dataclass
class Verified:
    report: object            # sampling.verify.VerifyReport
    verdicts: pd.DataFrame


def verify(cfg: StudyConfig, model: str, corpus: str, *, progress: bool = True) -> Verified:
    """The config's verifier judges `model`'s candidates on `corpus` (for alm_v / w_alm_v)."""
    from ambiemo.alm import load_model
    from ambiemo.alm.prompts import load_prompt
    from ambiemo.sampling.store import SampleStore
    from ambiemo.sampling.verify import verify_samples

    ver = cfg.verification
    if ver is None:
        raise ValueError(f"{cfg.path}: no `verification` section, so there is nothing to verify")
    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    source = lay.read_pointer(lay.samples_pointer(model, corpus))["run_key"]
    options = cfg.model_options(ver.model) if ver.model in cfg.models else {}
    verifier = load_model(ver.model, device=cfg.generation.device, **options)
    prompt = load_prompt(ver.prompt, lay.prompt_dir)
    with SampleStore(lay.store) as store:
        report = verify_samples(verifier, manifest, store, source, prompt,
                                candidates=ver.candidates, n=ver.n,
                                batch_size=cfg.generation.batch_size, progress=progress)
        verdicts = store.read(report.run_key)
    lay.write_pointer(lay.verify_pointer(model, corpus), run_key=report.run_key,
                      verifier=ver.model, source_run=source, model=model, corpus=corpus)
    write_status(cfg, "verify", corpus=corpus, model=model, ran=report.rows_written,
                 cached=report.clips_cached,
                 note=f"{report.failures} verdicts failed, {report.clips_without_candidates} "
                      "clips had nothing to judge")
    return Verified(report, verdicts)


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
    """Samples -> Predictions -> Scores for every model on `corpus`, beside the reference
    rows: the main table (CSV/MD/LaTeX), the cost per clip of each strategy, the by-ambiguity,
    gain, entropy, reliability and scaling figures, and the paper figures with captions."""
    from ambiemo import analysis, metrics
    from ambiemo.outputs import figures, paper_figures, tables
    from ambiemo.sampling.store import SampleStore
    from ambiemo.tts import (default_ns, predict, reference_predictions, scaling_curve,
                             unavailable_strategies, verifier_scores)
    from ambiemo.parse import failure_breakdown
    from ambiemo.sampling.kinds import ANSWER_KINDS
    from ambiemo.tts.controls import control_predictions
    from ambiemo.tts.references import is_reference

    TEXT_KINDS = [k.kind for k in ANSWER_KINDS if k.text]
    from ambiemo.tts.costs import strategy_costs
    from ambiemo.tts.scaling import DEFAULT_N_SUBSETS

    lay = RunLayout.of(cfg)
    manifest = read_manifest(cfg, corpus)
    classes = manifest.attrs["classes"]
    strategies = list(cfg.scoring.strategies)
    main_metrics = metrics.MAIN_METRICS
    scaling_ns = default_ns(cfg.generation.n_samples)  # n = 1, 2, 4, ..., N
    from ambiemo.tts.soft_reference import supervised_references

    refs = reference_predictions(manifest, seed=cfg.seed)
    refs = refs[refs["model"].isin(cfg.scoring.references)]
    supervised = supervised_references(manifest, cfg.scoring.references,
                                       features_dir=lay.features_dir,
                                       corpus=corpus, seed=cfg.seed, n_jobs=1)
    predictions, curves, unavailable = [refs, supervised], [], []
    answers = []   # every model's answer rows, for the failure breakdown
    costs = []
    with SampleStore(lay.store) as store:
        for model in cfg.models:
            samples = store.read(lay.read_pointer(lay.samples_pointer(model, corpus))["run_key"])
            answers.append(samples[samples["kind"].isin(TEXT_KINDS)]
                           .assign(model=model, prompt=cfg.generation.prompt))
            pointer = lay.verify_pointer(model, corpus)
            ver = cfg.verification
            verdicts = (store.read(lay.read_pointer(pointer)["run_key"])
                        if pointer.is_file() and ver is not None else None)
            verifier = (verifier_scores(verdicts, str(pointer), candidates=ver.candidates,
                                        n=ver.n) if verdicts is not None else None)
            lacking = unavailable_strategies(samples, strategies, verifier=verifier).assign(model=model)
            unavailable.append(lacking)
            predictions.append(predict(samples, classes, strategies, model=model,
                                       verifier=verifier, skip_unavailable=True))
            usable = [s for s in strategies if s not in set(lacking["strategy"])]
            if usable:
                curves.append(scaling_curve(samples, classes, usable, model=model, ns=scaling_ns,
                                            seed=cfg.seed, verifier=verifier))
                costs.append(strategy_costs(samples, verdicts, usable, model=model,
                                            ns=scaling_ns))
    unavailable = pd.concat(unavailable, ignore_index=True)
    failures = failure_breakdown(pd.concat(answers, ignore_index=True), by=("model", "prompt", "kind"))
    tables.write_table(failures, lay.table(f"{corpus}_failures"), caption=(
        f"{corpus}: every answer by what became of it: parsed, or why not (unparsed, truncated "
        "at the token limit, API error, unusable audio, out of memory, a failed Ray shard); "
        "renormalised: stated probabilities rescaled to sum to 1; dropped: mass on classes "
        "outside the label space removed."))
    predictions = pd.concat(predictions, ignore_index=True)
    # The controls every strategy's gain is read against (greedy smoothed towards uniform,
    # label_logits at a temperature), cross-fitted over speaker folds on these predictions.
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
    if len(costs):
        tables.write_table(costs, lay.table(f"{corpus}_costs"), caption=(
            f"{corpus}: cost per clip of each strategy at each n (generated tokens, forward "
            "passes, measured seconds with the verifier's included)."))
    with_costs = (summary.merge(costs[["model", "strategy", "n", *tables.COST_COLUMNS]],
                                on=["model", "strategy", "n"], how="left")
                  if len(costs) else summary)
    table = tables.main_table(with_costs, unavailable, metrics=main_metrics,
                              strategy_order=strategies)
    tables.write_main_table(table, lay.table(f"{corpus}_main"), corpus=corpus,
                            metrics=main_metrics)

    figs = {}
    by_bin = analysis.summary_by_ambiguity(scores, manifest, metrics=main_metrics,
                                           n_boot=cfg.scoring.n_boot, seed=cfg.seed,
                                           classes=classes)
    for metric in main_metrics:
        figs[f"by_ambiguity_{metric}"] = figures.metric_by_ambiguity(by_bin, metric, corpus)
    gain_metrics = [m for m in main_metrics if m != "macro_f1"]  # no per-clip value to pair
    for metric in gain_metrics:
        gains = analysis.gain_by_ambiguity(scores, manifest, metric, baseline="greedy",
                                           n_boot=cfg.scoring.n_boot, seed=cfg.seed)
        figs[f"gain_vs_ambiguity_{metric}"] = figures.gain_vs_ambiguity(gains, corpus)
    figs["entropy_pred_vs_human"] = figures.entropy_pred_vs_human(scores, corpus)
    figs["reliability"] = figures.reliability_diagram(analysis.reliability_table(scores), corpus)
    curve = (analysis.summary_table(metrics.score(pd.concat(curves, ignore_index=True), manifest,
                                                  classes=classes),
                                    metrics=main_metrics, n_boot=cfg.scoring.n_boot,
                                    seed=cfg.seed, classes=classes)
             if curves else pd.DataFrame(columns=["model", "strategy", "n", *main_metrics]))
    curve.to_csv(lay.table(f"{corpus}_scaling").with_suffix(".csv"), index=False)
    refs_summary = summary[is_reference(summary)]
    figs["scaling_curves"] = figures.scaling_curves(curve, main_metrics, corpus,
                                                    references=refs_summary)
    for name, fig in figs.items():
        figures.save(fig, lay.figure(f"{corpus}_{name}"))

    primary = paper_figures.PRIMARY_METRIC
    paper = [paper_figures.metric_by_ambiguity(by_bin, corpus, n_boot=cfg.scoring.n_boot),
             paper_figures.gain_by_ambiguity(
                 analysis.gain_by_ambiguity(scores, manifest, primary, baseline="greedy",
                                            n_boot=cfg.scoring.n_boot, seed=cfg.seed),
                 corpus, n_boot=cfg.scoring.n_boot),
             paper_figures.scaling(curve, corpus, n_subsets=DEFAULT_N_SUBSETS, seed=cfg.seed,
                                   references=refs_summary,
                                   n_boot=cfg.scoring.n_boot)]
    if len(costs) and len(curve):
        paper.append(paper_figures.cost(curve, costs, corpus, n_boot=cfg.scoring.n_boot))
    for pf in paper:
        paper_figures.save_paper_figure(pf, lay.figure(f"{corpus}_paper_{pf.name}"))
        if pf.figure is not None:
            figs[f"paper_{pf.name}"] = pf.figure
    return Scored(predictions, scores, unavailable, summary, table, curve, figs, costs, failures)


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

    lay = RunLayout.of(cfg)
    # Parameter count per model: the registry's; None for hosted models and unregistered
    # checkpoints.
    n_params = {m: (MODELS[m].n_params if m in MODELS else None) for m in cfg.models}
    fit_metrics = ("js_divergence", "bhattacharyya_coefficient", "r2", "correct")
    main_metrics = metrics.MAIN_METRICS
    fits, by_bins = {}, {}
    for corpus in cfg.corpora:
        scores = pd.read_parquet(lay.scores(corpus))
        manifest = read_manifest(cfg, corpus)
        for metric in fit_metrics:
            fits[corpus, metric] = analysis.capacity_analysis(scores, manifest, n_params, metric)
        by_bins[corpus] = analysis.summary_by_ambiguity(scores, manifest, metrics=main_metrics,
                                                        n_boot=cfg.scoring.n_boot, seed=cfg.seed,
                                                        classes=manifest.attrs["classes"])
    capacity = tables.capacity_table(fits)
    tables.write_capacity_table(capacity, lay.table("capacity_fit"))
    figs = {}
    for corpus, by_bin in by_bins.items():
        for metric in main_metrics:
            fig = figures.capacity_vs_metric(by_bin, n_params, metric, corpus)
            if fig is not None:   # None: fewer than two model sizes, nothing to show
                figures.save(fig, lay.figure(f"{corpus}_capacity_{metric}"))
                figs[f"{corpus}_capacity_{metric}"] = fig
        pf = paper_figures.capacity(by_bin, n_params, corpus, n_boot=cfg.scoring.n_boot)
        paper_figures.save_paper_figure(pf, lay.figure(f"{corpus}_paper_capacity"))
        if pf.figure is not None:
            figs[f"{corpus}_paper_capacity"] = pf.figure
    reproduced = pd.concat([pd.read_parquet(lay.summary(c)) for c in cfg.corpora],
                           ignore_index=True)
    beside = reported_beside(reproduced, load_reported())
    # The page version keeps the numbers and the status; claim and source stay in CSV/MD.
    page = beside.drop(columns=[c for c in ("reported_as_published", "unit_note", "claim",
                                            "source") if c in beside]).rename(
        columns={"reproduced_lo": "lo", "reproduced_hi": "hi",
                 "reproduced_minus_reported": "difference"})
    tables.write_table(beside, lay.table("reported_vs_reproduced"), digits=4, latex=page,
                       caption="Reported numbers (Jia et al., 2026; public summaries of the "
                               "paper) beside this run's; never mixed into the results.")
    return Analysed(n_params, capacity, beside, figs)
