"""Published references in suites and reports: refused at load when they name a metric no job computes,
select no job, select on an unknown key or carry no confidence label; rendered beside bench's survivors'
mean, whose Student-t interval the test recomputes with scipy to decide inside or outside."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml
from conftest import TINY_SUITE
from test_report import row_for, table_after
from torch.testing import assert_close

from bench.catalogue import build_catalogue
from bench.report import build_report
from bench.report.references import verdict
from bench.report.summary import REPRODUCTIONS_TITLE
from bench.spec import JobSpec
from bench.store import MetricRow, SuiteStore
from bench.suite import SuiteError, load_suite, parse_suite, reference_matches

SUITES = Path(__file__).resolve().parents[1] / "suites"


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


# ---- validation at load ------------------------------------------------------------------------------

BAD_REFERENCES = """\
name: tiny
dataset: {name: ring8}
grid: {objective: [nsgan, rsgan], arch: [mlp], seed: [0]}
train: {steps: 60, eval_every: 20, checkpoint_every: 20, log_every: 10}
report:
  references:
    - paper: A
      metric: fid_inception
      value: 30.0
      where: {objective: wgan}
      source: "[2nd] a review"
    - paper: B
      metric: mode_kl_all
      value: 0.5
      where: {objective: rsgan, critic_stpes: 1}
      source: "[recollection] anchors.md"
