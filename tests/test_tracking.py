"""MLflow tracking against throwaway SQLite stores: parents, children, idempotence, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.tracking import (
    JOB_TAG,
    PARENT_TAG,
    STATUS_TAG,
    SUITE_TAG,
    Tracker,
    default_artifact_root,
    default_tracking_uri,
    seed_sqlite_store,
    ui_command,
    with_retry,
)

START_S = 1_700_000_000.0  # a fixed job start time, Unix seconds


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """An MLflow SQLite file with its schema created once (migrations take seconds), copied per test."""
    root = tmp_path_factory.mktemp("template")
    tracker = Tracker(default_tracking_uri(root), "template")
    assert tracker.experiment_id
    return root / "mlflow.db"


@pytest.fixture
def results_root(tmp_path, empty_db, monkeypatch) -> Path:
    root = tmp_path / "results"
    root.mkdir()
    shutil.copy(empty_db, root / "mlflow.db")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return root


@pytest.fixture
def tracker(results_root) -> Tracker:
    return Tracker(default_tracking_uri(results_root), "bench")


def metric_rows(job_id: str, count: int) -> pd.DataFrame:
    """`count` long rows: metric `loss` at steps 0..count-1, wall_s = step / 10, value = step / 4."""
    steps = list(range(count))
    return pd.DataFrame({
        "job_id": job_id,
        "step": steps,
        "wall_s": [s / 10 for s in steps],
        "metric": "loss",
        "value": [s / 4 for s in steps],
    })


def child_runs(tracker: Tracker, parent_run_id: str, view: str = "ALL") -> list:
    from mlflow.entities import ViewType

    return tracker.client.search_runs(
        [tracker.experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}'", run_view_type=getattr(ViewType, view)
    )


def test_default_uri_and_ui_command(tmp_path):
    uri = default_tracking_uri(tmp_path / "results")
    assert uri == f"sqlite:///{tmp_path}/results/mlflow.db"
    assert default_artifact_root(uri) == tmp_path / "results" / "mlartifacts"
    assert default_artifact_root("http://tracking:5000") is None
    assert ui_command(uri, "0.0.0.0", 5001) == [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
        "--default-artifact-root", f"file://{tmp_path}/results/mlartifacts", "--host", "0.0.0.0", "--port", "5001",
    ]
    assert ui_command("http://tracking:5000", "127.0.0.1", 5000)[4:] == [
        "--backend-store-uri", "http://tracking:5000", "--host", "127.0.0.1", "--port", "5000",
    ]


def test_import_does_not_import_mlflow():
    code = "import sys, bench.tracking; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_with_retry_retries_only_locked_errors():
    calls = []

    def locked_twice() -> int:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return 5

    assert with_retry(locked_twice, first_delay_s=0.0) == 5
    assert len(calls) == 3

    def broken() -> int:
        calls.append(1)
        raise RuntimeError("no such table: runs")

    calls.clear()
    with pytest.raises(RuntimeError, match="no such table"):
        with_retry(broken, first_delay_s=0.0)
    assert len(calls) == 1

    def always_locked() -> int:
        calls.append(1)
        raise RuntimeError("database is locked")

    calls.clear()
    with pytest.raises(RuntimeError, match="database is locked"):
        with_retry(always_locked, attempts=4, first_delay_s=0.0)
    assert len(calls) == 4


def test_suite_run_found_not_duplicated(tracker, results_root):
    parent = tracker.suite_run("toy", {"objectives": "nsgan,wgan-gp", "seeds": 3})
    assert tracker.suite_run("toy", {"objectives": "nsgan,wgan-gp", "seeds": 3}) == parent
    # a fresh client (another process, another day) finds the same parent
    assert Tracker(default_tracking_uri(results_root), "bench").suite_run("toy", {}) == parent
    other = tracker.suite_run("other", {})
    assert other != parent
    runs = tracker.client.search_runs([tracker.experiment_id], f"tags.`{SUITE_TAG}` = 'toy'")
    assert [run.info.run_id for run in runs] == [parent]
    assert runs[0].data.params == {"objectives": "nsgan,wgan-gp", "seeds": "3"}


def test_log_job_once_with_params_metrics_and_tags(tracker):
    parent = tracker.suite_run("toy", {})
    metrics = pd.DataFrame({
        "job_id": "job1",
        "step": [0, 100, 100, 200],
        "wall_s": [0.0, 1.5, 1.5, 3.25],
        "metric": ["d_loss", "d_loss", "fid", "d_loss"],
        "value": [0.75, 0.5, 42.0, 0.25],
    })
    params = {"objective": "nsgan", "lr_d": "0.0002", "arch.width": "16"}
    run_id = tracker.log_job(parent, "job1", params, metrics, "done", [], start_time=START_S)

    history = tracker.client.get_metric_history(run_id, "d_loss")
    assert [(m.step, m.value, m.timestamp) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 0.75, 1_700_000_000_000), (100, 0.5, 1_700_000_001_500), (200, 0.25, 1_700_000_003_250),
    ]
    assert [(m.step, m.value) for m in tracker.client.get_metric_history(run_id, "fid")] == [(100, 42.0)]
    run = tracker.client.get_run(run_id)
    assert run.data.params == params
    assert run.data.tags[PARENT_TAG] == parent
    assert run.data.tags[JOB_TAG] == "job1"
    assert run.data.tags[STATUS_TAG] == "done"
    assert run.data.tags[SUITE_TAG] == "toy"
    assert run.info.status == "FINISHED"
    assert (run.info.start_time, run.info.end_time) == (1_700_000_000_000, 1_700_000_003_250)

    # a rerun logs nothing new
    assert tracker.log_job(parent, "job1", params, metrics, "done", [], start_time=START_S) == run_id
    assert [r.info.run_id for r in child_runs(tracker, parent)] == [run_id]
    assert tracker.job_run_ids(parent) == {"job1": run_id}


def test_failed_job_is_a_failed_run_and_is_replaced_on_success(tracker):
    parent = tracker.suite_run("toy", {})
    failed = tracker.log_job(parent, "job1", {}, metric_rows("job1", 3), "failed", [])
    assert tracker.client.get_run(failed).info.status == "FAILED"
    diverged = tracker.log_job(parent, "job1", {}, metric_rows("job1", 5), "diverged", [])
    assert diverged != failed
    assert tracker.client.get_run(diverged).info.status == "FINISHED"
    assert tracker.client.get_run(failed).info.lifecycle_stage == "deleted"
    assert tracker.job_run_ids(parent) == {"job1": diverged}


def test_unfinished_child_is_deleted_and_logged_anew(tracker):
    parent = tracker.suite_run("toy", {})
    # what a crash mid-flush leaves: a RUNNING child with half its metrics
    crashed = tracker.client.create_run(
        tracker.experiment_id, tags={PARENT_TAG: parent, JOB_TAG: "job1", STATUS_TAG: "done"}
    ).info.run_id
    run_id = tracker.log_job(parent, "job1", {}, metric_rows("job1", 4), "done", [])
    assert run_id != crashed
    assert tracker.client.get_run(crashed).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in child_runs(tracker, parent, "ACTIVE_ONLY")] == [run_id]
    assert [m.value for m in tracker.client.get_metric_history(run_id, "loss")] == [0.0, 0.25, 0.5, 0.75]


def test_artifacts_under_results_root_not_cwd(tracker, results_root):
    job_dir = results_root / "toy" / "jobs" / "job1"
    (job_dir / "samples").mkdir(parents=True)
    (job_dir / "samples" / "step_000100.png").write_bytes(b"\x89PNG fake")
    (job_dir / "spec.json").write_text("{}")
    parent = tracker.suite_run("toy", {})
    run_id = tracker.log_job(parent, "job1", {}, metric_rows("job1", 2), "done",
                             [job_dir / "spec.json", job_dir / "samples"])
    artifacts = results_root / "mlartifacts" / run_id / "artifacts"
    assert tracker.client.get_run(run_id).info.artifact_uri == artifacts.as_uri()
    assert (artifacts / "spec.json").read_text() == "{}"
    assert (artifacts / "samples" / "step_000100.png").read_bytes() == b"\x89PNG fake"
    assert sorted(a.path for a in tracker.client.list_artifacts(run_id)) == ["samples", "spec.json"]
    assert os.listdir(Path.cwd()) == []


def test_bad_inputs_refused_before_any_run(tracker, results_root):
    parent = tracker.suite_run("toy", {})
    with pytest.raises(ValueError, match="status 'running'; valid: done, diverged, failed"):
        tracker.log_job(parent, "job1", {}, metric_rows("job1", 2), "running", [])
    with pytest.raises(FileNotFoundError, match="do not exist: .*missing.png"):
        tracker.log_job(parent, "job1", {}, metric_rows("job1", 2), "done", [results_root / "missing.png"])
    with pytest.raises(ValueError, match="lacks column"):
        tracker.log_job(parent, "job1", {}, metric_rows("job1", 2).drop(columns="wall_s"), "done", [])
    assert child_runs(tracker, parent) == []


def _log_one_job(uri: str, parent: str, job_id: str, barrier) -> None:
    tracker = Tracker(uri, "bench")
    _ = tracker.experiment_id  # connect (and import mlflow) before the race starts
    barrier.wait()
    tracker.log_job(parent, job_id, {"job": job_id}, metric_rows(job_id, 200), "done", [])


@pytest.mark.slow
def test_concurrent_writer_processes_lose_nothing(tracker):
    parent = tracker.suite_run("toy", {})
    context = multiprocessing.get_context("spawn")  # like separate job processes: no shared connections
    # four writers on two cores: more writers than cores, each one's commits racing the others' (SQLite locks)
    writers = 4
    barrier = context.Barrier(writers)
    job_ids = [f"job{index}" for index in range(writers)]
    workers = [context.Process(target=_log_one_job, args=(tracker.uri, parent, job_id, barrier)) for job_id in job_ids]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [worker.exitcode for worker in workers] == [0] * writers

    runs = tracker.job_run_ids(parent)
    assert sorted(runs) == job_ids
    assert len(child_runs(tracker, parent)) == writers
    for job_id, run_id in runs.items():
        history = sorted(tracker.client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(200))
        assert [m.value for m in history] == [s / 4 for s in range(200)]
        assert tracker.client.get_run(run_id).data.params == {"job": job_id}


def test_job_runs_are_named_and_tagged_by_what_varies(tmp_path) -> None:
    from bench.tracking import run_label

    params = {"objective": "rsgan", "arch": "dcgan", "seed": "2", "lr_g": "0.0001", "steps": "100"}
    name, tags = run_label(params, ["objective", "seed", "lr_g"])
    assert name == "rsgan / dcgan / seed 2 / lr_g=0.0001"
    assert tags == {"objective": "rsgan", "arch": "dcgan", "seed": "2", "lr_g": "0.0001"}

    tracker = Tracker(default_tracking_uri(tmp_path), "bench")
    parent = tracker.suite_run("cmp", {})
    for objective in ("rsgan", "sgan", "nsgan"):
        tracker.log_job(parent, f"id-{objective}", {**params, "objective": objective}, metric_rows("x", 2), "done",
                        varying=["objective", "seed", "lr_g"])
    # MLflow's search has no OR / IN for tags: two of three objectives are one exclusion away
    found = tracker.client.search_runs([tracker.experiment_id], "tags.objective != 'nsgan' and tags.seed = '2'")
    assert sorted(run.info.run_name for run in found) == [
        "rsgan / dcgan / seed 2 / lr_g=0.0001", "sgan / dcgan / seed 2 / lr_g=0.0001"]
    assert all(run.data.tags["bench.suite"] == "cmp" for run in found)


def _schema(db: Path) -> tuple[dict, list, list]:
    """Each table's and index's columns, the migration version, and the experiments. Columns, not the
    CREATE text: MLflow's own migrations write a table's constraints in an order that varies run to run."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        names = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        pragma = {"table": "table_info", "index": "index_info"}
        tables = {(kind, name): sorted(connection.execute(f"PRAGMA {pragma[kind]}('{name}')").fetchall())
                  if kind in pragma else sql for kind, name, sql in names.fetchall()}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        default = connection.execute("SELECT name, artifact_location, lifecycle_stage FROM experiments").fetchall()
    connection.close()
    return tables, version, default


