"""Checks before a study run: everything the planned jobs need, all problems in one error.

A full run of the study of Jia et al. (2026) takes GPU-days; finding a missing corpus root
or API key after the first model has sampled for hours wastes them. `validate` checks corpus
roots, checkpoints available offline (and pinned revisions where a checkpoint runs its own
code), API keys of hosted models, prompts, notebooks, and that the strategies have the
samples they combine -- before anything runs -- and one ConfigError lists every problem.

Hosted models are checked as they are served today: a retired one (the providers shut the
study's hosted models down) is refused with its shutdown date and its replacement; and, with
a key set, a probe (on by default; `--no-probe` skips it) asks the service whether the model
exists and sends one tiny request with the run's exact parameters
(`ambiemo.alm.hosted.probe`), so a refused parameter is named before anything runs.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from ambiemo.alm.registry import ADAPTERS, retired_checkpoint
from ambiemo.config import ConfigError, ModelEntry, StudyConfig
from ambiemo.pipeline.guard import store_problem
from ambiemo.pipeline.plan import NOTEBOOKS, STAGES, Job, plan

# Hosted checkpoints ("openai:<id>", "gemini:<id>") and the variables that hold their keys.
API_KEYS = {"openai": ("OPENAI_API_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}


def strategy_problems(cfg: StudyConfig) -> list[str]:
    """Strategies asked for whose inputs the config does not generate."""
    from ambiemo.sampling.kinds import switch_for
    from ambiemo.tts import STRATEGIES

    gen, problems = cfg.generation, []
    for s in cfg.scoring.strategies:
        if s not in STRATEGIES:
            problems.append(f"scoring.strategies: unknown strategy {s!r} "
                            f"(valid: {sorted(STRATEGIES)})")
            continue
        need = STRATEGIES[s]
        if "verifier" in need.needs:
            missing = "a verification: section (the verifier that scores candidates)" \
                if cfg.verification is None else None
        else:
            missing = switch_for(need.kind, gen)
        if missing:
            problems.append(f"scoring.strategies: {s!r} needs {missing}")
    from ambiemo.tts.references import REFERENCE_MODELS
    from ambiemo.tts.soft_reference import SOFT_REFERENCE_MODELS
    valid = (*REFERENCE_MODELS, *SOFT_REFERENCE_MODELS)
    problems += [f"scoring.references: unknown reference {r!r} (valid: {list(valid)})"
                 for r in cfg.scoring.references if r not in valid]
    v = cfg.verification
    if v is not None:
        have = gen.n_samples if v.candidates == "sample" else gen.beams
        if have < 1:
            problems.append(f"verification.candidates: {v.candidates!r} but generation."
                            f"{'n_samples' if v.candidates == 'sample' else 'beams'} is {have}")
    return problems


def checkpoint_problem(checkpoint: str, revision: str | None, root: Path) -> str | None:
    """Why `checkpoint` cannot be used offline on this machine, or None when it can."""
    scheme, sep, _ = checkpoint.partition(":")
    if sep and scheme in ("tiny", "sim"):
        return None                      # built offline on first use / simulated (alm/sim.py)
    if sep and scheme in API_KEYS:
        if any(os.environ.get(var) for var in API_KEYS[scheme]):
            return None
        return (f"hosted checkpoint {checkpoint} needs an API key: set "
                f"{' or '.join(API_KEYS[scheme])}")
    path = Path(checkpoint).expanduser()
    path = path if path.is_absolute() else root / path
    if checkpoint.startswith((".", "/", "~")) or path.exists() or checkpoint.count("/") > 1:
        if (path / "config.json").is_file():
            return None
        return f"local checkpoint directory {path} does not exist or has no config.json"
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    try:
        cached = try_to_load_from_cache(checkpoint, "config.json", revision=revision)
    except HFValidationError as e:
        return f"checkpoint {checkpoint!r} is neither a local directory nor a hub id ({e})"
    if isinstance(cached, str):
        return None
    at = f"@{revision}" if revision else ""
    return (f"checkpoint {checkpoint}{at} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); download it (hf download {checkpoint}"
            + (f" --revision {revision}" if revision else "") + ") or point "
            "the model's checkpoint: to a local copy")


def model_problems(cfg: StudyConfig, name: str, key: str) -> list[str]:
    """Problems loading model `name` (named in the config at `key`) on this machine."""
    from ambiemo.alm import MODELS

    entry = cfg.model_entries.get(name, ModelEntry(name))
    spec = MODELS.get(name)
    if spec is None:
        if entry.checkpoint is None and (Path(name) / "config.json").is_file():
            return []                    # a local checkpoint directory named directly
        return [f"{key}: unknown model {name!r}: not in ambiemo.alm.MODELS, nor a local "
                "checkpoint directory"]
    if spec.retired is not None:
        return [f"{key}: {spec.retired.message(name)}"]
    checkpoint = entry.checkpoint or spec.checkpoint
    retired = retired_checkpoint(checkpoint) if spec.hf_class == "hosted" else None
    if retired is not None:       # a current name whose `checkpoint:` is a retired id
        return [f"{key}: model {name!r}: checkpoint {checkpoint!r} is a retired model: "
                f"{retired[1].message(retired[0])}"]
    if entry.missing_env:
        return [f"{key}: model {name!r}: checkpoint {checkpoint} needs environment "
                f"variable(s) {', '.join(entry.missing_env)}, which are not set"]
    revision = entry.revision or spec.revision
    why = checkpoint_problem(checkpoint, revision, cfg.root)
    problems = [f"{key}: model {name!r}: {why}"] if why else []
    needs = getattr(ADAPTERS.get(spec.adapter), "required_packages", None)
    for module, why in (needs(checkpoint, {**spec.options, **entry.options}) if needs else {}).items():
        if importlib.util.find_spec(module) is None:
            problems.append(f"{key}: model {name!r} needs the Python package {module!r}, "
                            f"which is not installed: {why}")
    if remote_code(spec) and revision and not checkpoint.startswith("tiny:"):
        from ambiemo.pipeline.input_checks import revision_problem
        why = revision_problem(name, checkpoint, revision)
        problems += [f"{key}: {why}"] if why else []
    if remote_code(spec) and not revision and not checkpoint.startswith("tiny:"):
        # The adapter refuses to load it (alm/hf/adapter.py); say so now, not after hours of sampling.
        problems.append(f"{key}: model {name!r} runs the code shipped with {checkpoint} "
                        "(trust_remote_code), so a commit must be pinned: give its model "
                        "entry a `revision:` (models: - {name: ..., revision: <commit hash>})")
    return problems


def remote_code(spec) -> bool:
    """Whether `spec`'s adapter loads the checkpoint with trust_remote_code."""
    return bool(getattr(ADAPTERS.get(spec.adapter), "trust_remote_code", False))


