"""Study configuration: a YAML file read into frozen, type-checked dataclasses.

A config names everything that changes a number in the study (Jia et al., 2026): corpora and
label spaces, models (with pinned checkpoints), prompt, N sampled answers, B beams, the
chain-of-thought answer, the verifier, decoding, seed, strategies. Every value is checked
for type and range by pydantic (strict: `greedy: "no"` is not a boolean, `n_samples: 2.5` is
not a count), an unknown or misspelt key is an error, and one ConfigError lists *every*
problem of the file at once, each with its key, its value and what is allowed.

The generation settings are defined once, here: `GenerationSettings` is what the sampler
(alm/runner.py) takes and what enters the run key; `GenerationConfig` is the config's
`generation:` section, the same fields plus the prompt, the device and the CoT section.

Corpus roots and model checkpoints may name environment variables as `${NAME}` (the corpora
and checkpoints live outside the repository, differently on each machine). An unset variable
is not an error here -- loading a config does no I/O beyond reading it -- but it is recorded
(`missing_env`) and `ambiemo.pipeline.preflight.validate` lists it with every other problem.

Importing this module must stay cheap (no torch): the pipeline driver and the preflight
checks import it before any model is loaded.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, fields
from dataclasses import field as dataclass_field
from dataclasses import dataclass as plain_dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from ambiemo.layout import RunLayout

# Strict: YAML's "no", 2.5 or "eight" are refused where a boolean or a count is expected,
# never coerced; `extra="forbid"` makes a misspelt key an error.
STRICT = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)

COT_MAX_NEW_TOKENS = 256       # the paper's chain-of-thought budget (one definition)
DEFAULT_PROMPT = "direct_label"   # the prompt arm of a config that names none
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and every bad key."""


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


@dataclass(frozen=True, config=STRICT)
class Decoding:
    """Settings that change what a model generates; all enter the run key."""
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)              # 0: no top-k filtering
    max_new_tokens: int = Field(16, ge=1)
    constrained: bool = False    # restrict tokens to spell one class name (see constrained.py)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, config=STRICT)
class CorpusConfig:
    name: str
    root: Path
    # A label space name of the corpus (None: its default), `<corpus>:<name>`, or one written
    # here as {classes: [...], merges: {label: class}} (ambiemo.labels.LabelSpace).
    label_space: str | dict | None = None
    options: dict = Field(default_factory=dict)
    # The registered loader that reads it; None: the loader named like the corpus. A corpus
    # of one's own: `loader: votes_table` (ambiemo/corpora/votes_table.py).
    loader: str | None = None
    missing_env: tuple[str, ...] = ()   # `${NAME}`s in root that are unset

    @property
    def loader_name(self) -> str:
        return self.loader or self.name


@dataclass(frozen=True, config=STRICT)
class ModelEntry:
    """One model of the study: a registry name, optionally with its checkpoint (hub id or
    local directory) and revision pinned here instead of in the registry."""
    name: str
    checkpoint: str | None = None
    revision: str | None = None
    options: dict = Field(default_factory=dict)   # adapter options: dtype, base_url, engine...
    missing_env: tuple[str, ...] = ()              # `${NAME}`s in checkpoint that are unset

    def __post_init__(self):
        reserved = sorted({"checkpoint", "revision"} & set(self.options))
        if reserved:
            raise ValueError(f"{reserved} go beside options, not inside them")


@dataclass(frozen=True, config=STRICT)
class CotConfig:
    """One greedy chain-of-thought answer per clip (kind `cot`), for the `cot` strategy.
    `prompt` serves the label arms; `distribution_prompt` the arms whose prompt asks for a
    distribution, so CoT answers in the arm's own form (protocol v3)."""
    prompt: str = "cot"
    distribution_prompt: str = "cot_distribution"
    max_new_tokens: int = Field(COT_MAX_NEW_TOKENS, ge=1)


@dataclass(frozen=True, config=STRICT)
class GenerationSettings:
    """What the sampler (alm/runner.generate_samples) asks of a model per clip; every field
    enters the run key where it changes the samples."""
    n_samples: int = Field(8, ge=0)       # N sampled responses per clip
    greedy: bool = True                   # also one greedy response per clip (the baseline)
    decoding: Decoding = Field(default_factory=Decoding)
    seed: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)      # clips per model call
    label_scores: bool = False            # also one `label_score` row per clip
    beams: int = Field(0, ge=0)           # also B beam-search candidates per clip (kind `beam`)
    cot_prompt: Any = None                # a loaded PromptTemplate (alm/prompts.py) or None:
    cot_max_new_tokens: int = Field(COT_MAX_NEW_TOKENS, ge=1)   # one greedy CoT answer

    def __post_init__(self):
        if not self.asks_for_anything():
            raise ValueError("nothing to generate: n_samples and beams are 0, greedy, "
                             "label_scores and cot are off")
        answer = getattr(self.cot_prompt, "answer", "cot")
        if self.cot_prompt is not None and answer != "cot":
            raise ValueError(f"cot_prompt {self.cot_prompt.id!r} is a {answer!r} prompt, "
                             "not a chain-of-thought one (answer: cot)")

    def asks_for_anything(self) -> bool:
        return bool(self.n_samples or self.greedy or self.label_scores or self.beams
                    or self.cot_prompt is not None)


