"""Stacked seeds against separate jobs: the wall time of K seeds of one toy cell (ring8, mlp
2-128-128-128, batch 64) trained by `bench.stacked.train_stacked` in one process, against the same K
jobs trained one after another by `bench.train.train`, with the same steps and evaluation schedule
and the same torch threads, measured in one run (rounds alternate the two, so both see the same
machine load).

    .venv/bin/python benchmarks/stacked_speed.py
    .venv/bin/python benchmarks/stacked_speed.py --seeds 8 --steps 600 --rounds 2

Prints figures, the ratio stacked / separate (lower is better) and the largest difference between
the metric values the two ways wrote; checks only that every job ended `done`. Not a test: run it
on purpose.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from bench.catalogue import build_catalogue
from bench.stacked import stackable, train_stacked
from bench.store import SuiteStore
from bench.suite import parse_suite
from bench.train import train


def toy_cell(seeds: int, steps: int, eval_every: int, objective: str) -> list:
    suite = {
        "name": "stacked-speed",
        "dataset": {"name": "ring8"},
        "grid": {"objective": [objective], "arch": ["mlp"], "seed": list(range(seeds))},
        "train": {"steps": steps, "batch_size": 64, "eval_every": eval_every, "checkpoint_every": eval_every,
                  "log_every": 50, "device": "cpu"},
        "archs": {"mlp": {"width": 128, "depth": 3}},
    }
    return sorted(parse_suite(yaml.safe_dump(suite), build_catalogue()).jobs, key=lambda spec: spec.seed)


def print_nothing(_: str) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1500, help="generator steps per job")
    parser.add_argument("--eval-every", type=int, default=500, help="evaluation (and checkpoint) interval in steps")
    parser.add_argument("--objective", default="nsgan")
    parser.add_argument("--rounds", type=int, default=1, help="alternating separate/stacked rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = toy_cell(args.seeds, args.steps, args.eval_every, args.objective)
    reason = stackable(specs)
    if reason is not None:
        raise SystemExit(f"not stackable: {reason}")
    root = Path(tempfile.mkdtemp())
    load = os.getloadavg()
    print(f"{args.seeds} seeds of ring8 / mlp 2-128-128-128 / {args.objective}, batch 64, {args.steps} steps, "
          f"evaluation ({', '.join(specs[0].metrics)}) and checkpoint every {args.eval_every} steps; "
          f"{args.threads} torch thread(s), {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    # one-time costs (imports, first evaluation, the first figure) paid before either way is timed
    warm = [replace(spec, steps=2, eval_every=1, checkpoint_every=1, log_every=1) for spec in specs[:2]]
    train(warm[0], SuiteStore(root / "warm").job(warm[0].job_id), data_root=root, cache_dir=root, log=print_nothing)
    train_stacked(warm, [SuiteStore(root / "warm-stacked").job(spec.job_id) for spec in warm], data_root=root,
                  cache_dir=root, log=print_nothing)
    totals = {"separate": 0.0, "stacked": 0.0}
    cpu = {"separate": 0.0, "stacked": 0.0}
    parts = {"separate": [0.0, 0.0], "stacked": [0.0, 0.0]}
    for round_index in range(args.rounds):
        separate = SuiteStore(root / f"separate-{round_index}")
        started, cpu_started = time.perf_counter(), time.process_time()
        results = [train(spec, separate.job(spec.job_id), data_root=root, cache_dir=root, log=print_nothing)
                   for spec in specs]
        separate_s = time.perf_counter() - started
        cpu["separate"] += time.process_time() - cpu_started
        assert all(r.status == "done" for r in results), results
        parts["separate"][0] += sum(r.train_s for r in results)
        parts["separate"][1] += sum(r.eval_s for r in results)

        stacked = SuiteStore(root / f"stacked-{round_index}")
        started, cpu_started = time.perf_counter(), time.process_time()
        results = train_stacked(specs, [stacked.job(spec.job_id) for spec in specs], data_root=root, cache_dir=root,
                                log=print_nothing)
        stacked_s = time.perf_counter() - started
        cpu["stacked"] += time.process_time() - cpu_started
        assert all(r.status == "done" for r in results), results
        parts["stacked"][0] += sum(r.train_s for r in results)
        parts["stacked"][1] += sum(r.eval_s for r in results)
        totals["separate"] += separate_s
        totals["stacked"] += stacked_s
        print(f"round {round_index + 1}: separate {separate_s:.1f} s, stacked {stacked_s:.1f} s, "
              f"ratio {stacked_s / separate_s:.2f}")
        differences = []
        for spec in specs:
            a, b = separate.job(spec.job_id).read_metrics(), stacked.job(spec.job_id).read_metrics()
            assert a[["step", "metric"]].equals(b[["step", "metric"]])
            differences.append(float((a["value"] - b["value"]).abs().max()))
        print(f"  largest difference between the two ways' metric values: {max(differences):.2g}")
    for mode in ("separate", "stacked"):
        train_s, eval_s = parts[mode]
        print(f"{mode}: {totals[mode]:.1f} s wall ({train_s:.1f} s training steps, {eval_s:.1f} s evaluating, "
              f"the rest setup, checkpoints, metrics files and final samples), {cpu[mode]:.1f} s CPU")
    print(f"stacked / separate wall time: {totals['stacked'] / totals['separate']:.2f}")
    print(f"stacked / separate training-step time: {parts['stacked'][0] / parts['separate'][0]:.2f}")
    print(f"stacked / separate CPU time of the process: {cpu['stacked'] / cpu['separate']:.2f}")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
