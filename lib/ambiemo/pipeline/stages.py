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
    """The study config at `config_path` (relative to the repository root), with the run
    options (`--limit`, `--output-dir`) the driver passed to this notebook's kernel."""
    from ambiemo.config import load_config, repo_root
    from ambiemo.pipeline.run_options import apply
    return apply(load_config(config_path, root=repo_root()))   # with --limit, --output-dir


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

    from ambiemo.pipeline.run_options import limit_manifest

    lay = RunLayout.of(cfg)
    cc = cfg.corpora[corpus]
    manifest = corpora.load(cc.loader_name, cc.root, cc.label_space, **cc.options)
    if manifest.attrs.get("corpus") != corpus:   # a corpus read by another's loader
        manifest = corpora.renamed(manifest, corpus)
    manifest = limit_manifest(manifest, cfg.limit)   # --limit N: the first N clips
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
    from ambiemo.pipeline.run_options import limit_problem

    path = RunLayout.of(cfg).manifest(corpus)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: prepare the corpus first "
                                f"(./run_all.sh CONFIG --stage prepare --corpus {corpus})")
    manifest = pd.read_parquet(path)
    why = limit_problem(manifest.attrs, cfg, path)
    if why:
        raise ValueError(why)
    return manifest


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
    reports, frames, answers = {}, [], {}
    with SampleStore(lay.store) as store:
        for arm in cfg.generation.prompts:
            prompt = load_prompt(arm, lay.prompt_dir)
            report = generate_samples(adapter, manifest, store, prompt,
                                      settings_from_config(cfg, arm), progress=progress)
            frames.append(store.read(report.run_key).assign(prompt=arm))
            answers[report.run_key] = frames[-1]
            lay.write_pointer(lay.samples_pointer(model, corpus, arm), run_key=report.run_key,
                              model=model, corpus=corpus, prompt=arm)
            reports[arm] = report
    note = arm_notes(reports, lambda r: generate_note(r, answers[r.run_key]))
    # Rows per served model (hosted), per arm: the status JSON keeps them as numbers, the
    # note (console summary, summary.json, the report's run summary) as words.
    served = {arm: dict(r.served) for arm, r in reports.items() if r.served}
    write_status(cfg, "generate", corpus=corpus, model=model,
                 ran=sum(r.batches_run for r in reports.values()),
                 cached=sum(r.batches_cached for r in reports.values()), note=note,
                 **({"served": served} if served else {}))
    return Generated(reports, _by_arm(frames))


def generate_note(r, samples: pd.DataFrame) -> str:
    """One arm's line of the generate job's note: rows written now, then every stored answer
    by what became of it (`parse.failure_counts`, the count `<corpus>_failures` gives), and
    the clips that were not failures but are worth knowing (cut to the audio window)."""
    from ambiemo.alm.served_model import served_note
    from ambiemo.parse import failure_counts, failure_note
    from ambiemo.sampling.kinds import ANSWER_KINDS

    text = samples[samples["kind"].isin([k.kind for k in ANSWER_KINDS if k.text])]
    return (f"{r.rows_written} rows written; {failure_note(failure_counts(text))}; "
            f"{r.unreadable_clips} clips with unusable audio, {r.over_window_clips} clips "
            f"over the audio window (cut), {r.oom_splits} OOM splits"
            + (f"; unavailable: {'; '.join(r.unavailable)}" if r.unavailable else "")
            + (f"; {served_note(dict(r.served), r.requested)}" if r.served else ""))


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
                      f"{r.clips_without_candidates} clips had nothing to judge"
                      + (f"; judged by another model: {', '.join(r.served_other)}"
                         if r.served_other else ""))
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
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)  # vs greedy, every form
    missing_figures: dict = field(default_factory=dict)   # figure -> why it was not drawn