@dataclass(frozen=True, config=STRICT)
class GenerationConfig(GenerationSettings):
    """The config's `generation:` section: the sampler's settings (`seed` comes from the
    config's top level, `cot_max_new_tokens` from `cot:`) plus prompt, device and CoT."""
    # The prompt arms (configs/prompts/<id>.yaml): every model answers every clip once per
    # arm, and the arm is a column of every Predictions, Scores and table row. The first is
    # the main arm (the diagnostic figures are drawn for it). `prompt: x` is the one-arm
    # shorthand; after loading, `prompt` is always the main arm and `prompts` every arm.
    prompt: str | None = None
    prompts: tuple[str, ...] = ()
    cot: CotConfig | None = None          # one chain-of-thought answer per clip, or none
    device: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        if self.prompt is not None and self.prompts and self.prompts[0] != self.prompt:
            raise ValueError(f"give either prompt ({self.prompt!r}) or prompts "
                             f"({list(self.prompts)}), not both")
        arms = self.prompts or ((self.prompt,) if self.prompt is not None else (DEFAULT_PROMPT,))
        if len(set(arms)) != len(arms):
            raise ValueError(f"prompts: {list(arms)}: each prompt arm may be listed once")
        for arm in arms:
            why = folder_name_problem(arm)   # it names pointer files and figures
            if why:
                raise ValueError(f"prompts: {arm!r}: {why}")
        # Frozen: the resolved arms are set once, here.
        object.__setattr__(self, "prompts", tuple(arms))
        object.__setattr__(self, "prompt", arms[0])

    def asks_for_anything(self) -> bool:
        return super().asks_for_anything() or self.cot is not None

    def settings(self, cot_prompt=None) -> GenerationSettings:
        """The sampler's settings, with the CoT prompt loaded by the caller
        (`alm.prompts.load_prompt(self.cot.prompt, ...)`) when `cot` is set."""
        if (cot_prompt is None) != (self.cot is None):
            raise ValueError("cot_prompt must be given exactly when generation.cot is set")
        keep = {f.name for f in fields(GenerationSettings)}
        return GenerationSettings(**{**{k: v for k, v in asdict(self).items() if k in keep},
                                     "decoding": self.decoding, "cot_prompt": cot_prompt})


@dataclass(frozen=True, config=STRICT)
class VerificationConfig:
    """A verifier model scores each clip's candidates (03_verify) for `alm_v` / `w_alm_v`."""
    model: str
    prompt: str = "verifier"
    candidates: Literal["sample", "beam"] = "sample"   # which candidates it judges
    n: int | None = Field(None, ge=1)    # judge the first n candidates per clip; None: all


@dataclass(frozen=True, config=STRICT)
class ScoringConfig:
    strategies: tuple[str, ...] = ("greedy", "majority")
    n_boot: int = Field(1000, ge=1)      # bootstrap resamples for the 95% intervals
    # The reference rows scored beside every model (tts/references.py, tts/soft_reference.py):
    # prior, uniform and new_raters never listen; egemaps_soft is a small model trained on the
    # corpus's own votes (cross-fitted over speakers); wavlm_soft the same on WavLM features.
    references: tuple[str, ...] = ("prior", "uniform", "new_raters", "egemaps_soft")


@dataclass(frozen=True, config=STRICT)
class ExecutorConfig:
    """Where generation runs (README "Scale-out on Ray"; ambiemo.sampling.executor_ray).
    `local`: one process, the default. `ray`: shards of clips on Ray actors."""
    kind: Literal["local", "ray"] = "local"
    address: str | None = None       # ray: None starts a local Ray; "auto" or host:port joins one
    actors: int | None = Field(None, ge=1)   # ray: actors per model; None: one per GPU (or CPU)
    gpu_memory_gb: float = Field(80.0, gt=0)  # ray: memory of one GPU, to size num_gpus
    shard_audio_s: float = Field(3600.0, gt=0)  # ray: audio seconds per shard (whole batches)
    max_retries: int = Field(2, ge=0)        # ray: restarts of a dead actor, retries of a shard
    shard_dir: str | None = None     # ray: a path or fsspec URI; None: runs/<config>/shards


