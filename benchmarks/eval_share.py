"""The share of a digits DCGAN job's time spent evaluating, at suites/sngan_vs_rsgan.yaml's schedule
(fidelity-classifier and class-coverage on 1,000 samples every 250 steps, 1,500 steps), with the
classifier and real-feature caches warm (one evaluation runs, untimed, before the job).

    .venv/bin/python benchmarks/eval_share.py
    .venv/bin/python benchmarks/eval_share.py --objective rsgan --seed 3 --cache-dir ~/.cache/bench/cache

Trains one job of the suite with `bench.train.train` and prints its training and evaluation seconds
(the loop's own clocks) and the evaluation share. Not a test: run it on purpose.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.catalogue import build_catalogue
from bench.launch import default_paths
from bench.store import SuiteStore
from bench.suite import load_suite
from bench.train import Job, train

SUITE = Path(__file__).resolve().parents[1] / "suites" / "sngan_vs_rsgan.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="nsgan",
                        help="the job's objective (the suite has sgan, nsgan, rsgan, sngan)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="fewer steps than the suite's (same schedule)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a local job of the suite gets 1)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="classifier and feature caches (default: $BENCH_HOME's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = default_paths(Path(tempfile.mkdtemp()))
    cache_dir = args.cache_dir.expanduser() if args.cache_dir else paths.cache_dir
    suite = load_suite(SUITE, build_catalogue())
    (spec,) = [s for s in suite.jobs if s.objective == args.objective and s.seed == args.seed]
    if args.steps is not None:
        spec = replace(spec, steps=args.steps)
    evaluations = spec.steps // spec.eval_every + 1 + (spec.steps % spec.eval_every != 0)
    load = os.getloadavg()
    metric_options = {name: dict(options) for name, options in spec.metric_options}
    print(f"{SUITE.name}: {spec.objective} seed {spec.seed}, {spec.arch} width {dict(spec.arch_options)['width']}, "
          f"{spec.dataset} {dict(spec.dataset_options)}, {spec.steps} steps, metrics {', '.join(spec.metrics)} "
          f"{metric_options} every {spec.eval_every} steps ({evaluations} evaluations); "
          f"{args.threads} torch thread(s), {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    started = time.perf_counter()
    Job(spec, data_root=paths.data_root, cache_dir=cache_dir).evaluate()
    print(f"warm-up evaluation (fills the caches when they are cold): {time.perf_counter() - started:.1f} s")

    store = SuiteStore(paths.results_root / suite.name).job(spec.job_id)
    started = time.perf_counter()
    result = train(spec, store, data_root=paths.data_root, cache_dir=cache_dir, log=lambda _: None)
    wall = time.perf_counter() - started
    assert result.status == "done", result
    print(f"job: {wall:.1f} s wall, {result.train_s:.1f} s training steps "
          f"({result.train_s / spec.steps * 1e3:.1f} ms per step), {result.eval_s:.1f} s evaluating "
          f"({result.eval_s / evaluations:.2f} s per evaluation)")
    print(f"evaluation share of training + evaluation: {result.eval_s / (result.train_s + result.eval_s):.1%}")
    print(f"evaluation share of the job's wall time: {result.eval_s / wall:.1%}")

    # where one evaluation's time goes: drawing the samples, then each evaluator alone (each draws its
    # samples here; in a job, the evaluators of one evaluation share the draw)
    job = Job(spec, data_root=paths.data_root, cache_dir=cache_dir)
    samples = max(int(dict(options).get("samples", 0)) for _, options in spec.metric_options) or 1000
    started = time.perf_counter()
    job.sample(samples)
    parts = [f"drawing {samples} samples {time.perf_counter() - started:.2f} s"]
    for evaluator in list(job.evaluators):
        job.evaluators = [evaluator]
        started = time.perf_counter()
        job.evaluate()
        parts.append(f"{evaluator.name} {time.perf_counter() - started:.2f} s")
    print(f"one evaluation, untrained generator: {', '.join(parts)}")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
