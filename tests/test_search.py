"""A suite's `search` block: random search over one space shared by every objective (Lucic et al.
2018's protocol), its validation, the stability of its job ids, and its place in the recipe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml
from conftest import TINY_SUITE, write_suite

from bench.catalogue import build_catalogue
from bench.cli import main
from bench.suite import SearchConfig, SuiteError, load_suite, parse_suite, sample_trial

SUITES = Path(__file__).resolve().parents[1] / "suites"
SPACE = {
    "lr": {"distribution": "log-uniform", "low": 1.0e-4, "high": 1.0e-2},
    "beta1": {"distribution": "uniform", "low": 0.0, "high": 0.9},
    "critic_steps": {"distribution": "choice", "values": [1, 5]},
}


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _suite(search: dict, **changes) -> str:
    train = {key: value for key, value in TINY_SUITE["train"].items() if key != "lr"}
    return yaml.safe_dump({**TINY_SUITE, "train": train, "search": search, **changes}, sort_keys=False)


def test_the_budget_suite_pairs_every_objective_on_each_trial(catalogue) -> None:
    suite = load_suite(SUITES / "ring8_budget.yaml", catalogue)
    assert len(suite.jobs) == 4 * 8
    for trial in range(8):
        jobs = [job for job in suite.jobs if job.trial == trial]
        assert sorted(job.objective for job in jobs) == ["lsgan", "nsgan", "rsgan", "wgan-gp"]
        assert len({(job.lr_g, job.lr_d, job.betas[0], job.critic_steps) for job in jobs}) == 1
        assert {dict(job.search)["lr"] for job in jobs} == {jobs[0].lr_g}
    # beta2 is not searched: each objective keeps its published one
    assert {job.objective: job.betas[1] for job in suite.jobs} == {
        "nsgan": 0.999, "rsgan": 0.999, "lsgan": 0.999, "wgan-gp": 0.9}


def test_more_trials_keep_the_ids_of_the_first(catalogue) -> None:
    text = (SUITES / "ring8_budget.yaml").read_text()
    eight = parse_suite(text, catalogue).jobs
    twelve = parse_suite(text.replace("trials: 8", "trials: 12"), catalogue).jobs
    assert [job.job_id for job in twelve[:len(eight)]] == [job.job_id for job in eight]
    assert len(twelve) == 48 and len({job.job_id for job in twelve}) == 48
    # another dimension leaves the values of the others alone (each draws from its own stream)
    wider = parse_suite(text.replace("    critic_steps:", "    beta2: {distribution: uniform, low: 0.9, high: 0.999}"
                                                       "\n    critic_steps:"), catalogue).jobs
    assert [(job.lr_g, job.betas[0], job.critic_steps) for job in wider] == [
        (job.lr_g, job.betas[0], job.critic_steps) for job in eight]


def test_sampled_values_are_pinned_and_rounded() -> None:
    search = SearchConfig.model_validate({"trials": 8, "seed": 0, "space": SPACE})
    assert sample_trial(search, 0) == {"lr": 0.003283, "beta1": 0.1822, "critic_steps": 1}
    assert sample_trial(search, 7) == {"lr": 0.001785, "beta1": 0.8826, "critic_steps": 5}


def test_draws_follow_their_distributions() -> None:
    """Checked against the distributions themselves (scipy's KS and chi-square tests), over 1,000 trials."""
    space = {**SPACE, "steps": {"distribution": "int-uniform", "low": 1, "high": 4}}
    search = SearchConfig.model_validate({"trials": 1, "seed": 3, "space": space})
    draws = [sample_trial(search, trial) for trial in range(1000)]
    log_lr = np.log10([d["lr"] for d in draws])
    assert scipy.stats.kstest(log_lr, scipy.stats.uniform(loc=-4, scale=2).cdf).pvalue > 0.01
    assert scipy.stats.kstest([d["beta1"] for d in draws], scipy.stats.uniform(loc=0, scale=0.9).cdf).pvalue > 0.01
    assert log_lr.min() >= -4 and log_lr.max() <= -2
    for name, values in (("steps", [1, 2, 3, 4]), ("critic_steps", [1, 5])):
        counts = [sum(d[name] == v for d in draws) for v in values]
        assert sum(counts) == 1000
        assert scipy.stats.chisquare(counts).pvalue > 0.01


def test_an_option_some_objectives_lack_is_applied_only_where_named(catalogue) -> None:
    search = {"trials": 3, "seed": 1, "space": {
        **SPACE, "trick.gradient-penalty.weight": {"distribution": "log-uniform", "low": 0.1, "high": 100.0,
                                                  "only": ["wgan-gp"]}}}
    grid = {"objective": ["nsgan", "wgan-gp"], "arch": ["mlp"], "seed": [0]}
    suite = parse_suite(_suite(search, grid=grid), catalogue)
    for job in suite.jobs:
        sampled = dict(job.search)
        if job.objective == "wgan-gp":
            assert dict(job.tricks)["gradient-penalty"] == (("weight", sampled["trick.gradient-penalty.weight"]),)
            assert 0.1 <= sampled["trick.gradient-penalty.weight"] <= 100
        else:
            assert job.tricks == () and "trick.gradient-penalty.weight" not in sampled
        assert sampled["lr"] == job.lr_g == job.lr_d
    values = [dict(job.search)["trick.gradient-penalty.weight"] for job in suite.jobs if job.objective == "wgan-gp"]
    assert len(set(values)) == 3


def test_every_search_problem_in_one_error_with_its_line(catalogue) -> None:
    search = {"trials": 4, "space": {
        "lr": {"distribution": "log-uniform", "low": 0.0, "high": 1.0e-2},
        "beta1": {"distribution": "choice"},
        "momentum": {"distribution": "uniform", "low": 0, "high": 1},
        "critic_steps": {"distribution": "uniform", "low": 1, "high": 5},
        "objective.realness_outcomes": {"distribution": "int-uniform", "low": 2, "high": 8},
        "trick.gradient-penalty.weight": {"distribution": "uniform", "low": 1, "high": 10, "only": ["wgan"]},
        "trick.r1.gamma": {"distribution": "uniform", "low": 1, "high": 10},
    }}
    text = _suite(search, train={**TINY_SUITE["train"], "lr": 1.0e-3})
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, catalogue, source="s.yaml")
    message = str(caught.value)
    lines = text.splitlines()

    def line(key: str) -> int:
        return next(k + 1 for k, text in enumerate(lines) if text.strip().startswith(key))

    expected = [
        f"line {line('lr: 0.001')}: train.lr: is also searched (search.space.lr); a field is either searched or set",
        f"line {line('low: 0.0')}: search.space.lr.low: a log-uniform low must be positive",
        f"line {line('beta1:')}: search.space.beta1.values: a choice needs a non-empty list of values",
        f"line {line('momentum:')}: search.space.momentum: unknown search field 'momentum'; valid: lr, lr_g, lr_d, "
        "beta1, beta2, critic_steps, optimizer, objective.<option>, trick.<trick>.<option>",
        "search.space.critic_steps.distribution: critic_steps is an integer: use int-uniform or choice",
        "search.space.objective.realness_outcomes: objective option 'realness_outcomes' is no option of objectives "
        "'nsgan', 'rsgan'; list the objectives that have it under `only`",
        "search.space.trick.gradient-penalty.weight.only[0]: objective 'wgan' is not in this suite; the suite's "
        "objectives: nsgan, rsgan",
    ]
    for text_expected in expected:
        assert text_expected in message
    assert len(caught.value.problems) == len(expected)
    # the trick-less objectives are named once the rest of the file is right
    fixed = {"trials": 2, "space": {"trick.r1.gamma": {"distribution": "uniform", "low": 1, "high": 10}}}
    with pytest.raises(SuiteError, match=r"search.space.trick.r1.gamma: trick 'r1' is not among the tricks of "
                                         r"objectives 'nsgan', 'rsgan'; list the objectives that train with it "
                                         r"under `only`$"):
        parse_suite(_suite(fixed), catalogue)


