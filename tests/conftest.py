"""Shared fixtures: small suites written on the fly, and a subprocess runner for the CLI."""

from __future__ import annotations

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


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path)
