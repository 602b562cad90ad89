"""Checks before a run of values that would otherwise fail, or hang, only once work started.

Each was found by a user whose run started and then failed (issue #25): a `label_space` the
corpus does not have (a kernel started, then failed 18 s later, leaving a run folder
behind); `max_new_tokens: 1000000000` (accepted, then `0/32 clips, ETA ?` for good); a
remote-code model pinned to `revision: main` (a branch moves: the code that runs on this
machine is not pinned). `preflight.validate` adds these problems to the one list it
reports before anything runs; `token_budget_warnings` are printed, not refused.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ambiemo.config import StudyConfig

FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# An answer's tokens, generously (one class name with end of turn; one "class: 0.25" line
# per class plus a header): what a prompt arm needs of `max_new_tokens`.
LABEL_TOKENS = 8
DISTRIBUTION_TOKENS_PER_CLASS = 10
HEADROOM = 4          # warn when max_new_tokens exceeds this many times what the arm needs
CONTEXT_KEYS = ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length")


def label_space_problems(cfg: StudyConfig, corpora) -> list[str]:
    """A `label_space` (or, for `hf`, classes) the corpus's loader would refuse."""
    from ambiemo.labels import LABEL_SPACES, classes_for

    problems = []
    for name in corpora:
        c = cfg.corpora[name]
        try:
            if name in LABEL_SPACES:
                classes_for(name, c.label_space)
            elif name == "hf":
                from ambiemo.corpora.hf import _classes
                _classes(c.options.get("classes"), c.label_space)
        except (KeyError, ValueError) as e:
            problems.append(f"corpora.{name}.label_space: {e.args[0] if e.args else e}")
    return problems


def revision_problem(name: str, checkpoint: str, revision: str | None) -> str | None:
    """Why a remote-code model's `revision` does not pin the code it runs, or None."""
    if revision and FULL_COMMIT.match(revision):
        return None
    if not revision:
        return None   # preflight.model_problems names the missing pin
    return (f"model {name!r} runs the code shipped with {checkpoint} (trust_remote_code), and "
            f"revision {revision!r} is not a full commit hash: a branch or tag name (or a "
            "short hash) can point at other code tomorrow; give the 40-hex-digit commit "
            f"(`git ls-remote https://huggingface.co/{checkpoint} {revision}` prints it)")


def context_length(checkpoint: str, revision: str | None, root: Path) -> int | None:
    """The model's context length from its config.json (local directory or the Hugging Face
    cache; never downloads), the largest of CONTEXT_KEYS at any nesting (a multimodal
    config's text model); None when unknown (simulated, tiny, hosted, not cached)."""
    scheme, sep, _ = checkpoint.partition(":")
    if sep:
        return None
    path = Path(checkpoint).expanduser()
    path = path if path.is_absolute() else root / path
    config = path / "config.json"
    if not config.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache
            cached = try_to_load_from_cache(checkpoint, "config.json", revision=revision)
        except Exception:   # noqa: BLE001 -- not a hub id: model_problems says so
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    found = []

    def walk(d):
        if isinstance(d, dict):
            for k, v in d.items():
                if k in CONTEXT_KEYS and isinstance(v, int) and v > 0:
                    found.append(v)
                walk(v)
    walk(data)
    return max(found) if found else None


def arm_needs(cfg: StudyConfig, answer: str) -> int:
    """Tokens an answer of form `answer` needs, for the config's largest label space."""
    from ambiemo.labels import LABEL_SPACES, classes_for

    k = max((len(classes_for(n, c.label_space)) for n, c in cfg.corpora.items()
             if n in LABEL_SPACES and _known_space(n, c.label_space)), default=8)
    return LABEL_TOKENS if answer == "label" else DISTRIBUTION_TOKENS_PER_CLASS * k + LABEL_TOKENS


def _known_space(corpus, space) -> bool:
    from ambiemo.labels import classes_for
    try:
        classes_for(corpus, space)
        return True
    except KeyError:
        return False


