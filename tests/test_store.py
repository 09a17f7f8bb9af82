"""The results folder: atomic writes, round trips, spec checks on resume, tables read back."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

import bench
from bench.spec import JobSpec, freeze_options
from bench.store import (
    STATUS_OUTCOMES,
    TERMINAL_STATUSES,
    JobStore,
    MetricRow,
    Outcome,
    SpecChangedError,
    Status,
    SuiteStore,
    atomic_write,
)


def make_spec(**overrides) -> JobSpec:
    values = dict(
        suite="toy",
        dataset="ring8",
        dataset_options=freeze_options({"std": 0.02}),
        objective="nsgan",
        objective_options=(),
        arch="mlp",
        arch_options=freeze_options({"width": 16}),
        seed=0,
        steps=100,
        batch_size=64,
        latent_dim=2,
        critic_steps=1,
        optimizer="adam",
        lr_g=2e-4,
        lr_d=2e-4,
        betas=(0.5, 0.999),
        tricks=(),
        metrics=("mixture-modes",),
        metric_options=(),
        eval_every=50,
        checkpoint_every=50,
        log_every=10,
        device="cpu",
        deterministic=True,
        eval_precision="float32",
    )
    values.update(overrides)
    return JobSpec(**values)


@pytest.fixture
def suite(tmp_path) -> SuiteStore:
    return SuiteStore(tmp_path / "results" / "toy")


def test_every_write_leaves_no_temp_files(suite):
    spec = make_spec()
    job = suite.job(spec.job_id)
    suite.write_suite_yaml("name: toy\n")
    job.write_spec(spec)
    job.write_status("running", step=0)
    job.append_metrics([MetricRow(spec.job_id, 10, 1.5, "d_loss", 0.7)])
    job.save_checkpoint({"step": 10})
    assert sorted(p.name for p in job.path.iterdir()) == ["checkpoint.pt", "metrics.csv", "spec.json", "status.json"]
    assert suite.suite_yaml_path.read_text() == "name: toy\n"


def test_failing_json_serialiser_keeps_previous_status(suite):
    job = suite.job("abc")
    job.write_status("running", step=5)
    before = job.status_path.read_text()
    # json.dump has already written part of the record when it meets the object it cannot encode
    with pytest.raises(TypeError, match="not JSON serializable"):
        job.write_status("done", step=10, mlflow_run_id=object())
    assert job.status_path.read_text() == before
    assert job.read_status()["status"] == "running"
    assert [p.name for p in job.path.iterdir()] == ["status.json"]


def test_failing_torch_save_keeps_previous_checkpoint(suite):
    job = suite.job("abc")
    job.save_checkpoint({"step": 3, "weights": torch.tensor([1.0, 2.0])})
    # a local function cannot be pickled: torch.save fails after writing part of the archive
    # (AttributeError up to Python 3.13, PicklingError from 3.14)
    with pytest.raises((AttributeError, pickle.PicklingError), match="Can't pickle local object"):
        job.save_checkpoint({"weights": torch.zeros(1000), "fn": lambda: None})
    state = job.load_checkpoint(map_location="cpu")
    assert state["step"] == 3
    torch.testing.assert_close(state["weights"], torch.tensor([1.0, 2.0]))
    assert [p.name for p in job.path.iterdir()] == ["checkpoint.pt"]


def test_atomic_write_failing_midway_keeps_file(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def half_then_fail(f):
        f.write("new content, half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_spec_round_trip_and_file_shape(suite):
    spec = make_spec(tricks=(("gradient-penalty", freeze_options({"weight": 10.0})),))
    job = suite.job(spec.job_id)
    assert job.read_spec() is None
    job.write_spec(spec)
    assert job.read_spec() == spec
    stored = json.loads(job.spec_path.read_text())
    assert stored == {"job_id": spec.job_id, "spec": spec.to_dict()}


def test_write_spec_refuses_wrong_folder(suite):
    with pytest.raises(ValueError, match="job folder"):
        suite.job("not-its-id").write_spec(make_spec())


def test_check_spec_passes_same_and_missing(suite):
    spec = make_spec()
    job = suite.job(spec.job_id)
    job.check_spec(spec)  # nothing stored yet
    job.write_spec(spec)
    job.check_spec(make_spec())


def test_check_spec_refuses_change_with_diff(suite):
    spec = make_spec()
    job = suite.job(spec.job_id)
    job.write_spec(spec)
    changed = dataclasses.replace(spec, device="cuda", lr_d=1e-3)
    with pytest.raises(SpecChangedError) as info:
        job.check_spec(changed)
    message = str(info.value)
    assert "lr_d: 0.0002 -> 0.001" in message
    assert "device: 'cpu' -> 'cuda'" in message
    assert "steps" not in message
    assert isinstance(info.value, ValueError)


def test_status_defaults_to_pending(suite):
    status = suite.job("abc").read_status()
    assert status["status"] == "pending"
    assert status["job_id"] == "abc"
    assert status["attempts"] == 0
    assert status["reason"] is None and status["step"] is None
    assert not suite.job("abc").is_complete()


def test_status_merges_and_stamps(suite):
    job = suite.job("abc")
    first = job.write_status(Status.RUNNING, step=0)
    assert first["attempts"] == 1 and first["started_at"] is not None and first["finished_at"] is None
    job.write_status("running", step=50)
    job.write_status("failed", reason="CUDA out of memory", train_s=12.5)
    failed = job.read_status()
    assert failed["status"] == "failed"
    assert failed["reason"] == "CUDA out of memory"
    assert failed["step"] == 50
    assert failed["train_s"] == 12.5
    assert failed["attempts"] == 1
    assert failed["finished_at"] is not None
    assert failed["started_at"] == first["started_at"]
    assert not job.is_complete()

    resumed = job.write_status("running")
    assert resumed["attempts"] == 2 and resumed["reason"] is None and resumed["finished_at"] is None
    job.write_status("diverged", reason="d_loss is nan at step 80", step=80, mlflow_run_id="r1")
    final = job.read_status()
    assert final["status"] == "diverged" and final["step"] == 80 and final["train_s"] == 12.5
    assert final["mlflow_run_id"] == "r1"
    assert job.is_complete()
    assert {"job_id", "status", "reason", "step", "attempts", "started_at", "updated_at", "finished_at",
            "train_s", "eval_s", "mlflow_run_id"} <= set(json.loads(job.status_path.read_text()))


def test_same_status_again_only_adds_fields(suite):
    job = suite.job("abc")
    job.write_status("running")
    ended = job.write_status("diverged", reason="g_loss is inf at step 40", step=40)
    again = job.write_status("diverged", mlflow_run_id="r9")
    assert again["reason"] == "g_loss is inf at step 40"
    assert again["finished_at"] == ended["finished_at"]
    assert again["step"] == 40 and again["mlflow_run_id"] == "r9" and again["attempts"] == 1
    assert job.write_status("diverged", reason="g_loss is nan")["reason"] == "g_loss is nan"
    assert job.write_status("running")["reason"] is None


def test_status_refuses_bad_values(suite):
    job = suite.job("abc")
    with pytest.raises(ValueError,
                       match=r"unknown job status 'finished'; valid: pending, running, done, diverged, failed"):
        job.write_status("finished")
    with pytest.raises(ValueError, match=r"unknown status field\(s\) trian_s; valid: attempts, .*train_s"):
        job.write_status("running", trian_s=1.0)
    assert not job.status_path.exists()


def test_metrics_round_trip_with_nan_and_inf(suite):
    job = suite.job("abc")
    assert job.read_metrics().empty
    job.append_metrics([MetricRow("abc", 10, 0.5, "d_loss", 0.25), MetricRow("abc", 10, 0.5, "g_loss", -1.0)])
    job.append_metrics([MetricRow("abc", 20, 1.25, "d_loss", float("nan")),
                        MetricRow("abc", 20, 1.25, "g_loss", float("inf"))])
    frame = job.read_metrics()
    assert list(frame.columns) == ["job_id", "step", "wall_s", "metric", "value"]
    assert frame["step"].tolist() == [10, 10, 20, 20]
    assert frame["wall_s"].tolist() == [0.5, 0.5, 1.25, 1.25]
    assert frame["metric"].tolist() == ["d_loss", "g_loss", "d_loss", "g_loss"]
    values = frame["value"].tolist()
    assert values[:2] == [0.25, -1.0] and math.isnan(values[2]) and values[3] == math.inf


def test_metrics_keep_full_float_precision(suite):
    job = suite.job("abc")
    job.append_metrics([MetricRow("abc", 1, 0.1, "fid", 1 / 3)])
    assert job.read_metrics()["value"].iloc[0] == 1 / 3


def test_metrics_refuse_other_jobs_rows(suite):
    with pytest.raises(ValueError, match="metric row for job 'xyz'"):
        suite.job("abc").append_metrics([MetricRow("xyz", 1, 0.1, "fid", 1.0)])


def test_metrics_file_is_appended_in_place_with_the_same_text(suite, monkeypatch):
    job = suite.job("abc")
    job.append_metrics([MetricRow("abc", 10, 0.5, "d_loss", 0.25), MetricRow("abc", 10, 0.5, "g_loss", -1.0)])
    before = job.metrics_path.stat()
    replaced = []
    monkeypatch.setattr("bench.store.os.replace", lambda *paths: replaced.append(paths))
    job.append_metrics([MetricRow("abc", 20, 1.25, "d_loss", float("nan"))])
    after = job.metrics_path.stat()
    assert replaced == [] and after.st_ino == before.st_ino
    assert after.st_size - before.st_size == len("abc,20,1.25,d_loss,nan\n")
    assert job.metrics_path.read_text() == ("job_id,step,wall_s,metric,value\n"
                                            "abc,10,0.5,d_loss,0.25\nabc,10,0.5,g_loss,-1.0\n"
                                            "abc,20,1.25,d_loss,nan\n")


def test_torn_last_metrics_line_is_ignored_then_cut(suite):
    job = suite.job("abc")
    job.append_metrics([MetricRow("abc", step, step / 10, "fid", float(step)) for step in (10, 20)])
    complete = job.metrics_path.read_text()
    with open(job.metrics_path, "a") as f:
        f.write("abc,30,3.0,fi")  # killed mid-append
    assert job.read_metrics()["step"].tolist() == [10, 20]
    assert suite.metrics_table()["step"].tolist() == [10, 20]
    job.truncate_metrics(after_step=20)  # resuming: nothing to drop but the torn line
    assert job.metrics_path.read_text() == complete
    with open(job.metrics_path, "a") as f:
        f.write("abc,30,3.0,fi")
    job.append_metrics([MetricRow("abc", 30, 3.0, "fid", 30.0)])
    assert job.metrics_path.read_text() == complete + "abc,30,3.0,fid,30.0\n"


def test_torn_metrics_header_reads_as_no_rows(suite):
    job = suite.job("abc")
    job.path.mkdir(parents=True)
    job.metrics_path.write_text("job_id,st")
    assert job.read_metrics().empty and suite.metrics_table().empty
    job.append_metrics([MetricRow("abc", 1, 0.1, "fid", 1.0)])
    assert job.metrics_path.read_text() == "job_id,step,wall_s,metric,value\nabc,1,0.1,fid,1.0\n"
    job.metrics_path.write_text("step,job_id\n")
    with pytest.raises(ValueError, match="metrics.csv: the first line must be 'job_id,step,wall_s,metric,value'"):
        job.read_metrics()


def test_truncate_metrics(suite):
    job = suite.job("abc")
    job.truncate_metrics(100)  # nothing stored: nothing to do
    job.append_metrics([MetricRow("abc", step, step / 10, "d_loss", float(step)) for step in (10, 20, 30, 40)])
    job.truncate_metrics(after_step=20)
    assert job.read_metrics()["step"].tolist() == [10, 20]
    job.append_metrics([MetricRow("abc", 30, 9.0, "d_loss", 3.0)])
    assert job.read_metrics()["value"].tolist() == [10.0, 20.0, 3.0]
    job.truncate_metrics(after_step=0)
    assert job.read_metrics().empty


def test_job_ids_refuse_path_names(suite):
    with pytest.raises(ValueError, match="job id '../x' must match"):
        suite.job("../x")
    assert suite.job_ids() == []


def test_jobs_table_with_pending_and_partial_jobs(suite):
    done_spec, pending_spec = make_spec(seed=0), make_spec(seed=1)
    done = suite.job(done_spec.job_id)
    done.write_spec(done_spec)
    done.write_status("running", step=0)
    done.write_status("done", step=100, train_s=3.5, eval_s=0.5)
    suite.job(pending_spec.job_id).write_spec(pending_spec)
    suite.job("zzz-no-spec").write_status("failed", reason="spec lost")

    table = suite.jobs_table().set_index("job_id")
    assert sorted(table.index) == sorted([done_spec.job_id, pending_spec.job_id, "zzz-no-spec"])
    assert table.loc[done_spec.job_id, "status"] == "done"
    assert table.loc[done_spec.job_id, "step"] == 100
    assert table.loc[done_spec.job_id, "train_s"] == 3.5
    assert table.loc[done_spec.job_id, "eval_s"] == 0.5
    assert table.loc[pending_spec.job_id, "status"] == "pending"
    assert pd.isna(table.loc[pending_spec.job_id, "step"])
    assert table.loc[pending_spec.job_id, "seed"] == "1"
    assert table.loc[done_spec.job_id, "arch.width"] == "16"
    assert table.loc["zzz-no-spec", "reason"] == "spec lost"
    assert pd.isna(table.loc["zzz-no-spec", "objective"])
    for key in done_spec.flat():
        assert key in table.columns


def test_jobs_table_empty(suite):
    table = suite.jobs_table()
    assert table.empty
    assert list(table.columns)[:6] == ["job_id", "status", "reason", "step", "train_s", "eval_s"]


def test_metrics_table_dtypes_and_tolerance(suite):
    suite.job("a").append_metrics([MetricRow("a", 1, 0.5, "fid", 30.0)])
    suite.job("b").write_status("running")  # no metrics yet
    suite.job("c").append_metrics([MetricRow("c", 2, 1.0, "fid", 20.0), MetricRow("c", 2, 1.0, "is", 2.0)])
    table = suite.metrics_table()
    assert table["job_id"].tolist() == ["a", "c", "c"]
    assert table["value"].tolist() == [30.0, 20.0, 2.0]
    assert {c: str(t) for c, t in table.dtypes.items()} == {
        "job_id": "object", "step": "int64", "wall_s": "float64", "metric": "object", "value": "float64"
    }
    empty = SuiteStore(suite.root.parent / "other").metrics_table()
    assert empty.empty and str(empty["step"].dtype) == "int64" and str(empty["value"].dtype) == "float64"


def test_checkpoint_round_trip(suite):
    job = suite.job("abc")
    assert job.load_checkpoint() is None
    job.save_checkpoint({"step": 7, "g": {"w": torch.arange(3.0)}, "rng": torch.get_rng_state()})
    state = job.load_checkpoint(map_location="cpu")
    assert state["step"] == 7
    torch.testing.assert_close(state["g"]["w"], torch.tensor([0.0, 1.0, 2.0]))


def test_paths(suite):
    job = suite.job("abc")
    assert job.samples_dir == suite.root / "jobs" / "abc" / "samples"
    assert job.log_path == suite.root / "jobs" / "abc" / "log.txt"
    assert not job.path.exists()
    assert isinstance(job, JobStore)


def status_literals(source: str) -> list[tuple[int, str]]:
    """(line, value) of every string constant in `source` that spells a job status."""
    statuses = {status.value for status in Status}
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and node.value in statuses]


def test_status_literals_are_found():
    assert status_literals('x = "done"\nif s in ("failed", "crashed"):\n    pass\n') == [(1, "done"), (2, "failed")]
    assert status_literals('"""A job is done when ..."""\nx = Status.DONE\n') == []


def test_no_module_restates_a_status():
    package = Path(bench.__file__).parent
    found = [f"{path.relative_to(package.parent)}:{line}: {value!r}"
             for path in sorted(package.rglob("*.py")) if path != package / "store.py"
             for line, value in status_literals(path.read_text(encoding="utf-8"))]
    assert found == [], "import Status and its sets from bench.store instead of:\n" + "\n".join(found)


def test_every_terminal_status_has_one_outcome():
    assert set(STATUS_OUTCOMES) == TERMINAL_STATUSES
    assert set(Outcome) == {*STATUS_OUTCOMES.values(), Outcome.FAILED_TO_TRAIN}


def test_record_lost_keeps_complete_jobs_and_fails_or_pends_the_rest(tmp_path):
    suite = SuiteStore(tmp_path / "toy")
    ids = [make_spec(seed=seed).job_id for seed in range(3)]
    suite.job(ids[0]).write_status(Status.DONE)
    suite.job(ids[1]).write_status(Status.RUNNING)
    assert suite.record_lost(ids, "killed") == {ids[0]: "done", ids[1]: "failed", ids[2]: "failed"}
    assert suite.job(ids[1]).read_status()["reason"] == "killed"
    suite.job(ids[1]).write_status(Status.RUNNING)
    assert suite.record_lost(ids[1:], "killed", stopping=True, stopped="preempted") == {ids[1]: "pending",
                                                                                        ids[2]: "pending"}
    assert suite.job(ids[2]).read_status()["reason"] == "preempted"
