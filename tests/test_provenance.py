"""The provenance table of a job's metrics: one row per evaluator, from suites as bench.suite parses them,
without loading data or training; counts of real images when the loaded source is given."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from pathlib import Path

import pytest
import torch
import yaml

from bench import data as data_lib
from bench.catalogue import build_catalogue
from bench.metrics import EVALUATORS, fidelity, provenance
from bench.metrics import classifier as classifier_lib
from bench.metrics.provenance import PROVENANCE_COLUMNS, metric_provenance
from bench.registry import Registry
from bench.spec import JobSpec
from bench.suite import parse_suite

TORCH_FIDELITY = importlib.metadata.version("torch-fidelity")
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
# SHA-256 of b"abc": the FIPS 180-2 example, ba7816bf 8f01cfea ...
ABC_SHA256_PREFIX = "ba7816bf8f01"
RECIPE = re.compile(r"trained on (\S+), recipe [0-9a-f]{12}, seed (\d+)")


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue()


def jobs(catalogue, **suite) -> list[JobSpec]:
    """The jobs of a one-seed suite with `suite`'s keys (dataset, grid, metrics, metric_options)."""
    text = yaml.safe_dump({"name": "provenance", "executor": {"name": "debug"}, **suite})
    return parse_suite(text, catalogue).jobs


def digits_jobs(catalogue, **suite) -> list[JobSpec]:
    return jobs(catalogue, dataset={"name": "digits", "options": {"resolution": 32}},
                grid={"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]}, **suite)


@pytest.fixture
def no_data_no_training(monkeypatch):
    """Fails the test if anything loads a dataset or trains or loads a classifier."""
    def refuse(*args, **kwargs):
        raise AssertionError("provenance loaded data or trained a network")

    monkeypatch.setattr(data_lib, "load_dataset", refuse)
    for name in ("train_classifier", "get_classifier", "classifier_file", "load_classifier"):
        monkeypatch.setattr(classifier_lib, name, refuse)
    monkeypatch.setattr(fidelity, "classifier_file", refuse)
    monkeypatch.setattr(fidelity, "_real_split", refuse)


@pytest.fixture
def no_inception_weights(monkeypatch, tmp_path):
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))


def test_image_suite_rows_without_the_data(catalogue, tmp_path, no_data_no_training):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"abc")
    (job,) = digits_jobs(
        catalogue, metrics=["fidelity-classifier", "class-coverage", "fidelity-inception"],
        metric_options={
            "fidelity-inception": {"samples": 10000, "real_split": "test", "inception_weights": str(weights)},
        },
    )
    rows = metric_provenance(job)
    assert [list(row) for row in rows] == [list(PROVENANCE_COLUMNS)] * 3
    classifier_row, coverage_row, inception_row = rows
    assert RECIPE.fullmatch(classifier_row.pop("weights")).groups() == ("digits", "0")
    assert classifier_row == {
        "metric": "fidelity-classifier",
        "extractor": "bench classifier trained on digits (penultimate, 128-d; IS on its logits)",
        "generated": "10,000",  # the evaluator's own default: the suite sets none
        "real": "all (test split, or without one the sixth of train the classifier holds out)",
        "resolution": "32x32, native (no resize), quantised to uint8",
        "torch_fidelity": TORCH_FIDELITY,
    }
    assert RECIPE.fullmatch(coverage_row.pop("weights")).groups() == ("digits", "0")
    assert coverage_row == {
        "metric": "class-coverage", "extractor": "bench classifier trained on digits (argmax class)",
        "generated": "10,000", "real": "n/a", "resolution": "32x32, native", "torch_fidelity": "n/a",
    }
    assert inception_row == {
        "metric": "fidelity-inception",
        "extractor": "Inception v3 (TF 2015 graph; pool3, 2048-d; IS on the 1008 unbiased logits)",
        "weights": f"sha256 {ABC_SHA256_PREFIX} (w.pth)",
        "generated": "10,000",  # the suite's override of the 50,000 default (Lucic et al.'s count)
        "real": "all (test split)",
        "resolution": "32x32 -> 299x299 bilinear (torch-fidelity, as TF 1.x), quantised to uint8, grey repeated to RGB",
        "torch_fidelity": TORCH_FIDELITY,
    }