def token_budget_problems(cfg: StudyConfig, models) -> list[str]:
    """`generation.decoding.max_new_tokens` (and `generation.cot.max_new_tokens`) above a
    model's context length: the run could never end its first batch."""
    from ambiemo.alm import MODELS

    problems = []
    asked = [("generation.decoding.max_new_tokens", cfg.generation.decoding.max_new_tokens)]
    if cfg.generation.cot is not None:
        asked.append(("generation.cot.max_new_tokens", cfg.generation.cot.max_new_tokens))
    for name in models:
        spec = MODELS.get(name)
        entry = cfg.model_entries.get(name)
        checkpoint = (entry.checkpoint if entry and entry.checkpoint else
                      spec.checkpoint if spec else name)
        revision = (entry.revision if entry and entry.revision else
                    spec.revision if spec else None)
        limit = context_length(checkpoint, revision, cfg.root)
        for key, value in asked:
            if limit is not None and value > limit:
                problems.append(f"{key}: {value} exceeds the context length of model {name!r} "
                                f"({limit} tokens, prompt and audio included, from "
                                f"{checkpoint}'s config.json); lower it")
    return problems


def token_budget_warnings(cfg: StudyConfig) -> list[str]:
    """`max_new_tokens` above HEADROOM times what every prompt arm's answer needs: allowed
    (a model may think aloud), but each sampled answer may run that long."""
    from ambiemo.alm.prompts import load_prompt

    value = cfg.generation.decoding.max_new_tokens
    needs = []
    for arm in cfg.generation.prompts:
        try:
            needs.append(arm_needs(cfg, load_prompt(arm, cfg.prompt_dir).answer))
        except (ValueError, KeyError, OSError):
            continue   # an unreadable prompt is a problem of its own
    if needs and value > HEADROOM * max(needs):
        return [f"generation.decoding.max_new_tokens: {value} is more than {HEADROOM}x what "
                f"the prompt arms' answers need (about {max(needs)} tokens); every answer "
                "that does not stop may run that long"]
    return []


def stored_run_problems(cfg: StudyConfig, jobs) -> list[str]:
    """Stages that read stored samples without generating them (`--stage score`) whose
    samples pointer names a run the sample store does not hold (a 0-byte or replaced
    store): which stage to run, before anything runs."""
    import sqlite3
    from contextlib import closing

    planned = {(j.stage, j.corpus, j.model) for j in jobs}
    wanted = []
    for j in jobs:
        if j.stage not in ("verify", "score"):
            continue
        models = cfg.models if j.stage == "score" else (j.model,)
        wanted += [(j.stage, j.corpus, m, cfg.samples_pointer(m, j.corpus, a))
                   for m in models for a in cfg.generation.prompts
                   if ("generate", j.corpus, m) not in planned]
    wanted = [w for w in wanted if w[3].is_file()]
    if not wanted:
        return []
    try:
        with closing(sqlite3.connect(f"file:{cfg.store_path}?mode=ro", uri=True,
                                     timeout=2)) as conn:
            have = {r[0] for r in conn.execute("SELECT run_key FROM runs")}
    except sqlite3.Error:
        have = set()       # absent, 0 bytes (no tables) or damaged: guard.store_problem
    problems = []
    for stage, corpus, model, pointer in wanted:
        try:
            key = json.loads(pointer.read_text())["run_key"]
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"stage {stage!r} [{corpus}]: samples pointer {pointer} is "
                            f"unreadable ({e}): run `--stage generate --model {model}` first")
            continue
        if key not in have:
            size = cfg.store_path.stat().st_size if cfg.store_path.exists() else None
            what = ("does not exist" if size is None else "is empty (0 bytes)" if size == 0
                    else "does not hold it")
            problems.append(f"stage {stage!r} [{corpus}] reads the samples of {model} (run "
                            f"{key}, named by {pointer}), but the sample store "
                            f"{cfg.store_path} {what}: run `--stage generate --model {model} "
                            f"--corpus {corpus}` first (it resumes from whatever is stored)")
    return problems
