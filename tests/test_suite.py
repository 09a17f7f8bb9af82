"""Suite files: validation errors (full text pinned), grid expansion (against stored references),
job ids, precedence of settings."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import TINY_SUITE, run_bench_here, write_suite

from bench.catalogue import build_catalogue
from bench.suite import SuiteError, grid_assignments, load_suite, parse_suite

DATA = Path(__file__).parent / "data"
SUITES = Path(__file__).resolve().parents[1] / "suites"
UPDATE = os.environ.get("BENCH_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs (BENCH_UPDATE_GOLDEN=1 regenerates it deliberately)"


def test_every_problem_of_a_bad_suite_in_one_error(catalogue) -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(DATA / "bad_suite.yaml", catalogue)
    message = str(caught.value).replace(str(DATA), "tests/data")
    _golden(DATA / "bad_suite.expected", message + "\n")
    assert len(caught.value.problems) == 14


def test_bad_suite_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "bad_suite.yaml").read_text())
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_bench_here(["run", str(bad)], tmp_path)
    assert result.returncode == 2
    assert "14 problems" in result.stderr
    assert "line 6: grid.objective[1]: unknown objective 'foogan'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results/, no mlflow.db


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"grid": {"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]}},
         r"line 8: grid.arch\[0\]: arch 'dcgan' cannot take dataset 'ring8' \(2,\): dcgan takes square images"),
        ({"train": {"steps": "many"}}, r"train.steps: Input should be a valid integer"),
        ({"train": {"checkpoint_every": 25, "log_every": 10}},
         r"train.checkpoint_every: must be a multiple of train.log_every \(10\)"),
        ({"archs": {"mlp": {"widht": 3}}}, r"archs.mlp.widht: arch 'mlp' has no option 'widht'; valid: activation,"),
        ({"metrics": ["fidelity-inception"]}, r"metric 'fidelity-inception'|unknown metric 'fidelity-inception'"),
        ({"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]}, "exclude": [{"seed": 0}]},
         r"the grid expands to no jobs"),
        ({"dataset": {"name": "mnist", "options": {"resolution": 30}}}, r"dataset.options"),
        ({"executor": {"name": "slurm"}}, r"executor.profile: the slurm executor needs a profile"),
        ({"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": ["abc"]}},
         r"grid.seed\[0\]: each seed is a whole number >= 0 \(e.g. seed: \[0, 1, 2\]\), got 'abc'"),
        ({"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0, -1]}}, r"grid.seed\[1\]: .* got -1"),
        ({"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [3, 3]}},
         r"grid.seed\[1\]: seed 3 is listed twice"),
    ],
)
def test_single_problems_are_named(tmp_path: Path, catalogue, change: dict, expected: str) -> None:
    path = write_suite(tmp_path, change)
    with pytest.raises(SuiteError, match=expected):
        load_suite(path, catalogue)


def test_yaml_syntax_error_names_the_line(catalogue) -> None:
    with pytest.raises(SuiteError, match=r"<suite>: 1 problem\n  line 3: <top>: not valid YAML: "
                                       r"expected ',' or '\]', but got '<stream end>' "
                                       r"\(while parsing a flow sequence on line 2\)"):
        parse_suite("name: x\ngrid: [unclosed\n", catalogue)


def _grid_table(suite) -> str:
    lines = []
    for job in suite.jobs:
        flat = job.flat()
        metric_options = json.dumps(job.to_dict()["metric_options"], sort_keys=True, separators=(",", ":"))
        lines.append(" ".join(f"{key}={flat[key]}" for key in
                              ("dataset", "objective", "arch", "seed", "critic_steps", "optimizer", "lr_g", "lr_d",
                               "betas", "tricks", "steps", "batch_size", "metrics"))
                     + f" metric_options={metric_options} id={job.job_id}")
    return "\n".join(lines) + f"\n{len(suite.jobs)} jobs\n"


@pytest.mark.parametrize("name", ["quickstart", "toy_mog", "cifar10_losses"])
def test_expanded_grid_matches_the_stored_reference(name: str, catalogue) -> None:
    suite = load_suite(SUITES / f"{name}.yaml", catalogue)
    _golden(DATA / f"grid_{name}.txt", _grid_table(suite))


def test_expansion_order_include_exclude(catalogue) -> None:
    text = yaml.safe_dump({
        **TINY_SUITE,
        "grid": {"objective": ["nsgan", "rsgan"], "arch": ["mlp"], "seed": [0, 1]},
        "include": [{"objective": "wgan-gp", "seed": 0}],
        "exclude": [{"objective": "rsgan", "seed": 1}],
    })
    suite = parse_suite(text, catalogue)
    assert [(j.objective, j.seed) for j in suite.jobs] == [
        ("nsgan", 0), ("nsgan", 1), ("rsgan", 0), ("wgan-gp", 0)]
    assert grid_assignments(suite.config)[-1] == {"objective": "wgan-gp", "arch": "mlp", "seed": 0}


def test_precedence_defaults_train_override_axis(catalogue) -> None:
    text = yaml.safe_dump({
        **TINY_SUITE,
        "grid": {"objective": ["wgan-gp", "nsgan"], "arch": ["mlp"], "seed": [0], "lr_d": [0.5]},
        "train": {**TINY_SUITE["train"], "lr": None, "critic_steps": None},
        "objectives": {"nsgan": {"critic_steps": 3, "lr": 0.01}},
    })
    wgan_gp, nsgan = parse_suite(text, catalogue).jobs
    # published defaults: Adam(1e-4, (0, 0.9)), 5 critic steps, gradient penalty 10
    assert (wgan_gp.optimizer, wgan_gp.lr_g, wgan_gp.betas, wgan_gp.critic_steps) == ("adam", 1e-4, (0.0, 0.9), 5)
    assert wgan_gp.tricks == (("gradient-penalty", (("weight", 10.0),)),)
    # the per-objective override, then the grid axis (lr_d) win
    assert (nsgan.critic_steps, nsgan.lr_g, nsgan.lr_d) == (3, 0.01, 0.5)
    assert wgan_gp.lr_d == 0.5


def test_job_id_is_stable_and_ignores_suite_name(catalogue) -> None:
    first = parse_suite(yaml.safe_dump(TINY_SUITE), catalogue).jobs
    renamed = parse_suite(yaml.safe_dump({**TINY_SUITE, "name": "other"}), catalogue).jobs
    assert [j.job_id for j in first] == [j.job_id for j in renamed]
    assert len({j.job_id for j in first}) == len(first)
    # pinned: the same spec has the same id on any machine
    assert first[0].job_id == "ca8b7d1a60f7"


def test_dry_run_prints_the_grid(tiny_suite: Path, tmp_path: Path) -> None:
    result = run_bench_here(["run", str(tiny_suite), "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["job_id", "objective", "arch", "seed"]
    assert result.stdout.strip().endswith("2 jobs")
    assert not (tmp_path / "results").exists()


def test_a_grid_axis_over_tricks(catalogue) -> None:
    text = yaml.safe_dump({
        **TINY_SUITE,
        "grid": {"objective": ["nsgan", "wgan-gp"], "arch": ["mlp"], "seed": [0],
                 "tricks": [[], ["feature-matching"], [{"name": "r1", "options": {"gamma": 1.0}}]]},
    })
    jobs = parse_suite(text, catalogue).jobs
    # each value of the axis is the job's whole list: it replaces the objective's own penalty too
    assert [(j.objective, j.tricks) for j in jobs] == [
        ("nsgan", ()),
        ("nsgan", (("feature-matching", (("weight", 1.0),)),)),
        ("nsgan", (("r1", (("gamma", 1.0),)),)),
        ("wgan-gp", ()),
        ("wgan-gp", (("feature-matching", (("weight", 1.0),)),)),
        ("wgan-gp", (("r1", (("gamma", 1.0),)),)),
    ]
    assert len({j.job_id for j in jobs}) == 6


def test_metric_options_are_checked_and_reach_the_spec(tmp_path: Path, catalogue) -> None:
    bad = write_suite(tmp_path, {"metric_options": {"mixture-modes": {"sampels": 10}}})
    valid = ", ".join(sorted(catalogue.metrics["mixture-modes"].option_defaults))
    with pytest.raises(SuiteError, match=r"metric_options.mixture-modes.sampels: metric 'mixture-modes' has no "
                                         rf"option 'sampels'; valid: {re.escape(valid)}$"):
        load_suite(bad, catalogue)
    good = write_suite(tmp_path, {"metric_options": {"mixture-modes": {"samples": 10}}}, name="good.yaml")
    (job, _) = load_suite(good, catalogue).jobs
    assert job.metric_options == (("mixture-modes", (("samples", 10),)),)
    assert job.flat()["metric.mixture-modes.samples"] == "10"


def test_eval_samples_is_refused_naming_its_replacement(tmp_path: Path, catalogue) -> None:
    path = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "eval_samples": 2500}})
    with pytest.raises(SuiteError, match=(
            r"tiny.yaml: 1 problem\n  line \d+: train.eval_samples: no longer a key: each metric draws the sample "
            r"count of its own protocol; set a count for one metric with metric_options.<metric>.samples, e.g. "
            r"metric_options: \{mixture-modes: \{samples: 2500\}\}$")):
        load_suite(path, catalogue)


DIGITS_32 = {"dataset": {"name": "digits", "options": {"resolution": 32}}, "metric_options": {}}


@pytest.mark.parametrize(("objective", "tricks"), [("wgan-gp", "trick 'gradient-penalty' needs"),
                                                 ("r3gan", "tricks 'r1' and 'r2' need")])
def test_a_per_sample_penalty_on_a_batch_norm_critic_is_refused_with_the_fix(
        tmp_path: Path, catalogue, objective: str, tricks: str) -> None:
    grid = {"objective": [objective], "arch": ["dcgan"], "seed": [0]}
    path = write_suite(tmp_path, {**DIGITS_32, "grid": grid, "archs": {"dcgan": {"width": 4}}})
    message = (rf"tiny.yaml: 1 problem\n  line \d+: archs.dcgan: {tricks} per-sample critic gradients; "
               r"arch 'dcgan' has critic_norm 'batch', so each sample's critic output depends on its batch-mates "
               rf"\(objective '{objective}'\): set archs: \{{dcgan: \{{critic_norm: layer\}}\}} or 'none'$")
    with pytest.raises(SuiteError, match=message):
        load_suite(path, catalogue)
    # the fix the message names, either value, loads; so does spectral norm, which drops the batch norm
    for change in ({"archs": {"dcgan": {"width": 4, "critic_norm": "layer"}}},
                   {"archs": {"dcgan": {"width": 4, "critic_norm": "none"}}},
                   {"archs": {"dcgan": {"width": 4}}, "train": {**TINY_SUITE["train"], "spectral_norm": True}}):
        fixed = write_suite(tmp_path, {**DIGITS_32, "grid": grid, **change}, name="fixed.yaml")
        (job,) = load_suite(fixed, catalogue).jobs
        published = {"wgan-gp": ["gradient-penalty"], "r3gan": ["r1", "r2"]}[objective]
        assert [name for name, _ in job.tricks] == published + (["spectral-norm"] if "train" in change else [])


def test_a_per_sample_penalty_with_minibatch_discrimination_names_the_trick_to_remove(
    tmp_path: Path, catalogue
) -> None:
    path = write_suite(tmp_path, {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]},
                                  "train": {**TINY_SUITE["train"], "tricks": ["minibatch-discrimination", "r1"]}})
    with pytest.raises(SuiteError, match=r"archs.mlp: trick 'r1' needs per-sample critic gradients; arch 'mlp' has "
                                         r"minibatch_discrimination true, .* \(objective 'nsgan'\): remove trick "
                                         r"'minibatch-discrimination'$"):
        load_suite(path, catalogue)


def test_penalties_without_per_sample_gradients_run_on_a_batch_norm_critic(tmp_path: Path, catalogue) -> None:
    grid = {"objective": ["wgan", "nsgan"], "arch": ["dcgan"], "seed": [0]}
    path = write_suite(tmp_path, {**DIGITS_32, "grid": grid, "archs": {"dcgan": {"width": 4}},
                                  "objectives": {"nsgan": {"tricks": ["feature-matching", "label-smoothing"]}}})
    wgan, nsgan = load_suite(path, catalogue).jobs
    assert [name for name, _ in wgan.tricks] == ["weight-clipping"]
    assert [name for name, _ in nsgan.tricks] == ["feature-matching", "label-smoothing"]
    assert dict(wgan.arch_options)["critic_norm"] == "batch"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"metric_options": {"fidelity-classifier": {"samples": 100}}},
         (r"metric_options.fidelity-classifier: metric 'fidelity-classifier' is computed by no job of this suite "
          r"\(they compute: mixture-modes\); add it to `metrics` or remove its options$")),
        ({"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0], "spectral_norm": [True, "yes"]}},
         r"grid.spectral_norm\[1\]: each value of the spectral_norm axis is true or false, got 'yes'$"),
        ({"train": {**TINY_SUITE["train"], "tricks": ["r1", {"name": "r1", "options": {"gamma": 1.0}}]}},
         r"train.tricks\[1\]: trick 'r1' is listed twice$"),
        ({"include": [{"objective": "rsgan", "tricks": ["r3"]}]},
         r"include\[0\].tricks\[0\]: unknown trick 'r3'; valid: feature-matching, gradient-penalty"),
        ({"archs": {"mlp": {"width": 32, "spectral_norm": True}}},
         (r"archs.mlp.spectral_norm: spectral norm is chosen per job, not per arch: set `spectral_norm: true` or "
          r"`false` under train, objectives.<name> or as a grid axis \(the job's tricks then list spectral-norm\)$")),
    ],
)
def test_recipe_problems_are_named(tmp_path: Path, catalogue, change: dict, expected: str) -> None:
    path = write_suite(tmp_path, change)
    with pytest.raises(SuiteError, match=r"1 problem\n  line \d+: " + expected):
        load_suite(path, catalogue)


def test_the_bad_option_values_of_issue_10_are_refused_at_load_with_their_lines(catalogue) -> None:
    text = """name: values
