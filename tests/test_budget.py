"""Expected best score after n random-search trials (bench.report.budget), pinned against answers
computed without bench: brute-force enumeration, Monte-Carlo simulation, the mean at n = 1."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report.budget import (
    bootstrap_expected_best,
    budget_curves,
    decided_best,
    expected_best,
    expected_best_sd,
    order_weights,
)

SCORES = np.array([0.31, 0.05, 0.77, 0.31, 0.52])  # a tie, unsorted


def brute_force(scores: np.ndarray, n: int, best=max) -> tuple[float, float]:
    """Mean and sd of the best of n draws with replacement, over all N^n equally likely n-tuples."""
    bests = np.array([best(combo) for combo in itertools.product(scores, repeat=n)])
    return float(bests.mean()), float(bests.std())


def test_first_budget_is_the_mean() -> None:
    assert expected_best(SCORES, "higher")[0] == pytest.approx(SCORES.mean(), abs=1e-12)
    assert expected_best(SCORES, "lower")[0] == pytest.approx(SCORES.mean(), abs=1e-12)


def test_weights_are_probabilities() -> None:
    np.testing.assert_allclose(order_weights(7).sum(axis=0), np.ones(7), atol=1e-12)
    assert (order_weights(7) >= 0).all()


@pytest.mark.parametrize(("direction", "best"), [("higher", max), ("lower", min)])
def test_matches_enumeration_of_every_tuple(direction: str, best) -> None:
    curve, spread = expected_best(SCORES, direction), expected_best_sd(SCORES, direction)
    for n in range(1, SCORES.size + 1):
        mean, sd = brute_force(SCORES, n, best)
        assert curve[n - 1] == pytest.approx(mean, abs=1e-12)
        assert spread[n - 1] == pytest.approx(sd, abs=1e-9)


def test_matches_simulation() -> None:
    rng = np.random.default_rng(7)
    scores = rng.normal(size=12)
    draws = scores[rng.integers(scores.size, size=(200_000, scores.size))]
    simulated_max = np.maximum.accumulate(draws, axis=1).mean(axis=0)
    simulated_min = np.minimum.accumulate(draws, axis=1).mean(axis=0)
    np.testing.assert_allclose(expected_best(scores, "higher"), simulated_max, atol=0.01)
    np.testing.assert_allclose(expected_best(scores, "lower"), simulated_min, atol=0.01)


def test_lower_is_the_mirror_of_higher() -> None:
    np.testing.assert_allclose(expected_best(SCORES, "lower"), -expected_best(-SCORES, "higher"), atol=1e-12)
    low, high = bootstrap_expected_best(SCORES, "lower", resamples=500)
    mirror_low, mirror_high = bootstrap_expected_best(-SCORES, "higher", resamples=500)
    np.testing.assert_allclose(low, -mirror_high)
    np.testing.assert_allclose(high, -mirror_low)


def test_bootstrap_interval_holds_the_estimate() -> None:
    low, high = bootstrap_expected_best(SCORES, "higher", resamples=2000)
    curve = expected_best(SCORES, "higher")
    assert (low <= curve + 1e-12).all() and (curve <= high + 1e-12).all()
    assert low[0] >= SCORES.min() and high[-1] <= SCORES.max()


def test_verdicts_call_overlap_undecided() -> None:
    # a: every trial beats every trial of b (decided); c: the same scores as a (never decided against a)
    frame = pd.DataFrame({
        "metric": "m", "cell": "mlp", "objective": np.repeat(["a", "b", "c"], 6), "trial": np.tile(range(6), 3),
        "score": np.r_[[10, 11, 12, 13, 14, 15], [0, 1, 2, 3, 4, 5], [10, 11, 12, 13, 14, 15]]})
    curves = budget_curves(frame.loc[frame["objective"] != "c"], {"m": "higher"})
    (verdict,) = decided_best(curves, {"m": "higher"}, 1)
    assert (verdict.best, verdict.decided) == ("a", True) and verdict.expected == pytest.approx(12.5)
    (verdict,) = decided_best(budget_curves(frame, {"m": "higher"}), {"m": "higher"}, 6)
    assert not verdict.decided and verdict.overlapping == (("c",) if verdict.best == "a" else ("a",))
    assert verdict.clear == ("b",)
    (verdict,) = decided_best(budget_curves(frame, {"m": "lower"}), {"m": "lower"}, 6)
    assert (verdict.best, verdict.decided) == ("b", True)


# ---- the report's "Equal budget" section, on a results folder built here ----------------------------

FINAL_MODES_BY_TRIAL = {"nsgan": [3, 5, 2, 6], "wgan": [7, 8, 6, 6]}  # wgan trial 3 diverges after step 200


def _search_results(root: Path) -> Path:
    """2 objectives x 4 trials x seed 0 on ring8, modes_covered evaluated at steps 100, 200, 300 and
    rising by 1 per evaluation to each trial's final value."""
    from bench.spec import JobSpec
    from bench.store import MetricRow, SuiteStore

    store = SuiteStore(root / "budget")
    store.write_suite_yaml("name: budget\nsearch:\n  trials: 4\n  seed: 0\n  space:\n"
                           "    lr: {distribution: log-uniform, low: 1.0e-4, high: 1.0e-2}\n"
                           "report: {baseline: nsgan}\n")
    for objective, finals in FINAL_MODES_BY_TRIAL.items():
        for trial, modes in enumerate(finals):
            lr = [0.003283, 0.003223, 0.0002441, 0.000233][trial]
            spec = JobSpec(
                suite="budget", dataset="ring8", dataset_options=(), objective=objective, objective_options=(),
                arch="mlp", arch_options=(), seed=0, steps=300, batch_size=64, latent_dim=2, critic_steps=1,
                optimizer="adam", lr_g=lr, lr_d=lr, betas=(0.5, 0.999), tricks=(), metrics=("mixture-modes",),
                metric_options=(), eval_every=100, checkpoint_every=300, log_every=100, device="cpu",
                deterministic=True, eval_precision="float32", trial=trial, search=(("lr", lr),))
            evals = 2 if (objective, trial) == ("wgan", 3) else 3
            job = store.job(spec.job_id)
            job.write_spec(spec)
            job.write_status("diverged" if evals == 2 else "done", step=100 * evals, train_s=1.0)
            job.append_metrics([MetricRow(spec.job_id, 100 * (k + 1), float(k), "modes_covered",
                                          float(modes - (evals - 1 - k))) for k in range(evals)])
    return root / "budget"


