"""PacGAN's packing (trick `packing`): the critic judges m samples at once, concatenated along the
channel (or feature) axis, as the PacGAN code does (Lin et al. 2018; fjxmlzn/PacGAN bricks.py L62-67)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE, write_suite

from bench import nets
from bench.catalogue import build_catalogue
from bench.cli import main
from bench.stacked import stackable
from bench.store import SuiteStore
from bench.suite import SuiteError, load_suite

PACKED = [{"name": "packing", "options": {"m": 2}}]


def test_packing_concatenates_consecutive_samples_along_the_first_data_axis() -> None:
    images = np.arange(6 * 3 * 2 * 2, dtype=np.float32).reshape(6, 3, 2, 2)
    # PacGAN's layout, built with numpy: row i holds samples 2i and 2i+1, channels of the first first
    expected = np.stack([np.concatenate([images[2 * i], images[2 * i + 1]], axis=0) for i in range(3)])
    packed = nets.pack_samples(torch.from_numpy(images), 2)
    assert packed.shape == (3, 6, 2, 2)
    np.testing.assert_array_equal(packed.numpy(), expected)
    points = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(nets.pack_samples(torch.from_numpy(points), 3).numpy(),
                                  [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    unpacked = torch.from_numpy(points)
    assert nets.pack_samples(unpacked, 1) is unpacked
    with pytest.raises(ValueError, match="needs a batch that is a multiple of 4; got 6"):
        nets.pack_samples(torch.from_numpy(points), 4)


def test_a_packed_critic_takes_m_times_the_channels_and_gives_one_logit_per_packed_input() -> None:
    critic = nets.build_critic("dcgan", data_shape=(3, 28, 28), critic_outputs=1,
                               options={"width": 8}, pack=2)
    first = next(module for module in critic.modules() if isinstance(module, torch.nn.Conv2d))
    assert first.in_channels == 6
    logits = critic(nets.pack_samples(torch.randn(8, 3, 28, 28), 2))
    assert logits.shape == (4,)
    mlp = nets.build_critic("mlp", data_shape=(2,), critic_outputs=1, options={"width": 16, "depth": 2}, pack=3)
    assert next(module for module in mlp.modules() if isinstance(module, torch.nn.Linear)).in_features == 6


def test_packed_jobs_train_with_a_per_input_gradient_penalty_and_in_the_pair_game(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, {
        "grid": {"objective": ["nsgan", "wgan-gp", "bigan-qp"], "arch": ["mlp"], "seed": [0], "tricks": [PACKED]},
        "objectives": {"wgan-gp": {"tricks": ["gradient-penalty", *PACKED]}},
        "train": {**TINY_SUITE["train"], "steps": 20, "eval_every": 10, "checkpoint_every": 10}})
    assert main(["run", str(suite), "--no-tracking", "--no-report", "--no-progress"]) == 0
    store = SuiteStore(tmp_path / "results" / "tiny")
    for job_id in store.job_ids():
        job = store.job(job_id)
        assert job.read_status()["status"] == "done"
        assert ("packing", (("m", 2),)) in job.read_spec().tricks
        weights = job.load_checkpoint()["critic"]
        first = next(key for key in weights if key.endswith("weight"))
        assert weights[first].shape[1] == 4  # two 2-D points per critic input (the x branch of a pair critic)


def test_a_batch_that_is_not_a_multiple_of_m_is_refused_at_load(tmp_path: Path) -> None:
    path = write_suite(tmp_path, {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0]},
                                  "train": {**TINY_SUITE["train"], "batch_size": 63,
                                            "tricks": [{"name": "packing", "options": {"m": 2}}]}})
    with pytest.raises(SuiteError, match=r"trick 'packing' packs 2 samples into each critic input, so the batch "
                                         r"must be a multiple of 2; objective 'nsgan' has batch_size 63"):
        load_suite(path, build_catalogue())


def test_packed_jobs_are_not_stacked(tmp_path: Path) -> None:
    path = write_suite(tmp_path, {"grid": {"objective": ["nsgan"], "arch": ["mlp"], "seed": [0, 1]},
                                  "train": {**TINY_SUITE["train"], "tricks": PACKED}})
    jobs = load_suite(path, build_catalogue()).jobs
    assert stackable(jobs) == ("trick 'packing' packs samples into each critic input; stacked training judges "
                               "samples one by one")