dataset: {name: ring8}
grid:
  objective: [gan-qp, wgan-gp]
  arch: [mlp]
  seed: [0]
objectives:
  gan-qp: {options: {distance: l3}}
  wgan-gp:
    tricks: [{name: gradient-penalty, options: {weight: -1}}]
archs:
  mlp: {width: -3, activation: tanhh}
"""
    expected = (
        "<suite>: 4 problems\n"
        "  line 8: objectives.gan-qp.options.distance: objective 'gan-qp' option distance='l3' is invalid; "
        "must be one of l1, l2\n"
        "  line 10: objectives.wgan-gp.tricks[0].options.weight: trick 'gradient-penalty' option weight=-1 is "
        "invalid; must be a number >= 0\n"
        "  line 12: archs.mlp.width: arch 'mlp' option width=-3 is invalid; must be an integer >= 1\n"
        "  line 12: archs.mlp.activation: arch 'mlp' option activation='tanhh' is invalid; must be one of relu, "
        "leaky_relu"
    )
    with pytest.raises(SuiteError, match=f"^{re.escape(expected)}$"):
        parse_suite(text, catalogue)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # an integer below its range
        ({"archs": {"mlp": {"depth": 0}}},
         r"archs.mlp.depth: arch 'mlp' option depth=0 is invalid; must be an integer >= 1$"),
        # a value outside its choices
        ({"dataset": {"name": "mnist", "options": {"resolution": 30}},
          "grid": {**TINY_SUITE["grid"], "arch": ["dcgan"]}, "archs": {}},
         r"dataset.options.resolution: dataset 'mnist' option resolution=30 is invalid; must be one of 28, 32, 64$"),
        # the wrong type: a string, and a boolean where a number is declared
        ({"objectives": {"realness": {"options": {"num_outcomes": "ten"}}}},
         (r"objectives.realness.options.num_outcomes: objective 'realness' option num_outcomes='ten' is invalid; "
          r"must be an integer >= 2$")),
        ({"metric_options": {"mixture-modes": {"samples": True}}},
         (r"metric_options.mixture-modes.samples: metric 'mixture-modes' option samples=True is invalid; "
          r"must be an integer >= 1$")),
        # a half-open range of floats, in a grid axis of tricks
        ({"grid": {**TINY_SUITE["grid"], "tricks": [[{"name": "label-smoothing", "options": {"smooth": 1.0}}]]}},
         (r"grid.tricks\[0\]\[0\].options.smooth: trick 'label-smoothing' option smooth=1.0 is invalid; "
          r"must be a number in \[0, 1\)$")),
        # a float YAML reads as a string
        ({"objectives": {"gan-qp": {"options": {"lam": "1e-3"}}}},
         (r"objectives.gan-qp.options.lam: objective 'gan-qp' option lam='1e-3' is invalid; must be a number > 0 "
          r"\(YAML reads 1e-3 as a string; write it with a dot, e.g. 0.001\)$")),
        # a float where an integer is declared
        ({"metric_options": {"mixture-modes": {"samples": 2.5}}},
         (r"metric_options.mixture-modes.samples: metric 'mixture-modes' option samples=2.5 is invalid; "
          r"must be an integer >= 1$")),
        # a required option left out
        ({"dataset": {"name": "image-folder"}, "grid": {**TINY_SUITE["grid"], "arch": ["dcgan"]}, "archs": {},
          "metrics": []},
         (r"dataset.options.path: dataset 'image-folder' needs the option path: a string \(the folder of images, "
          r"absolute or relative to the data root\)$")),
    ],
)
def test_each_kind_of_bad_value_is_refused_naming_what_is_valid(tmp_path: Path, catalogue, change: dict,
                                                               expected: str) -> None:
    path = write_suite(tmp_path, {"metric_options": {}, **change})
    with pytest.raises(SuiteError, match=r"tiny.yaml: 1 problem\n  line \d+: " + expected):
        load_suite(path, catalogue)


def test_a_nullable_option_takes_null_and_resolves_floats(tmp_path: Path, catalogue) -> None:
    path = write_suite(tmp_path, {"dataset": {"name": "digits"}, "grid": {**TINY_SUITE["grid"], "arch": ["dcgan"]},
                                  "archs": {}, "metrics": ["fidelity-classifier"],
                                  "metric_options": {"fidelity-classifier": {"real_samples": None}}})
    (job, _) = load_suite(path, catalogue).jobs
    assert job.metric_options == (("fidelity-classifier", (("real_samples", None),)),)
    bad = write_suite(tmp_path, {"dataset": {"name": "digits"}, "grid": {**TINY_SUITE["grid"], "arch": ["dcgan"]},
                                 "archs": {}, "metrics": ["fidelity-classifier"],
                                 "metric_options": {"fidelity-classifier": {"real_samples": 0}}}, name="bad.yaml")
    with pytest.raises(SuiteError, match=r"option real_samples=0 is invalid; must be an integer >= 1 or null$"):
        load_suite(bad, catalogue)


def test_a_dataset_no_default_metric_applies_to_is_refused_unless_the_suite_says(tmp_path: Path, catalogue) -> None:
    folder = {"dataset": {"name": "image-folder", "options": {"path": "pets"}}, "metric_options": {},
              "grid": {**TINY_SUITE["grid"], "arch": ["dcgan"]}, "archs": {}}
    with pytest.raises(SuiteError, match=(
            r"tiny.yaml: 1 problem\n  line \d+: dataset.name: no metric applies by default to dataset 'image-folder'; "
            r"name the metrics to compute under `metrics` \(these apply: fidelity-inception, reconstruction\), or set "
            r"`metrics: \[\]` to train without evaluations$")):
        load_suite(write_suite(tmp_path, folder), catalogue)
    for metrics, expected in (([], ()), (["fidelity-inception"], ("fidelity-inception",))):
        jobs = load_suite(write_suite(tmp_path, {**folder, "metrics": metrics}, name="ok.yaml"), catalogue).jobs
        assert [job.metrics for job in jobs] == [expected, expected]


def test_a_metric_that_does_not_apply_names_those_that_do(tmp_path: Path, catalogue) -> None:
    path = write_suite(tmp_path, {"metrics": ["stacked-modes"], "metric_options": {}})
    with pytest.raises(SuiteError, match=r"1 problem\n  line \d+: metrics\[0\]: metric 'stacked-modes' does not apply "
                                         r"to dataset 'ring8' \(these do: mixture-modes, reconstruction\)$"):
        load_suite(path, catalogue)


@pytest.mark.parametrize(
    ("tricks", "expected"),
    [
        # a union member (str | {name, options}) the item is not: only the member it matches speaks
        ([{"options": {"weight": 1.0}}], r"train.tricks\[0\].name: required key is missing$"),
        ([3], r"train.tricks\[0\]: Input should be a valid string \(got 3\)$"),
        ([{"name": "r1", "optons": {}}],
         r"train.tricks\[0\].optons: unknown key \(did you mean 'options'\?\); valid keys: name, options$"),
    ],
)
def test_schema_errors_inside_a_union_are_placed_at_their_key(tmp_path: Path, catalogue, tricks: list,
                                                             expected: str) -> None:
    path = write_suite(tmp_path, {"train": {**TINY_SUITE["train"], "tricks": tricks}})
    with pytest.raises(SuiteError, match=r"tiny.yaml: 1 problem\n  line \d+: " + expected):
        load_suite(path, catalogue)


def test_a_suite_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path, catalogue) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\ndataset: {name: ring8}\n")
    with pytest.raises(SuiteError, match=r"line 2: byte 0xe9 is not UTF-8; save the file as UTF-8"):
        load_suite(path, catalogue)
