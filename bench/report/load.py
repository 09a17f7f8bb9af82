"""Reading one suite's results folder into the two tables a report is computed from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.store import SuiteStore, parse_status
from bench.suite import ReportConfig

# the spec columns that say where a job ran or which repetition it is, never a grid axis
NOT_AXES = ("job_id", "suite", "device", "seed")
# columns of SuiteStore.jobs_table() that come from status.json, not from the spec
STATUS_COLUMNS = ("status", "reason", "step", "train_s", "eval_s", "attempts", "started_at", "finished_at",
                  "mlflow_run_id")


@dataclass(frozen=True)
class SuiteResults:
    """A suite's results as read from disk.

    `jobs`: one row per job folder (SuiteStore.jobs_table(): status columns, then every flat spec
    key as str, with `seed` made an int; jobs whose spec.json is missing are dropped and listed in
    `jobs_without_spec`). `metrics`: long rows job_id, step (generator steps), wall_s (seconds since
    the job started), metric, value. `report_config`: the suite's `report:` block.
    """

    suite_dir: Path
    name: str
    jobs: pd.DataFrame
    metrics: pd.DataFrame
    report_config: ReportConfig
    suite_config: dict[str, Any] = field(default_factory=dict)
    jobs_without_spec: tuple[str, ...] = ()


def read_suite_yaml(path: Path) -> dict[str, Any]:
    """The stored suite.yaml as a dict ({} when the file is absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_metrics_table(store: SuiteStore, job_ids: list[str]) -> pd.DataFrame:
    """The metrics.csv rows of `job_ids` as one table (see SuiteStore.metrics_table)."""
    return store.metrics_table(job_ids)


def load_results(suite_dir: Path) -> SuiteResults:
    """Read `results/<suite>/` (suite.yaml, jobs/*/spec.json, status.json, metrics.csv)."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        raise FileNotFoundError(f"no results folder {suite_dir}")
    store = SuiteStore(suite_dir)
    suite_config = read_suite_yaml(store.suite_yaml_path)
    try:
        report_config = ReportConfig.model_validate(suite_config.get("report") or {})
    except ValueError as error:
        raise ValueError(f"{store.suite_yaml_path}: invalid `report` block: {error}") from None

    jobs = store.jobs_table()
    for status in jobs["status"].unique():
        parse_status(status)  # an unknown status raises, naming the valid ones
    if "objective" in jobs.columns:
        has_spec = jobs["objective"].notna()
    else:
        has_spec = pd.Series(False, index=jobs.index)
    without_spec = tuple(jobs.loc[~has_spec, "job_id"])
    jobs = jobs.loc[has_spec].reset_index(drop=True)
    if len(jobs):
        jobs["seed"] = jobs["seed"].astype("int64")
        if "trial" in jobs.columns:  # a suite with a search: every job belongs to a trial
            jobs["trial"] = jobs["trial"].astype("int64")
    metrics = read_metrics_table(store, list(jobs["job_id"]))
    metrics = metrics[metrics["job_id"].isin(jobs["job_id"])].reset_index(drop=True)
    name = str(suite_config.get("name") or suite_dir.name)
    return SuiteResults(suite_dir, name, jobs, metrics, report_config, suite_config, without_spec)
