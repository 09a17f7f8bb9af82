"""`bench plan`: seeds needed against hand computations, cost from the rough rates and from measured ones."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import TINY_SUITE, write_suite

from bench.catalogue import build_catalogue
from bench.cli import main
from bench.plan import attainable_seeds, effect_seeds, plan_lines, seeds_needed
from bench.store import SuiteStore
from bench.suite import load_suite

# z quantiles by hand (normal table): z_0.975, z_{1 - 0.05/6}, z_0.8 (80% power)
Z_975, Z_99167, Z_80 = 1.959964, 2.393980, 0.841621
ARE = 3 / math.pi  # 0.954930


@pytest.mark.parametrize("alpha, comparisons, expected", [
    (0.05, 1, 6),    # 2/2^5 = 0.0625 >= 0.05; 2/2^6 = 0.03125 < 0.05
    (0.05, 3, 7),    # 2/2^6 = 0.03125 >= 0.01667; 2/2^7 = 0.015625 < 0.016667
    (0.05, 12, 9),   # 2/2^8 = 0.0078 >= 0.004167; 2/2^9 = 0.0039 < 0.004167
    (0.05, 14, 10),  # 2/2^9 = 0.0039 >= 0.003571; 2/2^10 = 0.00195 < 0.003571
])
def test_attainable_paired(alpha: float, comparisons: int, expected: int) -> None:
    assert attainable_seeds(alpha, comparisons) == expected


def test_attainable_unpaired() -> None:
    # 2 / C(6, 3) = 0.1 >= 0.05; 2 / C(8, 4) = 2/70 = 0.0286 < 0.05
    assert attainable_seeds(0.05, 1, paired=False) == 4


@pytest.mark.parametrize("effect, comparisons, paired, by_hand, expected", [
    (0.8, 1, True, ((Z_975 + Z_80) / 0.8) ** 2 / ARE, 13),       # 12.2639 / 0.95493 = 12.84
    (0.8, 3, True, ((Z_99167 + Z_80) / 0.8) ** 2 / ARE, 18),     # 16.3580 / 0.95493 = 17.13
    (2.0, 3, True, ((Z_99167 + Z_80) / 2.0) ** 2 / ARE, 3),      # 2.6173 / 0.95493 = 2.74
    (0.8, 1, False, 2 * ((Z_975 + Z_80) / 0.8) ** 2 / ARE, 26),  # 24.5277 / 0.95493 = 25.69 per objective
])
def test_effect_seeds(effect: float, comparisons: int, paired: bool, by_hand: float, expected: int) -> None:
    assert math.ceil(by_hand) == expected
    assert effect_seeds(effect, 0.05, comparisons, paired=paired) == expected


def test_needed_is_the_larger_bound() -> None:
    assert seeds_needed(0.8, 0.05, 3).needed == 18  # effect bound 18 > attainable 7
    assert seeds_needed(2.0, 0.05, 3).needed == 7   # attainable 7 > effect bound 3
    with pytest.raises(ValueError, match="the effect size must be positive, got 0"):
        effect_seeds(0, 0.05, 3)


FOUR = {"grid": {"objective": ["nsgan", "rsgan", "lsgan", "wgan"], "arch": ["mlp"], "seed": [0, 1, 2, 3, 4]},
        "train": {**TINY_SUITE["train"], "critic_steps": 1}}


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _cells(lines: list[str], header: str) -> list[list[str]]:
    """The rows of the text table whose header line starts with `header` (cells split on 2+ spaces)."""
    start = next(k for k, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if "  " not in line:
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_plan_of_four_objectives(tmp_path: Path, catalogue) -> None:
    suite = load_suite(write_suite(tmp_path, FOUR), catalogue)
    lines = plan_lines(suite, results_root=tmp_path / "results")
    # 4 objectives x 5 seeds, 60 steps each; one critic step: 2 gradient evaluations per step
    assert lines[0] == ("suite tiny: 20 jobs, 1,200 generator steps (2,400 gradient evaluations: generator steps x "
                        "(critic_steps + 1))")
    # mlp: 100 steps/s at one critic step and batch 64; 1,200 steps -> 12 s; no GPU rate
    assert _cells(lines, "arch")[0] == ["mlp", "20", "1,200", "100", "12 s", "n/a", "n/a"]
    assert "total: CPU 12 s, GPU n/a." in lines
    # m = 3 comparisons with nsgan; 2/2^7 < 0.05/3; ((2.393980 + 0.841621) / 0.8)^2 / (3/pi) = 17.13 -> 18
    assert "    attainable: 2/2^n < alpha/m = 0.01667 from n = 7 (2/2^7 = 0.01562, 2/2^6 = 0.03125)" in lines
    assert ("    effect d = 0.8: ceil(((z_{1-alpha/(2m)} + z_power) / d)^2 / (3/pi)) = "
            "ceil((3.2356 / 0.8)^2 / 0.9549) = 18") in lines
    assert "    needed: 18 paired seeds" in lines
    assert _cells(lines, "cell") == [["mlp", "3 vs nsgan", "5", "18", "no, undecidable"]]
    assert lines[-1] == ("Not enough for 3 of the 3 comparisons: 3 have fewer seeds than the attainable bound, so "
                         "they are undecidable whatever the runs show; 0 can reach significance but have under 80% "
                         "power at d = 0.8.")


def test_a_larger_effect_needs_only_the_attainable_seeds(tmp_path: Path, catalogue) -> None:
    eight = {**FOUR, "grid": {**FOUR["grid"], "seed": list(range(8))}}
    lines = plan_lines(load_suite(write_suite(tmp_path, eight), catalogue), effect=2.0, results_root=tmp_path)
    assert "    effect d = 2: ceil(((z_{1-alpha/(2m)} + z_power) / d)^2 / (3/pi)) = ceil((3.2356 / 2)^2 / 0.9549) = 3" \
        in lines
    assert _cells(lines, "cell") == [["mlp", "3 vs nsgan", "8", "7", "yes"]]
    assert lines[-1] == "Enough: each of the 3 comparisons has the seeds it needs."


def test_objectives_without_shared_seeds_are_sized_unpaired(tmp_path: Path, catalogue) -> None:
    apart = {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0, 1, 2, 3]},
             "include": [{"objective": "rsgan", "seed": [10, 11, 12, 13]}]}
    lines = plan_lines(load_suite(write_suite(tmp_path, apart), catalogue), results_root=tmp_path)
    assert "    attainable: 2/C(2n, n) < alpha/m = 0.05 from n = 4 runs per objective" in lines
    assert "    needed: 26 runs per objective" in lines
    assert _cells(lines, "cell") == [["mlp", "1 vs nsgan", "4 unpaired", "26", "no, underpowered"]]


def test_measured_rate_replaces_the_rough_one(tmp_path: Path, catalogue) -> None:
    suite = load_suite(write_suite(tmp_path, FOUR), catalogue)
    store = SuiteStore(tmp_path / "results" / "tiny")
    for job in suite.jobs[:2]:  # 60 steps in 1.2 s each: 120 steps / 2.4 s = 50 steps/s
        store.job(job.job_id).write_spec(job)
        store.job(job.job_id).write_status("done", step=60, train_s=1.2)
    lines = plan_lines(suite, results_root=tmp_path / "results")
    assert _cells(lines, "arch")[0] == ["mlp", "20", "1,200", "100", "12 s", "n/a", "n/a", "50", "24 s"]
    assert "total: CPU 12 s, GPU n/a, at the measured rate 24 s." in lines
    assert any(line.startswith("Measured on this suite's results under ") and line.endswith(
        "used instead of the rough rates: mlp 50 (2 jobs, 120 steps in 2.4 s).") for line in lines)


def test_cli_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    assert capsys.readouterr().out.startswith(
        "usage: bench plan [-h] [--effect D] [--results RESULTS]\n                  [--only KEY=V1[,V2...]]\n")
    path = write_suite(tmp_path, FOUR)
    assert main(["plan", str(path), "--effect", "2", "--results", str(tmp_path / "results")]) == 0
    assert "suite tiny: 20 jobs, 1,200 generator steps" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["plan", str(path), "--effect", "0"])
    assert exited.value.code == 2
    assert "--effect: must be a number > 0, got 0" in capsys.readouterr().err


def test_no_baseline_no_comparison(tmp_path: Path, catalogue) -> None:
    suite = load_suite(write_suite(tmp_path, {**FOUR, "report": {"baseline": "hinge"}}), catalogue)
    # the preflight refuses such a suite for `bench run`; the plan says why it would compare nothing
    assert plan_lines(suite, results_root=tmp_path)[-1] == (
        "seeds: no comparisons, the baseline 'hinge' is not among the objectives (lsgan, nsgan, rsgan, wgan).")


def test_a_narrower_convolutional_network_is_estimated_cheaper(tmp_path: Path, catalogue) -> None:
    from bench.preflight import rough_cpu_seconds

    digits = {"dataset": {"name": "digits"}, "grid": {"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]},
              "train": {**TINY_SUITE["train"], "steps": 1500}, "metrics": [], "metric_options": {}}
    default = load_suite(write_suite(tmp_path, {**digits, "archs": {}}, name="a.yaml"), catalogue).jobs[0]
    narrow = load_suite(write_suite(tmp_path, {**digits, "archs": {"dcgan": {"width": 16}}}, name="b.yaml"),
                        catalogue).jobs[0]
    # dcgan's table rate, 1 step/s at its default width 64; a quarter of the width, a sixteenth of the work
    assert rough_cpu_seconds(default) == pytest.approx(1500.0)
    assert rough_cpu_seconds(narrow) == pytest.approx(1500.0 / 16)
    # the MLP is bound by per-step overhead: its width does not scale the estimate
    mlp = load_suite(write_suite(tmp_path, {"archs": {"mlp": {"width": 512}}}, name="c.yaml"), catalogue).jobs[0]
    assert rough_cpu_seconds(mlp) == pytest.approx(60 / 100.0)