def hosted_probe_problems(cfg: StudyConfig, name: str, key: str, *, verifier: bool) -> list[str]:
    """The probe's problems for hosted model `name` (named at `key`); [] for a model that is
    not hosted. Only called once the model's other checks (key set, not retired) passed."""
    from ambiemo.alm import MODELS, load_model
    from ambiemo.alm.base import Decoding
    from ambiemo.alm.hosted.hosted_adapter import HostedAdapter
    from ambiemo.alm.hosted.probe import probe

    spec = MODELS.get(name)
    options = cfg.model_options(name) if name in cfg.model_entries else {}
    checkpoint = options.get("checkpoint") or (spec.checkpoint if spec else "")
    if checkpoint.partition(":")[0] not in API_KEYS:
        return []
    try:
        adapter = load_model(name, **options)
    except (ValueError, KeyError) as e:
        return [f"{key}: model {name!r}: {e}"]
    if not isinstance(adapter, HostedAdapter):
        return []
    gen = cfg.generation
    if verifier:   # the verifier's requests: greedy, a short score
        n, decoding = 0, Decoding(max_new_tokens=16)
    else:
        n, decoding = gen.n_samples, gen.decoding
    return [f"{key}: model {name!r} (probe): {p}"
            for p in probe(adapter, n_samples=n, decoding=decoding)]


