"""`bench report` on results folders built here with known values.

The golden test pins report.md (tests/data/report_golden.md; regenerate deliberately with
BENCH_UPDATE_GOLDEN=1) and checks the statistics printed in it against numpy/scipy called directly
on the values the folder was built from. The browser test opens report.html in headless Chromium.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from torch.testing import assert_close

from bench.report import build_report
from bench.report.aggregate import grid_axes
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
        lr_g=lr_g, lr_d=2e-4, betas=(0.5, 0.999), tricks=(), metrics=("modes",), metric_options=(), eval_every=100, eval_samples=500,
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


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory):
    suite_dir = write_golden_suite(tmp_path_factory.mktemp("results"))
    result = build_report(suite_dir, directions=DIRECTIONS)
    return result, result.markdown.read_text(encoding="utf-8")


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
    for objective, values in finals.items():
        row = row_for(rows, objective=objective)
        assert row["n"] == str(len(values))
        close4(row["final mean"], np.mean(values))
        close4(row["final median"], np.median(values))
        close4(row["final IQM"], _iqm(values))
        close4(row["best mean"], np.mean(values))  # monotone curves: best is final
        low, high = (number(x) for x in row["95% CI"].strip("[]").split(", "))
        assert low <= np.mean(values) <= high


def _probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    wins = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    return wins / (len(x) * len(y))


@pytest.mark.parametrize("metric, finals, sign", [("modes_covered", FINAL_MODES, 1.0), ("mode_kl", FINAL_KL, -1.0)])
def test_comparisons_in_the_report(golden, metric, finals, sign):
    _, markdown = golden
    rows = table_after(markdown, f"`{metric}` (")
    base = sign * np.asarray(finals["nsgan"], dtype=float)
    wgan = sign * np.asarray(finals["wgan"], dtype=float)
    lsgan = sign * np.asarray(finals["lsgan"], dtype=float)
    p_wgan = scipy.stats.wilcoxon(wgan - base).pvalue  # same seeds 0..6: paired
    p_lsgan = scipy.stats.mannwhitneyu(lsgan, base, alternative="two-sided").pvalue  # seed 6 failed: unpaired
    # Holm over the two comparisons of this metric
    (p_small, first), (p_large, second) = sorted([(p_wgan, "wgan"), (p_lsgan, "lsgan")])
    adjusted = {first: min(1.0, 2 * p_small)}
    adjusted[second] = max(adjusted[first], min(1.0, p_large))

    for objective, scores, p, test, n in (("wgan", wgan, p_wgan, "Wilcoxon", "7/7"),
                                          ("lsgan", lsgan, p_lsgan, "Mann-Whitney U", "6/7")):
        row = row_for(rows, objective=objective)
        assert (row["test"], row["n (objective/baseline)"]) == (test, n)
        close4(row["p"], p)
        close4(row["Holm p"], adjusted[objective])
        close4(row["P(improvement)"], _probability_of_improvement(scores, base))
        if adjusted[objective] < 0.05:
            assert row["verdict"] == "objective better"
            assert f"`{objective}` reaches a" in markdown
        else:
            assert row["verdict"] == f"no significant difference at n={n}"


def test_hand_checked_verdicts(golden):
    _, markdown = golden
    # modes_covered: every wgan seed beats its nsgan seed (exact Wilcoxon p = 2/128), lsgan beats all
    # of nsgan (exact Mann-Whitney p = 2/C(13,6)); Holm keeps both under 0.05
    rows = table_after(markdown, "`modes_covered` (")
    assert row_for(rows, objective="wgan")["verdict"] == "objective better"
    assert row_for(rows, objective="lsgan")["verdict"] == "objective better"
    # mode_kl: wgan and nsgan trade places seed by seed
    rows = table_after(markdown, "`mode_kl` (")
    assert row_for(rows, objective="wgan")["verdict"] == "no significant difference at n=7/7"


def test_jobs_partial_results_and_thresholds(golden):
    result, markdown = golden
    assert result.status_counts == {"done": 19, "diverged": 1, "failed": 1, "running": 1, "pending": 1}
    jobs = table_after(markdown, "## Jobs")
    assert row_for(jobs, objective="wgan")["divergence rate"] == "14%"  # 1 of 7 finished runs
    close4(row_for(jobs, objective="nsgan")["mean train time (s)"], np.mean([10.0 + s for s in SEEDS]))
    others = table_after(markdown, "## Unfinished")
    assert [(r["status"], r["objective"], r["seed"], r["reason"]) for r in others] == [
        ("failed", "lsgan", "6", "RuntimeError: CUDA out of memory"),
        ("running", "nsgan", "7", ""),
        ("pending", "wgan", "7", ""),
        ("diverged", "wgan", "3", "loss_d is nan at step 250"),
    ]
    assert row_for(jobs, objective="wgan")["median divergence step"] == "250"  # its NaN mode_kl at step 250
    assert row_for(jobs, objective="nsgan")["median divergence step"] == "n/a"  # none diverged


def _bootstrap_mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """The report's interval recomputed with scipy directly: percentile, 1000 resamples, seed 0."""
    result = scipy.stats.bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=1000, vectorized=True,
                                   axis=-1, method="percentile", rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def close_ci(printed: str, expected: tuple[float, float]) -> None:
    low, high = (number(x) for x in printed.strip("[]").split(", "))
    close4(str(low), expected[0])
    close4(str(high), expected[1])


