"""MLflow tracking: one parent run per suite, one child run per job, flushed when the job ends.

Jobs never write to MLflow while training. When a job ends, its params, every metric row and
its artifacts go to MLflow in one `log_job` call (a handful of short transactions), so many
jobs sharing one SQLite store rarely contend; a write that still meets "database is locked" is
retried with exponential backoff. `log_job` is idempotent: a job already logged as FINISHED is
not logged twice, and a run left unfinished by a crash mid-flush is deleted and logged anew.

This module knows nothing of the results folder's layout: callers pass paths and tables.
MLflow is imported lazily (its import takes seconds) so `bench --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.store import Status

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient

T = TypeVar("T")

SUITE_TAG = "bench.suite"
JOB_TAG = "bench.job_id"
KIND_TAG = "bench.kind"  # "suite" for a parent run, "job" for a child
STATUS_TAG = "bench.status"
PARENT_TAG = "mlflow.parentRunId"

# job status -> MLflow run status; a diverged job ran its protocol to the end (divergence is a result)
RUN_STATUS: dict[str, str] = {Status.DONE: "FINISHED", Status.DIVERGED: "FINISHED", Status.FAILED: "FAILED"}

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"

_RETRY_ATTEMPTS = 12
_RETRY_FIRST_S = 0.05
_RETRY_MAX_S = 5.0


def default_tracking_uri(results_root: Path) -> str:
    """`sqlite:///<absolute results_root>/mlflow.db`, the default store beside every suite's results."""
    return f"sqlite:///{(Path(results_root).resolve() / DB_NAME).as_posix()}"


def default_artifact_root(uri: str) -> Path | None:
    """`<folder of the SQLite file>/mlartifacts` for a `sqlite:///` URI; None for a server URI
    (the server decides where artifacts go)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve().parent / ARTIFACTS_DIR


def ui_command(uri: str, host: str = "127.0.0.1", port: int = 5000, artifact_root: Path | None = None) -> list[str]:
    """The `mlflow ui` command line that serves `uri` (what `bench ui` runs).

    Artifacts of runs logged by bench are already under their experiment's artifact location;
    `--default-artifact-root` only matters for experiments created from the UI, and is kept
    out of the current directory all the same.
    """
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    root = artifact_root if artifact_root is not None else default_artifact_root(uri)
    if root is not None:
        command += ["--default-artifact-root", Path(root).resolve().as_uri()]
    return command + ["--host", host, "--port", str(int(port))]


def _quiet_mlflow() -> None:
    """No progress bars, URL prints, telemetry or migration chatter (the user may override the env vars)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


LEADING_AXES = ("objective", "arch", "seed")


def run_label(
    params: Mapping[str, str], varying: Sequence[str] = (), *, fallback: str = ""
) -> tuple[str, dict[str, str]]:
    """A job's MLflow run name and axis tags, from its flat params and the suite's varying keys.

    The name reads `objective / arch / seed N`, then `key=value` for every other key that varies in
    the suite (`rsgan / dcgan / seed 2 / lr_g=0.0001`), so runs are told apart in the UI without
    their ids. The tags are those keys with their values (`objective`: `rsgan`), so the UI's search
    box filters by what was compared (`tags.objective = 'rsgan' and tags.arch = 'dcgan'`; MLflow's
    search has no OR, so a pair of three is `tags.objective != 'nsgan'`) and its charts group runs
    by them ("Group by" `objective`: one line with a band per objective over its seeds). Params
    without those keys are named `fallback`.
    """
    leading = [key for key in LEADING_AXES if key in params]
    others = [key for key in varying if key not in LEADING_AXES and key in params]
    parts = [f"seed {params[key]}" if key == "seed" else str(params[key]) for key in leading]
    parts += [f"{key}={params[key]}" for key in others]
    tags = {key: str(params[key]) for key in (*leading, *others)}
    return " / ".join(parts) or fallback, tags