def run_folder_problems(cfg: StudyConfig, jobs: list[Job]) -> list[str]:
    """What the run folders must hold or allow before these jobs start: writable output
    folders, an intact sample store, and the inputs of stages run without their producers
    (`--stage score` on a fresh config needs prepare and generate first)."""
    problems = []
    for d in (cfg.run_dir, cfg.table_dir, cfg.figure_dir):
        near = next(p for p in (d, *d.parents) if p.exists())
        if not os.access(near, os.W_OK):
            problems.append(f"{d}: cannot be written ({near} is read-only for this user); "
                            "make it writable or run from a writable copy of the repository")
    stages = {j.stage for j in jobs}
    if stages & {"generate", "verify", "score", "analyse"}:
        why = store_problem(cfg.store_path)
        if why:
            problems.append(why)
    planned = {(j.stage, j.corpus, j.model) for j in jobs}
    for j in jobs:
        if j.stage in ("generate", "verify", "score") and ("prepare", j.corpus, None) not in planned:
            m = cfg.manifest_path(j.corpus)
            if not m.is_file():
                problems.append(f"stage {j.stage!r} [{j.corpus}] reads {m}, which does not "
                                f"exist: run `--stage prepare` first (or the whole pipeline)")
            else:
                problems += manifest_limit_problems(cfg, j.corpus)
        arms = cfg.generation.prompts
        needs = ([(m, cfg.samples_pointer(m, j.corpus, a)) for m in cfg.models for a in arms]
                 if j.stage == "score" else
                 [(j.model, cfg.samples_pointer(j.model, j.corpus, a)) for a in arms]
                 if j.stage == "verify" else [])
        for model, pointer in needs:
            if ("generate", j.corpus, model) not in planned and not pointer.is_file():
                problems.append(f"stage {j.stage!r} [{j.corpus}] reads the samples of {model}"
                                f" ({pointer} does not exist): run `--stage generate` first")
    return list(dict.fromkeys(problems))


def manifest_limit_problems(cfg: StudyConfig, corpus: str) -> list[str]:
    """A stored Manifest prepared with another --limit than this run's (a limited run and a
    full one never mix)."""
    import pyarrow.parquet as pq
    from ambiemo.pipeline.run_options import limit_problem

    path = cfg.manifest_path(corpus)
    try:   # the attrs only: pandas keeps them in the Parquet metadata
        meta = json.loads((pq.read_schema(path).metadata or {}).get(b"PANDAS_ATTRS", b"{}"))
    except (OSError, ValueError) as e:
        return [f"{path}: cannot be read ({e}): run `--stage prepare` again"]
    why = limit_problem(meta, cfg, path)
    return [why] if why else []


def arm_prompt_problems(cfg: StudyConfig, key: str, prompt: str) -> list[str]:
    """A prompt arm must ask for an answer (a label or a distribution): a verifier or a
    chain-of-thought prompt is not a candidate form."""
    from ambiemo.alm.prompts import load_prompt

    try:
        answer = load_prompt(prompt, cfg.prompt_dir).answer
    except (ValueError, KeyError, OSError) as e:
        return [f"{key}: prompt {prompt!r} cannot be read: {e}"]
    if answer not in ("label", "distribution"):
        return [f"{key}: prompt {prompt!r} asks for a {answer!r} answer; a prompt arm asks "
                "for a label or a distribution (chain of thought: generation.cot; a "
                "verifier: verification.prompt)"]
    return []


