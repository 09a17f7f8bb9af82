"""Bad arguments and bad suite files: exit 2 with one message, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import TINY_SUITE, write_suite

from bench.catalogue import build_catalogue
from bench.cli import main
from bench.suite import SuiteError, parse_suite


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))


def usage_error(capsys, argv: list[str]) -> str:
    """argparse's refusal: exit 2, the message on stderr."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "0", "two"])
@pytest.mark.parametrize("flag", ["--max-parallel", "--threads"])
def test_parallelism_and_threads_must_be_positive(tmp_path: Path, capsys, flag: str, value: str) -> None:
    suite = write_suite(tmp_path, {"executor": {"name": "local"}})
    err = usage_error(capsys, ["run", str(suite), flag, value])
    shown = repr(value) if value == "two" else value
    assert f"argument {flag}: must be an integer >= 1, got {shown}" in err
    assert not (tmp_path / "results").exists()


def test_a_port_out_of_range(capsys) -> None:
    assert "argument --port: must be an integer in [1, 65535], got 70000" in usage_error(
        capsys, ["ui", "--port", "70000", "--print-only"])


def test_help_lists_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 success; 1 some job failed, or a service (SLURM, MLflow) failed while running; 2 bad " \
           "input" in out
    assert "130 interrupted" in out
    import bench.cli

    assert "130  interrupted" in bench.cli.__doc__


DUPLICATED = """\
name: tiny
dataset: {name: ring8}
grid:
  objective: [nsgan]
  arch: [mlp]
  seed: [0]
  objective: [rsgan]
train:
  steps: 60
  lr: 1.0e-3
  steps: 6000
"""


def test_duplicate_keys_are_refused_with_their_lines() -> None:
    with pytest.raises(SuiteError, match=(
            r"^dup.yaml: 2 problems\n"
            r"  line 7: grid.objective: duplicate key, first set on line 4; a key may appear once in a mapping\n"
            r"  line 11: train.steps: duplicate key, first set on line 9; a key may appear once in a mapping$")):
        parse_suite(DUPLICATED, build_catalogue(), source="dup.yaml")


def test_duplicate_keys_are_reported_with_the_other_problems() -> None:
    text = DUPLICATED.replace("  lr: 1.0e-3\n", "  lr: fast\n")
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, build_catalogue(), source="dup.yaml")
    assert [problem.line for problem in caught.value.problems] == [7, 10, 11]


def test_a_duplicate_key_stops_the_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "dup.yaml").write_text(DUPLICATED)
    assert main(["run", "dup.yaml"]) == 2
    assert "line 11: train.steps: duplicate key, first set on line 9" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_the_same_key_in_different_mappings_is_fine() -> None:
    suite = {**TINY_SUITE, "train": {**TINY_SUITE["train"], "steps": 60},
             "metric_options": {"mixture-modes": {"samples": 500}}}
    assert len(parse_suite(yaml.safe_dump(suite), build_catalogue()).jobs) == 2


def written(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: "missing.yaml", "missing.yaml: 1 problem\n  <top>: cannot read the file: No such file or directory\n"),
    (lambda d: (d / "folder").mkdir() or "folder",
     "folder: 1 problem\n  <top>: cannot read the file: Is a directory\n"),
    (lambda d: written(d / "empty.yaml", ""),
     "empty.yaml: 1 problem\n  <top>: the file is empty; a suite is a YAML mapping with at least name, dataset and "
     "grid (see suites/quickstart.yaml)\n"),
    (lambda d: written(d / "list.yaml", "- 1\n"),
     "list.yaml: 1 problem\n  <top>: a suite is a YAML mapping, got list\n"),
    (lambda d: written(d / "broken.yaml", "name: x\ngrid: [1, 2\n"),
     "broken.yaml: 1 problem\n  line 3: <top>: not valid YAML: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence on line 2)\n"),
], ids=["missing", "directory", "empty", "list", "broken"])
def test_a_suite_file_that_is_not_a_suite(tmp_path: Path, capsys, make, message: str) -> None:
    assert main(["run", make(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == message
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"executor": {"name": "cluster"}},
     "line 27: executor.name: Input should be 'debug', 'local' or 'slurm' (got 'cluster')"),
    ({"train": {**TINY_SUITE["train"], "steps": -5}},
     "line 13: train.steps: Input should be greater than 0 (got -5)"),
], ids=["unknown-executor", "negative-steps"])
def test_bad_values_in_a_suite(tmp_path: Path, capsys, overrides: dict, message: str) -> None:
    assert main(["run", str(write_suite(tmp_path, overrides))]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_an_unknown_name_on_the_command_line(capsys) -> None:
    assert main(["list", "objectives", "foogan"]) == 2
    assert capsys.readouterr().err.startswith("unknown objective 'foogan'; valid: sgan, nsgan,")
