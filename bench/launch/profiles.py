"""SLURM cluster profiles: where and with what resources a suite's jobs run on a cluster.

A profile is a small YAML file (see slurm/profiles/), loaded strictly: an unknown key, a value of
the wrong type or a malformed sbatch line is an error, and every problem in the file is reported
at once, each with its place in the file (key path and line), the bad value and what is valid.

    profile = load_profile(Path("slurm/profiles/local.yaml"))
    executor.update_parameters(**profile.executor_parameters())

Units: `mem_gb` in GB per job (submitit's `mem_gb`), `time_min` in minutes of wall clock,
`signal_delay_s` in seconds before the time limit at which SLURM sends the requeue signal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bench.yamlerrors import Problem, line_index, locate, pydantic_problems

# `--name=value` or `--name`, optionally written as a full `#SBATCH --name=value` line.
_SBATCH_LINE = re.compile(r"^(?:#SBATCH\s+)?--(?P<name>[a-z][a-z0-9\-]*)(?:=(?P<value>\S.*))?$")

# sbatch options a profile sets through its own keys (or that submitit sets itself): writing them
# again in `extra_sbatch` would give one setting two places to live.
_OWNED_SBATCH_OPTIONS: dict[str, str] = {
    "partition": "the `partition` key",
    "account": "the `account` key",
    "qos": "the `qos` key",
    "gpus-per-node": "the `gpus_per_node` key",
    "cpus-per-task": "the `cpus_per_task` key",
    "mem": "the `mem_gb` key",
    "time": "the `time_min` key",
    "constraint": "the `constraint` key",
    "signal": "the `signal_delay_s` key (submitit sends USR2)",
    "array": "the launcher (job arrays are built from the suite)",
    "output": "submitit (logs go to the job folder)",
    "error": "submitit (logs go to the job folder)",
    "job-name": "the launcher",
}


def _check_sbatch_line(line: str) -> str:
    match = _SBATCH_LINE.match(line.strip())
    if match is None:
        raise ValueError(
            "not an sbatch long option; write '--name=value' or '--flag' "
            "(e.g. '--mail-type=END', '--exclusive')"
        )
    if match["name"] in _OWNED_SBATCH_OPTIONS:
        raise ValueError(f"--{match['name']} is set by {_OWNED_SBATCH_OPTIONS[match['name']]}")
    return line


SbatchLine = Annotated[str, AfterValidator(_check_sbatch_line)]


class ProfileError(ValueError):
    """A profile file is missing, is not YAML, or has bad keys/values; the message lists them all."""


class SlurmProfile(BaseModel):
    """Resources and placement for every job of a suite on one SLURM cluster.

    `None` means "leave it to the cluster's default" (no sbatch line is written).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = Field(None, min_length=1, description="sbatch --partition")
    account: str | None = Field(None, min_length=1, description="sbatch --account")
    qos: str | None = Field(None, min_length=1, description="sbatch --qos")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per job (one node per job)")
    cpus_per_task: int = Field(1, ge=1, description="CPU cores per job")
    mem_gb: float | None = Field(None, gt=0, description="memory per job, GB; None: cluster default")
    time_min: int = Field(60, ge=1, description="wall-clock limit per job, minutes")
    array_parallelism: int = Field(256, ge=1, description="tasks of one array running at once")
    pack: int = Field(1, ge=1, description=("jobs (or seed stacks) run at once in one task, each in a process of "
                                            "its own, sharing the task's GPUs and CPUs; 1: a task per job"))
    constraint: str | None = Field(None, min_length=1, description="sbatch --constraint (node features)")
    signal_delay_s: int = Field(90, ge=1, description="USR2 this many seconds before the time limit")
    max_num_timeout: int = Field(3, ge=0, description="requeues allowed after hitting the time limit")
    extra_sbatch: tuple[SbatchLine, ...] = Field((), description="more sbatch options: '--name=value' or '--flag'")
    setup: tuple[str, ...] = Field((), description="shell lines run in the job before python starts")

    @field_validator("signal_delay_s")
    @classmethod
    def _check_signal_before_limit(cls, signal_delay_s: int, info: ValidationInfo) -> int:
        time_min = info.data.get("time_min")  # absent when time_min itself is invalid
        if time_min is not None and signal_delay_s >= time_min * 60:
            raise ValueError(
                f"must be shorter than time_min ({time_min} min = {time_min * 60} s), "
                "or the requeue signal comes as the job starts"
            )
        return signal_delay_s

    def sbatch_options(self) -> dict[str, str | bool]:
        """`extra_sbatch` as {option: value}, with True for a bare flag (`--exclusive`)."""
        options: dict[str, str | bool] = {}
        for line in self.extra_sbatch:
            match = _SBATCH_LINE.match(line.strip())
            assert match is not None  # checked on load
            options[match["name"]] = match["value"] if match["value"] is not None else True
        return options

    def executor_parameters(self) -> dict[str, Any]:
        """Keyword arguments for `submitit.AutoExecutor(cluster="slurm").update_parameters`.

        Generic keys (`timeout_min`, `cpus_per_task`, `gpus_per_node`, `mem_gb`) and slurm-only keys
        (`slurm_partition`, `slurm_account`, `slurm_qos`, `slurm_constraint`,
        `slurm_array_parallelism`, `slurm_signal_delay_s`, `slurm_additional_parameters`,
        `slurm_setup`). Unset optional fields are left out, so the cluster's defaults apply.
        `max_num_timeout` is a constructor argument (`slurm_max_num_timeout`), not here.
        """
        parameters: dict[str, Any] = {
            "timeout_min": self.time_min,
            "cpus_per_task": self.cpus_per_task,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
        }
        if self.gpus_per_node:
            # no --gpus-per-node=0 line: a cluster without GPUs may reject any GPU request
            parameters["gpus_per_node"] = self.gpus_per_node
        if self.mem_gb is not None:
            parameters["mem_gb"] = self.mem_gb
        for key in ("partition", "account", "qos", "constraint"):
            value = getattr(self, key)
            if value is not None:
                parameters[f"slurm_{key}"] = value
        if self.extra_sbatch:
            parameters["slurm_additional_parameters"] = self.sbatch_options()
        if self.setup:
            parameters["slurm_setup"] = list(self.setup)
        return parameters


