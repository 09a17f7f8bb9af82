"""Verdicts you can trust: results tables built in memory with known outcomes, analysed by the report,
and checked against answers worked out here (by hand, by enumeration, or with scipy called directly)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from test_report import make_spec, write_job
from torch.testing import assert_close

from bench.report import summary_lines
from bench.report.aggregate import band_drops
from bench.report.analysis import Analysis, analyse
from bench.report.load import SuiteResults
from bench.store import MetricRow, SuiteStore
from bench.suite import ReportConfig

HELD = {"modes_held": "higher"}
Z = scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)  # two-sided 5%, power 80%


class Suite:
    """A results table written row by row: `job` adds a job and its curve of one metric."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []
        self.rows: list[dict] = []

    def job(self, objective: str, seed: int, status: str, values: Sequence[float] = (), *, steps: Sequence[int] = (),
            critic_steps: int = 1, metric: str = "modes_held", reason: str | None = None,
            wall_per_step: float = 0.01) -> str:
        job_id = f"{objective}-{seed}"
        steps = list(steps) or [100 * (k + 1) for k in range(len(values))]
        self.jobs.append({"job_id": job_id, "status": status, "reason": reason, "step": steps[-1] if values else None,
                          "train_s": 1.0, "suite": "verdicts", "device": "cpu", "dataset": "ring8",
                          "objective": objective, "arch": "mlp", "seed": seed, "critic_steps": str(critic_steps)})
        self.rows += [{"job_id": job_id, "step": step, "wall_s": step * wall_per_step, "metric": metric,
                       "value": float(value)} for step, value in zip(steps, values)]
        return job_id

    def results(self, *, thresholds: dict[str, float] | None = None) -> SuiteResults:
        jobs = pd.DataFrame(self.jobs)
        jobs["step"] = jobs["step"].astype("Int64")
        metrics = pd.DataFrame(self.rows, columns=["job_id", "step", "wall_s", "metric", "value"])
        config = ReportConfig(thresholds=thresholds or {})
        return SuiteResults(Path("results/verdicts"), "verdicts", jobs, metrics, config)

    def analyse(self, *, directions: dict[str, str] = HELD, failed_at: dict[str, float] | None = None,
                thresholds: dict[str, float] | None = None, survivors_only: bool = False) -> Analysis:
        return analyse(self.results(thresholds=thresholds), directions, failed_at=failed_at,
                       survivors_only=survivors_only)


def comparison(analysis: Analysis, objective: str, metric: str = "modes_held") -> dict:
    table = analysis.comparisons
    rows = table.loc[(table["objective"] == objective) & (table["metric"] == metric)].to_dict("records")
    assert len(rows) == 1, rows
    return rows[0]


def summary_of(analysis: Analysis) -> list[str]:
    from bench.report.summary import summary_text

    return summary_text(analysis)


# ---- 1. runs that did not survive are the worst outcome ---------------------------------------------

BASELINE_HELD = [6, 7, 5, 6, 7, 6]


def diverged_after_a_perfect_start() -> Suite:
    """The issue's case: six wgan seeds hit a perfect 8 modes at step 100 and then diverge; six nsgan
    seeds finish with 5 to 7."""
    suite = Suite()
    for seed, final in enumerate(BASELINE_HELD):
        suite.job("nsgan", seed, "done", [2, 4, final])
    for seed in range(6):
        suite.job("wgan", seed, "diverged", [8.0, math.nan], reason="loss_d is nan")
    return suite


