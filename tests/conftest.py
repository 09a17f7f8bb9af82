"""Shared fixtures: small suites written on the fly, and a subprocess runner for the CLI."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

# one thread in the test process: on a 2-core machine shared with job subprocesses, more threads
# only contend (tests that need a thread count set their own)
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

TINY_SUITE = {
    "name": "tiny",
    "dataset": {"name": "ring8"},
    "grid": {"objective": ["nsgan", "rsgan"], "arch": ["mlp"], "seed": [0]},
    "train": {
        "steps": 60, "batch_size": 64, "eval_every": 20,
        "checkpoint_every": 20, "log_every": 10, "lr": 1.0e-3,
    },
    "metric_options": {"mixture-modes": {"samples": 500}},
    "archs": {"mlp": {"width": 32, "depth": 2}},
    "executor": {"name": "debug"},
}


def digits_8px(name: str = "digits"):
    """scikit-learn's digits at their native 8x8 as labelled images in [-1, 1]; the last 297 images are
    the test split. The same content in every test, so the session's cache trains its classifier once."""
    from sklearn.datasets import load_digits

    from bench.metrics.classifier import LabelledImages

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 8.0 - 1.0
    labels = torch.from_numpy(bunch.target).long()
    test = LabelledImages(name, images[1500:], labels[1500:], 10)
    return LabelledImages(name, images[:1500], labels[:1500], 10, test=test)


def write_suite(folder: Path, overrides: dict | None = None, name: str = "tiny.yaml") -> Path:
    """A copy of TINY_SUITE with top-level keys replaced by `overrides`, written to folder/name."""
    suite = {**TINY_SUITE, **(overrides or {})}
    path = folder / name
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def bench_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_HOME"] = str(tmp_path / "bench-home")
    env["PYTHONPATH"] = str(REPO)
    return env


def run_bench(args: list[str], tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (cwd = tmp_path) and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=tmp_path, env=bench_env(tmp_path),
        capture_output=True, text=True, timeout=kwargs.pop("timeout", 300), **kwargs,
    )


def run_bench_here(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`bench ARGS` run as run_bench runs it (cwd = tmp_path, BENCH_HOME under it, output captured), but
    in this process: no interpreter start and no imports, seconds per call. For what needs a process of
    its own (signals, kills, a fresh interpreter's imports), use run_bench."""
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    home, cwd, threads = os.environ.get("BENCH_HOME"), os.getcwd(), torch.get_num_threads()
    os.environ["BENCH_HOME"] = bench_env(tmp_path)["BENCH_HOME"]
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        if home is None:
            os.environ.pop("BENCH_HOME", None)
        else:
            os.environ["BENCH_HOME"] = home
    return subprocess.CompletedProcess(["bench", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts with one torch thread, whatever a test before it set (an in-process run, a library
    call): pytest-xdist runs one test process per core, and threads beyond that only contend."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory):
    """One bench cache (trained classifiers, real-feature statistics) for the whole test run, shared by
    every in-process and subprocess run through $BENCH_CACHE, and by pytest-xdist's workers: entries are
    keyed by their full content and written atomically, so sharing changes no result, it only trains each
    classifier once. Tests of the cache itself pass a cache folder of their own."""
    cache = _run_folder(tmp_path_factory) / "shared-cache"
    cache.mkdir(exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("BENCH_CACHE", str(cache))
    yield cache
    patch.undo()


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this whole test run: shared by pytest-xdist's workers (each has a base
    folder of its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture
def cluster_to_ourselves(tmp_path_factory: pytest.TempPathFactory):
    """Holds the local SLURM test cluster for one test at a time across pytest-xdist's workers (its one
    node's CPUs, queue and accounting are what the SLURM tests measure and wait for)."""
    import fcntl

    with open(_run_folder(tmp_path_factory) / "slurm-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path)
