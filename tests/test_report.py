"""`bench report` on results folders built here with known values.

The golden test pins report.md (tests/data/report_golden.md; regenerate deliberately with
BENCH_UPDATE_GOLDEN=1) and checks the statistics printed in it against numpy/scipy called directly
on the values the folder was built from. The browser test opens report.html in headless Chromium.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from torch.testing import assert_close

from bench.report import build_report
from bench.report.aggregate import declared_columns, grid_axes
from bench.spec import JobSpec
from bench.store import MetricRow, SuiteStore

GOLDEN = Path(__file__).parent / "data" / "report_golden.md"
CHROMIUM = Path("/usr/bin/chromium")
DIRECTIONS = {"modes_covered": "higher", "mode_kl": "lower"}
STEPS = (100, 200, 300)
SEEDS = tuple(range(7))
WALL_OFFSETS = {"nsgan": 10.0, "wgan": 20.0, "lsgan": 15.0}  # train_s = offset + seed; wall_s = step * offset / 1000
THRESHOLDS = {"modes_covered": 5.0, "mode_kl": 0.5}

# final values per objective and seed 0..6 (lsgan seed 6 failed; wgan seed 3 diverged after its
# evaluation at step 200, so that value is its final one)
FINAL_MODES = {"nsgan": [3, 4, 2, 5, 3, 4, 3], "wgan": [6, 6, 5, 7, 5, 8, 6], "lsgan": [5, 6, 6, 7, 5, 6]}
FINAL_KL = {
    "nsgan": [0.90, 0.75, 1.10, 0.60, 0.95, 0.80, 0.85],
    "wgan": [0.70, 0.90, 0.95, 0.65, 0.80, 0.85, 1.00],
    "lsgan": [0.50, 0.55, 0.45, 0.60, 0.52, 0.48],
}


def make_spec(objective: str, seed: int, *, suite: str = "golden", arch: str = "mlp", lr_g: float = 2e-4,
              dataset: str = "ring8") -> JobSpec:
    return JobSpec(
        suite=suite, dataset=dataset, dataset_options=(), objective=objective, objective_options=(), arch=arch,
        arch_options=(), seed=seed, steps=STEPS[-1], batch_size=64, latent_dim=2, critic_steps=1, optimizer="adam",
        lr_g=lr_g, lr_d=2e-4, betas=(0.5, 0.999), tricks=(), metrics=("modes",), metric_options=(), eval_every=100,
        checkpoint_every=300, log_every=100, device="cpu", deterministic=True, eval_precision="float32",
    )


def write_job(store: SuiteStore, spec: JobSpec, *, status: str | None, values: dict[str, Sequence[float]],
              reason: str | None = None, train_s: float | None = None, wall_per_step: float = 0.01) -> None:
    """One job folder: spec, status (none: no status.json, i.e. pending), metric rows at STEPS."""
    job = store.job(spec.job_id)
    job.write_spec(spec)
    evals = max((len(v) for v in values.values()), default=0)
    if status is not None:
        job.write_status(status, reason=reason, step=STEPS[evals - 1] if evals else None, train_s=train_s)
    job.append_metrics([MetricRow(spec.job_id, STEPS[k], STEPS[k] * wall_per_step, metric, float(series[k]))
                        for metric, series in values.items() for k in range(len(series))])


def curves(final_modes: float, final_kl: float, evals: int = 3, wiggle: float = 0.0) -> dict[str, list[float]]:
    """Values at the first `evals` steps ending at the given finals: coverage rises, KL falls; `wiggle`
    moves the first evaluation further from the final one (so runs differ in AUC and spread)."""
    return {
        "modes_covered": [final_modes - (evals - 1 - k) - (wiggle if k == 0 else 0.0) for k in range(evals)],
        "mode_kl": [round(final_kl + 0.3 * (evals - 1 - k) + (wiggle if k == 0 else 0.0), 6) for k in range(evals)],
        "loss_d": [0.69 + 0.01 * k for k in range(evals)],
    }


def wiggle(seed: int) -> float:
    return 0.1 * (seed % 3)


def finished_curves(metric: str) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The finite curves of `metric` written for the finished runs of each objective, in seed order:
    (steps, wall_s, values); wgan seed 3 diverged after 2 evaluations (its NaN at step 250 is not finite)."""
    found: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for objective, finals in FINAL_MODES.items():
        for seed, (modes, kl) in enumerate(zip(finals, FINAL_KL[objective])):
            evals = 2 if (objective, seed) == ("wgan", 3) else 3
            steps = np.asarray(STEPS[:evals], dtype=float)
            values = np.asarray(curves(modes, kl, evals, wiggle(seed))[metric], dtype=float)
            found.setdefault(objective, []).append((steps, steps * WALL_OFFSETS[objective] / 1000, values))
    return found


