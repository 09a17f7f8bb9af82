"""Packed SLURM tasks (a profile's `pack`): several jobs run at once in one task, each in a process of
its own; a preemption signal checkpoints every one of them, and running the task again (what
submitit's requeue does) resumes each to the metrics of an uninterrupted run. The same against the
real cluster is in tests/test_slurm_bench.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_SUITE, write_suite

from bench.catalogue import build_catalogue
from bench.launch import JobRunner, PackedRunner, default_paths, pack_runners
from bench.launch.profiles import ProfileError, load_profile
from bench.store import SuiteStore
from bench.suite import load_suite

STEPS = 300


def _runners(tmp_path: Path, results: str, steps: int = STEPS) -> list[JobRunner]:
    suite = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "steps": steps, "log_every": 10}})
    jobs = list(load_suite(suite, build_catalogue()).jobs)
    assert len(jobs) == 2
    root = tmp_path / results
    return [JobRunner(job, root / "tiny", default_paths(root), None, 1) for job in jobs]


def _metrics(runner: JobRunner) -> pd.DataFrame:
    store = SuiteStore(runner.suite_dir).job(runner.spec.job_id)
    return pd.read_csv(store.metrics_path).drop(columns="wall_s")


def test_pack_runners_groups_consecutive_units(tmp_path: Path) -> None:
    units = _runners(tmp_path, "a") + _runners(tmp_path, "b") + _runners(tmp_path, "c")[:1]
    packs = pack_runners(units, 2)
    assert [pack.units for pack in packs] == [units[0:2], units[2:4], units[4:]]  # type: ignore[union-attr]
    assert [pack.job_ids for pack in packs] == [(units[0].spec.job_id, units[1].spec.job_id),
                                                (units[2].spec.job_id, units[3].spec.job_id), (units[4].spec.job_id,)]
    assert pack_runners(units, 1) == units


def test_a_profile_refuses_a_pack_below_one(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("pack: 0\n")
    with pytest.raises(ProfileError, match="pack"):
        load_profile(profile)
    profile.write_text("pack: 3\n")
    assert load_profile(profile).pack == 3


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_a_preempted_pack_resumes_every_job_to_the_uninterrupted_metrics(tmp_path: Path, monkeypatch) -> None:
    reference = _runners(tmp_path, "reference")
    for runner in reference:
        assert runner() == "done"

    # as in a SLURM task: the units' processes take the preemption path (checkpoint, stay pending)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    packed = PackedRunner(_runners(tmp_path, "packed"))
    stores = [SuiteStore(unit.suite_dir).job(unit.spec.job_id) for unit in packed.units]

    def preempt_once_both_train() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            steps = [store.read_status().get("step") or 0 for store in stores]
            if all(store.read_status()["status"] == "running" for store in stores) and min(steps) >= 40:
                os.kill(os.getpid(), signal.SIGUSR2)  # what SLURM sends before a limit or a preemption
                return
            time.sleep(0.05)

    signaller = threading.Thread(target=preempt_once_both_train)
    signaller.start()
    first = packed()
    signaller.join()
    assert first == dict.fromkeys(packed.job_ids, "pending")
    stopped_at = [int(store.log_path.read_text().split("stop requested: checkpoint written at step ")[1].split()[0])
                  for store in stores]
    assert all(40 <= step < STEPS for step in stopped_at)
    assert all(store.read_status()["slurm_job_id"] == "4242" for store in stores)

    # the requeued task runs the same runner again
    assert packed() == dict.fromkeys(packed.job_ids, "done")
    for store, step in zip(stores, stopped_at, strict=True):
        assert f"resuming from the checkpoint at step {step}" in store.log_path.read_text()
        assert store.read_status()["attempts"] == 2
    for separate, unit in zip(reference, packed.units, strict=True):
        pd.testing.assert_frame_equal(_metrics(separate), _metrics(unit))
    # a third run (a requeue after all ended) trains nothing
    assert packed() == dict.fromkeys(packed.job_ids, "done")
    assert all(store.read_status()["attempts"] == 2 for store in stores)


def test_a_unit_whose_process_dies_is_failed_and_its_pack_mates_finish(tmp_path: Path) -> None:
    runners = _runners(tmp_path, "packed", steps=20)
    doomed = runners[0]
    doomed.threads = -5  # torch.set_num_threads(-5) raises before training: the unit's process fails
    statuses = PackedRunner(runners)()
    assert statuses[runners[1].spec.job_id] == "done"
    assert statuses[doomed.spec.job_id] == "failed"
