"""How long `bench report` takes on a large suite: 1,000 jobs x 20 evaluations, figures included.

Generates a synthetic 2-D results folder (10 objectives x 4 architectures x 25 seeds, 20
evaluations of five metrics each, a few diverged, failed and pending jobs, final.npy samples),
then times `build_report` on it. Run on purpose:

    .venv/bin/python benchmarks/report_speed.py [--keep DIR]

The target is under 10 seconds for the build.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import build_report
from bench.spec import JobSpec

OBJECTIVES = ("nsgan", "sgan", "lsgan", "hinge", "wgan", "wgan-gp", "rsgan", "rasgan", "ralsgan", "gan-qp")
ARCHS = ("mlp", "mlp-wide", "mlp-deep", "mlp-sn")
SEEDS = tuple(range(25))
EVALS = 20
STEPS = 2000


def job_spec(objective: str, arch: str, seed: int, suite: str) -> JobSpec:
    return JobSpec(
        suite=suite, dataset="ring8", dataset_options=(), objective=objective, objective_options=(),
        arch=arch, arch_options=(), seed=seed, steps=STEPS, batch_size=256, latent_dim=2, critic_steps=1,
        optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), tricks=(), metrics=("modes",),
        metric_options=(), eval_every=STEPS // EVALS, checkpoint_every=STEPS,
        log_every=STEPS // EVALS, device="cpu", deterministic=True, eval_precision="float32",
    )


def write_suite(root: Path, name: str = "speed") -> Path:
    """Write the synthetic results folder `root/name` and return its path."""
    suite_dir = root / name
    (suite_dir / "jobs").mkdir(parents=True)
    (suite_dir / "suite.yaml").write_text(
        f"name: {name}\nreport:\n  baseline: nsgan\n  thresholds:\n    modes_covered: 7\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    steps = np.arange(1, EVALS + 1) * (STEPS // EVALS)
    angles = np.arange(8) * 2 * np.pi / 8
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for o, objective in enumerate(OBJECTIVES):
        for a, arch in enumerate(ARCHS):
            for seed in SEEDS:
                spec = job_spec(objective, arch, seed, name)
                folder = suite_dir / "jobs" / spec.job_id
                folder.mkdir()
                folder.joinpath("spec.json").write_text(json.dumps({"job_id": spec.job_id, "spec": spec.to_dict()}))
                roll = (o * 31 + a * 7 + seed) % 100
                status = "done" if roll >= 6 else ("diverged" if roll >= 3 else ("failed" if roll >= 1 else "pending"))
                done_evals = EVALS if status == "done" else (EVALS // 2 if status != "pending" else 0)
                reasons = {"diverged": "loss is nan at step 1000", "failed": "RuntimeError: boom"}
                status_doc = {"job_id": spec.job_id, "status": status, "reason": reasons.get(status),
                              "step": int(steps[done_evals - 1]) if done_evals else None,
                              "train_s": float(30 + 5 * o + rng.random() * 5) if done_evals else None,
                              "eval_s": 2.0 if done_evals else None}
                folder.joinpath("status.json").write_text(json.dumps(status_doc))
                if not done_evals:
                    continue
                quality = (o + 1) / len(OBJECTIVES)
                progress = 1 - np.exp(-steps[:done_evals] / 600)
                noise = rng.normal(0, 0.05, size=(4, done_evals))
                values = {
                    "modes_covered": np.clip(np.round(8 * quality * progress + 8 * noise[0]), 0, 8),
                    "high_quality_fraction": np.clip(quality * progress + noise[1], 0, 1),
                    "mode_kl": np.abs(2 * (1 - quality * progress) + noise[2]),
                    "loss_d": 1.3 + noise[3],
                    "loss_g": 0.7 - noise[3],
                }
                wall = steps[:done_evals] * 0.015 * (1 + o / 10)
                lines = ["job_id,step,wall_s,metric,value"]
                for metric, series in values.items():
                    lines += [f"{spec.job_id},{s},{float(w)!r},{metric},{float(v)!r}"
                              for s, w, v in zip(steps, wall, series)]
                if status == "diverged":  # as the training loop logs it: one row at the first non-finite loss
                    bad_step = int(steps[done_evals - 1]) + STEPS // EVALS // 2
                    lines.append(f"{spec.job_id},{bad_step},{float(wall[-1])!r},diverged,1.0")
                folder.joinpath("metrics.csv").write_text("\n".join(lines) + "\n")
                if seed == 0 and status == "done":
                    (folder / "samples").mkdir()
                    pick = rng.integers(0, max(1, int(8 * quality)), size=1000)
                    np.save(folder / "samples" / "final.npy", centres[pick] + rng.normal(0, 0.05, (1000, 2)))
    return suite_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the folder here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-speed-"))
    try:
        start = time.perf_counter()
        suite_dir = write_suite(root)
        print(f"wrote {len(OBJECTIVES) * len(ARCHS) * len(SEEDS)} jobs x {EVALS} evaluations "
              f"in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        result = build_report(suite_dir)  # metric directions from the registered evaluators
        elapsed = time.perf_counter() - start
        print(f"build_report: {elapsed:.2f} s for {result.num_jobs} jobs, {len(result.figures)} figures "
              f"({'under' if elapsed < 10 else 'OVER'} the 10 s target)")
        for stage, seconds in result.timings.items():
            print(f"  {stage:<12} {seconds:6.2f} s")
    finally:
        if args.keep is None:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