def write_golden_suite(root: Path) -> Path:
    """3 objectives x 1 arch x 7 seeds, 3 evaluations each; one diverged, one failed, one running and
    one pending job; final.npy samples for seed 0 of each objective."""
    suite_dir = root / "golden"
    store = SuiteStore(suite_dir)
    store.write_suite_yaml("name: golden\nreport:\n  baseline: nsgan\n  thresholds:\n"
                           + "".join(f"    {metric}: {value:g}\n" for metric, value in THRESHOLDS.items()))
    offsets = WALL_OFFSETS
    rng = np.random.default_rng(0)
    angles = np.arange(8) * np.pi / 4
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for objective, finals in FINAL_MODES.items():
        for seed, (modes, kl) in enumerate(zip(finals, FINAL_KL[objective])):
            spec = make_spec(objective, seed)
            diverged = objective == "wgan" and seed == 3
            write_job(store, spec, status="diverged" if diverged else "done",
                      reason="loss_d is nan at step 250" if diverged else None,
                      values=curves(modes, kl, evals=2 if diverged else 3, wiggle=wiggle(seed)),
                      train_s=offsets[objective] + seed,
                      wall_per_step=offsets[objective] / 1000)
            if diverged:  # the evaluation at divergence: not finite, so not the run's final value
                store.job(spec.job_id).append_metrics([MetricRow(spec.job_id, 250, 5.0, "mode_kl", float("nan"))])
            if seed == 0:
                store.job(spec.job_id).samples_dir.mkdir(parents=True)
                covered = centres[: int(modes)]
                points = covered[rng.integers(0, len(covered), 400)] + rng.normal(0, 0.05, (400, 2))
                np.save(store.job(spec.job_id).samples_dir / "final.npy", points)
    write_job(store, make_spec("lsgan", 6), status="failed", reason="RuntimeError: CUDA out of memory",
              values=curves(1, 2.0, evals=1))
    write_job(store, make_spec("nsgan", 7), status="running", values=curves(2, 1.5, evals=1))
    write_job(store, make_spec("wgan", 7), status=None, values={})
    return suite_dir


# ---- reading the markdown back --------------------------------------------------------------------

def table_after(markdown: str, marker: str) -> list[dict[str, str]]:
    """The first table after the line that starts with `marker`, as dicts column -> cell."""
    lines = markdown.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(marker))
    first = next(k for k in range(start + 1, len(lines)) if lines[k].startswith("|"))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row)) for row in body]


def row_for(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    assert len(found) == 1, f"expected one row matching {match}, found {len(found)} in {rows}"
    return found[0]


def number(cell: str) -> float:
    return float(cell)


def close4(printed: str, expected: float) -> None:
    """A number printed with 4 significant digits equals `expected`."""
    assert_close(number(printed), float(expected), rtol=6e-4, atol=1e-12)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory):
    suite_dir = write_golden_suite(tmp_path_factory.mktemp("results"))
    result = build_report(suite_dir, directions=DIRECTIONS, failed_at={})
    return result, result.markdown.read_text(encoding="utf-8")


# ---- what the folder holds, worked out without bench -------------------------------------------------

NOT_SURVIVED = {("wgan", 3), ("lsgan", 6)}  # wgan seed 3 diverged, lsgan seed 6 failed: the worst outcome
SENTINEL = 1e6  # a finite stand-in for the worst outcome, beyond every value in the folder


def all_runs(finals: dict[str, list[float]], direction: str, worst: float = np.inf) -> dict[str, list[float]]:
    """Each objective's 7 runs (seeds 0..6) in the metric's units, a run that did not survive scoring
    `worst` in the metric's bad direction (+worst where lower is better, -worst where higher is)."""
    bad = worst if direction == "lower" else -worst
    found = {}
    for objective, values in finals.items():
        values = list(values) + [np.nan] * (len(SEEDS) - len(values))
        found[objective] = [bad if (objective, seed) in NOT_SURVIVED else values[seed] for seed in SEEDS]
    return found


