"""`JobSpec`: the one object that describes a job, everywhere it goes.

It is pickled by submitit, logged to MLflow as flat params, stored beside the results as
spec.json and compared on resume. Its id is a short hash of its resolved content, so the same
spec has the same id on any machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

Options = tuple[tuple[str, Any], ...]


def freeze_options(options: dict[str, Any] | None) -> Options:
    """A dict of JSON-able options as a sorted tuple of pairs (hashable, order-independent)."""
    return tuple(sorted((options or {}).items()))


@dataclass(frozen=True)
class JobSpec:
    """One fully resolved job. Every field is JSON-able; nothing is left to a default at run time.

    Units: `steps` counts generator updates; `eval_every`, `checkpoint_every`, `log_every` are in
    generator steps; `critic_steps` critic updates per generator update. Each evaluator draws
    the sample count of its own protocol unless `metric_options` gives it a `samples`. `tricks` is
    the complete list of penalties and constraints the job trains with, the objective's published
    ones included (spectral norm is the trick `spectral-norm`). `deterministic` asks for
    deterministic kernels (and turns cudnn's benchmark autotuning off); `eval_precision` "bf16"
    samples the generator under bfloat16 autocast at evaluation (faster on recent GPUs).
    `reuse_fakes` makes the generator step reuse the critic step's fakes, as the PyTorch DCGAN
    tutorial's loop does (one critic step only; the generator's noise stream then advances once
    per step instead of twice).
    `trial` is the index of the suite's `search` trial the job belongs to (None without a search),
    and `search` the values that trial sampled for this job, by search-space name (`lr`, `beta1`,
    `objective.<option>`, `trick.<name>.<option>`; bench.suite.sample_trial); both are part of the
    id only when set, so the ids of suites without a search are unchanged.
    """

    suite: str
    dataset: str
    dataset_options: Options
    objective: str
    objective_options: Options
    arch: str
    arch_options: Options
    seed: int
    steps: int
    batch_size: int
    latent_dim: int
    critic_steps: int
    optimizer: str
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    tricks: tuple[tuple[str, Options], ...]
    metrics: tuple[str, ...]
    metric_options: tuple[tuple[str, Options], ...]
    eval_every: int
    checkpoint_every: int
    log_every: int
    device: str
    deterministic: bool
    eval_precision: str
    reuse_fakes: bool = False
    trial: int | None = None
    search: Options = ()

    # fields that say where/how a job runs, not what it computes: left out of the id
    _NOT_IDENTITY = ("suite", "device")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (options as dicts, tuples as lists)."""
        data = asdict(self)
        for key in ("dataset_options", "objective_options", "arch_options", "search"):
            data[key] = dict(getattr(self, key))
        data["tricks"] = [{"name": name, "options": dict(options)} for name, options in self.tricks]
        data["metric_options"] = {name: dict(options) for name, options in self.metric_options}
        data["betas"] = list(self.betas)
        data["metrics"] = list(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        # a field added later with a default may be absent from an older spec.json
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data) - optional)
        if unknown or missing:
            raise ValueError(f"job spec: unknown fields {unknown}, missing fields {missing}")
        values = dict(data)
        for key in ("dataset_options", "objective_options", "arch_options", "search"):
            if key in values:
                values[key] = freeze_options(values[key])
        values["tricks"] = tuple((t["name"], freeze_options(t["options"])) for t in values["tricks"])
        values["metric_options"] = tuple((name, freeze_options(o)) for name, o in values["metric_options"].items())
        values["betas"] = tuple(values["betas"])
        values["metrics"] = tuple(values["metrics"])
        return cls(**values)

    @property
    def job_id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of the identity fields."""
        identity = {k: v for k, v in self.to_dict().items() if k not in self._NOT_IDENTITY}
        if not identity["reuse_fakes"]:
            del identity["reuse_fakes"]  # the default: ids of specs from before the field are unchanged
        if identity["trial"] is None:
            del identity["trial"], identity["search"]  # likewise for suites without a search
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def flat(self) -> dict[str, str]:
        """Flat `key -> str` params (MLflow params, report columns): options become `field.key`;
        `trial` and `search.<name>` only for a job of a search."""
        flat: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if key in ("trial", "search") and self.trial is None:
                continue
            if key == "metric_options":
                for metric, options in value.items():
                    for sub, sub_value in options.items():
                        flat[f"metric.{metric}.{sub}"] = json.dumps(sub_value)
            elif isinstance(value, dict):
                for sub, sub_value in value.items():
                    flat[f"{key.removesuffix('_options')}.{sub}"] = json.dumps(sub_value)
            elif key == "tricks":
                flat[key] = ",".join(
                    t["name"] + (json.dumps(t["options"], sort_keys=True) if t["options"] else "") for t in value
                ) or "none"
            elif isinstance(value, (list, tuple)):
                flat[key] = ",".join(str(v) for v in value)
            else:
                flat[key] = str(value)
        return flat

    def diff(self, other: JobSpec) -> list[str]:
        """Human-readable lines `field: self -> other` for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key}: {mine[key]!r} -> {theirs[key]!r}" for key in mine if mine[key] != theirs[key]]
