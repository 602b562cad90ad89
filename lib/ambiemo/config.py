"""Study configuration: a YAML file read into frozen dataclasses, every key checked.

A config names everything that changes a number in the study (Jia et al., 2026): corpora and
label spaces, models, prompt, N, decoding, seed, strategies. An unknown or misspelt key is
an error naming the file and the key, never silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ambiemo.alm.base import Decoding


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class CorpusConfig:
    name: str
    root: Path
    label_space: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationConfig:
    prompt: str = "direct_label"
    n_samples: int = 8
    greedy: bool = True
    label_scores: bool = False       # also the model's probability of each class name
    batch_size: int = 8
    device: str = "auto"
    decoding: Decoding = field(default_factory=Decoding)


@dataclass(frozen=True)
class ScoringConfig:
    strategies: tuple = ("greedy", "majority")
    n_boot: int = 1000


@dataclass(frozen=True)
class StudyConfig:
    name: str
    path: Path
    root: Path                       # repository root: relative paths resolve against it
    seed: int
    corpora: dict[str, CorpusConfig]
    models: tuple[str, ...]
    generation: GenerationConfig
    scoring: ScoringConfig

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
    names = {f.name for f in fields(cls)} - set(override)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} in {where}; valid: {sorted(names)}")
    try:
        return cls(**data, **override)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {where}: {e}") from None


TOP_KEYS = {"name", "seed", "corpora", "models", "generation", "scoring"}


def load_config(path: str | Path, root: Path | None = None) -> StudyConfig:
    path = Path(path)
    root = root or repo_root(path.resolve().parent)
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(TOP_KEYS)}")
    missing = sorted({"name", "corpora", "models"} - set(data))
    if missing:
        raise ConfigError(f"{path}: missing key(s) {missing}")
    corpora = {}
    for name, c in (data["corpora"] or {}).items():
        c = dict(c or {})
        if "root" not in c:
            raise ConfigError(f"{path}: corpora.{name} needs a root")
        r = Path(c.pop("root"))
        corpora[name] = _take(c, CorpusConfig, f"corpora.{name}", path, name=name,
                              root=r if r.is_absolute() else root / r)
    if not corpora:
        raise ConfigError(f"{path}: corpora is empty")
    models = data["models"]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{path}: models must be a non-empty list of model names")
    gen = dict(data.get("generation") or {})
    decoding = _take(gen.pop("decoding", {}) or {}, Decoding, "generation.decoding", path)
    generation = _take(gen, GenerationConfig, "generation", path, decoding=decoding)
    scoring = dict(data.get("scoring") or {})
    if "strategies" in scoring:
        scoring["strategies"] = tuple(scoring["strategies"])
    return StudyConfig(name=str(data["name"]), path=path.resolve(), root=root,
                       seed=int(data.get("seed", 0)), corpora=corpora, models=tuple(models),
                       generation=generation,
                       scoring=_take(scoring, ScoringConfig, "scoring", path))
