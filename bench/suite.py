"""Suite files: YAML -> a validated `Suite` -> a deterministic list of `JobSpec`.

Validation collects every problem in the file (unknown keys, wrong types, unknown names, bad
options, architectures that cannot take the dataset) and raises ONE `SuiteError` naming, for each,
its key path and line in the file, the bad value and the valid choices. Nothing here imports torch:
the names that are valid come from a `Catalogue` (see bench.catalogue), so a suite can be checked
without building anything.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.registry import Option, option_defaults, option_problems
from bench.spec import JobSpec, freeze_options
from bench.yamlerrors import Problem, line_index, locate, pydantic_problems

# ------------------------------------------------------------------------------------------------
# What the suite is validated against (filled from the registries by bench.catalogue). `options` are
# the declarations (bench.registry.Option) every value in the file is checked against.


class _Declared:
    options: Mapping[str, Option]

    @property
    def option_defaults(self) -> dict[str, Any]:
        return option_defaults(self.options)


@dataclass(frozen=True)
class ObjectiveInfo(_Declared):
    options: Mapping[str, Option]
    optimizer: str
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    critic_steps: int
    tricks: tuple[tuple[str, Mapping[str, Any]], ...]
    extra_metrics: tuple[str, ...] = ()  # evaluators every job of this objective gets


class CriticCoupling(Protocol):
    """An architecture option whose value makes a critic's output for one sample depend on its
    batch-mates (bench.nets.SampleCoupling): `option` has `value`; `independent` lists values that do not."""

    @property
    def option(self) -> str: ...
    @property
    def value(self) -> Any: ...
    @property
    def independent(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class ArchInfo(_Declared):
    options: Mapping[str, Option]
    supports: Callable[[tuple[int, ...]], str | None]
    default_latent_dim: Callable[[tuple[int, ...]], int]
    # critic options (over the defaults) -> the options that couple a sample's output to its batch-mates
    critic_coupling: Callable[[Mapping[str, Any]], Sequence[CriticCoupling]]


@dataclass(frozen=True)
class TrickInfo(_Declared):
    options: Mapping[str, Option]
    needs_per_sample_gradients: bool = False  # its term uses grad_x C(x) of each sample
    critic_options: Mapping[str, Any] = field(default_factory=dict)  # architecture options it sets
    # its options -> how many samples the critic judges at once (PacGAN's packing; 1 for most tricks)
    packing: Callable[[Mapping[str, Any]], int] = lambda options: 1


@dataclass(frozen=True)
class DatasetInfo(_Declared):
    options: Mapping[str, Option]
    shape: Callable[[Mapping[str, Any]], tuple[int, ...]]
    # options -> what the dataset offers evaluators (bench.data.DatasetOffers), nothing read
    offers: Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class MetricInfo(_Declared):
    applies: Callable[[Any], bool]  # a dataset's offers -> whether the metric can score it
    options: Mapping[str, Option] = field(default_factory=dict)
    produces: tuple[str, ...] = ()  # the metrics it reports (fid_inception, ...): what a reference may name


@dataclass(frozen=True)
class Catalogue:
    objectives: Mapping[str, ObjectiveInfo]
    archs: Mapping[str, ArchInfo]
    datasets: Mapping[str, DatasetInfo]
    tricks: Mapping[str, TrickInfo]
    metrics: Mapping[str, MetricInfo]
    default_metrics: Callable[[Any], list[str]]  # a dataset's offers -> the evaluators a suite gets by default


# ------------------------------------------------------------------------------------------------
# Schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Optimizer = Literal["adam", "rmsprop", "sgd"]


class TrickConfig(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


TrickItem = str | TrickConfig


class _Recipe(_Strict):
    """The settings an objective publishes; `None` means "the objective's published default"."""

    critic_steps: int | None = Field(None, gt=0)
    optimizer: Optimizer | None = None
    lr: float | None = Field(None, gt=0)
    lr_g: float | None = Field(None, gt=0)
    lr_d: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    reuse_fakes: bool | None = None  # the generator step reuses the critic step's fakes (one critic step only)


class TrainSettings(_Recipe):
    """Training settings shared by every job of the suite.

    `tricks`, when given (even empty), replaces each objective's published tricks; `spectral_norm`
    true/false adds or removes the spectral-norm trick. How many samples an evaluation draws is each
    metric's own protocol count, or `metric_options.<metric>.samples`.
    """

    steps: int = Field(2000, gt=0)
    batch_size: int = Field(64, gt=0)
    latent_dim: int | None = Field(None, gt=0)
    tricks: list[TrickItem] | None = None
    spectral_norm: bool | None = None
    eval_every: int = Field(500, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    log_every: int = Field(50, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = True
    eval_precision: Literal["float32", "bf16"] = "float32"


# keys of TrainSettings a grid axis may set
AXIS_TRAIN_KEYS = (
    "steps", "batch_size", "latent_dim", "critic_steps", "optimizer", "lr", "lr_g", "lr_d", "betas", "tricks",
    "spectral_norm",
)

# keys a suite no longer takes, and what replaces them
RETIRED_KEYS = {
    ("train", "eval_samples"): (
        "no longer a key: each metric draws the sample count of its own protocol; set a count for one "
        "metric with metric_options.<metric>.samples, e.g. metric_options: {mixture-modes: {samples: 2500}}"
    ),
}

# the trick that `spectral_norm: true|false` adds or removes
SPECTRAL_NORM_TRICK = "spectral-norm"


class ObjectiveOverride(_Recipe):
    """Per-objective settings: its options, and recipe/batch/tricks/spectral_norm that replace the suite's."""

    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, gt=0)
    tricks: list[TrickItem] | None = None
    spectral_norm: bool | None = None