@plain_dataclass(frozen=True)
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
    executor: ExecutorConfig = dataclass_field(default_factory=ExecutorConfig)
    # Run options of the command line (`--limit`, `--output-dir`), never of the file:
    # the first `limit` clips of each corpus (a run of its own, `<name>__limit<N>`, recorded
    # in each Manifest), and the folder holding runs/ tables/ figures/ (None: the repository).
    limit: int | None = None
    output_dir: Path | None = None

    @property
    def run_name(self) -> str:
        """The run's folder name: the config's name, `__limit<N>` added for a limited run
        (its own sample store: a full run never reuses its batches, seeded differently)."""
        return self.name if self.limit is None else f"{self.name}__limit{self.limit}"

    def __post_init__(self):
        why = folder_name_problem(self.name)
        if why:
            raise ConfigError(f"{self.path}: name: {self.name!r}: {why}")
        if self.limit is not None and (isinstance(self.limit, bool) or
                                       not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"--limit {self.limit!r}: must be a whole number >= 1")

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

    # Paths: every artifact path has one home, `ambiemo.layout.RunLayout`; these delegate.
    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.root, self.run_name, self.output_dir)

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    @property
    def figure_dir(self) -> Path:
        return self.layout.figure_dir

    @property
    def table_dir(self) -> Path:
        return self.layout.table_dir

    @property
    def prompt_dir(self) -> Path:
        return self.layout.prompt_dir

    def manifest_path(self, corpus: str) -> Path:
        return self.layout.manifest(corpus)

    @property
    def store_path(self) -> Path:
        return self.layout.store

    def samples_pointer(self, model: str, corpus: str, prompt: str | None = None) -> Path:
        """The samples pointer of (model, corpus) for a prompt arm (default: the main arm)."""
        return self.layout.samples_pointer(model, corpus, prompt or self.generation.prompt)

    def verify_pointer(self, model: str, corpus: str, prompt: str | None = None) -> Path:
        return self.layout.verify_pointer(model, corpus, prompt or self.generation.prompt)


def folder_name_problem(name) -> str | None:
    """Why `name` cannot name the study's output folders (runs/, tables/, figures/<name>),
    or None: a plain folder name, so no output lands outside the repository."""
    if isinstance(name, str) and FOLDER_NAME.match(name) and name not in (".", ".."):
        return None
    return ("must be a plain folder name: 1-100 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (no '/', no '..'); it names runs/, tables/ and figures/ "
            "subfolders")


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding configs/ and lib/ambiemo."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "configs").is_dir() and (d / "lib" / "ambiemo").is_dir():
            return d
    raise FileNotFoundError(f"no ambiemo repository at or above {here}")


TOP_KEYS = {"name", "seed", "corpora", "models", "generation", "verification", "scoring",
            "executor"}


class _Problems(list):
    """Every problem of one config file, gathered so that one error lists them all."""

    def build(self, cls, data, where: str, hidden=(), sections=(), **override):
        """`cls(**data, **override)`, or None with each problem recorded under `where`.
        `hidden`: fields the file may not set; `sections`: keys read apart (listed as valid)."""
        if not isinstance(data, dict):
            self.append(f"{where}: {data!r}: must be a mapping of keys")
            return None
        names = {f.name for f in fields(cls)} - set(override) - {"missing_env", *hidden}
        unknown = sorted(map(str, set(data) - names))
        if unknown:
            self.append(f"unknown key(s) {unknown} in {where}; valid: "
                        f"{sorted(names | set(sections))}")
            data = {k: v for k, v in data.items() if k in names}
        try:
            return cls(**data, **override)
        except ValidationError as e:
            for err in e.errors():
                msg = err["msg"].removeprefix("Value error, ")
                key = ".".join(map(str, (where, *err["loc"])))
                self.append(f"{key}: {err['input']!r}: {msg}" if err["loc"] else f"{key}: {msg}")
            return None


def _label_space_problems(name, c: dict) -> list[str]:
    """A label space written in the config, checked here (names are checked by the loader,
    which knows its corpus)."""
    from ambiemo.labels import mapping_problems   # cheap: no torch, no pandas
    space = c.get("label_space")
    return mapping_problems(space, f"corpora.{name}.label_space") if isinstance(space, dict) \
        else []


def _corpora(data, problems: _Problems, root: Path) -> dict[str, CorpusConfig]:
    if not isinstance(data, dict) or not data:
        problems.append("corpora: must be a non-empty mapping of corpus name -> {root: ...}")
        return {}
    corpora = {}
    for name, c in data.items():
        if not isinstance(c, dict) or "root" not in c:
            problems.append(f"corpora.{name} needs a root (a mapping {{root: ...}}), got {c!r}")
            continue
        c = dict(c)
        problems += _label_space_problems(name, c)
        text, missing = expand_env(str(c.pop("root")))
        r = Path(text).expanduser()
        # An unexpanded `${NAME}` stays as written, so the message shows what was asked for.
        r = r if r.is_absolute() or missing else root / r
        corpora[name] = problems.build(CorpusConfig, c, f"corpora.{name}", name=str(name),
                                       root=r, missing_env=missing)
    return corpora