def score_corpus(cfg: StudyConfig, corpus: str, *, draw_figures: bool = True) -> Scored:
    """Samples -> Predictions -> Scores for every model and prompt arm on `corpus`, beside the
    reference rows: the main table (CSV/MD/LaTeX; one block of rows per model and arm), the
    cost per clip of each strategy, the by-ambiguity, gain, entropy, reliability and scaling
    figures of the main arm, and the paper figures with captions of every arm. Tables come
    first; a figure that fails is a warning and a missing figure (`missing_figures`), and a
    row one model cannot have (a control not fitted, a strategy without its samples) is an
    `unavailable` row with its reason. `draw_figures=False`: the tables only."""
    from ambiemo import analysis, metrics
    from ambiemo.outputs import tables
    from ambiemo.parse import failure_breakdown
    from ambiemo.sampling.kinds import ANSWER_KINDS
    from ambiemo.sampling.store import SampleStore
    from ambiemo.tts import (default_ns, predict, reference_predictions, scaling_curve,
                             unavailable_strategies, verifier_scores)
    from ambiemo.tts.controls import control_predictions
    from ambiemo.tts.costs import strategy_costs
    from ambiemo.tts.references import NO_PROMPT, rescore_new_raters
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
    from ambiemo.parse import FAILURE_KINDS
    from ambiemo.parse.failures import meaning
    tables.write_table(failures, lay.table(f"{corpus}_failures"), caption=(
        f"{corpus}: every answer by what became of it: parsed, or why not ("
        + "; ".join(f"{k}: {meaning(k)}" for k in FAILURE_KINDS) + "); renormalised: "
        "stated probabilities rescaled to sum to 1; dropped: mass on classes outside the "
        "label space removed."))
    predictions = pd.concat(predictions, ignore_index=True)
    # The controls every strategy's gain is read against (greedy smoothed towards uniform,
    # label_logits at a temperature), cross-fitted over speaker folds, per model and arm.
    not_fitted = []   # a control one model cannot be fitted for: an unavailable row
    predictions = pd.concat([predictions, control_predictions(predictions, manifest,
                                                              seed=cfg.seed, classes=classes,
                                                              unavailable=not_fitted)],
                            ignore_index=True)
    if not_fitted:
        unavailable = pd.concat([unavailable, pd.DataFrame(not_fitted)], ignore_index=True)
    scores = metrics.score(predictions, manifest, classes=classes)
    # new_raters: the split-half panels' metrics, corrected for the rater count
    scores = rescore_new_raters(scores, manifest, seed=cfg.seed, classes=classes)
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
    table = mark_other_model_rows(cfg, table, answers)
    tables.write_main_table(table, lay.table(f"{corpus}_main"), corpus=corpus,
                            metrics=main_metrics)
    tables.write_paper_tables(table, lay.table(f"{corpus}_main"), corpus=corpus,
                              metrics=main_metrics)
    comparisons = write_comparisons(cfg, corpus, scores)
    curve = (analysis.summary_table(metrics.score(pd.concat(curves, ignore_index=True), manifest,
                                                  classes=classes),
                                    metrics=main_metrics, n_boot=cfg.scoring.n_boot,
                                    seed=cfg.seed, classes=classes)
             if curves else pd.DataFrame(columns=[*keys, *main_metrics]))
    curve.to_csv(lay.table(f"{corpus}_scaling").with_suffix(".csv"), index=False)

    # Every table is written; the figures come last, each on its own (issue #25).
    from ambiemo.outputs.figure_guard import FigureGuard
    gains = write_gain_tables(cfg, corpus, scores, manifest)
    guard, figs = FigureGuard(), {}
    for arm in cfg.generation.prompts if draw_figures else ():
        figs.update(_arm_figures(cfg, corpus, arm, scores, summary, curve, costs, manifest,
                                 guard, primary_gains=gains.get(arm)))
    write_status(cfg, "score", corpus=corpus, ran=1,
                 note=score_note(unavailable, guard.note()))
    return Scored(predictions, scores, unavailable, summary, table, curve, figs, costs, failures,
                  comparisons, missing_figures=dict(guard.missing))