def test_a_perfect_start_then_divergence_loses_to_finished_runs():
    analysis = diverged_after_a_perfect_start().analyse()
    assert (analysis.outcomes.groupby("objective")["outcome"].unique().map(list).to_dict()
            == {"nsgan": ["survived"], "wgan": ["diverged"]})
    found = comparison(analysis, "wgan")
    # scored by their last finite value (8 > every nsgan seed) the six wgan seeds would win with
    # p = 2/2^6; as the worst outcome every paired difference is negative: the same p, for nsgan
    assert (found["test"], found["n_objective"], found["n_baseline"]) == ("wilcoxon", 6, 6)
    assert_close((found["p"], found["effect"], found["probability_of_improvement"]), (2 / 64, -1.0, 0.0))
    assert found["verdict"] == "baseline better"
    assert found["median_objective"] == -np.inf
    ranks = analysis.ranks.set_index("objective")["rank"]
    assert (ranks["nsgan"], ranks["wgan"]) == (1.0, 2.0)
    summary = analysis.summary.set_index("objective")
    assert summary.loc["wgan", "final_iqm"] == -np.inf and summary.loc["wgan", "survived"] == 0
    assert np.isnan(summary.loc["wgan", "final_mean"])  # means are over survivors: there are none
    assert_close(summary.loc["nsgan", "final_mean"], np.mean(BASELINE_HELD))
    lines = summary_of(analysis)
    assert "  - modes_held: wgan vs nsgan: nsgan better (Wilcoxon, Holm p = 0.03125, P(improvement) = 0, " \
           "6 paired seeds)." in lines
    assert "  - wgan: 6/6 seeds diverged (median divergence step 200)." in lines
    assert "  - survived (runs finished and trained / runs ended): nsgan 6/6, wgan 0/6 (6 diverged)." in lines


def test_survivors_only_leaves_the_diverged_runs_out_and_says_so():
    analysis = diverged_after_a_perfect_start().analyse(survivors_only=True)
    assert set(analysis.scores["objective"]) == {"nsgan"}
    assert analysis.comparisons.empty or "wgan" not in set(analysis.comparisons["objective"])
    lines = summary_of(analysis)
    assert lines[1].startswith("Survivors-only view: diverged, failed and failed-to-train runs are left out")
    assert "  - survived (runs finished and trained / runs ended): nsgan 6/6, wgan 0/6 (6 diverged)." in lines


def test_failed_to_train_runs_are_named_with_their_value_and_count_as_worst():
    suite = Suite()
    for seed, final in enumerate([9, 9, 8]):
        suite.job("nsgan", seed, "done", [3, final], metric="classes_covered")
    for seed, final in enumerate([1, 1, 8]):
        suite.job("sgan", seed, "done", [1, final], metric="classes_covered")
    analysis = suite.analyse(directions={"classes_covered": "higher"}, failed_at={"classes_covered": 1.0})
    outcomes = analysis.outcomes.set_index("job_id")["outcome"]
    assert list(outcomes[["sgan-0", "sgan-1", "sgan-2"]]) == ["failed to train", "failed to train", "survived"]
    scores = analysis.scores.set_index("job_id")["score"]
    assert list(scores[["sgan-0", "sgan-1", "sgan-2"]]) == [-np.inf, -np.inf, 8.0]
    lines = summary_of(analysis)
    assert ("  - sgan: 2/3 seeds failed to train (seed 0: classes_covered 1 (failed at <= 1); "
            "seed 1: classes_covered 1 (failed at <= 1)).") in lines
    found = comparison(analysis, "sgan", "classes_covered")
    # differences -inf, -inf, 0: the zero drops out, and 3 seeds could never give p < 0.25 anyway
    assert found["verdict"] == "undecidable" and found["min_p"] == 0.25
    # Walsh sums of (-inf, -inf, 0): five negative, one zero: p' = 0.5 / 6
    assert found["seeds_needed"] == math.ceil(Z**2 / (3 * (0.5 / 6 - 0.5) ** 2))


def test_a_failed_job_is_a_pair_at_the_worst_outcome():
    suite = Suite()
    for seed in range(7):
        suite.job("nsgan", seed, "done", [1, 3])
        suite.job("lsgan", seed, "failed" if seed == 2 else "done", [1] if seed == 2 else [2, 5],
                  reason="RuntimeError: CUDA out of memory" if seed == 2 else None)
    found = comparison(suite.analyse(), "lsgan")
    # six differences of +2 and one -inf: ranks 3.5 (x6) and 7; W- = 7 of 28, exact p by enumeration
    assert (found["test"], found["n_objective"], found["survived_objective"], found["left_out"]) == \
        ("wilcoxon", 7, 6, "")
    assert_close(found["p"], _signed_rank_p([2, 2, -np.inf, 2, 2, 2, 2]))


def _signed_rank_p(differences: Sequence[float]) -> float:
    """Exact two-sided signed-rank p over every sign assignment (zeros dropped, average ranks)."""
    import itertools

    d = np.asarray([x for x in differences if x != 0], dtype=float)
    ranks = scipy.stats.rankdata(np.abs(d))
    observed, centre = ranks[d > 0].sum(), ranks.sum() / 2
    plus = np.array([sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=d.size)])
    return float(np.mean(np.abs(plus - centre) >= abs(observed - centre) - 1e-12))


