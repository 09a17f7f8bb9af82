"""What makes an evaluation cheaper without changing its values: the evaluators of one evaluation share
each draw of generator samples, numpy's BLAS runs on torch's thread count, and a dataset is hashed and
a classifier file read once per process. Every value is compared with the computation it replaces."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from conftest import digits_8px
from threadpoolctl import threadpool_info

from bench.metrics import EvalContext, Evaluator, MetricInfo, classifier, fidelity, get_evaluator
from bench.metrics.classifier import (
    SmallCNN,
    classifier_key,
    classifier_paths,
    load_classifier,
    tensor_sha256,
)
from bench.spec import JobSpec, freeze_options
from bench.train import Job


def ring8_spec() -> JobSpec:
    return JobSpec(
        suite="sharing", dataset="ring8", dataset_options=freeze_options({"std": 0.02}), objective="nsgan",
        objective_options=(), arch="mlp", arch_options=freeze_options({"width": 16}), seed=3, steps=10,
        batch_size=16, latent_dim=2, critic_steps=1, optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
        tricks=(), metrics=("mixture-modes",), metric_options=(), eval_every=5, checkpoint_every=5, log_every=5,
        device="cpu", deterministic=True, eval_precision="float32",
    )


def probe(name: str, count: int) -> Evaluator:
    """An evaluator that draws `count` samples and reports their sum as metric `name`."""
    return Evaluator(name=name, description="probe", cost="cheap", metrics=(MetricInfo(name, "sum", "lower"),),
                     applies_to=lambda offers: True, evaluate=lambda ctx: {name: float(ctx.sample(count).sum())})


def test_evaluators_of_one_evaluation_share_each_draw(tmp_path):
    job = Job(ring8_spec(), data_root=tmp_path, cache_dir=tmp_path)
    draw = job.sample
    drawn: list[int] = []

    def counted(count: int) -> torch.Tensor:
        drawn.append(count)
        return draw(count)

    job.sample = counted  # type: ignore[method-assign]
    job.evaluators = [probe("a", 300), probe("b", 300), probe("c", 200)]
    values = job.evaluate()
    assert drawn == [300, 200]
    assert values == {"a": float(draw(300).sum()), "b": float(draw(300).sum()), "c": float(draw(200).sum())}
    job.train_step()
    job.evaluate()  # another evaluation draws afresh, from the weights as they are now
    assert drawn == [300, 200, 300, 200]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(digits at 8 px, a cache holding an untrained classifier for them): features that are a fixed
    function of the images are all these comparisons need, and no training is spent on them."""
    source = digits_8px()
    cache_dir = tmp_path_factory.mktemp("cache")
    weights_path, info_path = classifier_paths(source, cache_dir=cache_dir, seed=0)
    weights_path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    model = SmallCNN(1, 10).eval()
    torch.save({"in_channels": 1, "num_classes": 10, "state_dict": model.state_dict()}, weights_path)
    info_path.write_text(json.dumps({"accuracy": 0.1, **classifier_key(source, seed=0)}))
    return source, cache_dir


@contextmanager
def no_thread_limit(count: int):
    yield


def test_shared_evaluation_equals_each_evaluator_on_its_own_draw(planted, monkeypatch):
    source, cache_dir = planted
    noise = torch.randn(400, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    fakes = (source.test.images[:200].repeat(2, 1, 1, 1).flip(-1) + 0.3 * noise).clamp(-1, 1)
    options = {"fidelity-classifier": {"samples": 400, "kid_subsets": 20, "kid_subset_size": 200},
               "class-coverage": {"samples": 400}}
    evaluators = [get_evaluator(name) for name in options]

    def evaluate(sample) -> dict[str, float]:
        values: dict[str, float] = {}
        for evaluator in evaluators:
            context = EvalContext(sample=sample, source=source, device=torch.device("cpu"), cache_dir=cache_dir,
                                  seed=0, options=options[evaluator.name])
            values.update(evaluator.evaluate(context))
        return values

    # the computation replaced: each evaluator draws its own copy, numpy's BLAS at its default threads
    with monkeypatch.context() as patch:
        patch.setattr(fidelity, "blas_threads", no_thread_limit)
        before = evaluate(lambda count: fakes[:count].clone())
    drawn = {400: fakes[:400].clone()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        after = evaluate(lambda count: drawn[count])
    finally:
        torch.set_num_threads(threads)
    assert after == before
    assert len(after) == 7 and all(np.isfinite(value) for value in after.values())


def test_blas_runs_on_the_given_thread_count():
    with fidelity.blas_threads(1):
        inside = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert inside and set(inside) == {1}


def test_a_tensor_is_hashed_again_only_when_modified(monkeypatch):
    images = torch.arange(64, dtype=torch.float32).reshape(4, 1, 4, 4)
    digest = tensor_sha256(images)
    hashed: list[int] = []
    sha256 = classifier.hashlib.sha256

    def counted(*args):
        hashed.append(1)
        return sha256(*args)

    monkeypatch.setattr(classifier.hashlib, "sha256", counted)
    assert tensor_sha256(images) == digest and hashed == []
    images[0, 0, 0, 0] = 100.0  # in place: the version counter moves
    changed = tensor_sha256(images)
    assert changed != digest and hashed == [1]
    assert changed == tensor_sha256(images.clone())  # a new object of the same content: hashed, same digest
    assert hashed == [1, 1]


def test_a_classifier_file_is_read_once_and_each_caller_gets_its_own_module(planted, monkeypatch):
    source, cache_dir = planted
    weights_path, _ = classifier_paths(source, cache_dir=cache_dir, seed=0)
    first = load_classifier(weights_path)
    reads: list[str] = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append("read") or load(*args, **kwargs))
    second = load_classifier(weights_path)
    assert reads == [] and second is not first
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
        assert a.data_ptr() != b.data_ptr(), name