def test_a_new_store_is_a_copy_of_an_empty_one_made_once(tmp_path, empty_db):
    cache = tmp_path / "cache"
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    assert seed_sqlite_store(default_tracking_uri(first.parent), cache)
    template = next((cache / "mlflow").glob("empty-*.db"))
    made_at = template.stat().st_mtime_ns
    assert seed_sqlite_store(default_tracking_uri(second.parent), cache)
    assert template.stat().st_mtime_ns == made_at  # made once, then only copied
    # what MLflow's own migrations make (empty_db), but for the Default experiment's place
    tables, version, _ = _schema(empty_db)
    for seeded in (first, second):
        assert _schema(seeded)[:2] == (tables, version)
        assert _schema(seeded)[2] == [("Default", (seeded.parent / "mlartifacts" / "0").as_posix(), "active")]
    # an existing store, or a server, is left alone
    first.write_bytes(b"kept")
    assert not seed_sqlite_store(default_tracking_uri(first.parent), cache)
    assert first.read_bytes() == b"kept"
    assert not seed_sqlite_store("http://localhost:5000", cache)
    # and MLflow takes the copy as its own store
    tracker = Tracker(default_tracking_uri(second.parent), "bench", cache_dir=cache)
    parent = tracker.suite_run("toy", {"jobs": "1"})
    run_id = tracker.log_job(parent, "job1", {"seed": 0}, metric_rows("job1", 3), "done", [])
    assert tracker.client.get_run(run_id).data.metrics == {"loss": 0.5}
    assert list(tmp_path.glob("*/.mlflow.db.*")) == []  # no copy left half-way