def _is_locked(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text


def with_retry(call: Callable[[], T], *, attempts: int = _RETRY_ATTEMPTS, first_delay_s: float = _RETRY_FIRST_S) -> T:
    """`call()`, retried with exponential backoff (and jitter) while it fails with "database is locked".

    SQLite's own busy timeout comes first; this covers what outlasts it. Other errors are raised at once.
    """
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:  # MlflowException wraps sqlite3/sqlalchemy OperationalError
            if not _is_locked(error) or attempt == attempts - 1:
                raise
            delay = min(_RETRY_MAX_S, first_delay_s * 2**attempt)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")


def seed_sqlite_store(uri: str, cache_dir: Path) -> bool:
    """Start the SQLite store of `uri`, when its file does not exist yet, as a copy of an empty store
    made once per MLflow version under `cache_dir` (MLflow's own migrations, run once: about 2 s of
    CPU that a new store would otherwise cost each `bench run` and test). The copy is given what MLflow
    writes per store: its Default experiment's artifact location (here beside the database, as
    `default_artifact_root` puts bench's own) and creation time. True when it seeded the file; an
    existing file, or a server URI, is left alone. The file appears whole or not at all."""
    import sqlite3
    import tempfile

    if not uri.startswith("sqlite:///"):
        return False
    path = Path(uri.removeprefix("sqlite:///"))
    if path.exists():
        return False
    import mlflow

    template = Path(cache_dir) / "mlflow" / f"empty-{mlflow.__version__}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=template.parent) as folder:
            _quiet_mlflow()
            from mlflow.tracking import MlflowClient

            made = Path(folder) / DB_NAME
            MlflowClient(tracking_uri=f"sqlite:///{made.as_posix()}").search_experiments()
            os.replace(made, template)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as copy:
        copy.write(template.read_bytes())
    try:
        now = int(time.time() * 1000)
        artifacts = (path.resolve().parent / ARTIFACTS_DIR / "0").as_posix()
        with sqlite3.connect(copy.name) as connection:
            connection.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                               "WHERE experiment_id = 0", (artifacts, now, now))
        connection.close()
        os.link(copy.name, path)  # never over a store another process made meanwhile
    except FileExistsError:
        return False
    finally:
        os.unlink(copy.name)
    return True


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Tracker:
    """One MLflow experiment in one tracking store.

    `uri`: a tracking URI (`default_tracking_uri(results_root)` or a server URI).
    `artifact_root`: where a new experiment's artifacts go; None means beside a SQLite file
    (`<db folder>/mlartifacts`), or the server's default for a server URI. Never the cwd.
    `cache_dir`: where an empty SQLite store is kept to start new ones from (`seed_sqlite_store`);
    None: a new store is made by MLflow's migrations.
    """

    def __init__(self, uri: str, experiment: str, artifact_root: Path | None = None,
                 cache_dir: Path | None = None) -> None:
        self.uri = uri
        self.cache_dir = cache_dir
        self.experiment = experiment
        self.artifact_root = Path(artifact_root).resolve() if artifact_root is not None else default_artifact_root(uri)
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"Tracker({self.uri!r}, {self.experiment!r}, artifact_root={str(self.artifact_root)!r})"

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            _quiet_mlflow()
            from mlflow.tracking import MlflowClient

            if self.cache_dir is not None:
                seed_sqlite_store(self.uri, self.cache_dir)
            self._client = with_retry(lambda: MlflowClient(tracking_uri=self.uri))
        return self._client

    @property
    def experiment_id(self) -> str:
        """The experiment's id, created (with its artifact location) on first use."""
        if self._experiment_id is None:
            self._experiment_id = with_retry(self._get_or_create_experiment)
        return self._experiment_id

    def _get_or_create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            location = self.artifact_root.as_uri() if self.artifact_root is not None else None
            try:
                return self.client.create_experiment(self.experiment, artifact_location=location)
            except MlflowException as error:  # another process created it first
                if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
                experiment = self.client.get_experiment_by_name(self.experiment)
                assert experiment is not None
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _search(self, filter_string: str) -> list[Any]:
        from mlflow.entities import ViewType

        runs: list[Any] = []
        page_token = None
        while True:
            page = with_retry(partial(
                self.client.search_runs,
                [self.experiment_id], filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000, page_token=page_token,
            ))
            runs.extend(page)
            page_token = page.token
            if not page_token:
                return runs

    # ---- suite ---------------------------------------------------------------------------------
    def suite_run(self, suite_name: str, params: Mapping[str, Any]) -> str:
        """The parent run of suite `suite_name`: found by tag `bench.suite`, or created with `params`.

        An existing parent keeps the params it was created with (MLflow params are immutable).
        Call it from the one process that launches the suite, before any job logs.
        """
        from mlflow.entities import Param

        found = self._search(f"tags.`{SUITE_TAG}` = {_quote(suite_name)} and tags.`{KIND_TAG}` = 'suite'")
        if found:
            return min(found, key=lambda run: run.info.start_time).info.run_id
        run = with_retry(lambda: self.client.create_run(
            self.experiment_id, run_name=suite_name, tags={SUITE_TAG: suite_name, KIND_TAG: "suite"},
        ))
        run_id = run.info.run_id
        param_list = [Param(str(key), str(value)) for key, value in params.items()]
        with_retry(lambda: self.client.log_batch(run_id, params=param_list))
        with_retry(lambda: self.client.set_terminated(run_id, "FINISHED"))
        return run_id

    # ---- jobs ----------------------------------------------------------------------------------
    def job_run_ids(self, parent_run_id: str) -> dict[str, str]:
        """job_id -> run id of every (not deleted) child run of `parent_run_id`; a FINISHED run wins."""
        runs = self._search(f"tags.`{PARENT_TAG}` = {_quote(parent_run_id)}")
        runs.sort(key=lambda run: run.info.status == "FINISHED")
        return {run.data.tags[JOB_TAG]: run.info.run_id for run in runs if JOB_TAG in run.data.tags}

    def log_job(
        self,
        parent_run_id: str,
        job_id: str,
        params: Mapping[str, str],
        metrics: pd.DataFrame,
        status: str,
        artifacts: Sequence[Path] = (),
        *,
        start_time: float | None = None,
        varying: Sequence[str] = (),
    ) -> str:
        """Log one ended job as a child run of `parent_run_id` and return the child's run id.

        `params`: flat str params (`JobSpec.flat()`). `metrics`: long rows with columns `step`,
        `wall_s` (seconds since the job started), `metric`, `value`; each becomes an MLflow
        metric at its step, timestamped `start_time + wall_s`. `status`: the job's status (done,
        diverged -> run FINISHED; failed -> run FAILED), also kept as tag `bench.status`.
        `artifacts`: files or folders (a folder is stored under its own name).
        `start_time`: when the job started, Unix seconds; default: now minus the last wall_s.
        `varying`: the flat keys that vary in the suite; they name and tag the run (`run_label`).

        A FINISHED child for `job_id` already there is returned untouched (a rerun adds no run);
        any other child for it (a crash mid-flush, an earlier failure) is deleted and logged anew.
        """
        from mlflow.entities import Metric, Param

        if status not in RUN_STATUS:
            raise ValueError(f"cannot log job {job_id!r} with status {status!r}; valid: {', '.join(RUN_STATUS)}")
        absent = [str(path) for path in artifacts if not Path(path).exists()]
        if absent:
            raise FileNotFoundError(f"artifact(s) of job {job_id!r} do not exist: {', '.join(absent)}")
        missing = sorted({"step", "wall_s", "metric", "value"} - set(metrics.columns))
        if missing:
            raise ValueError(f"metrics table for job {job_id!r} lacks column(s) {', '.join(missing)}")
        existing = self._search(
            f"tags.`{PARENT_TAG}` = {_quote(parent_run_id)} and tags.`{JOB_TAG}` = {_quote(job_id)}")
        for run in existing:
            if run.info.status == "FINISHED":
                return run.info.run_id
        for run in existing:
            with_retry(partial(self.client.delete_run, run.info.run_id))

        last_wall_s = float(metrics["wall_s"].max()) if len(metrics) else 0.0
        if start_time is None:
            start_time = time.time() - last_wall_s
        start_ms = int(round(start_time * 1000))
        metric_list = [
            Metric(str(metric), float(value), start_ms + int(round(float(wall_s) * 1000)), int(step))
            for step, wall_s, metric, value in metrics[["step", "wall_s", "metric", "value"]].itertuples(
                index=False, name=None
            )
        ]
        param_list = [Param(str(key), str(value)) for key, value in params.items()]

        parent = with_retry(lambda: self.client.get_run(parent_run_id))
        run_name, tags = run_label(params, varying, fallback=job_id)
        tags.update({PARENT_TAG: parent_run_id, JOB_TAG: job_id, KIND_TAG: "job", STATUS_TAG: status})
        if SUITE_TAG in parent.data.tags:
            tags[SUITE_TAG] = parent.data.tags[SUITE_TAG]
        run = with_retry(lambda: self.client.create_run(
            self.experiment_id, start_time=start_ms, tags=tags, run_name=run_name,
        ))
        run_id = run.info.run_id
        # the client splits a batch over MLflow's per-request limits; a retried batch re-logs
        # identical params and metrics, which the store accepts
        with_retry(lambda: self.client.log_batch(run_id, metrics=metric_list, params=param_list))
        for artifact in artifacts:
            path = Path(artifact)
            if path.is_dir():
                with_retry(partial(self.client.log_artifacts, run_id, str(path), artifact_path=path.name))
            else:
                with_retry(partial(self.client.log_artifact, run_id, str(path)))
        end_ms = start_ms + int(round(last_wall_s * 1000))
        with_retry(lambda: self.client.set_terminated(run_id, RUN_STATUS[status], end_time=end_ms))
        return run_id
