"""Option declarations (bench.registry.Option): every registered part declares each of its options
once, with a description, and a value is checked against its declaration wherever it is used."""

from __future__ import annotations

import pytest

from bench import data, metrics, nets, objectives, penalties
from bench.registry import REQUIRED, Option, OptionError, resolve

DECLARED = {
    "objective": {name: entry.options for name, entry in objectives.OBJECTIVES.items()},
    "trick": {name: entry.options for name, entry in penalties.TRICKS.items()},
    "architecture": {name: entry.options for name, entry in nets.ARCHS.items()},
    "dataset": {name: entry.options for name, entry in data.DATASETS.items()},
    "metric": {name: evaluator.options for name, evaluator in metrics.EVALUATORS.items()},
}


@pytest.mark.parametrize("kind", sorted(DECLARED))
def test_every_registered_option_is_declared_with_a_description(kind: str) -> None:
    for name, declared in DECLARED[kind].items():
        for key, option in declared.items():
            assert isinstance(option, Option), f"{kind} {name!r} option {key}"
            assert option.description.strip(), f"{kind} {name!r} option {key}"
            assert option.required or option.check(option.default) is None, f"{kind} {name!r} option {key}"


def test_parts_with_options_take_exactly_their_declarations() -> None:
    # every part builds with its defaults, and what it was built with is what is declared
    for name, entry in objectives.OBJECTIVES.items():
        assert set(entry().options) == set(entry.options), name
    assert set(objectives.get_objective("bigan-qp").options) == {"distance", "lam", "beta1", "beta2"}
    with pytest.raises(TypeError, match=r"objective 'x': build takes \(lam\), but its options are \(none\)"):
        objectives.register_objective("x", description="x", paper="x", build=lambda *, lam=1.0: None)
    with pytest.raises(TypeError, match=r"trick 'y': build takes \(gamma\), but its options are \(gamma\); every build "
                                        r"parameter must be a declared option, keyword-only, without a default"):
        penalties.register_trick("y", description="y", build=lambda gamma: None,
                                 options={"gamma": Option(1.0, float, description="g")})


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        (Option(1, int, low=1, description="d"), 0, "must be an integer >= 1"),
        (Option(1, int, low=1, description="d"), True, "must be an integer >= 1"),
        (Option(1, int, low=1, description="d"), 1.0, "must be an integer >= 1"),
        (Option(0.5, float, low=0.0, low_open=True, description="d"), 0, "must be a number > 0"),
        (Option(0.5, float, low=0.0, high=1.0, high_open=True, description="d"), 1, "must be a number in [0, 1)"),
        (Option(0.5, float, high=2.0, description="d"), 2.5, "must be a number <= 2"),
        (Option(0.5, float, description="d"), float("nan"), "must be a number"),
        (Option("l1", str, choices=("l1", "l2"), description="d"), "l3", "must be one of l1, l2"),
        (Option(2, int, choices=(1, 2, 3), description="d"), True, "must be one of 1, 2, 3"),
        (Option(False, bool, description="d"), 1, "must be true or false"),
        (Option(None, int, low=1, nullable=True, description="d"), "all", "must be an integer >= 1 or null"),
        (Option(None, str, nullable=True, description="d"), 3, "must be a string or null"),
    ],
)
def test_a_bad_value_of_each_declared_kind_names_what_is_valid(option: Option, value: object, problem: str) -> None:
    assert option.check(value) == problem


@pytest.mark.parametrize(
    ("option", "value"),
    [
        (Option(1, int, low=1, description="d"), 1),
        (Option(0.5, float, low=0.0, high=1.0, description="d"), 1),
        (Option(0.5, float, low=0.0, high=1.0, description="d"), 0.0),
        (Option(None, int, low=1, nullable=True, description="d"), None),
        (Option(True, bool, description="d"), False),
    ],
)
def test_valid_values_pass(option: Option, value: object) -> None:
    assert option.check(value) is None


def test_resolve_fills_defaults_converts_floats_and_names_every_problem_at_once() -> None:
    declared = {
        "lam": Option(10.0, float, low=0.0, low_open=True, description="lambda"),
        "path": Option(REQUIRED, str, description="a folder"),
        "mode": Option("a", str, choices=("a", "b"), description="mode"),
    }
    assert resolve("part 'p'", {"lam": 2, "path": "x"}, declared) == {"lam": 2.0, "path": "x", "mode": "a"}
    with pytest.raises(OptionError, match=(
            r"^part 'p' has no option 'lamda'; valid: lam, mode, path\n"
            r"part 'p' needs the option path: a string \(a folder\)\n"
            r"part 'p' option mode='c' is invalid; must be one of a, b$")):
        resolve("part 'p'", {"lamda": 1.0, "mode": "c"}, declared)


def test_a_declaration_is_refused_without_a_description_or_with_a_bad_default() -> None:
    with pytest.raises(ValueError, match="an option needs a description"):
        Option(1, int, description=" ")
    with pytest.raises(ValueError, match=r"default 0 is invalid: must be an integer >= 1"):
        Option(0, int, low=1, description="d")
    with pytest.raises(TypeError, match="option type must be one of int, float, str, bool"):
        Option((1, 2), tuple, description="d")


@pytest.mark.parametrize(
    ("dataset", "options", "expected"),
    [
        ("ring8", {}, ["mixture-modes"]),
        ("grid25", {}, ["mixture-modes"]),
        ("digits", {}, ["fidelity-classifier"]),
        ("cifar10", {}, ["fidelity-classifier"]),
        ("stacked-mnist", {}, ["stacked-modes"]),
        ("image-folder", {"path": "pets"}, []),
    ],
)
def test_default_metrics_follow_what_the_dataset_offers(dataset: str, options: dict, expected: list[str]) -> None:
    assert metrics.default_evaluators(data.dataset_offers(dataset, options)) == expected


def test_what_datasets_offer_is_declared_from_their_options() -> None:
    assert data.dataset_offers("grid25", {}) == data.DatasetOffers("points", mixture_centres=25)
    assert data.dataset_offers("mnist", {"resolution": 32}) == data.DatasetOffers(
        "images", channels=1, labels=True, classes=10)
    assert data.dataset_offers("stacked-mnist", {}).stacked_modes == 1000
    assert data.dataset_offers("image-folder", {"path": "pets", "channels": 1}) == data.DatasetOffers(
        "images", channels=1)
