"""Study configuration: a YAML file read into frozen dataclasses, every key checked.

A config names everything that changes a number in the study (Jia et al., 2026): corpora and
label spaces, models (with pinned checkpoints), prompt, N sampled answers, B beams, the
chain-of-thought answer, the verifier, decoding, seed, strategies. An unknown or misspelt key
is an error naming the file and the key, never silently ignored.

Corpus roots and model checkpoints may name environment variables as `${NAME}` (the corpora
and checkpoints live outside the repository, differently on each machine). An unset variable
is not an error here -- loading a config does no I/O beyond reading it -- but it is recorded
(`missing_env`) and `ambiemo.preflight.validate` lists it with every other problem.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ambiemo.alm.base import Decoding


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with each `${NAME}` replaced by its value, and the names that are unset or
    empty (left unexpanded, so a message can show what the config asked for)."""
    missing = []

    def value(m: re.Match) -> str:
        v = os.environ.get(m.group(1), "")
        if not v:
            missing.append(m.group(1))
            return m.group(0)
        return v
    return ENV_REFERENCE.sub(value, text), tuple(missing)


@dataclass(frozen=True)
class CorpusConfig:
    name: str
    root: Path
    label_space: str | None = None
    options: dict = field(default_factory=dict)
    missing_env: tuple[str, ...] = ()   # `${NAME}`s in root that are unset


@dataclass(frozen=True)
class ModelEntry:
    """One model of the study: a registry name, optionally with its checkpoint (hub id or
    local directory) and revision pinned here instead of in the registry."""
    name: str
    checkpoint: str | None = None
    revision: str | None = None
    options: dict = field(default_factory=dict)   # adapter options: dtype, base_url, engine...
    missing_env: tuple[str, ...] = ()              # `${NAME}`s in checkpoint that are unset

    def __post_init__(self):
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a mapping, got {type(self.options).__name__}")
        reserved = sorted({"checkpoint", "revision"} & set(self.options))
        if reserved:
            raise ValueError(f"{reserved} go beside options, not inside them")


@dataclass(frozen=True)
class CotConfig:
    """One greedy chain-of-thought answer per clip (kind `cot`), for the `cot` strategy."""
    prompt: str = "cot"
    max_new_tokens: int = 256

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class GenerationConfig:
    prompt: str = "direct_label"
    n_samples: int = 8
    greedy: bool = True
    label_scores: bool = False       # also the model's probability of each class name
    beams: int = 0                   # B beam-search candidates per clip (kind `beam`)
    cot: CotConfig | None = None     # one chain-of-thought answer per clip, or none
    batch_size: int = 8
    device: str = "auto"
    decoding: Decoding = field(default_factory=Decoding)

    def __post_init__(self):
        if self.n_samples < 0 or self.beams < 0:
            raise ValueError(f"n_samples and beams must be >= 0, got {self.n_samples}, "
                             f"{self.beams}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class VerificationConfig:
    """A verifier model scores each clip's candidates (03_verify) for `alm_v` / `w_alm_v`."""
    model: str
    prompt: str = "verifier"
    candidates: str = "sample"       # which candidates it judges: sampled or beam
    n: int | None = None             # judge the first n candidates per clip; None: all

    def __post_init__(self):
        if self.candidates not in ("sample", "beam"):
            raise ValueError(f"candidates must be 'sample' or 'beam', got {self.candidates!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1 (or absent for all candidates), got {self.n}")


@dataclass(frozen=True)
class ScoringConfig:
    strategies: tuple = ("greedy", "majority")
    n_boot: int = 1000


@dataclass(frozen=True)
class ExecutorConfig:
    """Where generation runs (README "Scale-out on Ray"; ambiemo.executor_ray).
    `local`: one process, the default. `ray`: shards of clips on Ray actors."""
    kind: str = "local"              # local | ray
    address: str | None = None       # ray: None starts a local Ray; "auto" or host:port joins one
    actors: int | None = None        # ray: actors per model; None: one per GPU (CPUs if none)
    gpu_memory_gb: float = 80.0      # ray: memory of one GPU, to size num_gpus from n_params
    shard_audio_s: float = 3600.0    # ray: audio seconds per shard (whole batches, >= 1 batch)
    max_retries: int = 2             # ray: restarts of a dead actor and retries of its shard
    shard_dir: str | None = None     # ray: a path or fsspec URI; None: runs/<config>/shards

    def __post_init__(self):
        if self.kind not in ("local", "ray"):
            raise ValueError(f"kind must be 'local' or 'ray', got {self.kind!r}")
        if self.actors is not None and (not isinstance(self.actors, int) or self.actors < 1):
            raise ValueError(f"actors must be an integer >= 1, got {self.actors!r}")
        if not (self.shard_audio_s > 0 and self.gpu_memory_gb > 0):
            raise ValueError("shard_audio_s and gpu_memory_gb must be positive")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")


@dataclass(frozen=True)
class StudyConfig:
    name: str
    path: Path
    root: Path                       # repository root: relative paths resolve against it
    seed: int
    corpora: dict[str, CorpusConfig]
    model_entries: dict[str, ModelEntry]
    generation: GenerationConfig
    scoring: ScoringConfig
    verification: VerificationConfig | None = None
    executor: ExecutorConfig = ExecutorConfig()

    @property
    def models(self) -> tuple[str, ...]:
        """The models' registry names, in config order."""
        return tuple(self.model_entries)

    def model_options(self, name: str) -> dict:
        """Keyword arguments for `ambiemo.alm.load_model(name, **...)`: the config's
        checkpoint/revision overrides (only where given) and adapter options."""
        if name not in self.model_entries:
            raise KeyError(f"model {name!r} is not in {self.path}; valid: {list(self.models)}")
        e = self.model_entries[name]
        extra = {k: v for k, v in (("checkpoint", e.checkpoint), ("revision", e.revision))
                 if v is not None}
        return {**e.options, **extra}

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / self.name

    @property
    def figure_dir(self) -> Path:
        return self.root / "figures" / self.name

    @property
    def table_dir(self) -> Path:
        return self.root / "tables" / self.name

    @property
    def prompt_dir(self) -> Path:
        return self.root / "configs" / "prompts"

    def manifest_path(self, corpus: str) -> Path:
        return self.run_dir / "manifests" / f"{corpus}.parquet"

    @property
    def store_path(self) -> Path:
        return self.run_dir / "samples.sqlite"

    def samples_pointer(self, model: str, corpus: str) -> Path:
        """JSON naming the run key 02_generate wrote for (model, corpus)."""
        return self.run_dir / "samples" / f"{model}__{corpus}.json"

    def verify_pointer(self, model: str, corpus: str) -> Path:
        """JSON naming the verifier run key 03_verify wrote for (model's candidates, corpus)."""
        return self.run_dir / "samples" / f"{model}__{corpus}__verify.json"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding configs/ and lib/ambiemo."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "configs").is_dir() and (d / "lib" / "ambiemo").is_dir():
            return d
    raise FileNotFoundError(f"no ambiemo repository at or above {here}")


def _take(data: dict, cls, where: str, path: Path, **override):
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)} - set(override) - {"missing_env"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} in {where}; valid: {sorted(names)}")
    try:
        return cls(**data, **override)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {where}: {e}") from None