def score_note(unavailable: pd.DataFrame, figures_note: str = "", shown: int = 5) -> str:
    """The score job's status note: each row that could not be scored (model, arm, strategy:
    reason) and each figure not drawn; "" when there are none."""
    rows = [f"{r.model}/{r.prompt}/{r.strategy} unavailable: "
            + (r.reason if len(r.reason) <= 90 else r.reason[:89] + "…")
            for r in unavailable.itertuples()]
    if len(rows) > shown:   # the main table's `note` column holds every reason
        rows = [*rows[:shown], f"and {len(rows) - shown} more unavailable rows (the main "
                               "table's note column says why)"]
    return "; ".join([*rows, *([figures_note] if figures_note else [])])


def mark_other_model_rows(cfg: StudyConfig, table: pd.DataFrame,
                          answers: list[pd.DataFrame]) -> pd.DataFrame:
    """The main table with a note on each row of a (model, arm) whose samples a hosted
    service answered with another model than the one requested (issue #26)."""
    from ambiemo.alm import MODELS
    from ambiemo.alm.registry import _api_id
    from ambiemo.alm.served_model import other_model_rows

    table = table.copy()
    for samples in answers:
        if not len(samples):
            continue
        model, arm = samples["model"].iat[0], samples["prompt"].iat[0]
        spec = MODELS.get(model)
        checkpoint = (cfg.model_options(model).get("checkpoint") if model in cfg.model_entries
                      else None) or (spec.checkpoint if spec else model)
        other = other_model_rows(samples, _api_id(checkpoint))
        if not other:
            continue
        mark = ("samples from another model: " + ", ".join(
            f"{m} ({n} of {len(samples)} rows)" for m, n in other.items()))
        rows = (table["model"] == model) & (table["row_type"] != "reference")
        if "prompt" in table:
            rows &= table["prompt"] == arm
        table.loc[rows, "note"] = [f"{n}; {mark}" if n else mark
                                   for n in table.loc[rows, "note"].fillna("")]
    return table


def write_comparisons(cfg: StudyConfig, corpus: str, scores: pd.DataFrame) -> pd.DataFrame:
    """`<corpus>_comparisons`: every strategy and control against greedy of the same model
    and arm, per metric, on all clips, complete-case and without one-hot candidates, with
    cluster-robust intervals and Holm across the table (analysis/comparisons.py)."""
    from ambiemo import analysis
    from ambiemo.outputs import tables

    comparisons = analysis.comparisons_table(scores, n_boot=cfg.scoring.n_boot, seed=cfg.seed)
    tables.write_comparisons_table(comparisons, RunLayout.of(cfg).table(f"{corpus}_comparisons"),
                                   corpus=corpus)
    return comparisons


def arm_title(cfg: StudyConfig, corpus: str, arm: str) -> str:
    """A figure's title and caption prefix: the corpus, and the prompt arm when several run."""
    return corpus if len(cfg.generation.prompts) == 1 else f"{corpus}, {arm} prompt"


def arm_stem(cfg: StudyConfig, stem: str, arm: str) -> str:
    """A figure's file stem: the main arm keeps the plain stem, another arm adds `__<arm>`."""
    return stem if arm == cfg.generation.prompt else f"{stem}__{arm}"