def valid_keys() -> list[str]:
    """The keys a profile file may contain, in declaration order."""
    return list(SlurmProfile.model_fields)


def load_profile(path: Path | str) -> SlurmProfile:
    """Read and validate a profile file; raises ProfileError naming every problem at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProfileError(f"{path}: cannot read profile: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        from bench.suite import _not_utf8

        raise ProfileError(f"{path}: {_not_utf8(path, error)}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(
            f"{path}: a profile is a mapping of keys to values, got {type(data).__name__}; "
            f"valid keys: {', '.join(valid_keys())}"
        )
    problems = _duplicate_keys(node)
    try:
        profile = SlurmProfile.model_validate(data)
    except ValidationError as error:
        problems += pydantic_problems(error, SlurmProfile, data)
    if problems:
        problems = locate(problems, line_index(node))
        header = f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in SLURM profile"
        raise ProfileError("\n".join([header, *(problem.render() for problem in problems)]))
    return profile


def _duplicate_keys(root: yaml.Node | None) -> list[Problem]:
    """Top-level keys written twice (YAML would silently keep the last one)."""
    if not isinstance(root, yaml.MappingNode):
        return []
    seen: dict[str, int] = {}
    problems = []
    for key_node, _ in root.value:
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            problems.append(
                Problem((key_node.value,), f"duplicate key, first set on line {seen[key_node.value]}", line))
        else:
            seen[key_node.value] = line
    return problems