TOP_KEYS = {"name", "seed", "corpora", "models", "generation", "verification", "scoring",
            "executor"}


def _corpora(data, path: Path, root: Path) -> dict[str, CorpusConfig]:
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: corpora must be a non-empty mapping of corpus name -> "
                          "{root: ...}")
    corpora = {}
    for name, c in data.items():
        c = dict(c or {})
        if "root" not in c:
            raise ConfigError(f"{path}: corpora.{name} needs a root")
        text, missing = expand_env(str(c.pop("root")))
        r = Path(text).expanduser()
        # An unexpanded `${NAME}` stays as written, so the message shows what was asked for.
        r = r if r.is_absolute() or missing else root / r
        corpora[name] = _take(c, CorpusConfig, f"corpora.{name}", path, name=name, root=r,
                              missing_env=missing)
    return corpora


def _models(data, path: Path) -> dict[str, ModelEntry]:
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: models must be a non-empty list of model names or "
                          "{name: ..., checkpoint: ..., revision: ..., options: {...}}")
    entries = {}
    for i, m in enumerate(data):
        where = f"models[{i}]"
        if isinstance(m, str):
            entry = ModelEntry(m)
        elif isinstance(m, dict) and isinstance(m.get("name"), str):
            m = dict(m)
            missing = ()
            if m.get("checkpoint") is not None:
                m["checkpoint"], missing = expand_env(str(m["checkpoint"]))
            if m.get("revision") is not None:
                m["revision"] = str(m["revision"])
            m["options"] = m.get("options") or {}
            entry = _take(m, ModelEntry, f"{where} ({m['name']})", path, missing_env=missing)
        else:
            raise ConfigError(f"{path}: {where} must be a model name or a mapping with a "
                              f"name, got {m!r}")
        if entry.name in entries:
            raise ConfigError(f"{path}: {where}: model {entry.name!r} is listed twice")
        entries[entry.name] = entry
    return entries


def _generation(data, path: Path) -> GenerationConfig:
    gen = dict(data or {})
    decoding = _take(gen.pop("decoding", {}) or {}, Decoding, "generation.decoding", path)
    cot = gen.pop("cot", None)
    if cot is not None:
        cot = _take(cot, CotConfig, "generation.cot", path)
    return _take(gen, GenerationConfig, "generation", path, decoding=decoding, cot=cot)


def load_config(path: str | Path, root: Path | None = None) -> StudyConfig:
    """Read and check a study config. `root` (the repository) defaults to the one holding the
    config file, else the one holding the current directory (a config kept elsewhere)."""
    path = Path(path)
    if root is None:
        try:
            root = repo_root(path.resolve().parent)
        except FileNotFoundError:
            root = repo_root()
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys {sorted(TOP_KEYS)}")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(TOP_KEYS)}")
    missing = sorted({"name", "corpora", "models"} - set(data))
    if missing:
        raise ConfigError(f"{path}: missing key(s) {missing}")
    verification = data.get("verification")
    if verification is not None:
        if not isinstance(verification, dict) or not isinstance(verification.get("model"), str):
            raise ConfigError(f"{path}: verification needs a model (a registry name), "
                              f"got {verification!r}")
        verification = _take(verification, VerificationConfig, "verification", path)
    scoring = dict(data.get("scoring") or {})
    if "strategies" in scoring:
        if not isinstance(scoring["strategies"], list):
            raise ConfigError(f"{path}: scoring.strategies must be a list of strategy names")
        scoring["strategies"] = tuple(scoring["strategies"])
    return StudyConfig(name=str(data["name"]), path=path.resolve(), root=root,
                       seed=int(data.get("seed", 0)),
                       corpora=_corpora(data["corpora"], path, root),
                       model_entries=_models(data["models"], path),
                       generation=_generation(data.get("generation"), path),
                       scoring=_take(scoring, ScoringConfig, "scoring", path),
                       verification=verification,
                       executor=_take(dict(data.get("executor") or {}), ExecutorConfig,
                                      "executor", path))