def _arm_figures(cfg: StudyConfig, corpus: str, arm: str, scores: pd.DataFrame,
                 summary: pd.DataFrame, curve: pd.DataFrame, costs: pd.DataFrame,
                 manifest: pd.DataFrame, guard=None, primary_gains=None) -> dict:
    """The figures of one prompt arm (its rows and the reference rows): the paper figures for
    every arm, the diagnostic ones for the main arm only (the tables hold every arm). Each
    figure is drawn through `guard` (`outputs.figure_guard.FigureGuard`): one that fails is
    a named warning and a missing figure, never a missing table or figure besides it.
    `primary_gains`: the arm's gain-by-ambiguity frame of the primary metric, when the gain
    table already computed it."""
    from functools import cache

    from ambiemo import analysis, metrics
    from ambiemo.outputs import figures, paper_figures
    from ambiemo.outputs.figure_guard import FigureGuard
    from ambiemo.tts.references import is_reference, of_arm
    from ambiemo.tts.scaling import DEFAULT_N_SUBSETS

    guard = guard if guard is not None else FigureGuard()
    lay = RunLayout.of(cfg)
    main_metrics = metrics.MAIN_METRICS
    n_boot = cfg.scoring.n_boot
    title = arm_title(cfg, corpus, arm)
    scores, summary, curve = of_arm(scores, arm), of_arm(summary, arm), of_arm(curve, arm)
    costs = of_arm(costs, arm) if len(costs) else costs
    refs_summary = summary[is_reference(summary)]
    primary = paper_figures.PRIMARY_METRIC

    @cache   # computed once, by the first figure that needs it (and its error, per figure)
    def by_bin():
        return analysis.summary_by_ambiguity(scores, manifest, metrics=main_metrics,
                                             n_boot=n_boot, seed=cfg.seed,
                                             classes=manifest.attrs["classes"])

    @cache
    def gains(metric):
        if metric == primary and primary_gains is not None:   # the gain table's, computed once
            return primary_gains
        return analysis.gain_by_ambiguity(scores, manifest, metric, baseline="greedy",
                                          n_boot=n_boot, seed=cfg.seed)

    figs = {}

    def diagnostic(name, build):
        def draw():
            fig = build()
            figures.save(fig, lay.figure(f"{corpus}_{name}"))
            return fig
        fig = guard.draw(f"{corpus}_{name}", draw)
        if fig is not None:
            figs[name] = fig

    if arm == cfg.generation.prompt:
        for metric in main_metrics:
            diagnostic(f"by_ambiguity_{metric}",
                       lambda m=metric: figures.metric_by_ambiguity(by_bin(), m, title))
        for metric in [m for m in main_metrics if m != "macro_f1"]:  # no per-clip value to pair
            diagnostic(f"gain_vs_ambiguity_{metric}",
                       lambda m=metric: figures.gain_vs_ambiguity(gains(m), title))
        diagnostic("entropy_pred_vs_human", lambda: figures.entropy_pred_vs_human(scores, title))
        diagnostic("reliability", lambda: figures.reliability_diagram(
            analysis.reliability_table(scores), title))
        diagnostic("scaling_curves", lambda: figures.scaling_curves(
            curve, main_metrics, title, references=refs_summary))
    paper = {"metric_by_ambiguity": lambda: paper_figures.metric_by_ambiguity(by_bin(), title,
                                                                      n_boot=n_boot),
             "gain_by_ambiguity": lambda: paper_figures.gain_by_ambiguity(gains(primary), title,
                                                                          n_boot=n_boot),
             "gain_by_ambiguity_complete_case": lambda: paper_figures.gain_by_ambiguity(
                 gains(primary), title, n_boot=n_boot, form="complete_case"),
             "scaling": lambda: paper_figures.scaling(curve, title, n_subsets=DEFAULT_N_SUBSETS,
                                                      seed=cfg.seed, references=refs_summary,
                                                      n_boot=n_boot)}
    if len(costs) and len(curve):
        paper["cost"] = lambda: paper_figures.cost(curve, costs, title, n_boot=n_boot)
    for name, build in paper.items():
        stem = arm_stem(cfg, f"{corpus}_paper_{name}", arm)

        def draw(build=build, stem=stem):
            pf = build()
            paper_figures.save_paper_figure(pf, lay.figure(stem))
            return pf
        pf = guard.draw(stem, draw)
        if pf is not None and pf.figure is not None:
            figs[stem.removeprefix(f"{corpus}_")] = pf.figure
    return figs