def survivors(finals: dict[str, list[float]]) -> dict[str, list[float]]:
    return {objective: [v for seed, v in enumerate(values) if (objective, seed) not in NOT_SURVIVED]
            for objective, values in finals.items()}


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """mean -+ t_{0.975, n-1} s / sqrt(n)."""
    values = np.asarray(values, dtype=float)
    half = scipy.stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def printed_score(printed: str, expected: float) -> None:
    """A score cell: `worst` for the worst outcome, else 4 significant digits."""
    if np.isinf(expected):
        assert printed == "worst"
    else:
        close4(printed, expected)


def printed_interval(printed: str, expected: tuple[float, float]) -> None:
    low, high = printed.strip("[]").split(", ")
    printed_score(low, expected[0])
    printed_score(high, expected[1])


def signed_rank_p(differences: Sequence[float]) -> float:
    """Exact two-sided Wilcoxon signed-rank p by enumerating every sign assignment: zeros dropped,
    average ranks of |d| for ties (infinite differences tie above every finite one)."""
    d = np.asarray([x for x in differences if x != 0], dtype=float)
    ranks = scipy.stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    signs = np.array(list(itertools.product([0, 1], repeat=d.size)), dtype=bool)
    plus = (signs * ranks).sum(axis=1)
    return float(np.mean(np.abs(plus - centre) >= abs(observed - centre) - 1e-12))


# ---- golden ----------------------------------------------------------------------------------------