# ---- 2. what a seed count can decide ----------------------------------------------------------------

@pytest.mark.parametrize("seeds, verdict", [
    (2, "undecidable at n=2/2 (min attainable p 0.5 x 2 comparisons)"),
    (3, "undecidable at n=3/3 (min attainable p 0.25 x 2 comparisons)"),
    (6, "undecidable at n=6/6 (min attainable p 0.0312 x 2 comparisons)"),  # 2/64 * 2 = 0.0625
    (7, "objective better"),  # 2/128 * 2 = 0.03125 < 0.05, and every seed is better
])
def test_small_seed_counts_are_undecidable_not_no_difference(seeds, verdict):
    from bench.report.summary import verdict_text

    suite = Suite()
    for seed in range(seeds):
        suite.job("nsgan", seed, "done", [1, 3 + 0.1 * seed])
        suite.job("lsgan", seed, "done", [2, 5 + 0.2 * seed])
        suite.job("wgan", seed, "done", [2, 6 + 0.3 * seed])
    analysis = suite.analyse()
    for objective in ("lsgan", "wgan"):
        found = comparison(analysis, objective)
        assert found["comparisons"] == 2 and found["min_p"] == 2 / 2**seeds
        assert_close(found["p"], 2 / 2**seeds)  # every difference positive: the smallest p there is
        assert verdict_text(found) == verdict
        # all Walsh averages positive: p' = 1, Noether's (z + z)^2 / (3 / 4) at alpha / 2
        z = scipy.stats.norm.ppf(1 - 0.05 / 4) + scipy.stats.norm.ppf(0.8)
        assert found["seeds_needed"] == math.ceil(z**2 / 0.75)
    lines = summary_of(analysis)
    if verdict.startswith("undecidable"):
        needed = math.ceil(z**2 / 0.75)  # 13
        assert f"  - modes_held: lsgan vs nsgan: {verdict}; the observed effect would need about {needed} seeds " \
               f"({seeds} paired seeds)." in lines
        assert not any("no significant difference" in line for line in lines)


def test_an_unpaired_comparison_names_its_minimum_p():
    suite = Suite()
    for seed in range(3):
        suite.job("nsgan", seed, "done", [1, 1 + seed])
        suite.job("lsgan", seed + 10, "done", [1, 5 + seed])
    found = comparison(suite.analyse(), "lsgan")
    # no shared seed: Mann-Whitney over 3 against 3, complete separation: p = 2 / C(6, 3) = 0.1 = the minimum
    assert (found["test"], found["min_p"], found["verdict"]) == ("mann-whitney", 0.1, "undecidable")
    assert_close(found["p"], 0.1)
    # P(X > Y) = 1: Noether's N = Z^2 / (3 * 0.25) runs in all, half per objective, at least 4 (2 / C(8, 4) < 0.05)
    assert found["seeds_needed"] == max(math.ceil(Z**2 / 1.5), 4)


# ---- 3. unequal seed sets keep their pairs ------------------------------------------------------------

def test_pairs_are_kept_on_the_shared_seeds_and_the_rest_named():
    suite = Suite()
    objective = [4.0, 6.0, 5.5, 7.0, 4.5]
    baseline = [3.0, 4.0, 5.0, 6.5, 2.0, 5.0]
    for seed, final in enumerate(baseline):
        suite.job("nsgan", seed, "done", [1, final])
    for seed, final in enumerate(objective):
        suite.job("lsgan", seed, "done", [1, final])
    suite.job("lsgan", 5, "pending")  # not an outcome yet: its seed has no pair
    suite.job("lsgan", 6, "done", [1, 9.0])  # the baseline never ran seed 6
    analysis = suite.analyse()
    found = comparison(analysis, "lsgan")
    expected = scipy.stats.wilcoxon(np.array(objective) - np.array(baseline[:5])).pvalue
    assert (found["test"], found["n_objective"], found["n_baseline"]) == ("wilcoxon", 5, 5)
    assert_close(found["p"], float(expected))
    assert found["left_out"] == "seed 6 (lsgan only), seed 5 (nsgan only)"
    lines = summary_of(analysis)
    assert lines[0] == ("Provisional: 1 of 13 jobs have not finished (1 pending); every verdict below may change "
                        "when they do.")
    assert any("left out: seed 6 (lsgan only), seed 5 (nsgan only)" in line for line in lines)