def _models(data, problems: _Problems) -> dict[str, ModelEntry]:
    if not isinstance(data, list) or not data:
        problems.append("models must be a non-empty list of model names or "
                        "{name: ..., checkpoint: ..., revision: ..., options: {...}}")
        return {}
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
                m["revision"] = str(m["revision"])   # a commit hash YAML read as a number
            m["options"] = m.get("options") or {}
            entry = problems.build(ModelEntry, m, f"{where} ({m['name']})", missing_env=missing)
        else:
            problems.append(f"{where} must be a model name or a mapping with a name, got {m!r}")
            continue
        if entry is None:
            continue
        if entry.name in entries:
            problems.append(f"{where}: model {entry.name!r} is listed twice")
        entries[entry.name] = entry
    return entries


def _generation(data, seed: int, problems: _Problems) -> GenerationConfig | None:
    if data is not None and not isinstance(data, dict):
        problems.append(f"generation: {data!r}: must be a mapping of keys")
        return None
    gen = dict(data or {})
    if "prompts" in gen:
        if isinstance(gen["prompts"], list) and gen["prompts"]:
            gen["prompts"] = tuple(gen["prompts"])
        else:
            problems.append(f"generation.prompts: {gen.pop('prompts')!r}: must be a non-empty "
                            "list of prompt ids (configs/prompts/<id>.yaml)")
    decoding = problems.build(Decoding, gen.pop("decoding", None) or {}, "generation.decoding")
    cot = gen.pop("cot", None)
    if cot is not None:
        # A bad subsection is already reported; its default stands in so that the section's
        # own keys are still checked (every problem listed at once).
        cot = problems.build(CotConfig, cot, "generation.cot") or CotConfig()
    return problems.build(
        GenerationConfig, gen, "generation", hidden=("cot_prompt",), sections=("decoding", "cot"),
        decoding=decoding or Decoding(), cot=cot, seed=seed,
        cot_max_new_tokens=cot.max_new_tokens if cot else COT_MAX_NEW_TOKENS)


def load_config(path: str | Path, root: Path | None = None) -> StudyConfig:
    """Read and check a study config. `root` (the repository) defaults to the one holding the
    config file, else the one holding the current directory (a config kept elsewhere).
    Raises ConfigError listing every problem of the file, each with key, value and what is
    allowed."""
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
    problems = _Problems()
    unknown = sorted(map(str, set(data) - TOP_KEYS))
    if unknown:
        problems.append(f"unknown key(s) {unknown}; valid: {sorted(TOP_KEYS)}")
    missing = sorted({"name", "corpora", "models"} - set(data))
    if missing:
        problems.append(f"missing key(s) {missing}")
    name = data.get("name", "")
    if "name" in data and folder_name_problem(name):
        problems.append(f"name: {name!r}: {folder_name_problem(name)}")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"seed: {seed!r}: must be a whole number >= 0")
        seed = 0
    corpora = _corpora(data.get("corpora"), problems, root) if "corpora" in data else {}
    models = _models(data.get("models"), problems) if "models" in data else {}
    generation = _generation(data.get("generation"), seed, problems)
    verification = data.get("verification")
    if verification is not None:
        if not isinstance(verification, dict) or not isinstance(verification.get("model"), str):
            problems.append(f"verification needs a model (a registry name), got {verification!r}")
            verification = None
        else:
            verification = problems.build(VerificationConfig, verification, "verification")
    scoring = data.get("scoring") or {}
    for key, what in (("strategies", "strategy"), ("references", "reference")):
        if isinstance(scoring, dict) and key in scoring:
            scoring = dict(scoring)
            if isinstance(scoring[key], list):
                scoring[key] = tuple(scoring[key])
            else:
                problems.append(f"scoring.{key}: {scoring.pop(key)!r}: must be a list of "
                                f"{what} names")
    scoring = problems.build(ScoringConfig, scoring, "scoring")
    executor = problems.build(ExecutorConfig, data.get("executor") or {}, "executor")
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return StudyConfig(name=name, path=path.resolve(), root=root, seed=seed, corpora=corpora,
                       model_entries=models, generation=generation, scoring=scoring,
                       verification=verification, executor=executor or ExecutorConfig())


def with_run_options(cfg: StudyConfig, *, limit: int | None = None,
                     output_dir: str | Path | None = None) -> StudyConfig:
    """`cfg` with the command line's `--limit` / `--output-dir` (a relative output folder
    resolves against the current directory, as a shell user expects)."""
    import dataclasses
    out = Path(output_dir).expanduser().resolve() if output_dir is not None else None
    return dataclasses.replace(cfg, limit=limit, output_dir=out)