def test_report_md_matches_the_stored_reference(golden):
    _, markdown = golden
    if os.environ.get("BENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(markdown, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run with BENCH_UPDATE_GOLDEN=1 once, then review it"
    assert markdown == GOLDEN.read_text(encoding="utf-8")


def _iqm(values: Sequence[float]) -> float:
    ordered = np.sort(np.asarray(values, dtype=float))
    cut = len(ordered) // 4
    return float(ordered[cut: len(ordered) - cut].mean())


@pytest.mark.parametrize("metric, finals", [("modes_covered", FINAL_MODES), ("mode_kl", FINAL_KL)])
def test_summary_statistics_in_the_report(golden, metric, finals):
    _, markdown = golden
    rows = table_after(markdown, f"### {metric}")
    assert [row["objective"] for row in rows] == ["nsgan", "lsgan", "wgan"]  # baseline first
    everyone, alive = all_runs(finals, DIRECTIONS[metric]), survivors(finals)
    for objective in finals:
        row = row_for(rows, objective=objective)
        assert row["survived"] == f"{len(alive[objective])}/7"
        printed_score(row["final median"], np.median(everyone[objective]))
        printed_score(row["final IQM"], _iqm(everyone[objective]))
        # 7 runs: P(Binomial(7, 1/2) <= 0) = 1/128, so [x_(1), x_(7)] covers the median with 1 - 2/128 >= 95%
        ordered = sorted(everyone[objective])
        printed_interval(row["median 95% CI"], (ordered[0], ordered[-1]))
        close4(row["survivors' mean"], np.mean(alive[objective]))
        printed_interval(row["mean 95% CI (t)"], t_interval(alive[objective]))
        printed_score(row["best median"], np.median(everyone[objective]))  # monotone curves: best is final


def _probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    wins = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    return wins / (len(x) * len(y))


def _noether_pairs(differences: np.ndarray, comparisons: int) -> int:
    """Noether (1987) for the signed-rank test at alpha 0.05 / comparisons, power 0.8, from the share
    of positive Walsh averages; at least the seeds whose exact minimum p * comparisons is below 0.05."""
    walsh = [differences[i] + differences[j] for i in range(len(differences)) for j in range(i, len(differences))]
    share = np.mean([(w > 0) + 0.5 * (w == 0) for w in walsh])
    z = scipy.stats.norm.ppf(1 - 0.05 / (2 * comparisons)) + scipy.stats.norm.ppf(0.8)
    attainable = next(n for n in range(1, 100) if 2 / 2**n * comparisons < 0.05)
    return max(math.ceil(z**2 / (3 * (share - 0.5) ** 2)), attainable)


@pytest.mark.parametrize("metric, finals, sign", [("modes_covered", FINAL_MODES, 1.0), ("mode_kl", FINAL_KL, -1.0)])
def test_comparisons_in_the_report(golden, metric, finals, sign):
    _, markdown = golden
    rows = table_after(markdown, f"`{metric}` (")
    scores = {o: sign * np.asarray(v) for o, v in all_runs(finals, DIRECTIONS[metric], worst=SENTINEL).items()}
    base = scores["nsgan"]
    # both share seeds 0..6 (a diverged or failed seed is a pair at the worst outcome): paired
    p = {o: scipy.stats.wilcoxon(scores[o] - base).pvalue for o in ("wgan", "lsgan")}
    (p_small, first), (p_large, second) = sorted((value, o) for o, value in p.items())
    adjusted = {first: min(1.0, 2 * p_small)}
    adjusted[second] = max(adjusted[first], min(1.0, p_large))

    for objective in ("wgan", "lsgan"):
        row = row_for(rows, objective=objective)
        assert (row["test"], row["n (objective/baseline)"], row["survived (objective/baseline)"], row["left out"]) \
            == ("Wilcoxon", "7/7", "6/7", "none")
        close4(row["p"], p[objective])
        close4(row["Holm p"], adjusted[objective])
        close4(row["min attainable p"], 2 / 2**7)
        close4(row["P(improvement)"], _probability_of_improvement(scores[objective], base))
        assert row["seeds needed"] == str(_noether_pairs(scores[objective] - base, comparisons=2))
        if adjusted[objective] < 0.05:
            assert row["verdict"] == "objective better"
        else:  # 2/2^7 * 2 comparisons < 0.05: these seeds could have decided
            assert row["verdict"] == "no significant difference at n=7/7"


def test_hand_checked_verdicts(golden):
    _, markdown = golden
    # modes_covered, wgan - nsgan per seed: 3, 2, 3, worst (seed 3 diverged), 2, 4, 3. Scored by the
    # 7 modes it reached before diverging, wgan would win on every seed (p = 2/128); as the worst
    # outcome, that seed's difference has the largest rank: W- = 7 of 28, exact p = 36/128
    rows = table_after(markdown, "`modes_covered` (")
    assert signed_rank_p([3, 2, 3, -np.inf, 2, 4, 3]) == 36 / 128
    assert row_for(rows, objective="wgan")["p"] == "0.2812"
    assert row_for(rows, objective="wgan")["verdict"] == "no significant difference at n=7/7"
    # lsgan - nsgan: 2, 2, 4, 2, 2, 2, worst (seed 6 failed): ranks 3 x5, 6, 7 -> W- = 7, p = 36/128
    assert signed_rank_p([2, 2, 4, 2, 2, 2, -np.inf]) == 36 / 128
    assert row_for(rows, objective="lsgan")["p"] == "0.2812"
    # mode_kl, improvement of lsgan on nsgan: 0.4, 0.2, 0.65, 0 (dropped), 0.43, 0.32, worst:
    # W- = 6 of 21 over 6 pairs: the 14 subsets of 1..6 summing to <= 6, both tails: 28/64
    rows = table_after(markdown, "`mode_kl` (")
    assert signed_rank_p([0.4, 0.2, 0.65, 0.0, 0.43, 0.32, -np.inf]) == 28 / 64
    assert row_for(rows, objective="lsgan")["p"] == "0.4375"
    assert row_for(rows, objective="wgan")["verdict"] == "no significant difference at n=7/7"
    assert "No objective differs significantly from `nsgan`" in markdown
    assert "Provisional: 2 jobs have not finished" in markdown


def test_jobs_partial_results_and_thresholds(golden):
    result, markdown = golden
    assert result.status_counts == {"done": 19, "diverged": 1, "failed": 1, "running": 1, "pending": 1}
    jobs = table_after(markdown, "## Jobs")
    assert row_for(jobs, objective="wgan")["divergence rate"] == "14%"  # 1 of 7 finished runs
    assert [row_for(jobs, objective=o)["survived"] for o in ("nsgan", "lsgan", "wgan")] == ["7/7", "6/7", "6/7"]
    close4(row_for(jobs, objective="nsgan")["mean train time (s)"], np.mean([10.0 + s for s in SEEDS]))
    others = table_after(markdown, "## Unfinished")
    assert [(r["status"], r["outcome"], r["objective"], r["seed"], r["reason"]) for r in others] == [
        ("failed", "failed", "lsgan", "6", "RuntimeError: CUDA out of memory"),
        ("running", "unfinished", "nsgan", "7", ""),
        ("pending", "unfinished", "wgan", "7", ""),
        ("diverged", "diverged", "wgan", "3", "loss_d is nan at step 250"),
    ]
    assert row_for(jobs, objective="wgan")["median divergence step"] == "250"  # its NaN mode_kl at step 250
    assert row_for(jobs, objective="nsgan")["median divergence step"] == "n/a"  # none diverged


def surviving_curves(metric: str) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    return {objective: [curve for seed, curve in enumerate(runs) if (objective, seed) not in NOT_SURVIVED]
            for objective, runs in finished_curves(metric).items()}


def window_mean_level(x: np.ndarray, values: np.ndarray, start: float, end: float) -> float:
    """The piecewise-linear curve's mean over [start, end], on a fine grid."""
    grid = np.linspace(start, end, 200_001)
    return float(np.trapezoid(np.interp(grid, x, values), grid) / (end - start))


@pytest.mark.parametrize("metric", ["modes_covered", "mode_kl"])
def test_convergence_columns_in_the_report(golden, metric):
    _, markdown = golden
    rows = table_after(markdown, f"Convergence and stability of `{metric}`")
    direction = DIRECTIONS[metric]
    assert f"AUC over steps ({direction} is better)" in rows[0]
    # every survivor spans steps 100..300; wall time: the latest first evaluation is wgan's (100 * 0.02 s)
    # and the earliest last one nsgan's (300 * 0.01 s)
    assert "generator steps [100, 300], gradient evaluations [200, 600], wall time (s) [2, 3]" in markdown
    for objective, runs in surviving_curves(metric).items():
        aucs = [np.trapezoid(values, steps) / (steps[-1] - steps[0]) for steps, _, values in runs]
        wall_aucs = [window_mean_level(wall_s, values, 2.0, 3.0) for _, wall_s, values in runs]
        spreads = [np.std(values[-3:], ddof=1) for _, _, values in runs]
        best_at = [np.argmax(values) if direction == "higher" else np.argmin(values) for _, _, values in runs]
        row = row_for(rows, objective=objective)
        assert row["n"] == str(len(runs))
        close4(row[f"AUC over steps ({direction} is better)"], np.mean(aucs))
        printed_interval(row["AUC 95% CI"], t_interval(aucs))
        close4(row["AUC over gradient evaluations"], np.mean(aucs))  # 1 critic step: 2 per step, same mean level
        close4(row["AUC over wall time"], np.mean(wall_aucs))
        close4(row["last-3 spread mean (lower is steadier)"], np.mean(spreads))
        printed_interval(row["spread 95% CI"], t_interval(spreads))
        close4(row["median step of best"], np.median([steps[k] for (steps, _, _), k in zip(runs, best_at)]))


def test_the_diverged_wgan_run_is_left_out_of_survivor_means(golden):
    _, markdown = golden
    # wgan's 6 surviving seeds' curves [f - 2 - w, f - 1, f] have AUC ((f-2-w) + 2(f-1) + f) / 4; seed 3
    # (diverged after 2 evaluations, AUC 6.5 over its own range) is not among them
    alive = [(f, wiggle(seed)) for seed, f in enumerate(FINAL_MODES["wgan"]) if seed != 3]
    aucs = [((f - 2 - w) + 2 * (f - 1) + f) / 4 for f, w in alive]
    row = row_for(table_after(markdown, "Convergence and stability of `modes_covered`"), objective="wgan")
    close4(row["AUC over steps (higher is better)"], np.mean(aucs))
    assert row["survived"] == "6/7"


@pytest.mark.parametrize("metric", ["modes_covered", "mode_kl"])
def test_steps_to_threshold_in_the_report_with_censored_runs(golden, metric):
    _, markdown = golden
    rows = [row for row in table_after(markdown, "## Steps to threshold") if row["metric"] == f"`{metric}`"]
    threshold, direction = THRESHOLDS[metric], DIRECTIONS[metric]
    for objective, runs in finished_curves(metric).items():
        times = []  # a run that never reaches it, or did not survive, takes forever
        for seed in SEEDS:
            if seed >= len(runs) or (objective, seed) in NOT_SURVIVED:
                times.append((np.inf, np.inf))
                continue
            steps, wall_s, values = runs[seed]
            hits = np.flatnonzero(values >= threshold if direction == "higher" else values <= threshold)
            times.append((steps[hits[0]], wall_s[hits[0]]) if hits.size else (np.inf, np.inf))
        row = row_for(rows, objective=objective)
        reached = sum(np.isfinite(step) for step, _ in times)
        assert (row["threshold"], row["runs"], row["reached"]) == (f"{threshold:g}", "7", str(reached))
        assert row["survived"] == f"{7 - sum((objective, seed) in NOT_SURVIVED for seed in SEEDS)}/7"
        for column, expected in (("median steps to reach", np.median([s for s, _ in times])),
                                 ("median gradient evaluations to reach", 2 * np.median([s for s, _ in times])),
                                 ("median wall time to reach (s)", np.median([w for _, w in times]))):
            if np.isinf(expected):
                assert row[column] == "not reached"
            else:
                close4(row[column], expected)


def test_hand_checked_thresholds(golden):
    _, markdown = golden
    rows = table_after(markdown, "## Steps to threshold")
    # nsgan reaches 5 modes only on seed 3: 1 of 7, so its median run never does
    assert row_for(rows, metric="`modes_covered`", objective="nsgan")["reached"] == "1"
    assert row_for(rows, metric="`modes_covered`", objective="nsgan")["median steps to reach"] == "not reached"
    # wgan's first step at >= 5 modes: finals 6,6,5,_,5,8,6 over 3 evaluations; seed 3 diverged (never)
    first_steps = [200, 200, 300, np.inf, 300, 100, 200]
    assert row_for(rows, metric="`modes_covered`", objective="wgan")["median steps to reach"] == \
        f"{np.median(first_steps):g}"
    # lsgan: finals 5,6,6,7,5,6 (first >= 5 at steps 300,200,200,100,300,200), seed 6 failed: median 200
    # generator steps = 400 gradient evaluations (1 critic step) = 200 * 0.015 s
    lsgan = row_for(rows, metric="`modes_covered`", objective="lsgan")
    assert (lsgan["median steps to reach"], lsgan["median gradient evaluations to reach"],
            lsgan["median wall time to reach (s)"]) == ("200", "400", "3")
    # KL <= 0.5: lsgan seeds 0, 2, 5 at step 300, 3 of 7: not the median run
    assert [row_for(rows, metric="`mode_kl`", objective=o)["reached"] for o in ("nsgan", "lsgan", "wgan")] == \
        ["0", "3", "0"]
    assert row_for(rows, metric="`mode_kl`", objective="lsgan")["median steps to reach"] == "not reached"


def test_the_report_opens_with_its_summary(golden):
    result, markdown = golden
    opening = markdown.split("## Contents")[0]
    assert "Summary. Provisional: 2 of 23 jobs have not finished (1 running, 1 pending)" in opening
    assert "ring8, mlp:" in opening
    assert "- survived (runs finished and trained / runs ended): nsgan 7/7, lsgan 6/7 (1 failed), wgan 6/7 " \
           "(1 diverged)." in opening
    assert "- wgan: 1/7 seeds diverged (median divergence step 250)." in opening
    assert "- lsgan: 1/7 seeds failed (seed 6: RuntimeError: CUDA out of memory)." in opening
    assert "convergence curves lose runs: lsgan n = 6/7 from step 200, wgan n = 6/7 from step 300" in opening
    assert result.summary[0].startswith("Provisional: 2 of 23 jobs have not finished")
    assert "ring8, mlp:" in result.summary
    assert all(line in opening for line in (s.removeprefix("  - ") for s in result.summary[4:]))


def test_convergence_section_says_where_n_falls(golden):
    _, markdown = golden
    section = markdown.split("## Convergence")[1].split("## Comparison")[0]
    # lsgan seed 6 failed after its evaluation at step 100, wgan seed 3 diverged after step 200
    assert "- `modes_covered`, lsgan on mlp: n = 6/7 from step 200." in section
    assert "- `modes_covered`, wgan on mlp: n = 6/7 from step 300." in section
    assert "nsgan on mlp" not in section  # its running seed 7 is no run: every run at every step


def test_figures_are_linked_relative_with_their_seed_counts(golden):
    result, markdown = golden
    names = sorted(path.name for path in result.figures)
    assert names == ["convergence_mode_kl.png", "convergence_modes_covered.png", "final_mode_kl.png",
                     "final_modes_covered.png", "mode_coverage.png", "rank_heatmap.png", "samples_points.png",
                     "training_curves.png"]
    for path in result.figures:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"](figures/{path.name})" in markdown
    captions = re.findall(r"^\*(.+)\*$", markdown, flags=re.MULTILINE)
    assert len(captions) == len(result.figures)
    assert all(re.search(r"n = \d+(-\d+)? seeds?", caption) for caption in captions), captions


def test_rank_heatmap_rows_follow_the_ranking_table(golden):
    result, markdown = golden
    table = tuple(row["objective"] for row in table_after(markdown, "## Ranking"))
    assert table == ("lsgan", "wgan", "nsgan")  # by mean rank, not baseline first
    assert result.figure_files["ranks"].rows == table


def test_html_is_self_contained(golden):
    result, _ = golden
    html = result.html.read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,|#)[^"]*"', html) == []
    assert "http://" not in html and "https://" not in html and "@import" not in html and "url(" not in html
    assert html.count('src="data:image/png;base64,') == len(result.figures)


# ---- a real browser ---------------------------------------------------------------------------------

def _chromium(*arguments: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_data}",
               "--window-size=1280,2400", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.browser
def test_report_html_in_headless_chromium(golden, tmp_path):
    if not CHROMIUM.exists():
        message = (f"{CHROMIUM} is missing: install the Debian package `chromium` "
                   "(apt-get install -y chromium) to run the browser test")
        if os.environ.get("CI") or os.environ.get("BENCH_BROWSER_TESTS"):
            pytest.fail(message)  # CI installs it: missing there is a broken CI, not a skip
        pytest.skip(message)
    result, _ = golden
    url = result.html.as_uri()
    screenshot = tmp_path / "report.png"
    shot = _chromium(f"--screenshot={screenshot}", url, user_data=tmp_path / "profile-shot")
    assert screenshot.exists(), f"chromium wrote no screenshot (rc {shot.returncode}): {shot.stderr[-2000:]}"
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 1280  # IHDR width
    keep = os.environ.get("BENCH_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(screenshot, keep)

    dom = _chromium("--dump-dom", url, user_data=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'data-sortable="ready"' in page  # the inline script ran
    tables = re.findall(r"<table[^>]*>(.*?)</table>", page, flags=re.DOTALL)
    assert len(tables) >= 8
    assert all(len(re.findall(r"<tr>", table)) >= 2 for table in tables)  # a header and rows
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(sources) == len(result.figures)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert re.search(r'<nav>.*href="#comparison-with-nsgan"', page, flags=re.DOTALL)


# ---- other folders -----------------------------------------------------------------------------------

def test_grid_axes_are_the_columns_that_vary_within_objective_and_arch():
    jobs = pd.DataFrame({
        "job_id": [f"j{k}" for k in range(8)],
        "objective": ["nsgan"] * 4 + ["wgan"] * 4,
        "arch": ["mlp", "mlp", "dcgan", "dcgan"] * 2,
        "seed": [0, 1] * 4,
        "lr_g": ["0.0002"] * 4 + ["5e-05"] * 4,  # the objective's published rate: not an axis
        "dataset": ["ring8"] * 8,
        "critic_steps": ["1", "1", "1", "1", "5", "5", "5", "5"],
        "batch_size": ["64", "128"] * 4,  # varies with the seed index inside a group: an axis
        "status": ["done"] * 8,
    })
    assert grid_axes(jobs) == ["objective", "arch", "batch_size"]


def test_a_missing_baseline_is_reported_and_comparisons_skipped(tmp_path):
    store = SuiteStore(tmp_path / "nobase")
    store.write_suite_yaml("name: nobase\nreport:\n  thresholds:\n    fid_inception: 30\n")
    for objective in ("hinge", "lsgan"):
        for seed in (0, 1):
            spec = make_spec(objective, seed, suite="nobase", dataset="digits")
            write_job(store, spec, status="done", values=curves(4 + seed, 0.5, evals=2), train_s=1.0)
            images = np.full((4, 8, 8, 3), 50 * seed, dtype=np.uint8)
            images[:, 2:6, 2:6] = (255, 128, 0) if objective == "hinge" else (0, 128, 255)
            store.job(spec.job_id).save_final_samples(images)
    result = build_report(store.root, directions=DIRECTIONS)
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "](figures/samples_images.png)" in markdown  # an image suite: each objective's sample grid
    assert "samples_points.png" not in markdown
    note = "Baseline `nsgan` is not among the objectives of this suite (hinge, lsgan): comparisons skipped."
    assert note in markdown and note in result.notes
    assert ("Threshold on `fid_inception` skipped: no run has reported it "
            "(ranked metrics: mode_kl, modes_covered).") in markdown
    assert "| Wilcoxon |" not in markdown
    # an explicit baseline overrides the suite's
    markdown = build_report(store.root, baseline="hinge", directions=DIRECTIONS).markdown.read_text(encoding="utf-8")
    # 2 paired seeds: the smallest two-sided signed-rank p is 2/2^2 = 0.5, whatever they show
    assert row_for(table_after(markdown, "`modes_covered` ("), objective="lsgan")["verdict"] == \
        "undecidable at n=2/2 (min attainable p 0.5)"


def test_a_suite_with_nothing_finished_still_reports(tmp_path):
    store = SuiteStore(tmp_path / "fresh")
    store.write_suite_yaml("name: fresh\n")
    write_job(store, make_spec("nsgan", 0, suite="fresh"), status=None, values={})
    write_job(store, make_spec("wgan", 0, suite="fresh"), status="running", values=curves(1, 2.0, evals=1))
    result = build_report(store.root, directions=DIRECTIONS)
    markdown = result.markdown.read_text(encoding="utf-8")
    assert result.figures == ()
    assert result.status_counts == {"done": 0, "diverged": 0, "failed": 0, "running": 1, "pending": 1}
    assert "No ranked metric has been reported yet." in markdown
    others = table_after(markdown, "## Unfinished")
    assert [(r["status"], r["objective"]) for r in others] == [("running", "wgan"), ("pending", "nsgan")]
    assert result.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_an_evaluation_written_twice_is_refused_naming_the_job(tmp_path):
    store = SuiteStore(tmp_path / "twice")
    store.write_suite_yaml("name: twice\n")
    spec = make_spec("nsgan", 0, suite="twice")
    write_job(store, spec, status="done", values=curves(4, 0.5, evals=2), train_s=1.0)
    store.job(spec.job_id).append_metrics([MetricRow(spec.job_id, 200, 2.0, "mode_kl", 0.4)])
    with pytest.raises(ValueError, match=rf"one evaluation twice \(1 repeated rows: job {spec.job_id} mode_kl at "
                                         r"step 200\)"):
        build_report(store.root, directions=DIRECTIONS)


def test_a_column_the_suite_sets_names_groups_even_when_it_varies_with_another():
    # PacDCGAN2 beside DCGAN: an include rule sets the packing trick and the batch together
    jobs = pd.DataFrame({
        "job_id": [f"j{k}" for k in range(4)],
        "objective": ["nsgan"] * 4,
        "arch": ["dcgan"] * 4,
        "seed": [0, 1, 0, 1],
        "lr_g": ["0.0002"] * 4,
        "batch_size": ["64", "64", "128", "128"],
        "tricks": ["none", "none", 'packing{"m": 2}', 'packing{"m": 2}'],
        "status": ["done"] * 4,
    })
    assert grid_axes(jobs) == ["objective", "arch", "batch_size"]
    suite = {"grid": {"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0, 1], "tricks": [[]], "lr": [2e-4]},
             "include": [{"tricks": [{"name": "packing", "options": {"m": 2}}], "batch_size": 128}]}
    assert declared_columns(suite) == ["objective", "arch", "seed", "tricks", "lr_g", "lr_d", "batch_size"]
    assert grid_axes(jobs, declared_columns(suite)) == ["objective", "arch", "batch_size", "tricks"]
