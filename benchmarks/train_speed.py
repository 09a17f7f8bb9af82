"""Training speed and device checks: generator steps per second of typical jobs, and, on a GPU,
that everything lives on the device, that a resumed job matches an uninterrupted one there too,
and what bf16 evaluation and cudnn autotuning change.

    .venv/bin/python benchmarks/train_speed.py                 # CPU
    .venv/bin/python benchmarks/train_speed.py --device cuda   # on a GPU node

Prints figures; asserts only the device checks. Not a test: run it on purpose.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from bench.catalogue import build_catalogue
from bench.store import SuiteStore
from bench.suite import parse_suite
from bench.train import Job, steps_per_second, train

CASES = {
    "mlp ring8 nsgan (batch 256)": ("ring8", {}, "mlp", {"width": 128, "depth": 3}, "nsgan", 256),
    "mlp ring8 wgan-gp (batch 256, 5 critic steps)": ("ring8", {}, "mlp", {"width": 128, "depth": 3}, "wgan-gp", 256),
    "dcgan digits 28px width 16 nsgan (batch 64)": ("digits", {"resolution": 28}, "dcgan", {"width": 16}, "nsgan", 64),
    "dcgan digits 32px width 64 nsgan (batch 64)": ("digits", {"resolution": 32}, "dcgan", {"width": 64}, "nsgan", 64),
    "resnet digits 32px width 32 (critic 16) nsgan (batch 64)": (
        "digits", {"resolution": 32}, "resnet", {"width": 32}, "nsgan", 64),
}


def spec_for(dataset, dataset_options, arch, arch_options, objective, batch_size, device, **train):
    suite = {
        "name": "speed",
        "dataset": {"name": dataset, "options": dataset_options},
        "grid": {"objective": [objective], "arch": [arch], "seed": [0]},
        "train": {"steps": 200, "batch_size": batch_size, "eval_every": 100, "checkpoint_every": 100,
                  "log_every": 50, "device": device, **train},
        "archs": {arch: arch_options},
        "metrics": [],
    }
    (spec,) = parse_suite(yaml.safe_dump(suite), build_catalogue()).jobs
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=50, help="timed generator steps per case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp())
    print(f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else
                                     f", {args.threads} thread(s)"))
    for name, case in CASES.items():
        spec = spec_for(*case, args.device)
        rate = steps_per_second(spec, data_root=root, cache_dir=root, steps=args.steps)
        print(f"{name}: {rate:.1f} generator steps/s")
    if args.device != "cuda":
        return

    # everything on the device
    spec = spec_for(*CASES["dcgan digits 28px width 16 nsgan (batch 64)"], "cuda")
    job = Job(spec, data_root=root, cache_dir=root)
    modules = [*job.game.generator_side, job.critic]
    assert all(p.device.type == "cuda" for m in modules for p in m.parameters())
    loss_d, loss_g = job.train_step()
    assert loss_d.device.type == "cuda" and loss_g.device.type == "cuda"
    print("placement: every parameter and loss on cuda")

    # resume on the GPU gives the uninterrupted metrics
    full = SuiteStore(root / "full").job(spec.job_id)
    train(spec, full, data_root=root, cache_dir=root, log=lambda _: None)
    resumed = SuiteStore(root / "resumed").job(spec.job_id)
    calls = iter([False, True])
    train(spec, resumed, data_root=root, cache_dir=root, should_stop=lambda: next(calls, False), log=lambda _: None)
    train(spec, resumed, data_root=root, cache_dir=root, log=lambda _: None)
    same = full.read_metrics().drop(columns="wall_s").equals(resumed.read_metrics().drop(columns="wall_s"))
    print(f"resume on cuda (deterministic): identical metrics = {same}")

    # what autotuning and bf16 evaluation cost or save
    for label, changes in (("deterministic", {}), ("cudnn autotune", {"deterministic": False})):
        timed = replace(spec, **changes)
        print(f"{label}: {steps_per_second(timed, data_root=root, cache_dir=root, steps=args.steps):.1f} steps/s")
    for precision in ("float32", "bf16"):
        job = Job(replace(spec, eval_precision=precision), data_root=root, cache_dir=root)
        job.sample(1000)
        torch.cuda.synchronize()
        started = time.perf_counter()
        job.sample(10000)
        torch.cuda.synchronize()
        print(f"eval sampling {precision}: {10000 / (time.perf_counter() - started):.0f} samples/s")


if __name__ == "__main__":
    main()