class DatasetConfig(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExecutorConfig(_Strict):
    name: Literal["debug", "local", "slurm"] = "local"
    max_parallel: int = Field(2, gt=0)
    threads_per_job: int | None = Field(None, gt=0)
    stack_seeds: int = Field(1, gt=0)
    profile: str | None = None
    wait: bool = True


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: str | None = None
    experiment: str = "bench"


# a published value is a reference only with one of these confidence labels (see the protocols
# notes): read in the authors' code, off their committed table image, on their project or abstract
# page, or in a secondary source quoting the paper; a recollection is not one
REFERENCE_LABELS = ("[code]", "[table-img]", "[page]", "[2nd]")


class Reference(_Strict):
    """A published value set beside bench's estimate for the jobs that `where` selects.

    `metric` is a metric the jobs compute (fid_inception, ...); `where` maps grid axes or spec fields
    to the value the jobs must have (see `reference_matches`); `setting` says how the paper's runs
    were made; `source` opens with the value's confidence label (REFERENCE_LABELS). `steps`
    (generator steps per run) and `samples` (generated samples per evaluation), when given, are the
    paper's, and the report names where bench's jobs differ from them.
    """

    paper: str
    table: str = ""
    metric: str
    value: float
    where: dict[str, Any] = Field(min_length=1)
    setting: str = ""
    source: str
    steps: int | None = Field(None, gt=0)
    samples: int | None = Field(None, gt=0)

    @field_validator("where")
    @classmethod
    def _where_keys_exist(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = [key for key in value if key not in WHERE_KEYS]
        if unknown:
            raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"valid: {_choices(WHERE_KEYS)}")
        return value

    @field_validator("source")
    @classmethod
    def _source_is_labelled(cls, value: str) -> str:
        if not value.startswith(REFERENCE_LABELS):
            raise ValueError(f"must open with the value's confidence label, one of {', '.join(REFERENCE_LABELS)}; "
                             "a value known only from recollection is not a reference")
        return value


class ReportConfig(_Strict):
    baseline: str = "nsgan"
    thresholds: dict[str, float] = Field(default_factory=dict)
    references: list[Reference] = Field(default_factory=list)


Distribution = Literal["log-uniform", "uniform", "int-uniform", "choice"]
DISTRIBUTIONS: tuple[str, ...] = ("log-uniform", "uniform", "int-uniform", "choice")


class SearchParam(_Strict):
    """One dimension of a search space: `log-uniform`, `uniform` (floats in [low, high]),
    `int-uniform` (integers low..high, both included) or `choice` (one of `values`, equally
    likely). `only`, when given, lists the objectives the value is applied to; the others train
    without it (a field some objective does not have must say so this way)."""

    distribution: Distribution
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None
    only: list[str] | None = None


class SearchConfig(_Strict):
    """Random search over ONE space shared by every objective (Lucic et al. 2018's protocol).

    Trial t draws each dimension of `space` i.i.d. from its distribution, with a generator seeded
    by (`seed`, t, the dimension's name) alone (`sample_trial`), so a trial's values do not depend
    on `trials` nor on the other dimensions: raising `trials` from N to N + 4 keeps the first N
    trials and their job ids. Every objective trains the same N configurations (a paired design:
    trial t is one configuration for all of them), each once per grid seed. Space names: the
    recipe fields `lr`, `lr_g`, `lr_d`, `beta1`, `beta2`, `critic_steps`, `optimizer`, an
    objective option `objective.<option>` and a trick option `trick.<trick>.<option>`. Precedence:
    published < train < objectives.<name> < search < grid axis; a searched field may not also be
    set in train, an objective override, a grid axis or an include rule (one place sets it).
    Floats are kept to 4 significant digits, so the specs read as the values trained.
    """

    trials: int = Field(gt=0)
    seed: int = Field(0, ge=0)
    space: dict[str, SearchParam] = Field(min_length=1)


class SuiteConfig(_Strict):
    name: str
    description: str = ""
    dataset: DatasetConfig | None = None
    grid: dict[str, list[Any]]
    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    train: TrainSettings = Field(default_factory=TrainSettings)
    objectives: dict[str, ObjectiveOverride] = Field(default_factory=dict)
    archs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metrics: list[str] | None = None
    metric_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    search: SearchConfig | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", value):
            raise ValueError("must be letters, digits, '_', '-' or '.' (it names the results folder)")
        return value


REQUIRED_AXES = ("objective", "arch", "seed")
GRID_AXES = REQUIRED_AXES + ("dataset",) + AXIS_TRAIN_KEYS
# what a reference's `where` may select on: the grid axes and the spec's other plain fields
WHERE_KEYS = GRID_AXES + ("eval_every", "checkpoint_every", "log_every", "deterministic", "eval_precision")


def dataset_configs(config: SuiteConfig) -> list[DatasetConfig]:
    """The suite's datasets: the `dataset` grid axis if there is one, else the `dataset` key."""
    if "dataset" in config.grid:
        return [_as_dataset(value) for value in config.grid["dataset"]]
    return [config.dataset] if config.dataset is not None else []


def _as_dataset(value: Any) -> DatasetConfig:
    if isinstance(value, DatasetConfig):
        return value
    if isinstance(value, str):
        return DatasetConfig(name=value)
    return DatasetConfig.model_validate(value)


# ------------------------------------------------------------------------------------------------
# Errors


class SuiteError(ValueError):
    """Everything wrong with a suite file, in one message."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{source}: {count} problem{'s' if count != 1 else ''}"]
        lines += [p.render() for p in self.problems]
        super().__init__("\n".join(lines))


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """key path -> 1-based line of that key (mappings) or item (sequences) in the YAML text."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    return line_index(root)


def _choices(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


# ------------------------------------------------------------------------------------------------
# Loading and validation


@dataclass(frozen=True)
class Suite:
    """A validated suite and the jobs it expands to (in deterministic order)."""

    config: SuiteConfig
    source: str
    text: str
    jobs: tuple[JobSpec, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.config.name


# suite keys whose values land in other flat spec columns
_SUITE_KEY_COLUMNS = {"lr": ("lr_g", "lr_d"), "spectral_norm": ("tricks",)}


def set_columns(grid: Iterable[str], include: Iterable[Mapping[str, Any]]) -> list[str]:
    """The flat spec columns a suite sets itself, in order: those of its grid axes, then those of its
    include rules' keys (`lr` sets `lr_g` and `lr_d`, `spectral_norm` sets `tricks`). MLflow run names
    (bench.run) and the report's groups (bench.report.aggregate.grid_axes) are named by them."""
    keys = [*grid, *(key for rule in include for key in rule)]
    return list(dict.fromkeys(column for key in keys for column in _SUITE_KEY_COLUMNS.get(str(key), (str(key),))))


def select_jobs(suite: Suite, only: Sequence[tuple[str, Sequence[str]]]) -> Suite:
    """The suite cut to the jobs that match every filter of `only` (`bench run --only KEY=V1,V2`): KEY is
    a key of the job spec (`JobSpec.flat()`: `objective`, `seed`, `dataset`, `arch.width`, `lr_g`, ...)
    and a job matches when its value is one of the Vs, compared as YAML would read them (`1e-4` is
    `0.0001`, `true` is `True`). The jobs keep their ids, so the rest of the suite can run later into
    the same results. Raises SuiteError for a key no job has, a value no job has (both with what the
    suite has) and filters that no job matches together."""
    if not only:
        return suite
    flats = [job.flat() for job in suite.jobs]
    problems: list[Problem] = []
    keep = [True] * len(flats)
    for key, values in only:
        where = (f"--only {key}",)
        present = {flat[key] for flat in flats if key in flat}
        if not present:
            varying = sorted(k for k in flats[0] if len({flat.get(k) for flat in flats}) > 1) if flats else []
            problems.append(Problem(where, (
                f"no job of the suite has the key {key!r}; keys that vary in it: {', '.join(varying) or 'none'} "
                "(or any other parameter of a job's MLflow run)")))
            continue
        wanted = {_comparable(value) for value in values}
        has = {_comparable(value) for value in present}
        missing = [value for value in values if _comparable(value) not in has]
        if missing:
            shown = sorted(present, key=lambda v: (isinstance(_comparable(v), str), str(_comparable(v))))
            problems.append(Problem(where, f"no job of the suite has {key} {', '.join(missing)}; its values: "
                                           f"{', '.join(value.strip(chr(34)) for value in shown)}"))
            continue
        keep = [kept and _comparable(flat.get(key, "")) in wanted for kept, flat in zip(keep, flats, strict=True)]
    if not problems and not any(keep):
        problems.append(Problem(("--only",), "no job of the suite matches every filter together"))
    if problems:
        raise SuiteError(suite.source, problems)
    return replace(suite, jobs=tuple(job for job, kept in zip(suite.jobs, keep, strict=True) if kept))


def _comparable(text: str) -> object:
    """A spec value or a value typed on the command line as YAML reads it: numbers as floats, booleans
    in one case, JSON-quoted strings (option values in `JobSpec.flat()`) unquoted."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    try:
        return float(text)
    except ValueError:
        return text.lower() if text.lower() in ("true", "false") else text


def load_suite(path: Path | str, catalogue: Catalogue) -> Suite:
    """Read, validate and expand a suite file; raises SuiteError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SuiteError(str(path), [Problem((), f"cannot read the file: {error.strerror}")]) from None
    except UnicodeDecodeError as error:
        raise SuiteError(str(path), [Problem((), _not_utf8(path, error))]) from None
    return parse_suite(text, catalogue, source=str(path))


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8 (the encoding YAML files are read in), as a line number."""
    line = path.read_bytes()[: error.start].count(b"\n") + 1
    return (f"line {line}: byte 0x{error.object[error.start]:02x} is not UTF-8; save the file as UTF-8 "
            "(the encoding YAML files are read in)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that records every mapping key written twice in the document as a Problem
    (plain YAML keeps the last value silently, so a repeated `steps:` would quietly win)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_document(self, node: yaml.Node) -> Any:
        self.duplicates += _duplicate_keys(node, (), set())
        return super().construct_document(node)


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...], seen_nodes: set[int]) -> list[Problem]:
    if id(node) in seen_nodes:  # an alias to a node already walked
        return []
    seen_nodes.add(id(node))
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_lines:
                    problems.append(Problem(path + (key_node.value,), (
                        f"duplicate key, first set on line {first_lines[key]}; a key may appear once in a mapping"),
                        line))
                else:
                    first_lines[key] = line
            sub = path + (key_node.value,) if isinstance(key_node, yaml.ScalarNode) else path
            problems += _duplicate_keys(value_node, sub, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, path + (index,), seen_nodes)
    return problems


def parse_suite(text: str, catalogue: Catalogue, *, source: str = "<suite>") -> Suite:
    lines = _line_index(text)

    def located(problems: list[Problem]) -> list[Problem]:
        return locate(problems, lines)

    loader = _UniqueKeyLoader(text)
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        message = f"not valid YAML: {getattr(error, 'problem', error)}"
        context = getattr(error, "context_mark", None)
        context_text = getattr(error, "context", None)
        if context is not None and context_text:
            message += f" ({context_text} on line {context.line + 1})"
        raise SuiteError(source, [Problem((), message, line)]) from None
    finally:
        loader.dispose()
    duplicates = loader.duplicates
    if raw is None:
        raise SuiteError(source, [Problem((), (
            "the file is empty; a suite is a YAML mapping with at least name, dataset and grid "
            "(see suites/quickstart.yaml)"))])
    if not isinstance(raw, dict):
        raise SuiteError(source, [Problem((), f"a suite is a YAML mapping, got {type(raw).__name__}")])
    try:
        config = SuiteConfig.model_validate(raw)
    except ValidationError as error:
        problems = duplicates + pydantic_problems(error, SuiteConfig, raw, retired=RETIRED_KEYS)
        # the names can still be checked on the parts that parsed, so one run reports everything
        problems += _semantic_problems_raw(raw, catalogue)
        raise SuiteError(source, located(_dedupe(problems))) from None
    problems = duplicates + _semantic_problems(config, catalogue)
    if problems:
        raise SuiteError(source, located(problems))
    jobs = expand(config, catalogue)
    if not jobs:
        raise SuiteError(source, located([Problem(("grid",), "the grid expands to no jobs (exclude removes all)")]))
    problems = _job_problems(config, jobs, catalogue)
    if problems:
        raise SuiteError(source, located(problems))
    return Suite(config=config, source=source, text=text, jobs=tuple(jobs))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for problem in problems:
        key = (problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


def _semantic_problems_raw(raw: dict[str, Any], catalogue: Catalogue) -> list[Problem]:
    """Name and option checks on an unvalidated mapping (used when the schema already failed)."""
    problems: list[Problem] = []
    grid = raw.get("grid")
    if isinstance(grid, dict):
        problems += _grid_name_problems(grid, catalogue)
    dataset = raw.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("name"), str):
        if dataset["name"] not in catalogue.datasets:
            problems.append(_unknown(("dataset", "name"), "dataset", dataset["name"], catalogue.datasets))
        elif isinstance(dataset.get("options"), dict):
            problems += _option_problems(dataset["options"], catalogue.datasets[dataset["name"]].options,
                                         ("dataset", "options"), f"dataset {dataset['name']!r}")
    train = raw.get("train")
    if isinstance(train, dict) and isinstance(train.get("tricks"), list):
        problems += _trick_problems(train["tricks"], ("train", "tricks"), catalogue)
    overrides = raw.get("objectives")
    if isinstance(overrides, dict):
        for name, override in overrides.items():
            if name not in catalogue.objectives:
                problems.append(_unknown(("objectives", name), "objective", name, catalogue.objectives))
            elif isinstance(override, dict):
                if isinstance(override.get("options"), dict):
                    problems += _option_problems(override["options"], catalogue.objectives[name].options,
                                                 ("objectives", name, "options"), f"objective {name!r}")
                if isinstance(override.get("tricks"), list):
                    problems += _trick_problems(override["tricks"], ("objectives", name, "tricks"), catalogue)
    archs = raw.get("archs")
    if isinstance(archs, dict):
        for arch, options in archs.items():
            if arch not in catalogue.archs:
                problems.append(_unknown(("archs", arch), "arch", arch, catalogue.archs))
            elif isinstance(options, dict):
                problems += _arch_option_problems(arch, options, catalogue)
    metrics = raw.get("metrics")
    if isinstance(metrics, list):
        for index, metric in enumerate(metrics):
            if isinstance(metric, str) and metric not in catalogue.metrics:
                problems.append(_unknown(("metrics", index), "metric", metric, catalogue.metrics))
    search = raw.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    if isinstance(space, dict):
        problems += [_unknown_search_field(str(name)) for name in space if search_target(str(name)) is None]
    metric_options = raw.get("metric_options")
    if isinstance(metric_options, dict):
        for metric, options in metric_options.items():
            if metric not in catalogue.metrics:
                problems.append(_unknown(("metric_options", metric), "metric", metric, catalogue.metrics))
            elif isinstance(options, dict):
                problems += _option_problems(options, catalogue.metrics[metric].options, ("metric_options", metric),
                                             f"metric {metric!r}")
    return problems


def _unknown(path: tuple[str | int, ...], kind: str, value: Any, valid: Iterable[str]) -> Problem:
    return Problem(path, f"unknown {kind} {value!r}; valid: {_choices(valid)}")


def _grid_name_problems(grid: Mapping[str, Any], catalogue: Catalogue) -> list[Problem]:
    problems: list[Problem] = []
    for axis, values in grid.items():
        if axis not in GRID_AXES:
            problems.append(Problem(("grid", axis), f"unknown grid axis; valid axes: {_choices(GRID_AXES)}"))
            continue
        if not isinstance(values, list) or not values:
            if isinstance(values, list):
                problems.append(Problem(("grid", axis), "a grid axis needs at least one value"))
            continue
        names = {"objective": catalogue.objectives, "arch": catalogue.archs}.get(axis)
        if names is not None:
            for index, value in enumerate(values):
                if value not in names:
                    problems.append(_unknown(("grid", axis, index), axis, value, names))
    for axis in REQUIRED_AXES:
        if axis not in grid:
            problems.append(Problem(("grid",), f"missing required axis {axis!r}"))
    return problems


def _trick_problems(items: Iterable[Any], path: tuple[str | int, ...], catalogue: Catalogue) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        named = isinstance(item, dict) and isinstance(item.get("name"), str)
        if not isinstance(item, (str, TrickConfig)) and not named:
            continue  # not a trick at all: the schema reports it
        name, options = _trick_parts(item)
        if name not in catalogue.tricks:
            problems.append(_unknown(path + (index,), "trick", name, catalogue.tricks))
            continue
        if name in seen:
            problems.append(Problem(path + (index,), f"trick {name!r} is listed twice"))
        seen.add(name)
        problems += _option_problems(options, catalogue.tricks[name].options, path + (index, "options"),
                                     f"trick {name!r}")
    return problems


def _arch_option_problems(arch: str, options: Mapping[str, Any], catalogue: Catalogue) -> list[Problem]:
    problems = _option_problems(options, catalogue.archs[arch].options, ("archs", arch), f"arch {arch!r}")
    if "spectral_norm" in options:
        problems.append(Problem(("archs", arch, "spectral_norm"), (
            "spectral norm is chosen per job, not per arch: set `spectral_norm: true` or `false` under train, "
            "objectives.<name> or as a grid axis (the job's tricks then list spectral-norm)")))
    return problems


def _trick_parts(item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, TrickConfig):
        return item.name, dict(item.options)
    if isinstance(item, dict):
        options = item.get("options")
        return str(item.get("name")), dict(options) if isinstance(options, dict) else {}
    return str(item), {}


def _option_problems(
    options: Mapping[str, Any], declared: Mapping[str, Option], path: tuple[str | int, ...], owner: str
) -> list[Problem]:
    """Every unknown key, bad value and missing required option of `options` (under `path`), each at its
    key, checked against the declarations of the part that takes them (bench.registry.Option)."""
    return [Problem(path + (key,), message) for key, message in option_problems(owner, options, declared)]


def _applicable(catalogue: Catalogue, offers: Any) -> str:
    return _choices(name for name, info in catalogue.metrics.items() if info.applies(offers)) or "none"


def _semantic_problems(config: SuiteConfig, catalogue: Catalogue) -> list[Problem]:
    problems = _grid_name_problems(config.grid, catalogue)
    datasets: dict[str, tuple[tuple[int, ...], Any]] = {}  # valid dataset key -> (shape, offers)
    if config.dataset is not None and "dataset" in config.grid:
        problems.append(Problem(("dataset",), "give either `dataset` or a `dataset` grid axis, not both"))
    entries: list[tuple[tuple[str | int, ...], DatasetConfig]]
    if "dataset" in config.grid:
        entries = []
        for index, value in enumerate(config.grid["dataset"]):
            try:
                entries.append((("grid", "dataset", index), _as_dataset(value)))
            except ValidationError:
                problems.append(Problem(("grid", "dataset", index),
                                        f"a dataset is a name or {{name: ..., options: {{...}}}}, got {value!r}"))
    elif config.dataset is not None:
        entries = [(("dataset",), config.dataset)]
    else:
        entries = []
        problems.append(Problem(("dataset",), "required key is missing (or give a `dataset` grid axis)"))
    for path, dataset in entries:
        data_info = catalogue.datasets.get(dataset.name)
        name_path = path + ("name",) if path == ("dataset",) else path
        if data_info is None:
            problems.append(_unknown(name_path, "dataset", dataset.name, catalogue.datasets))
            continue
        dataset_problems = _option_problems(
            dataset.options, data_info.options, path + ("options",), f"dataset {dataset.name!r}")
        problems += dataset_problems
        if dataset_problems:
            continue
        try:
            merged = {**data_info.option_defaults, **dataset.options}
            offers = data_info.offers(merged)
            datasets[_dataset_key(dataset)] = (tuple(data_info.shape(merged)), offers)
        except (ValueError, TypeError) as error:
            problems.append(Problem(path + ("options",), str(error)))
            continue
        # jobs without a metric would train and leave nothing to compare: refused unless the suite says
        # so with `metrics: []`
        if config.metrics is None and not catalogue.default_metrics(offers):
            problems.append(Problem(name_path, (
                f"no metric applies by default to dataset {dataset.name!r}; name the metrics to compute under "
                f"`metrics` (these apply: {_applicable(catalogue, offers)}), or set `metrics: []` to train "
                f"without evaluations")))
    # every job's architecture must take its dataset (checked on the expanded grid, after exclude)
    if not problems:
        for assignment in grid_assignments(config):
            dataset = _assigned_dataset(config, assignment)
            shape, _ = datasets[_dataset_key(dataset)]
            arch = assignment["arch"]
            reason = catalogue.archs[arch].supports(shape) if arch in catalogue.archs else None
            if reason:
                index = config.grid["arch"].index(arch) if arch in config.grid["arch"] else 0
                problem = Problem(("grid", "arch", index), f"arch {arch!r} cannot take dataset {dataset.name!r} "
                                                           f"{shape}: {reason} (exclude the pair to skip it)")
                if problem not in problems:
                    problems.append(problem)
    for arch, options in config.archs.items():
        if arch not in catalogue.archs:
            problems.append(_unknown(("archs", arch), "arch", arch, catalogue.archs))
        else:
            problems += _arch_option_problems(arch, options, catalogue)
    for name, override in config.objectives.items():
        if name not in catalogue.objectives:
            problems.append(_unknown(("objectives", name), "objective", name, catalogue.objectives))
            continue
        problems += _option_problems(
            override.options, catalogue.objectives[name].options, ("objectives", name, "options"),
            f"objective {name!r}",
        )
        if override.tricks:
            problems += _trick_problems(override.tricks, ("objectives", name, "tricks"), catalogue)
    problems += _trick_problems(config.train.tricks or [], ("train", "tricks"), catalogue)
    for index, trick_list in enumerate(config.grid.get("tricks", [])):
        if not isinstance(trick_list, list):
            problems.append(Problem(("grid", "tricks", index),
                                    f"each value of the tricks axis is a list of tricks, got {trick_list!r}"))
        else:
            problems += _trick_problems(trick_list, ("grid", "tricks", index), catalogue)
    for index, value in enumerate(config.grid.get("spectral_norm", [])):
        if not isinstance(value, bool):
            problems.append(Problem(("grid", "spectral_norm", index),
                                    f"each value of the spectral_norm axis is true or false, got {value!r}"))
    seeds = config.grid.get("seed", [])
    for index, value in enumerate(seeds):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(Problem(("grid", "seed", index),
                                    f"each seed is a whole number >= 0 (e.g. seed: [0, 1, 2]), got {value!r}"))
        elif value in seeds[:index]:
            problems.append(Problem(("grid", "seed", index), f"seed {value} is listed twice"))
    # metrics
    if config.metrics is not None:
        for index, metric in enumerate(config.metrics):
            info = catalogue.metrics.get(metric)
            if info is None:
                problems.append(_unknown(("metrics", index), "metric", metric, catalogue.metrics))
            else:
                for key, (_, offers) in datasets.items():
                    name = key.split("|")[0]
                    problem = Problem(("metrics", index), (f"metric {metric!r} does not apply to dataset {name!r} "
                                                           f"(these do: {_applicable(catalogue, offers)})"))
                    if not info.applies(offers) and problem not in problems:
                        problems.append(problem)
    for metric, options in config.metric_options.items():
        info = catalogue.metrics.get(metric)
        if info is None:
            problems.append(_unknown(("metric_options", metric), "metric", metric, catalogue.metrics))
        else:
            problems += _option_problems(options, info.options, ("metric_options", metric), f"metric {metric!r}")
    # include / exclude rules name axes and values that exist
    for rule_kind in ("include", "exclude"):
        for index, rule in enumerate(getattr(config, rule_kind)):
            for axis, value in rule.items():
                if axis not in GRID_AXES:
                    problems.append(Problem((rule_kind, index, axis),
                                            f"unknown axis; valid axes: {_choices(GRID_AXES)}"))
                    continue
                if axis == "tricks":
                    if isinstance(value, list):
                        problems += _trick_problems(value, (rule_kind, index, axis), catalogue)
                    else:
                        problems.append(Problem((rule_kind, index, axis),
                                                f"a tricks value is a list of tricks, got {value!r}"))
                    continue
                if axis == "spectral_norm" and not isinstance(value, bool):
                    problems.append(Problem((rule_kind, index, axis), f"spectral_norm is true or false, got {value!r}"))
                names = {"objective": catalogue.objectives, "arch": catalogue.archs}.get(axis)
                values = value if isinstance(value, list) else [value]
                for item in values:
                    if names is not None and item not in names:
                        problems.append(_unknown((rule_kind, index, axis), axis, item, names))
    problems += _search_problems(config, catalogue)
    # schedule consistency
    train = config.train
    if train.checkpoint_every % train.log_every:
        problems.append(Problem(("train", "checkpoint_every"),
                                f"must be a multiple of train.log_every ({train.log_every})"))
    if config.executor.name == "slurm" and not config.executor.profile:
        problems.append(Problem(("executor", "profile"),
                                "the slurm executor needs a profile (a file under slurm/profiles/)"))
    return problems


def _arch_location(config: SuiteConfig, arch: str) -> tuple[str | int, ...]:
    """Where the suite configures `arch`: its `archs` entry, else its place on the arch axis."""
    if arch in config.archs:
        return ("archs", arch)
    if arch in config.grid["arch"]:
        return ("grid", "arch", config.grid["arch"].index(arch))
    return ("grid", "arch")


def _yaml_scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _quoted(value: Any) -> str:
    """A value as it reads in a message: strings quoted, booleans as YAML writes them."""
    return _yaml_scalar(value) if isinstance(value, bool) else repr(value)


def _job_problems(config: SuiteConfig, jobs: Sequence[JobSpec], catalogue: Catalogue) -> list[Problem]:
    """Problems only the resolved jobs show: a penalty on per-sample gradients with a critic that
    mixes the samples of a batch, metric options for a metric no job computes, and references on a
    metric no job computes or selecting no job."""
    problems: list[Problem] = []
    for job in jobs:
        packing = math.prod(catalogue.tricks[name].packing(dict(options)) for name, options in job.tricks)
        if job.batch_size % packing:  # the rule bench.train.Job applies, found before anything runs
            packers = " and ".join(repr(name) for name, options in job.tricks
                                   if catalogue.tricks[name].packing(dict(options)) > 1)
            problem = Problem(("train", "batch_size"), (
                f"trick {packers} packs {packing} samples into each critic input, so the batch must be a "
                f"multiple of {packing}; objective {job.objective!r} has batch_size {job.batch_size}"))
            if problem not in problems:
                problems.append(problem)
        critic_options = dict(job.arch_options)
        for name, _ in job.tricks:
            critic_options.update(catalogue.tricks[name].critic_options)
        needing = [name for name, _ in job.tricks if catalogue.tricks[name].needs_per_sample_gradients]
        if not needing:
            continue
        for coupling in catalogue.archs[job.arch].critic_coupling(critic_options):
            setters = [trick for trick, _ in job.tricks if coupling.option in catalogue.tricks[trick].critic_options]
            if setters:
                fix = f"remove trick {setters[0]!r}"
            else:
                first, *others = coupling.independent
                fix = (f"set archs: {{{job.arch}: {{{coupling.option}: {_yaml_scalar(first)}}}}}"
                       + "".join(f" or {_quoted(other)}" for other in others))
            named = " and ".join(repr(name) for name in needing)
            verb = "needs" if len(needing) == 1 else "need"
            message = (f"trick{'s' if len(needing) > 1 else ''} {named} {verb} per-sample critic gradients; arch "
                       f"{job.arch!r} has {coupling.option} {_quoted(coupling.value)}, so each sample's critic "
                       f"output depends on its batch-mates (objective {job.objective!r}): {fix}")
            problem = Problem(_arch_location(config, job.arch), message)
            if problem not in problems:
                problems.append(problem)
    for objective in dict.fromkeys(job.objective for job in jobs if job.reuse_fakes and job.critic_steps != 1):
        steps = next(job.critic_steps for job in jobs if job.objective == objective and job.critic_steps != 1)
        problems.append(Problem(("train", "reuse_fakes"), (
            f"reuse_fakes needs one critic step (the generator step reuses that step's fakes); objective "
            f"{objective!r} runs critic_steps {steps}: set objectives: {{{objective}: {{reuse_fakes: false}}}} "
            "or critic_steps: 1")))
    problems += _search_job_problems(config, jobs)
    computed = {metric for job in jobs for metric in job.metrics}
    for metric in config.metric_options:
        if metric not in computed:
            problems.append(Problem(("metric_options", metric), (
                f"metric {metric!r} is computed by no job of this suite "
                f"(they compute: {_choices(computed) or 'none'}); "
                f"add it to `metrics` or remove its options")))
    problems += _reference_problems(config, jobs, catalogue)
    return problems


def _search_job_problems(config: SuiteConfig, jobs: Sequence[JobSpec]) -> list[Problem]:
    """A searched trick option for an objective whose jobs do not train with that trick."""
    if config.search is None:
        return []
    problems: list[Problem] = []
    for name, param in config.search.space.items():
        target = search_target(name)
        if target is None or target[0] != "trick":
            continue
        lacking = sorted({job.objective for job in jobs if _applies(param, job.objective)
                          and name not in dict(job.search)})
        if lacking:
            problems.append(Problem(("search", "space", name), (
                f"trick {target[1]!r} is not among the tricks of objective{'s' if len(lacking) > 1 else ''} "
                f"{', '.join(map(repr, lacking))}; list the objectives that train with it under `only`")))
    return problems


def _reference_problems(config: SuiteConfig, jobs: Sequence[JobSpec], catalogue: Catalogue) -> list[Problem]:
    """References on a metric no job computes, or whose `where` selects no job."""
    problems: list[Problem] = []
    computed = {metric for job in jobs for evaluator in job.metrics
                for metric in catalogue.metrics[evaluator].produces}
    for index, reference in enumerate(config.report.references):
        place: tuple[str | int, ...] = ("report", "references", index)
        if reference.metric not in computed:
            problems.append(Problem(place + ("metric",), (
                f"metric {reference.metric!r} is computed by no job of this suite; the jobs compute: "
                f"{_choices(computed) or 'none'}")))
        if not any(reference_matches(reference.where, job) for job in jobs):
            asked = ", ".join(f"{key}: {_quoted(value)}" for key, value in reference.where.items())
            found = "; ".join(f"{key} {', '.join(_where_values(key, jobs))}" for key in reference.where)
            problems.append(Problem(place + ("where",), (
                f"selects no job of this suite ({asked}); the jobs have: {found}")))
    return problems


def _where_value(key: str, job: JobSpec) -> Any:
    """The value of `where` key `key` (a grid axis or spec field) for `job`, in the form a suite writes it."""
    if key == "lr":
        return job.lr_g if job.lr_g == job.lr_d else None
    if key == "tricks":
        return sorted(name for name, _ in job.tricks)
    if key == "spectral_norm":
        return SPECTRAL_NORM_TRICK in [name for name, _ in job.tricks]
    if key == "betas":
        return list(job.betas)
    return getattr(job, key)


def reference_matches(where: Mapping[str, Any], job: JobSpec) -> bool:
    """Whether `job` has every value of a reference's `where`.

    Keys are WHERE_KEYS. A value is compared with what the job ran: `lr` matches when the generator
    and critic rates both equal it; `tricks` is the job's complete list of trick names in any order
    (spectral-norm included where the job has it; options are not compared); `spectral_norm` is
    whether the job has the spectral-norm trick; `dataset` is the dataset's name; numbers compare by
    value, and true/false only with true/false.
    """
    for key, wanted in where.items():
        actual = _where_value(key, job)
        if key == "tricks":
            wanted = sorted(_trick_parts(item)[0] for item in wanted) if isinstance(wanted, list) else wanted
        elif key == "betas" and isinstance(wanted, (list, tuple)):
            wanted = list(wanted)
        if isinstance(wanted, bool) != isinstance(actual, bool) or wanted != actual:
            return False
    return True


def _where_values(key: str, jobs: Sequence[JobSpec]) -> list[str]:
    """The distinct values of `where` key `key` among the jobs, as a message shows them."""
    values = [_where_value(key, job) for job in jobs]
    return sorted({"none (lr_g and lr_d differ)" if value is None else _quoted(value) for value in values})


# ------------------------------------------------------------------------------------------------
# Search (random search over one space shared by every objective)

# recipe fields a search may sample -> the suite keys (train, objectives.<name>, grid axes) that set
# the same thing and so may not be set beside it
SEARCH_RECIPE_FIELDS: dict[str, tuple[str, ...]] = {
    "lr": ("lr", "lr_g", "lr_d"), "lr_g": ("lr", "lr_g"), "lr_d": ("lr", "lr_d"), "beta1": ("betas",),
    "beta2": ("betas",), "critic_steps": ("critic_steps",), "optimizer": ("optimizer",),
}
SEARCH_NAMES = (*SEARCH_RECIPE_FIELDS, "objective.<option>", "trick.<trick>.<option>")
SEARCH_DIGITS = 4
"""Significant digits a sampled float keeps."""


def search_target(name: str) -> tuple[str, ...] | None:
    """What a search-space name sets: ("recipe", field), ("objective", option) or ("trick", trick,
    option); None for a name that is none of these."""
    if name in SEARCH_RECIPE_FIELDS:
        return ("recipe", name)
    parts = name.split(".")
    if len(parts) == 2 and parts[0] == "objective" and parts[1]:
        return ("objective", parts[1])
    if len(parts) == 3 and parts[0] == "trick" and parts[1] and parts[2]:
        return ("trick", parts[1], parts[2])
    return None


def search_spec_columns(name: str) -> tuple[str, ...]:
    """The flat spec columns (JobSpec.flat) whose value a search-space name sets."""
    target = search_target(name)
    if target is None:
        return ()
    if target[0] == "objective":
        return (f"objective.{target[1]}",)
    if target[0] == "trick":
        return ("tricks",)
    return {"lr": ("lr_g", "lr_d"), "beta1": ("betas",), "beta2": ("betas",)}.get(name, (name,))


def _draw(param: SearchParam, rng: np.random.Generator) -> Any:
    if param.distribution == "choice":
        assert param.values  # validated
        return param.values[int(rng.integers(len(param.values)))]
    assert param.low is not None and param.high is not None  # validated
    if param.distribution == "int-uniform":
        return int(rng.integers(int(param.low), int(param.high) + 1))
    if param.distribution == "uniform":
        value = param.low + (param.high - param.low) * rng.random()
    else:
        value = math.exp(math.log(param.low) + (math.log(param.high) - math.log(param.low)) * rng.random())
    return min(max(float(f"{value:.{SEARCH_DIGITS}g}"), param.low), param.high)


def sample_trial(search: SearchConfig, trial: int) -> dict[str, Any]:
    """The values trial `trial` draws, by space name (in the space's order).

    Each dimension draws from numpy's PCG64 seeded by (search.seed, trial, CRC-32 of its name), so
    a trial's value of one dimension depends on nothing else: not on `trials`, not on the other
    dimensions. Floats keep SEARCH_DIGITS significant digits (clipped to [low, high]).
    """
    return {name: _draw(param, np.random.default_rng([search.seed, trial, zlib.crc32(name.encode())]))
            for name, param in search.space.items()}


def _unknown_search_field(name: str) -> Problem:
    return Problem(("search", "space", name), f"unknown search field {name!r}; valid: {', '.join(SEARCH_NAMES)}")


def _applies(param: SearchParam, objective: str) -> bool:
    return param.only is None or objective in param.only


def _suite_objectives(config: SuiteConfig) -> list[str]:
    """The objectives the suite's grid and include rules name, in order."""
    named = list(config.grid.get("objective", []))
    for rule in config.include:
        value = rule.get("objective")
        named += value if isinstance(value, list) else [value] if value is not None else []
    return [str(name) for name in dict.fromkeys(named)]


def _search_problems(config: SuiteConfig, catalogue: Catalogue) -> list[Problem]:
    """Every problem of the `search` block: unknown names, distributions without their bounds or
    values, values no job could take, objectives named under `only` that the suite lacks, fields an
    objective does not have, and searched fields also set elsewhere in the file."""
    search = config.search
    if search is None:
        return []
    problems: list[Problem] = []
    objectives = _suite_objectives(config)
    targets = {name: search_target(name) for name in search.space}
    if "lr" in targets and ("lr_g" in targets or "lr_d" in targets):
        problems.append(Problem(("search", "space", "lr"), (
            "lr sets both lr_g and lr_d: search either lr or lr_g / lr_d, not both")))
    for name, param in search.space.items():
        place: tuple[str | int, ...] = ("search", "space", name)
        target = targets[name]
        if target is None:
            problems.append(_unknown_search_field(name))
            continue
        found = _distribution_problems(param, place)
        problems += found
        for index, objective in enumerate(param.only or []):
            if objective not in objectives:
                problems.append(Problem(place + ("only", index), (
                    f"objective {objective!r} is not in this suite; the suite's objectives: "
                    f"{_choices(objectives) or 'none'}")))
        applied = [o for o in objectives if _applies(param, o) and o in catalogue.objectives]
        if not found:
            problems += _search_value_problems(name, param, target, applied, place, catalogue)
        problems += _search_conflicts(config, name, target, applied)
    return problems


def _distribution_problems(param: SearchParam, place: tuple[str | int, ...]) -> list[Problem]:
    if param.distribution == "choice":
        problems = [Problem(place + (key,), "a choice takes `values`, not low/high")
                    for key in ("low", "high") if getattr(param, key) is not None]
        if not param.values:
            problems.append(Problem(place + ("values",), "a choice needs a non-empty list of values"))
        return problems
    problems = [Problem(place + (key,), f"a {param.distribution} distribution needs `low` and `high`")
                for key in ("low", "high") if getattr(param, key) is None]
    if param.values is not None:
        problems.append(Problem(place + ("values",), f"a {param.distribution} distribution takes low/high, "
                                                     "not values (use distribution: choice)"))
    if problems:
        return problems
    assert param.low is not None and param.high is not None
    if not param.low < param.high:
        problems.append(Problem(place + ("high",), f"must be above low ({param.low:g}), got {param.high:g}"))
    if param.distribution == "log-uniform" and param.low <= 0:
        problems.append(Problem(place + ("low",), f"a log-uniform low must be positive, got {param.low:g}"))
    if param.distribution == "int-uniform":
        problems += [Problem(place + (key,), f"an int-uniform bound is an integer, got {getattr(param, key)!r}")
                     for key in ("low", "high") if not float(getattr(param, key)).is_integer()]
    return problems


def _search_extremes(param: SearchParam) -> list[Any]:
    """The values a dimension can take that bound what it can draw: its choices, or low and high."""
    if param.distribution == "choice":
        return list(param.values or [])
    assert param.low is not None and param.high is not None
    if param.distribution == "int-uniform":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def _recipe_value_problem(name: str, value: Any) -> str | None:
    if name == "optimizer":
        valid = Optimizer.__args__  # type: ignore[attr-defined]
        return None if value in valid else f"unknown optimizer {value!r}; valid: {', '.join(valid)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} is a number, got {value!r}"
    if name == "critic_steps":
        return None if isinstance(value, int) and value > 0 else f"critic_steps is a positive integer, got {value!r}"
    if name in ("beta1", "beta2"):
        return None if 0 <= value < 1 else f"{name} must be in [0, 1), got {value!r}"
    return None if value > 0 else f"{name} must be positive, got {value!r}"


def _search_value_problems(name: str, param: SearchParam, target: tuple[str, ...], objectives: Sequence[str],
                           place: tuple[str | int, ...], catalogue: Catalogue) -> list[Problem]:
    problems: list[Problem] = []
    extremes = _search_extremes(param)
    if target[0] == "recipe":
        if name == "optimizer" and param.distribution != "choice":
            return [Problem(place + ("distribution",), "the optimizer is searched with distribution: choice")]
        if name == "critic_steps" and param.distribution not in ("int-uniform", "choice"):
            return [Problem(place + ("distribution",), "critic_steps is an integer: use int-uniform or choice")]
        messages = [_recipe_value_problem(name, value) for value in extremes]
        return [Problem(place, message) for message in dict.fromkeys(m for m in messages if m)]
    if target[0] == "objective":
        option = target[1]
        lacking = [o for o in objectives if option not in catalogue.objectives[o].options]
        if lacking:
            problems.append(Problem(place, (
                f"objective option {option!r} is no option of objective{'s' if len(lacking) > 1 else ''} "
                f"{', '.join(map(repr, lacking))}; list the objectives that have it under `only`")))
        declared = [catalogue.objectives[o].options for o in objectives if option in catalogue.objectives[o].options]
        owner = "objective option"
    else:
        trick, option = target[1], target[2]
        if trick not in catalogue.tricks:
            return [_unknown(place, "trick", trick, catalogue.tricks)]
        if option not in catalogue.tricks[trick].options:
            return [Problem(place, (f"trick {trick!r} has no option {option!r}; its options: "
                                    f"{_choices(catalogue.tricks[trick].options) or 'none'}"))]
        declared = [catalogue.tricks[trick].options]
        owner = f"trick {trick!r}"
    for options in declared:
        for value in extremes:
            for _, message in option_problems(owner, {target[-1]: value}, {target[-1]: options[target[-1]]}):
                problem = Problem(place, message)
                if problem not in problems:
                    problems.append(problem)
    return problems


def _search_conflicts(config: SuiteConfig, name: str, target: tuple[str, ...],
                      objectives: Sequence[str]) -> list[Problem]:
    """Places other than the search that set what dimension `name` samples."""
    def conflict(place: tuple[str | int, ...]) -> Problem:
        return Problem(place, (f"is also searched (search.space.{name}); a field is either searched or set, in one "
                               "place: remove it here or from the search space"))

    problems: list[Problem] = []
    if target[0] == "recipe":
        keys = SEARCH_RECIPE_FIELDS[name]
        problems += [conflict(("train", key)) for key in keys if getattr(config.train, key) is not None]
        problems += [conflict(("objectives", objective, key)) for objective in objectives
                     if objective in config.objectives for key in keys
                     if getattr(config.objectives[objective], key) is not None]
        problems += [conflict(("grid", key)) for key in keys if key in config.grid]
        problems += [conflict(("include", index, key)) for index, rule in enumerate(config.include)
                     for key in keys if key in rule]
    elif target[0] == "objective":
        problems += [conflict(("objectives", objective, "options", target[1])) for objective in objectives
                     if objective in config.objectives and target[1] in config.objectives[objective].options]
    return problems


# ------------------------------------------------------------------------------------------------
# Grid expansion


def _axis_assignments(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[name] for name in names))]


def _matches(assignment: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    for axis, value in rule.items():
        allowed = value if isinstance(value, list) and axis != "betas" else [value]
        if assignment.get(axis) not in allowed and _freeze(assignment.get(axis)) not in [_freeze(v) for v in allowed]:
            return False
    return True


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def grid_assignments(config: SuiteConfig) -> list[dict[str, Any]]:
    """Axis assignments in deterministic order: the product of the grid axes (in file order, last
    axis fastest), then each include rule expanded as a sub-grid whose missing axes take every
    value of the main grid; exclude rules drop matching assignments; duplicates keep the first."""
    assignments = _axis_assignments(config.grid)
    for rule in config.include:
        axes = {axis: list(values) for axis, values in config.grid.items()}
        for axis, value in rule.items():
            axes[axis] = value if isinstance(value, list) and axis not in ("betas", "tricks") else [value]
        assignments += _axis_assignments(axes)
    kept, seen = [], set()
    for assignment in assignments:
        if any(_matches(assignment, rule) for rule in config.exclude):
            continue
        key = _freeze(assignment)
        if key not in seen:
            seen.add(key)
            kept.append(assignment)
    return kept


def _dataset_key(dataset: DatasetConfig) -> str:
    return dataset.name + "|" + repr(_freeze(dataset.options))


def _assigned_dataset(config: SuiteConfig, assignment: Mapping[str, Any]) -> DatasetConfig:
    if "dataset" in assignment:
        return _as_dataset(assignment["dataset"])
    assert config.dataset is not None  # validated: a suite has a dataset key or a dataset axis
    return config.dataset


def resolve_job(config: SuiteConfig, assignment: Mapping[str, Any], catalogue: Catalogue,
                trial: int | None = None) -> JobSpec:
    """One fully resolved JobSpec. Precedence (last wins): the objective's published defaults,
    the suite's `train` block, the suite's per-objective override, the values search trial `trial`
    sampled (those whose `only` takes this objective), the grid axes. A searched field is set
    nowhere else (the loader refuses it), so the search's place in that order decides nothing.

    A `tricks` list set at a level replaces the whole list of the levels below it (an empty list
    removes every trick, the objective's published ones included). Then `spectral_norm`, taken from
    the most specific level that sets it, adds the spectral-norm trick (true) or removes it (false).
    """
    objective = assignment["objective"]
    arch = assignment["arch"]
    info = catalogue.objectives[objective]
    override = config.objectives.get(objective, ObjectiveOverride())
    train = config.train

    settings: dict[str, Any] = {
        "optimizer": info.optimizer, "lr_g": info.lr_g, "lr_d": info.lr_d, "betas": tuple(info.betas),
        "critic_steps": info.critic_steps, "batch_size": train.batch_size, "steps": train.steps,
        "latent_dim": train.latent_dim, "tricks": list(info.tricks), "spectral_norm": None, "reuse_fakes": False,
    }

    def apply(source: Mapping[str, Any]) -> None:
        for key, value in source.items():
            if value is None:
                continue
            if key == "lr":
                settings["lr_g"] = settings["lr_d"] = value
            elif key == "betas":
                settings["betas"] = tuple(value)
            elif key == "tricks":
                settings["tricks"] = [_trick_parts(item) for item in value]
            else:
                settings[key] = value

    apply({k: getattr(train, k) for k in ("optimizer", "lr", "lr_g", "lr_d", "betas", "critic_steps", "tricks",
                                          "spectral_norm", "reuse_fakes")})
    apply(override.model_dump(exclude={"options"}))
    sampled: dict[str, Any] = {}
    if trial is not None and config.search is not None:
        sampled = {name: value for name, value in sample_trial(config.search, trial).items()
                   if _applies(config.search.space[name], objective)}
    for name, value in sampled.items():
        if name in ("beta1", "beta2"):
            betas = list(settings["betas"])
            betas[name == "beta2"] = value
            settings["betas"] = tuple(betas)
        elif name in SEARCH_RECIPE_FIELDS:
            apply({name: value})
    apply({k: v for k, v in assignment.items() if k in AXIS_TRAIN_KEYS})
    tricks = [(name, {**catalogue.tricks[name].option_defaults, **dict(options)})
              for name, options in settings["tricks"]]
    for name, value in list(sampled.items()):
        target = search_target(name)
        if target is not None and target[0] == "trick":
            having = [options for trick, options in tricks if trick == target[1]]
            if having:
                having[0][target[2]] = value
            else:
                del sampled[name]  # the job lacks the trick: the loader refuses it (_job_problems)
    if settings["spectral_norm"] is False:
        tricks = [(name, options) for name, options in tricks if name != SPECTRAL_NORM_TRICK]
    elif settings["spectral_norm"] and SPECTRAL_NORM_TRICK not in [name for name, _ in tricks]:
        tricks.append((SPECTRAL_NORM_TRICK, dict(catalogue.tricks[SPECTRAL_NORM_TRICK].option_defaults)))

    dataset = _assigned_dataset(config, assignment)
    data_info = catalogue.datasets[dataset.name]
    dataset_options = {**data_info.option_defaults, **dataset.options}
    shape = tuple(data_info.shape(dataset_options))
    arch_info = catalogue.archs[arch]
    latent_dim = settings["latent_dim"] or arch_info.default_latent_dim(shape)
    objective_options = {**info.option_defaults, **override.options}
    objective_options.update({target[1]: value for name, value in sampled.items()
                              if (target := search_target(name)) is not None and target[0] == "objective"})
    offers = data_info.offers(dataset_options)
    metrics = config.metrics if config.metrics is not None else catalogue.default_metrics(offers)
    job_metrics = tuple(dict.fromkeys([*metrics, *info.extra_metrics]))
    return JobSpec(
        suite=config.name,
        dataset=dataset.name,
        dataset_options=freeze_options(dataset_options),
        objective=objective,
        objective_options=freeze_options(objective_options),
        arch=arch,
        arch_options=freeze_options({**arch_info.option_defaults, **config.archs.get(arch, {})}),
        seed=int(assignment["seed"]),
        steps=int(settings["steps"]),
        batch_size=int(settings["batch_size"]),
        latent_dim=int(latent_dim),
        critic_steps=int(settings["critic_steps"]),
        optimizer=str(settings["optimizer"]),
        lr_g=float(settings["lr_g"]),
        lr_d=float(settings["lr_d"]),
        betas=(float(settings["betas"][0]), float(settings["betas"][1])),
        tricks=tuple((name, freeze_options(options)) for name, options in tricks),
        metrics=job_metrics,
        metric_options=tuple((name, freeze_options(config.metric_options[name]))
                             for name in job_metrics if name in config.metric_options),
        eval_every=train.eval_every,
        checkpoint_every=train.checkpoint_every,
        log_every=train.log_every,
        device=train.device,
        deterministic=train.deterministic,
        eval_precision=train.eval_precision,
        reuse_fakes=bool(settings["reuse_fakes"]),
        trial=trial,
        search=freeze_options(sampled),
    )


def expand(config: SuiteConfig, catalogue: Catalogue) -> list[JobSpec]:
    """Every job of the suite, in deterministic order, without duplicates (by job id). With a
    `search`, every grid assignment once per trial, trial by trial (so more trials add jobs at the end)."""
    trials: Sequence[int | None] = range(config.search.trials) if config.search is not None else [None]
    assignments = grid_assignments(config)
    jobs, seen = [], set()
    for trial in trials:
        for assignment in assignments:
            job = resolve_job(config, assignment, catalogue, trial)
            if job.job_id not in seen:
                seen.add(job.job_id)
                jobs.append(job)
    return jobs


def varying_fields(jobs: Sequence[JobSpec]) -> list[str]:
    """Flat spec keys whose value differs between jobs (the columns a grid table needs)."""
    flats = [job.flat() for job in jobs]
    keys = list(flats[0]) if flats else []
    return [key for key in keys if key != "suite" and len({flat.get(key) for flat in flats}) > 1]