def validate(cfg: StudyConfig, jobs: list[Job] | None = None, *, probe: bool = True) -> None:
    """Check everything the planned jobs (default: the whole plan) need before anything
    runs; one ConfigError lists every problem. `probe`: also ask each hosted model's service
    (model exists, one tiny request with the run's parameters succeeds)."""
    from ambiemo.corpora import LOADERS
    from ambiemo.corpora.registry import check_options

    jobs = plan(cfg) if jobs is None else jobs
    stages = {j.stage for j in jobs}
    problems = strategy_problems(cfg)
    for name in dict.fromkeys(j.corpus for j in jobs if j.corpus):
        c = cfg.corpora[name]
        loader = c.loader_name
        if loader not in LOADERS:
            key = f"corpora.{name}.loader" if c.loader else f"corpora.{name}"
            problems.append(f"{key}: unknown corpus {loader!r} (valid: {sorted(LOADERS)}; "
                            "a corpus of your own: loader: votes_table)")
        elif stages & {"prepare", "generate", "verify"}:
            try:  # a corpus protocol option the loader does not know, named with the valid ones
                check_options(loader, c.options)
            except TypeError as e:
                problems.append(f"corpora.{name}.options: {e}")
            if c.missing_env:
                problems.append(f"corpora.{name}.root: {c.root} needs environment variable(s) "
                                f"{', '.join(c.missing_env)}, which are not set")
            elif not c.root.exists():
                problems.append(f"corpora.{name}.root: corpus {name!r}: root {c.root} does "
                                "not exist")
            elif "prepare" in stages and hasattr(LOADERS[loader], "check"):
                # A loader that can check its input cheaply (a votes table's schema) does so
                # now, so a bad row is named before any model loads.
                problems += [f"corpora.{name}: {p}" for p in
                             LOADERS[loader].check(c.root, c.label_space, **c.options)]
    to_probe = []
    for name in dict.fromkeys(j.model for j in jobs if j.stage == "generate"):
        mine = model_problems(cfg, name, "models")
        problems += mine
        to_probe += [] if mine else [(name, "models", False)]
    if "verify" in stages:
        mine = model_problems(cfg, cfg.verification.model, "verification.model")
        problems += mine
        to_probe += [] if mine else [(cfg.verification.model, "verification.model", True)]
    if probe:
        for name, key, is_verifier in to_probe:
            problems += hosted_probe_problems(cfg, name, key, verifier=is_verifier)
    prompts = {"generate": [(f"generation.prompts[{i}]", arm)
                            for i, arm in enumerate(cfg.generation.prompts)]
               + ([("generation.cot.prompt", cfg.generation.cot.prompt),
                   ("generation.cot.distribution_prompt",
                    cfg.generation.cot.distribution_prompt)]
                  if cfg.generation.cot else []),
               "verify": [("verification.prompt", cfg.verification.prompt)]
               if cfg.verification else []}
    for stage in sorted(stages & set(prompts)):
        for key, prompt in prompts[stage]:
            if not (cfg.prompt_dir / f"{prompt}.yaml").is_file():
                problems.append(f"{key}: prompt {prompt!r} not found in {cfg.prompt_dir}")
            elif key.startswith("generation.prompts"):
                problems += arm_prompt_problems(cfg, key, prompt)
    for stage in sorted(stages & set(NOTEBOOKS), key=STAGES.index):
        nb = cfg.root / "notebooks" / f"{NOTEBOOKS[stage]}.ipynb"
        if not nb.is_file():
            problems.append(f"stage {stage!r}: notebook {nb} not found")
    from ambiemo.pipeline.input_checks import (label_space_problems, stored_run_problems,
                                               token_budget_problems)
    problems += label_space_problems(cfg, [c for c in dict.fromkeys(j.corpus for j in jobs
                                                                    if j.corpus)
                                           if c in LOADERS])
    problems += token_budget_problems(cfg, dict.fromkeys(j.model for j in jobs
                                                         if j.stage == "generate"))
    problems += run_folder_problems(cfg, jobs)
    problems += stored_run_problems(cfg, jobs)
    if any("unknown model" in p for p in problems):
        from ambiemo.alm import MODELS
        problems.append(f"registered models: {sorted(MODELS)}")
    if problems:
        raise ConfigError(f"{cfg.path}: nothing was run; {len(problems)} problem(s):\n  "
                          + "\n  ".join(problems))