def test_equal_budget_section_states_the_curves_and_what_they_decide(tmp_path: Path) -> None:
    from bench.report.analysis import analyse
    from bench.report.budget import equal_budget
    from bench.report.build import _budget_section
    from bench.report.load import load_results
    from bench.report.render import Document, to_markdown

    results = load_results(_search_results(tmp_path))
    analysis = analyse(results, {"modes_covered": "higher"}, failed_at={})
    assert analysis.axes == ["objective", "arch"]  # trials are repetitions, not grid axes
    budget = equal_budget(analysis, results.metrics, results.suite_config["search"])
    assert budget is not None and budget.trials == 4
    # the lowest value the folder logged is nsgan trial 2's first evaluation: 2 - 2 = 0
    assert budget.floors == {"modes_covered": 0.0}
    wgan = np.array([7, 8, 6, 0.0])  # the diverged trial scores the floor
    nsgan = np.array([3, 5, 2, 6.0])
    curves = budget.curves.set_index(["objective", "n"])["expected"]
    assert curves[("wgan", 1)] == pytest.approx(wgan.mean())
    assert curves[("nsgan", 4)] == pytest.approx(brute_force(nsgan, 4)[0])
    assert curves[("wgan", 4)] == pytest.approx(brute_force(wgan, 4)[0])
    markdown = to_markdown(Document("r", [], [_budget_section(budget, analysis, {}, tmp_path)]))
    assert "4 trials drawn i.i.d. from one space (`lr` log-uniform on [0.0001, 0.01]; sampling seed 0)" in markdown
    assert (f"`modes_covered` (higher is better): at n = 1, `wgan` has the best estimate, {wgan.mean():.4g} "
            "(95% interval [") in markdown
    assert "but that is not decided at this budget: its interval overlaps that of `nsgan`" in markdown
    assert "the metric (`modes_covered` 0)" in markdown
    assert "| `modes_covered` | mlp | wgan | 4 | 1 | 5.25 |" in markdown


def test_lost_jobs_of_a_search_suite_are_named_by_seed_and_trial(tmp_path: Path) -> None:
    from bench.report.analysis import analyse
    from bench.report.build import _unfinished_section
    from bench.report.load import load_results
    from bench.report.render import Document, to_markdown

    analysis = analyse(load_results(_search_results(tmp_path)), {"modes_covered": "higher"}, failed_at={})
    markdown = to_markdown(Document("r", [], [_unfinished_section(analysis)]))
    header = next(line for line in markdown.splitlines() if line.startswith("| job |"))
    assert header == "| job | status | outcome | objective | arch | seed | trial | step | reason |"
    # wgan's fourth trial (index 3) diverged: its row names the trial
    diverged = [line for line in markdown.splitlines() if "| diverged |" in line]
    assert len(diverged) == 1 and "| wgan | mlp | 0 | 3 |" in diverged[0]


def test_a_search_suite_calls_its_paired_repetitions_runs_not_seeds(tmp_path: Path) -> None:
    from bench.report.analysis import analyse
    from bench.report.build import _comparison_sections
    from bench.report.load import load_results
    from bench.report.render import Document, to_markdown
    from bench.report.summary import summary_text

    analysis = analyse(load_results(_search_results(tmp_path)), {"modes_covered": "higher"}, failed_at={})
    summary = summary_text(analysis)
    comparison = next(line for line in summary if "modes_covered: wgan vs nsgan" in line)
    assert comparison.endswith("(4 runs paired by seed and trial).")
    assert "seeds" not in comparison
    assert "'undecidable' means these runs could not reach significance" in " ".join(summary)
    markdown = to_markdown(Document("r", [], _comparison_sections(analysis)))
    assert "Runs pair on the (seed, trial) runs both objectives ran, trial t being the same configuration" in markdown
    assert "| runs needed | verdict |" in markdown
    assert "seeds needed" not in markdown and "seeds;" not in markdown