# ---- 4. speed on three axes ----------------------------------------------------------------------------

def two_speeds() -> Suite:
    """nsgan (1 critic step, 2 gradient evaluations per step) evaluated at steps 100..600 with
    modes_held = step / 100; wgan (5 critic steps, 6 per step) at steps 100..300 with step / 50."""
    suite = Suite()
    for seed in range(3):
        suite.job("nsgan", seed, "done", [1, 2, 3, 4, 5, 6], critic_steps=1)
        suite.job("wgan", seed, "done", [2, 4, 6], critic_steps=5)
    return suite


def test_time_to_threshold_on_every_axis():
    analysis = two_speeds().analyse(thresholds={"modes_held": 2.0})
    table = analysis.thresholds.set_index("objective")
    # nsgan reaches 2 at step 200 = 400 gradient evaluations = 2 s; wgan at step 100 = 600 = 1 s
    assert table.loc["nsgan", ["median_step", "median_grad_evals", "median_wall_s"]].tolist() == [200, 400, 2]
    assert table.loc["wgan", ["median_step", "median_grad_evals", "median_wall_s"]].tolist() == [100, 600, 1]
    lines = summary_of(analysis)
    assert ("  - fastest to modes_held >= 2 (median over runs; a run that never reached it counts as slowest): "
            "by generator steps: wgan (100, 3/3 reached); by gradient evaluations: nsgan (400, 3/3 reached); "
            "by wall time (s): wgan (1, 3/3 reached).") in lines
    assert ("  - final values compare runs after equal generator steps, not equal compute: gradient evaluations "
            "per generator step are nsgan 2, wgan 6.") in lines


def test_auc_over_a_common_window_on_every_axis():
    analysis = two_speeds().analyse()
    summary = analysis.summary.set_index("objective")
    # steps: window [100, 300]; nsgan = step/100 has mean level 2 there, wgan = step/50 has 4
    # gradient evaluations: nsgan spans 200..1200, wgan 600..1800: window [600, 1200], where nsgan =
    # x/200 has mean level 4.5 and wgan = x/300 has 3; wall time (0.01 s per step): window [1, 3] s,
    # nsgan = wall has mean level 2, wgan = 2 wall has 4
    columns = ["auc_step_mean", "auc_grad_evals_mean", "auc_wall_s_mean"]
    assert_close(np.array(summary.loc["nsgan", columns], dtype=float), np.array([2.0, 4.5, 2.0]))
    assert_close(np.array(summary.loc["wgan", columns], dtype=float), np.array([4.0, 3.0, 4.0]))
    window = analysis.windows.iloc[0]
    assert window[["step_start", "step_end", "grad_evals_start", "grad_evals_end", "wall_s_start",
                   "wall_s_end"]].tolist() == [100, 300, 600, 1200, 1, 3]


# ---- bands say where n falls -------------------------------------------------------------------------

def test_convergence_bands_count_the_runs_behind_every_step():
    suite = Suite()
    suite.job("nsgan", 0, "done", [1, 2, 3])
    suite.job("nsgan", 1, "done", [2, 3, 5])
    suite.job("nsgan", 2, "diverged", [3, math.nan])  # stops after step 100
    suite.job("nsgan", 3, "failed", [], reason="killed")  # never evaluated
    analysis = suite.analyse()
    band = analysis.bands.set_index("step")
    assert band["n"].tolist() == [3, 2, 2] and set(band["runs"]) == {4}
    assert_close(np.array(band["mean"], dtype=float), np.array([2.0, 2.5, 4.0]))
    # the t band of (2, 3) at step 200: 2.5 -+ tan(0.475 pi) * sqrt(0.5) / sqrt(2)
    half = math.tan(math.pi * 0.475) * 0.5
    assert_close(np.array(band.loc[200, ["mean_lo", "mean_hi"]], dtype=float), np.array([2.5 - half, 2.5 + half]))
    drops = analysis.drops
    assert drops[["step", "n", "runs"]].to_numpy().tolist() == [[100, 3, 4], [200, 2, 4]]
    assert "  - convergence curves lose runs: nsgan n = 3/4 from step 100 (the curves and bands show n per step)." \
        in summary_of(analysis)
    # survivors only: two runs at every step, nothing falls
    survivors = suite.analyse(survivors_only=True)
    assert survivors.bands["n"].tolist() == [2, 2, 2] and survivors.drops.empty