def write_gain_tables(cfg: StudyConfig, corpus: str, scores: pd.DataFrame,
                      manifest: pd.DataFrame) -> dict:
    """`<corpus>_gain_by_ambiguity` (`__<arm>` for another arm): each arm's gains over
    greedy per ambiguity bin on the primary metric, all clips and complete-case. Written
    with the other tables, before any figure. Returns {arm: the gains frame}."""
    from ambiemo import analysis
    from ambiemo.outputs import paper_figures
    from ambiemo.tts.references import of_arm

    lay, out = RunLayout.of(cfg), {}
    for arm in cfg.generation.prompts:
        gains = analysis.gain_by_ambiguity(of_arm(scores, arm), manifest,
                                           paper_figures.PRIMARY_METRIC, baseline="greedy",
                                           n_boot=cfg.scoring.n_boot, seed=cfg.seed)
        write_gain_table(gains, lay.table(arm_stem(cfg, f"{corpus}_gain_by_ambiguity", arm)),
                         arm_title(cfg, corpus, arm))
        out[arm] = gains
    return out


def write_gain_table(gains: pd.DataFrame, stem, title: str) -> None:
    """The gain-by-ambiguity table: all clips and complete-case side by side."""
    from ambiemo.analysis.clusters import binning_caption, scheme_caption
    from ambiemo.outputs import tables

    metric = gains["metric"].iloc[0] if len(gains) else ""
    tables.write_table(gains, stem, caption=(
        f"{title}: gain in {metric} of each strategy over greedy of the same model per "
        "ambiguity bin (positive = better): gain on all clips (a missing answer at the "
        "metric's worst value) and cc_gain complete-case (clips both answered; share_dropped "
        "left out), each with its 95% cluster-robust interval, p and Holm-corrected p across "
        "the table. " + scheme_caption(gains.attrs.get("scheme", "clip"))
        + " " + binning_caption(gains.attrs.get("binning"))).strip())


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
    from ambiemo.outputs.paper_numbers import (capacity_caveats, load_reported,
                                               reported_beside)
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
    reported = load_reported()
    # A model that stands in for a study model of another size changes the capacity axis:
    # the capacity table and figures say so (Audio Flamingo 3 for the 3 B Audio Flamingo 2).
    caveats = capacity_caveats(n_params, reported)
    for fit in fits.values():
        fit.attrs["notes"] = [*fit.attrs.get("notes", []), *caveats]
    capacity = tables.capacity_table(fits)
    tables.write_capacity_table(capacity, lay.table("capacity_fit"))
    figs = {}
    for (corpus, arm), by_bin in by_bins.items():
        title = arm_title(cfg, corpus, arm)
        if arm == cfg.generation.prompt:   # the diagnostic figures: the main arm's
            for metric in main_metrics:
                fig = figures.capacity_vs_metric(by_bin, n_params, metric, title,
                                                 fit=fits.get((corpus, arm, metric)))
                if fig is not None:   # None: fewer than two model sizes, nothing to show
                    figures.save(fig, lay.figure(f"{corpus}_capacity_{metric}"))
                    figs[f"{corpus}_capacity_{metric}"] = fig
        pf = paper_figures.capacity(by_bin, n_params, title, n_boot=cfg.scoring.n_boot,
                                    fit=fits.get((corpus, arm, paper_figures.PRIMARY_METRIC)),
                                    caveats=caveats)
        stem = arm_stem(cfg, f"{corpus}_paper_capacity", arm)
        paper_figures.save_paper_figure(pf, lay.figure(stem))
        if pf.figure is not None:
            figs[stem] = pf.figure
    reproduced = pd.concat([pd.read_parquet(lay.summary(c)) for c in cfg.corpora],
                           ignore_index=True)
    # The cross-corpus leaderboard (outputs/leaderboard.py): the main tables' numbers.
    from ambiemo.outputs.leaderboard import write_leaderboard
    write_leaderboard(reproduced, lay.table("leaderboard"), corpora=list(cfg.corpora),
                      strategies=cfg.scoring.strategies, limit=cfg.limit)
    beside = reported_beside(reproduced, reported, verifier=(
        cfg.verification.model if cfg.verification is not None else None))
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
