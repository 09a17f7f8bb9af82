"""Suite efficiency: how much of a suite run's slot time its jobs spend training and evaluating.

    .venv/bin/python benchmarks/suite_efficiency.py
    .venv/bin/python benchmarks/suite_efficiency.py --suite suites/quickstart.yaml --steps 1000 --stack-seeds 2

Runs the suite with `bench run` (run_suite, in this process; a fresh results folder under a temporary
directory; MLflow tracking as the suite says; no report) and prints its busy time (the sum of train_s +
eval_s over its jobs' status.json: the loop's own clocks), the run's wall time, and the efficiency,
busy / (wall x slots), slots being the executor's max_parallel (1 for debug). What is not busy time:
process starts and imports, building each job, writing checkpoints and samples, MLflow, and slots left
idle at the end. It then splits the slot time that was not busy by when it fell, from the jobs'
started_at and finished_at: before the first job started (the head: imports, checks, process starts),
after the last one ended (the tail: MLflow, closing), and in between (slots idle, job building and
ends, and what the jobs' own clocks do not count). Not a test: run it on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from bench.run import RunRequest, run_suite

SUITE = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--executor", default=None, help="the suite's executor unless given")
    parser.add_argument("--max-parallel", type=int, default=None, help="the suite's max_parallel unless given")
    parser.add_argument("--steps", type=int, default=None, help="fewer steps than the suite's (same schedule)")
    parser.add_argument("--stack-seeds", type=int, default=None, help="executor stack_seeds (default: the suite's)")
    parser.add_argument("--no-tracking", action="store_true", help="without MLflow")
    args = parser.parse_args()

    suite = yaml.safe_load(args.suite.read_text())
    if args.steps is not None:
        suite["train"]["steps"] = args.steps
    executor = suite.setdefault("executor", {})
    if args.executor is not None:
        executor["name"] = args.executor
    if args.stack_seeds is not None:
        executor["stack_seeds"] = args.stack_seeds
    folder = Path(tempfile.mkdtemp(prefix="suite-efficiency-"))
    suite_file = folder / args.suite.name
    suite_file.write_text(yaml.safe_dump(suite, sort_keys=False))

    load = os.getloadavg()
    started_at = time.time()
    started = time.perf_counter()
    outcome = run_suite(RunRequest(suite_file, max_parallel=args.max_parallel, results=folder / "results",
                                   tracking=not args.no_tracking, report=False, progress=False),
                        echo=lambda _: None)
    wall = time.perf_counter() - started
    name = executor.get("name", "local")
    slots = 1 if name == "debug" else (args.max_parallel or executor.get("max_parallel", 2))
    statuses = [json.loads(path.read_text()) for path in (outcome.suite_dir / "jobs").glob("*/status.json")]
    train_s = sum(float(status.get("train_s") or 0.0) for status in statuses)
    eval_s = sum(float(status.get("eval_s") or 0.0) for status in statuses)
    end_load = os.getloadavg()
    print(f"{args.suite.name}: {len(statuses)} jobs ({dict(outcome.counts)}), {suite['train']['steps']} steps each, "
          f"{name} executor, {slots} slot(s), stack_seeds {executor.get('stack_seeds', 1)}, "
          f"tracking {'off' if args.no_tracking else 'on'}, {os.cpu_count()} CPUs; load average "
          f"{load[0]:.2f} at the start, {end_load[0]:.2f} at the end")
    print(f"busy {train_s + eval_s:.1f} s (training {train_s:.1f} s, evaluating {eval_s:.1f} s), "
          f"wall {wall:.1f} s x {slots} slot(s) = {wall * slots:.1f} slot-s")
    print(f"suite efficiency: {(train_s + eval_s) / (wall * slots):.1%}")
    def times(key: str) -> list[float]:
        return [datetime.fromisoformat(status[key]).timestamp() for status in statuses if status.get(key)]

    starts, ends = times("started_at"), times("finished_at")
    if starts and ends:
        head = min(starts) - started_at
        tail = started_at + wall - max(ends)
        between = wall * slots - (train_s + eval_s) - (head + tail) * slots
        print(f"not busy: head {head:.1f} s x {slots} (start to the first job's start), tail {tail:.1f} s x {slots} "
              f"(the last job's end to the end), between {between:.1f} slot-s")


if __name__ == "__main__":
    main()