@pytest.mark.parametrize(("space", "expected"), [
    ({"lr": {"distribution": "uniform", "low": 0.1, "high": 0.01}}, r"must be above low \(0.1\), got 0.01"),
    ({"beta1": {"distribution": "uniform", "low": 0.5, "high": 1.5}}, r"beta1 must be in \[0, 1\), got 1.5"),
    ({"optimizer": {"distribution": "choice", "values": ["adam", "lamb"]}},
     r"unknown optimizer 'lamb'; valid: adam, rmsprop, sgd"),
    ({"lr": {"distribution": "choice", "values": [1.0e-3], "low": 1.0}}, r"a choice takes `values`, not low/high"),
    ({"critic_steps": {"distribution": "int-uniform", "low": 1, "high": 4.5}},
     r"an int-uniform bound is an integer, got 4.5"),
    ({"lr": {"distribution": "uniform", "low": 0.1, "high": 0.2},
      "lr_g": {"distribution": "uniform", "low": 0.1, "high": 0.2}},
     r"lr sets both lr_g and lr_d: search either lr or lr_g / lr_d, not both"),
])
def test_single_search_problems_are_named(catalogue, space: dict, expected: str) -> None:
    with pytest.raises(SuiteError, match=r"1 problem\n  line \d+: search\.space\.[a-z_1.]+: " + expected):
        parse_suite(_suite({"trials": 2, "space": space}), catalogue)