def test_counts_of_real_images_come_from_a_loaded_source(catalogue, tmp_path, no_inception_weights):
    (job,) = digits_jobs(
        catalogue, metrics=["fidelity-classifier", "fidelity-inception"],
        metric_options={"fidelity-classifier": {"samples": 2000, "real_split": "train", "real_samples": 500}},
    )
    without = {row["metric"]: row for row in metric_provenance(job)}
    assert without["fidelity-classifier"]["generated"] == "2,000"
    assert without["fidelity-classifier"]["real"] == "at most 500 (train split; fixed subset, seed 0)"
    assert without["fidelity-inception"]["generated"] == "50,000"  # RGAN's count, the default
    assert without["fidelity-inception"]["weights"] == f"missing on this machine ({WEIGHTS_FILE})"

    source = data_lib.load_dataset("digits", root=tmp_path, options={"resolution": 32})
    loaded = {row["metric"]: row for row in metric_provenance(job, source=source)}
    # scikit-learn's 1,797 digits, 20% held out: round(359.4) = 359 test, 1,438 train
    assert loaded["fidelity-classifier"]["real"] == "500 of 1,438 (train split; fixed subset, seed 0)"
    assert loaded["fidelity-inception"]["real"] == "all 1,438 (train split)"
    held_out = dataclasses.replace(job, metric_options=())
    (row,) = [r for r in metric_provenance(held_out, source=source) if r["metric"] == "fidelity-classifier"]
    assert row["real"] == "all 359 (test split, held out from the classifier)"


def test_toy_and_encoder_rows(catalogue, no_data_no_training):
    specs = jobs(catalogue, dataset={"name": "ring8"},
                 grid={"objective": ["nsgan", "bigan-qp"], "arch": ["mlp"], "seed": [0]})
    assert [job.metrics for job in specs] == [("mixture-modes",), ("mixture-modes", "reconstruction")]
    mixture_row, reconstruction_row = metric_provenance(specs[1])
    assert mixture_row == {
        "metric": "mixture-modes", "extractor": "none (2-D points)", "weights": "n/a",
        "generated": "2,500",  # PacGAN's 2,500 samples per evaluation
        "real": "n/a", "resolution": "n/a", "torch_fidelity": "n/a",
    }
    assert reconstruction_row == {
        "metric": "reconstruction", "extractor": "none (2-D points)", "weights": "n/a", "generated": "1,000",
        "real": "n/a", "resolution": "n/a", "torch_fidelity": "n/a",
    }


def test_stacked_mnist_row(catalogue, no_data_no_training):
    (job,) = jobs(catalogue, dataset={"name": "stacked-mnist"},
                  grid={"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]}, metrics=["stacked-modes"])
    (row,) = metric_provenance(job)
    assert RECIPE.fullmatch(row.pop("weights")).groups() == ("stacked-mnist", "0")
    assert row == {
        "metric": "stacked-modes", "extractor": "bench classifier trained on stacked-mnist (argmax class)",
        "generated": "26,000",  # VEEGAN's and PacGAN's 26,000 samples
        "real": "n/a", "resolution": "28x28, native", "torch_fidelity": "n/a",
    }


def test_every_registered_evaluator_gets_a_full_row(catalogue, no_data_no_training, no_inception_weights):
    bases = {
        "ring8": jobs(catalogue, dataset={"name": "ring8"},
                      grid={"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]})[0],
        "digits": digits_jobs(catalogue)[0],
        "stacked-mnist": jobs(catalogue, dataset={"name": "stacked-mnist"},
                              grid={"objective": ["nsgan"], "arch": ["dcgan"], "seed": [0]})[0],
    }
    covered = []
    for name, evaluator in EVALUATORS.items():
        for dataset, base in bases.items():
            if evaluator.applies_to(data_lib.dataset_offers(dataset, dict(base.dataset_options))):
                (row,) = metric_provenance(dataclasses.replace(base, metrics=(name,)))
                assert tuple(row) == PROVENANCE_COLUMNS and row["metric"] == name
                assert all(isinstance(value, str) and value for value in row.values())
                covered.append(name)
                break
    assert covered == list(EVALUATORS)


def test_unknown_options_and_malformed_declarations_are_refused(catalogue, monkeypatch):
    (job,) = digits_jobs(catalogue, metrics=["fidelity-classifier"])
    typo = dataclasses.replace(job, metric_options=(("fidelity-classifier", (("sampels", 10),)),))
    with pytest.raises(ValueError, match=r"metric 'fidelity-classifier' has no option 'sampels'; valid: batch_size"):
        metric_provenance(typo)

    monkeypatch.setattr(provenance, "PROVENANCE", Registry("metric provenance"))
    provenance.register_provenance("fidelity-classifier", lambda spec, options, source: {"extractor": "x"})
    with pytest.raises(ValueError, match=re.escape(
        "provenance of metric 'fidelity-classifier' gives extractor; expected extractor, weights, generated, real, "
        "resolution, torch_fidelity"
    )):
        metric_provenance(job)
    with pytest.raises(KeyError, match="unknown metric 'fid'"):
        provenance.register_provenance("fid", lambda spec, options, source: {})


def test_weights_of_the_default_inception_location(catalogue, tmp_path, monkeypatch):
    """Found where torch-fidelity downloads it: the row names its hash, computed from the file."""
    monkeypatch.delenv("BENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    hub_file = Path(tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE)
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(b"abc")
    (job,) = digits_jobs(catalogue, metrics=["fidelity-inception"])
    (row,) = metric_provenance(job)
    assert row["weights"] == f"sha256 {ABC_SHA256_PREFIX} ({WEIGHTS_FILE})"