@pytest.mark.parametrize("metric", ["modes_covered", "mode_kl"])
def test_convergence_columns_in_the_report(golden, metric):
    _, markdown = golden
    rows = table_after(markdown, f"Convergence and stability of `{metric}`:")
    direction = DIRECTIONS[metric]
    assert f"AUC mean ({direction} is better)" in rows[0]
    for objective, runs in finished_curves(metric).items():
        # AUC: trapezoid over steps / step range; spread: sample std of the last 3 (or fewer) values
        aucs = [np.trapezoid(values, steps) / (steps[-1] - steps[0]) for steps, _, values in runs]
        spreads = [np.std(values[-3:], ddof=1) for _, _, values in runs]
        best_at = [np.argmax(values) if direction == "higher" else np.argmin(values) for _, _, values in runs]
        row = row_for(rows, objective=objective)
        assert row["n"] == str(len(runs))
        close4(row[f"AUC mean ({direction} is better)"], np.mean(aucs))
        close_ci(row["AUC 95% CI"], _bootstrap_mean_ci(aucs))
        close4(row["last-3 spread mean (lower is steadier)"], np.mean(spreads))
        close_ci(row["spread 95% CI"], _bootstrap_mean_ci(spreads))
        close4(row["median step of best"], np.median([steps[k] for (steps, _, _), k in zip(runs, best_at)]))


def test_wgan_diverged_run_enters_with_its_two_finite_evaluations(golden):
    _, markdown = golden
    # by hand, wgan seed 3 (finals 7 modes, KL 0.65; no wiggle): modes [6, 7] -> AUC 6.5, spread
    # sqrt(0.5); the 6 other seeds' curves [f - 2 - w, f - 1, f] have AUC ((f-2-w) + 2(f-1) + f) / 4
    others = [(f, wiggle(seed)) for seed, f in enumerate(FINAL_MODES["wgan"]) if seed != 3]
    aucs = [6.5] + [((f - 2 - w) + 2 * (f - 1) + f) / 4 for f, w in others]
    row = row_for(table_after(markdown, "Convergence and stability of `modes_covered`:"), objective="wgan")
    close4(row["AUC mean (higher is better)"], np.mean(aucs))


@pytest.mark.parametrize("metric", ["modes_covered", "mode_kl"])
def test_steps_to_threshold_in_the_report_with_censored_runs(golden, metric):
    _, markdown = golden
    rows = [row for row in table_after(markdown, "## Steps to threshold") if row["metric"] == f"`{metric}`"]
    threshold, direction = THRESHOLDS[metric], DIRECTIONS[metric]
    for objective, runs in finished_curves(metric).items():
        first = []
        for steps, wall_s, values in runs:
            hits = np.flatnonzero(values >= threshold if direction == "higher" else values <= threshold)
            if hits.size:  # censored runs (no hit) have no time at all
                first.append((steps[hits[0]], wall_s[hits[0]]))
        row = row_for(rows, objective=objective)
        assert (row["threshold"], row["runs"], row["reached"]) == (f"{threshold:g}", str(len(runs)), str(len(first)))
        if first:
            close4(row["median steps to reach"], np.median([step for step, _ in first]))
            close4(row["median wall time to reach (s)"], np.median([wall for _, wall in first]))
        else:
            assert (row["median steps to reach"], row["median wall time to reach (s)"]) == ("n/a", "n/a")


def test_hand_checked_thresholds(golden):
    _, markdown = golden
    rows = table_after(markdown, "## Steps to threshold")
    # nsgan reaches 5 modes only on seed 3 (final 5 at step 300); wgan on every seed
    assert row_for(rows, metric="`modes_covered`", objective="nsgan")["reached"] == "1"
    assert row_for(rows, metric="`modes_covered`", objective="nsgan")["median steps to reach"] == "300"
    # wgan's first step at >= 5 modes: finals 6,6,5,7,5,8,6 over 3 evaluations (2 for seed 3)
    first_steps = [200, 200, 300, 100, 300, 100, 200]
    assert row_for(rows, metric="`modes_covered`", objective="wgan")["median steps to reach"] == \
        f"{np.median(first_steps):g}"
    # KL <= 0.5: no nsgan or wgan run gets there (censored, no median); lsgan seeds 0, 2, 5 at step 300
    assert [row_for(rows, metric="`mode_kl`", objective=o)["reached"] for o in ("nsgan", "lsgan", "wgan")] == \
        ["0", "3", "0"]
    assert row_for(rows, metric="`mode_kl`", objective="wgan")["median steps to reach"] == "n/a"
    assert row_for(rows, metric="`mode_kl`", objective="lsgan")["median wall time to reach (s)"] == "4.5"


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
            store.job(spec.job_id).samples_dir.mkdir()
            grid = np.full((16, 16, 3), 0.2 * seed)
            grid[4:12, 4:12] = (1.0, 0.5, 0.0) if objective == "hinge" else (0.0, 0.5, 1.0)
            plt.imsave(store.job(spec.job_id).samples_dir / "final.png", grid)
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
    assert row_for(table_after(markdown, "`modes_covered` ("), objective="lsgan")["verdict"] == \
        "no significant difference at n=2/2"


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