def test_a_searched_grid_axis_is_refused(catalogue) -> None:
    grid = {**TINY_SUITE["grid"], "critic_steps": [1, 2]}
    with pytest.raises(SuiteError, match=r"grid.critic_steps: is also searched \(search.space.critic_steps\)"):
        parse_suite(_suite({"trials": 2, "space": SPACE}, grid=grid), catalogue)


def test_dry_run_shows_each_trial_and_its_values(tmp_path: Path, capsys) -> None:
    train = {key: value for key, value in TINY_SUITE["train"].items() if key != "lr"}
    suite = write_suite(tmp_path, {"train": train, "search": {"trials": 2, "seed": 0, "space": SPACE}})
    assert main(["run", str(suite), "--dry-run", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split()
    assert {"trial", "search.lr", "search.beta1", "search.critic_steps"} <= set(header)
    rows = [dict(zip(header, line.split())) for line in out[2:6]]
    assert [(row["objective"], row["trial"], row["search.lr"]) for row in rows] == [
        ("nsgan", "0", "0.003283"), ("rsgan", "0", "0.003283"), ("nsgan", "1", "0.003223"), ("rsgan", "1", "0.003223")]
    assert not (tmp_path / "results").exists()
    assert math.isclose(float(rows[0]["lr_g"]), 0.003283)


def test_a_rerun_with_more_trials_is_no_changed_spec_but_a_new_space_is(tmp_path: Path, catalogue) -> None:
    from bench.launch import changed_jobs
    from bench.store import SuiteStore

    text = (SUITES / "ring8_budget.yaml").read_text()
    suite = parse_suite(text, catalogue)
    store = SuiteStore(tmp_path / suite.name)
    for job in suite.jobs:
        store.job(job.job_id).write_spec(job)
    axes = list(suite.config.grid)
    assert changed_jobs(list(parse_suite(text.replace("trials: 8", "trials: 12"), catalogue).jobs), store, axes) == []
    narrower = parse_suite(text.replace("high: 1.0e-2}", "high: 1.0e-3}"), catalogue)
    changed = changed_jobs(list(narrower.jobs), store, axes)
    assert len(changed) == 32 and "search: {" in changed[0]


def test_an_unknown_search_field_is_named_beside_schema_errors(catalogue) -> None:
    search = {"trials": 0, "space": {"momentum": {"distribution": "uniform", "low": 0, "high": 1}}}
    with pytest.raises(SuiteError) as caught:
        parse_suite(_suite(search), catalogue)
    assert [problem.render().split(": ", 1)[1] for problem in caught.value.problems] == [
        "search.trials: Input should be greater than 0 (got 0)",
        "search.space.momentum: unknown search field 'momentum'; valid: lr, lr_g, lr_d, beta1, beta2, critic_steps, "
        "optimizer, objective.<option>, trick.<trick>.<option>"]
