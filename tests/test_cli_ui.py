"""`bench ui` stopped by its pid stops the server it started, workers included (bench.launch.run_service)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from bench.launch import _pid_alive

# a stand-in for `mlflow ui`: a server process with a worker of its own, printing both pids
SERVER = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(os.getpid(), worker.pid, flush=True)
time.sleep(60)
"""


def start(kind: str, grace_s: float) -> tuple[subprocess.Popen, list[int]]:
    wrapper = (f"import sys; from bench.launch import run_service; "
               f"sys.exit(run_service([sys.executable, '-c', {SERVER!r}, {kind!r}], grace_s={grace_s}))")
    process = subprocess.Popen([sys.executable, "-c", wrapper], stdout=subprocess.PIPE, text=True,
                               env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert len(pids) == 2 and all(_pid_alive(pid) for pid in pids)
    return process, pids


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not any(_pid_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_reaches_the_server_and_its_workers(signum: int) -> None:
    process, pids = start("plain", grace_s=10)
    process.send_signal(signum)
    assert process.wait(timeout=20) == 0
    assert gone_within(pids, 5), "the server or its worker outlived bench ui"


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    process, pids = start("stubborn", grace_s=1)
    started = time.time()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert gone_within(pids, 5)
    assert time.time() - started >= 1