"""


def test_every_reference_problem_in_one_error(catalogue) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(BAD_REFERENCES, catalogue, source="refs.yaml")
    assert str(caught.value) == (
        "refs.yaml: 2 problems\n"
        "  line 15: report.references[1].where: unknown key 'critic_stpes'; valid: arch, batch_size, betas, "
        "checkpoint_every, critic_steps, dataset, deterministic, eval_every, eval_precision, latent_dim, log_every, "
        "lr, lr_d, lr_g, objective, optimizer, seed, spectral_norm, steps, tricks (got {'objective': 'rsgan', "
        "'critic_stpes': 1})\n"
        "  line 16: report.references[1].source: must open with the value's confidence label, one of [code], "
        "[table-img], [page], [2nd]; a value known only from recollection is not a reference "
        "(got '[recollection] anchors.md')")


def test_a_metric_no_job_computes_and_a_where_that_selects_nothing(catalogue) -> None:
    text = BAD_REFERENCES.replace("critic_stpes: 1", "critic_steps: 1").replace("[recollection]", "[code]")
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, catalogue, source="refs.yaml")
    message = str(caught.value)
    assert message.startswith("refs.yaml: 2 problems\n")
    assert ("  line 8: report.references[0].metric: metric 'fid_inception' is computed by no job of this suite; "
            "the jobs compute: high_quality_fraction, mode_kl, mode_kl_all, modes_covered, modes_held") in message
    assert ("  line 10: report.references[0].where: selects no job of this suite (objective: 'wgan'); "
            "the jobs have: objective 'nsgan', 'rsgan'") in message


def test_a_where_whose_keys_each_match_but_not_together(catalogue) -> None:
    text = BAD_REFERENCES.split("    - paper: B")[0].replace("fid_inception", "mode_kl_all").replace(
        "{objective: wgan}", "{objective: rsgan, critic_steps: 5}")
    with pytest.raises(SuiteError, match=(
            r"line 10: report.references\[0\].where: selects no job of this suite \(objective: 'rsgan', "
            r"critic_steps: 5\); the jobs have: objective 'nsgan', 'rsgan'; critic_steps 1$")):
        parse_suite(text, catalogue, source="refs.yaml")


def test_rgan_references_select_their_setup_i_cells(catalogue) -> None:
    suite = load_suite(SUITES / "cifar10_losses.yaml", catalogue)
    references = suite.config.report.references
    assert [(r.metric, r.value) for r in references] == [
        ("fid_inception", 36.61), ("fid_inception", 31.98), ("fid_inception", 25.60)]
    assert all(r.source.startswith("[2nd]") for r in references)
    selected = [[job for job in suite.jobs if reference_matches(r.where, job)] for r in references]
    expected = [("rsgan", ["spectral-norm"]), ("rasgan", ["spectral-norm"]),
                ("rsgan", ["gradient-penalty", "spectral-norm"])]
    for jobs, (objective, tricks) in zip(selected, expected):
        assert sorted(job.seed for job in jobs) == [0, 1, 2]
        for job in jobs:
            assert (job.objective, sorted(name for name, _ in job.tricks)) == (objective, tricks)
            setup_i = (1, 2e-4, 2e-4, (0.5, 0.999), 32)
            assert (job.critic_steps, job.lr_g, job.lr_d, job.betas, job.batch_size) == setup_i


REPRODUCTION_SUITES = ["cifar10_losses", "pacgan_mixtures", "pacgan_stacked_mnist"]


@pytest.mark.parametrize("name", REPRODUCTION_SUITES)
def test_each_reproduction_suite_loads_and_its_references_resolve(name: str, catalogue) -> None:
    suite = load_suite(SUITES / f"{name}.yaml", catalogue)
    references = suite.config.report.references
    assert references
    grid_objectives = set(suite.config.grid["objective"]) | {rule["objective"] for rule in suite.config.include
                                                             if "objective" in rule}
    for reference in references:
        jobs = [job for job in suite.jobs if reference_matches(reference.where, job)]
        assert jobs, reference
        assert reference.where.get("objective", jobs[0].objective) in grid_objectives
        for job in jobs:
            computed = {produced for metric in job.metrics for produced in catalogue.metrics[metric].produces}
            assert reference.metric in computed, (reference.metric, job.metrics)
        assert reference.source.startswith(("[code]", "[table-img]", "[page]", "[2nd]"))


def test_pacgan_mixture_references_select_each_datasets_ten_seeds(catalogue) -> None:
    suite = load_suite(SUITES / "pacgan_mixtures.yaml", catalogue)
    expected = {  # PacGAN Table 1 GAN row, then VEEGAN Table 1 GAN row
        "ring8": [("modes_covered", 6.3), ("high_quality_fraction", 0.982),
                  ("modes_covered", 1.0), ("high_quality_fraction", 0.993)],
        "grid25": [("modes_covered", 17.3), ("high_quality_fraction", 0.948),
                   ("modes_covered", 3.3), ("high_quality_fraction", 0.005)],
    }
    references = suite.config.report.references
    assert sorted((r.where["dataset"], r.metric, r.value) for r in references) == sorted(
        (dataset, metric, value) for dataset, pairs in expected.items() for metric, value in pairs)
    protocol = {"ring8": (("radius", 1.0), ("std", 0.01)), "grid25": (("spacing", 2.0), ("std", 0.05))}
    for reference in references:
        jobs = [job for job in suite.jobs if reference_matches(reference.where, job)]
        assert sorted(job.seed for job in jobs) == list(range(10))
        for job in jobs:
            assert job.dataset_options == protocol[job.dataset]
            assert (job.objective, job.batch_size, job.lr_g, job.lr_d, job.betas) == (
                "nsgan", 100, 1e-4, 1e-4, (0.8, 0.999))
            assert dict(job.metric_options)["mixture-modes"] == (
                ("covered_min_samples", 1), ("quality_sigmas", 3.0), ("samples", 2500))
        # the paper's length is on the reference, so the report names bench's shorter runs
        assert reference.steps in (400_000, None) and jobs[0].steps < 400_000


def test_where_values_compare_as_the_job_ran(catalogue) -> None:
    suite = parse_suite(yaml.safe_dump({**TINY_SUITE, "train": {**TINY_SUITE["train"], "spectral_norm": True}}),
                        catalogue)
    job = suite.jobs[0]
    assert reference_matches({"lr": 1e-3, "betas": list(job.betas), "spectral_norm": True}, job)
    assert reference_matches({"tricks": ["spectral-norm"]}, job)
    assert not reference_matches({"tricks": []}, job)
    assert not reference_matches({"spectral_norm": 1}, job)  # true/false only matches true/false
    assert not reference_matches({"critic_steps": True}, job)


# ---- rendering -----------------------------------------------------------------------------------------

STEPS = (100, 200, 300)
FINALS = {  # mode_kl_all (lower is better) per seed; None: the run diverged after its first evaluation
    "nsgan": [0.90, 0.80, 1.00, 0.70],
    "rsgan": [0.50, 0.55, 0.45, 0.60],
    "lsgan": [0.40, None, None],
    "wgan": [None, None],
}
PENDING = {"hinge": 2}
REFERENCES = [
    {"paper": "Inside 2020", "table": "Table 1", "metric": "mode_kl_all", "value": 0.5, "where": {"objective": "rsgan"},
     "steps": 1000, "samples": 2500, "setting": "ring of 8, 1k steps", "source": "[2nd] a review"},
    {"paper": "Outside 2020", "metric": "mode_kl_all", "value": 0.5, "where": {"objective": "nsgan"}, "steps": 300,
     "source": "[code] a repository"},
    {"paper": "One 2020", "metric": "mode_kl_all", "value": 0.4, "where": {"objective": "lsgan"}, "source": "[page] p"},
    {"paper": "None 2020", "metric": "mode_kl_all", "value": 0.4, "where": {"objective": "wgan"}, "source": "[page] p"},
    {"paper": "Pending 2020", "metric": "mode_kl_all", "value": 0.4, "where": {"objective": "hinge"},
     "source": "[page] p"},
]


def _spec(objective: str, seed: int) -> JobSpec:
    return JobSpec(
        suite="refs", dataset="ring8", dataset_options=(), objective=objective, objective_options=(), arch="mlp",
        arch_options=(), seed=seed, steps=STEPS[-1], batch_size=64, latent_dim=2, critic_steps=1, optimizer="adam",
        lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), tricks=(), metrics=("mixture-modes",),
        metric_options=(("mixture-modes", (("samples", 500),)),), eval_every=100, checkpoint_every=300,
        log_every=100, device="cpu", deterministic=True, eval_precision="float32")


def _write_results(root: Path) -> Path:
    store = SuiteStore(root / "refs")
    store.write_suite_yaml(yaml.safe_dump({"name": "refs", "report": {"baseline": "nsgan", "references": REFERENCES}},
                                          sort_keys=False))
    for objective, finals in FINALS.items():
        for seed, final in enumerate(finals):
            spec = _spec(objective, seed)
            job = store.job(spec.job_id)
            job.write_spec(spec)
            if final is None:
                job.write_status("diverged", reason="loss_d is nan at step 150", step=150, train_s=1.0)
                values = [(100, 0.9)]
            else:
                job.write_status("done", step=STEPS[-1], train_s=3.0)
                values = [(step, final + (STEPS[-1] - step) / 1000) for step in STEPS]
            job.append_metrics([MetricRow(spec.job_id, step, step / 100, "mode_kl_all", value)
                                for step, value in values])
    for objective, count in PENDING.items():
        for seed in range(count):
            spec = _spec(objective, seed)
            store.job(spec.job_id).write_spec(spec)
    return root / "refs"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    suite_dir = _write_results(tmp_path_factory.mktemp("results"))
    result = build_report(suite_dir, directions={"mode_kl_all": "lower"}, failed_at={})
    return result, result.markdown.read_text(encoding="utf-8")


def _t_interval(values: list[float]) -> tuple[float, float]:
    low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    return float(low), float(high)


def _printed_interval(cell: str) -> tuple[float, float]:
    low, high = cell.strip("[]").split(", ")
    return float(low), float(high)


@pytest.mark.parametrize("objective, value", [("rsgan", 0.5), ("nsgan", 0.5)])
def test_published_value_against_the_t_interval(report, objective: str, value: float) -> None:
    _, markdown = report
    finals = FINALS[objective]
    low, high = _t_interval(finals)
    expected = "inside" if low <= value <= high else "outside"
    assert expected == {"rsgan": "inside", "nsgan": "outside"}[objective]  # the data were chosen to show both
    title = {"rsgan": "Inside 2020, Table 1", "nsgan": "Outside 2020"}[objective]
    row = row_for(table_after(markdown, f"{title}: "), objective=objective)
    assert (row["survived"], row["n"], row["published"], row["published value is"]) == ("4/4", "4", "0.5", expected)
    assert_close(float(row["survivors' mean"]), float(np.mean(finals)), rtol=6e-4, atol=0.0)
    assert_close(_printed_interval(row["mean 95% CI (t)"]), (low, high), rtol=6e-4, atol=0.0)
    assert_close(float(row["median"]), float(np.median(finals)), rtol=6e-4, atol=0.0)


def test_what_differs_from_the_paper(report) -> None:
    _, markdown = report
    inside = row_for(table_after(markdown, "Inside 2020, Table 1: "), objective="rsgan")
    assert inside["differs from the paper"] == (
        "generator steps per run: bench 300, the paper 1,000; "
        "generated samples per evaluation of mode_kl_all: bench 500, the paper 2,500")
    outside = row_for(table_after(markdown, "Outside 2020: "), objective="nsgan")
    assert outside["differs from the paper"] == "none known"
    assert ("Inside 2020, Table 1: `mode_kl_all` = 0.5. Selects objective=rsgan. Source: [2nd] a review. "
            "The paper's setting: ring of 8, 1k steps.") in markdown


def test_one_survivor_no_survivor_and_no_finished_run(report) -> None:
    _, markdown = report
    one = row_for(table_after(markdown, "One 2020: "), objective="lsgan")
    assert (one["survived"], one["n"], one["survivors' mean"], one["mean 95% CI (t)"], one["median"],
            one["published value is"]) == ("1/3", "1", "0.4", "n/a", "worst", "no interval at n=1")
    none = row_for(table_after(markdown, "None 2020: "), objective="wgan")
    assert (none["survived"], none["n"], none["published value is"]) == ("0/2", "0", "no surviving runs")
    pending = row_for(table_after(markdown, "Pending 2020: "), objective="hinge")
    assert (pending["survived"], pending["n"], pending["published value is"]) == (
        "0/0 (2 unfinished)", "0", "no finished runs")


def test_reproductions_come_after_the_summary_with_one_summary_line_each(report) -> None:
    result, markdown = report
    assert markdown.index("Summary. ") < markdown.index("## Reproductions") < markdown.index("## Jobs")
    lines = list(result.summary)
    start = lines.index(f"{REPRODUCTIONS_TITLE}:")
    listed = lines[start + 1: start + 1 + len(REFERENCES)]
    assert [line.split(":")[0] for line in listed] == [
        "  - Inside 2020, Table 1", "  - Outside 2020", "  - One 2020", "  - None 2020", "  - Pending 2020"]
    low, high = _t_interval(FINALS["rsgan"])
    assert listed[0] == (
        f"  - Inside 2020, Table 1: mode_kl_all 0.5 published; bench rsgan on mlp: survivors' mean 0.525 "
        f"[{low:.4g}, {high:.4g}] (n=4, 4/4 survived), median 0.525: inside; differs: generator steps per run: "
        "bench 300, the paper 1,000; generated samples per evaluation of mode_kl_all: bench 500, the paper 2,500.")
    assert listed[4] == ("  - Pending 2020: mode_kl_all 0.4 published; bench hinge on mlp: no finished runs "
                         "(2 jobs unfinished).")
    assert not lines[start + 1 + len(REFERENCES)].startswith("  - ")


@pytest.mark.parametrize("n, runs, low, high, expected", [
    (0, 0, math.nan, math.nan, "no finished runs"),
    (0, 3, math.nan, math.nan, "no surviving runs"),
    (1, 3, math.nan, math.nan, "no interval at n=1"),
    (3, 3, 0.4, 0.6, "inside"),
    (3, 3, 0.5, 0.6, "inside"),  # an endpoint is inside
    (3, 3, 0.51, 0.6, "outside"),
])
def test_verdict(n: int, runs: int, low: float, high: float, expected: str) -> None:
    assert verdict(0.5, n, runs, low, high) == expected