def test_band_drops_compare_each_step_with_the_one_before():
    bands = pd.DataFrame({"metric": ["m"] * 4, "objective": ["a"] * 4, "step": [10, 20, 30, 40],
                          "n": [5, 5, 4, 2], "runs": [5] * 4})
    assert band_drops(bands, ["objective"])[["step", "n"]].to_numpy().tolist() == [[30, 4], [40, 2]]


# ---- the summary from a results folder ---------------------------------------------------------------

def write_diverged_suite(root: Path) -> Path:
    """The issue's case as a results folder: six nsgan seeds finish, six wgan seeds reach a perfect
    score at their first evaluation and diverge."""
    store = SuiteStore(root / "diverged")
    store.write_suite_yaml("name: diverged\nreport:\n  baseline: nsgan\n")
    for seed, final in enumerate(BASELINE_HELD):
        write_job(store, make_spec("nsgan", seed, suite="diverged"), status="done",
                  values={"modes_held": [2, 4, final]}, train_s=1.0)
    for seed in range(6):
        spec = make_spec("wgan", seed, suite="diverged")
        write_job(store, spec, status="diverged", values={"modes_held": [8]}, reason="loss_d is nan at step 150",
                  train_s=1.0)
        store.job(spec.job_id).append_metrics([MetricRow(spec.job_id, 150, 1.5, "loss_d", float("nan"))])
    return store.root


def test_summary_lines_read_a_results_folder_without_writing(tmp_path):
    suite_dir = write_diverged_suite(tmp_path)
    lines = summary_lines(suite_dir, directions=HELD, failed_at={})
    assert lines[0] == "Every job has ended."
    assert "ring8, mlp:" in lines
    assert "  - modes_held: wgan vs nsgan: nsgan better (Wilcoxon, Holm p = 0.03125, P(improvement) = 0, " \
           "6 paired seeds)." in lines
    assert "  - wgan: 6/6 seeds diverged (median divergence step 150)." in lines
    assert not (suite_dir / "report").exists()


def test_unranked_metrics_are_shown_and_never_ranked_and_coverage_uses_a_ranked_metric(tmp_path, monkeypatch):
    import bench.metrics
    from bench.metrics import MetricInfo
    from bench.report import build_report

    infos = {
        "modes_held": MetricInfo("modes_held", "modes holding their share of good samples", "higher"),
        "modes_covered": MetricInfo("modes_covered", "PacGAN's modes-covered rule", "higher", ranked=False),
    }
    monkeypatch.setattr(bench.metrics, "metric_infos", lambda: infos)
    store = SuiteStore(tmp_path / "shown")
    store.write_suite_yaml("name: shown\nreport:\n  baseline: nsgan\n  thresholds:\n    modes_covered: 4\n")
    for objective, held, covered in (("nsgan", [3, 4], [8, 8]), ("lsgan", [5, 6], [8, 7])):
        for seed in range(2):
            write_job(store, make_spec(objective, seed, suite="shown"), status="done", train_s=1.0,
                      values={"modes_held": [1, held[seed]], "modes_covered": [8, covered[seed]]})
    result = build_report(store.root)
    markdown = result.markdown.read_text(encoding="utf-8")
    assert "Ranked metrics: `modes_held`. Shown as published, never ranked: `modes_covered`." in markdown
    shown = markdown.split("## Shown, never ranked")[1].split("\n## ")[0]
    assert "| lsgan | mlp | 2/2 | 2 | 7.5 | 7.5 |" in shown  # survived, n, median and mean of (8, 7)
    comparisons = markdown.split("## Comparison with nsgan")[1].split("\n## ")[0]
    assert "`modes_held` (higher is better)" in comparisons and "`modes_covered`" not in comparisons
    assert "Threshold on `modes_covered` skipped: it is never ranked (ranked metrics: modes_held)." in markdown
    assert "Survivors' mean final modes_held" in markdown  # the coverage figure: the ranked metric
    assert not any("modes_covered" in line for line in result.summary)


def test_a_comparison_without_any_observed_effect_says_so():
    from bench.report.summary import seeds_needed_text

    assert seeds_needed_text(float("inf")) == "no effect was observed, so no number of seeds would decide it"
    assert seeds_needed_text(17.0) == "the observed effect would need about 17 seeds"