def test_a_parent_run_that_cannot_open_is_recorded_on_each_job_not_raised(tmp_path):
    from bench.launch import SuiteTracking, TrackingTarget, flush_to_mlflow
    from bench.store import Status, SuiteStore

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    pending = TrackingTarget(uri=default_tracking_uri(blocker), experiment="bench", parent_run_id=None,
                             artifact_root=tmp_path / "artifacts", suite="toy")
    tracking = SuiteTracking(pending, {"suite": "toy"})
    with pytest.raises(Exception):  # noqa: B017  (whatever MLflow raises for a store it cannot open)
        tracking.target()
    from test_store import make_spec

    spec = make_spec()
    store = SuiteStore(tmp_path / "toy").job(spec.job_id)
    store.write_spec(spec)
    store.write_status(Status.DONE)
    logged: list[str] = []
    assert flush_to_mlflow(store, tracking, logged.append) is None
    assert logged and logged[0].startswith("MLflow logging failed")
    assert store.read_status()["status"] == Status.DONE
    assert store.read_status()["mlflow_error"]


def test_a_local_run_opens_its_parent_run_once_its_jobs_train(tmp_path, monkeypatch):
    """Opening the parent (importing MLflow, creating the store) would take a core from the local slots
    while they start: it begins once every slot's first job is training, and every job still lands under it."""
    import mlflow
    from conftest import TINY_SUITE, write_suite

    from bench.run import RunRequest, run_suite
    from bench.store import SuiteStore

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    settings = {**TINY_SUITE["train"], "steps": 40, "eval_every": 20, "checkpoint_every": 20}
    suite = write_suite(tmp_path, {"train": settings, "executor": {"name": "local", "max_parallel": 2}})
    outcome = run_suite(RunRequest(suite, results=tmp_path / "results", report=False, progress=False),
                        echo=lambda _: None)
    assert dict(outcome.counts) == {"done": 2}
    store = SuiteStore(outcome.suite_dir)
    statuses = [store.job(job_id).read_status() for job_id in store.job_ids()]
    first_start_ms = min(pd.Timestamp(status["started_at"]).value // 1_000_000 for status in statuses)
    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(tmp_path / "results"))
    experiment = client.get_experiment_by_name("bench")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if not run.data.tags.get("mlflow.parentRunId")]
    assert parent.info.start_time >= first_start_ms
    children = {run.data.tags[JOB_TAG] for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert children == set(store.job_ids())
    assert all(status["mlflow_run_id"] for status in statuses)
