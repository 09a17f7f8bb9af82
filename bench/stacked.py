"""Several seeds of one grid cell trained in one process, as one stacked model.

A group of JobSpecs that differ only in their seed is trained as one model whose every parameter
has a leading seed dimension (K, ...): the networks run under `torch.func.vmap` over
`torch.func.functional_call`, so one step of K seeds costs about one step's worth of kernel launches
and Python work instead of K. Small models (the mixtures' MLPs) leave most of a CPU idle; stacked,
they fill it.

Each seed is still its own job, built by `bench.train.Job` from its own spec, so it has its own
initial weights, real-data, noise and evaluation streams, and its own share of the process-wide
RNGs (torch, CUDA, numpy, python: installed while that seed's penalty terms, evaluation and
checkpoint run). Each job's modules keep their own parameters, whose storage is the job's slice of
the stacked parameters: evaluation, weight constraints and checkpoints go through the job's own
`evaluate`, `after_critic_step` and `state`, and a checkpoint written here is the checkpoint that
`bench.train.train` writes (one per job, resumable by either). Adam, RMSprop and SGD are
elementwise, so one optimiser over the stacked parameters holds each seed's optimiser state as a
slice (pinned by tests/test_stacked_training.py).

What stacks, checked by `stackable(specs)`: specs equal in every field but the seed; the sample game
(not BiGAN-QP's pair game); networks with no state besides their weights (no batch-norm running
statistics, no spectral-norm power-iteration vectors, no reference batches) whose stacked forward
matches each network's own; objectives whose losses run under vmap; tricks whose terms can be
computed from a per-seed critic that is callable (gradient penalty, R1, R2 and label smoothing are
computed per seed, weight clipping on each job's slice; feature matching needs `critic.features`,
which a per-seed view does not expose). Results match separate jobs within float tolerance: a
batched matrix product rounds differently from K single ones.

Metrics, status and checkpoints are written per job, exactly as `train` writes them. A job's
`train_s` (and the `wall_s` of its metric rows) is its share of the stacked steps' time: each step's
time divided by the seeds still training. A seed whose loss or weights turn non-finite is recorded
as diverged and leaves the bookkeeping; its slice keeps being computed (every operation is per
seed, so its NaNs cannot reach the others) and the other seeds train on.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from bench import data as data_lib
from bench import nets
from bench.objectives import Objective, get_objective
from bench.penalties import Trick, TrickInputs, get_trick
from bench.spec import JobSpec
from bench.store import DIVERGED_METRIC, JobStore, MetricRow, Status
from bench.train import (
    Job,
    TrainResult,
    _make_optimizer,
    _save_samples,
    network_options,
    reuses_fakes,
    train,
)

# the one field that may differ inside a stacked group
SEED_FIELD = "seed"

# how closely a probe's stacked forward or loss must reproduce the per-seed one
PROBE_RTOL, PROBE_ATOL = 1e-4, 1e-5
PROBE_BATCH = 4


# --- what can be stacked ----------------------------------------------------------------------


def _overrides(trick: Trick, hook: str) -> bool:
    return getattr(type(trick), hook) is not getattr(Trick, hook)


class _SeedCritic:
    """One seed's critic as a callable over its slice of the stacked critic parameters: x -> C_k(x),
    with gradients to the stacked parameters. What a trick's term sees as `critic`."""

    def __init__(self, critic: nn.Module, params: dict[str, Tensor]) -> None:
        self.critic = critic
        self.params = params

    def __call__(self, x: Tensor) -> Tensor:
        return functional_call(self.critic, self.params, (x,), tie_weights=False)


def _stateful_parts(module: nn.Module) -> list[str]:
    """The kinds of layer (class names) in `module` that hold buffers: state besides the weights,
    such as batch norm's running statistics or spectral norm's power-iteration vectors."""
    kinds = {type(part).__name__: None for part in module.modules()
             if any(buffer is not None for buffer in part._buffers.values())}
    return list(kinds)


def _stacked_weights(modules: Sequence[nn.Module]) -> dict[str, Tensor]:
    """name -> (K, ...) stacked copies of the modules' parameters (detached)."""
    named = [dict(module.named_parameters()) for module in modules]
    return {name: torch.stack([params[name].detach() for params in named]) for name in named[0]}


def _probe_network(name: str, build: Callable[[], nn.Module], inputs: Callable[[], tuple[Tensor, ...]]) -> str | None:
    """None if two independently initialised copies of a network run stacked under vmap as each runs alone."""
    copies = [build(), build()]
    stateful = _stateful_parts(copies[0])
    if stateful:
        return (f"the {name} has layers with state besides their weights ({', '.join(stateful)}), which a "
                f"stacked step cannot keep per seed")
    batches = [inputs(), inputs()]
    stacked_inputs = tuple(torch.stack(parts) for parts in zip(*batches))
    try:
        stacked = vmap(lambda params, *args: functional_call(copies[0], params, args))(
            _stacked_weights(copies), *stacked_inputs)
    except Exception as error:  # noqa: BLE001 - any failure under vmap is the reason
        return f"the {name} does not run under torch.func.vmap ({type(error).__name__}: {error})"
    for seed, (copy, batch) in enumerate(zip(copies, batches)):
        alone = copy(*batch)
        if not torch.allclose(stacked[seed], alone, rtol=PROBE_RTOL, atol=PROBE_ATOL):
            return f"the {name}'s stacked forward differs from its own forward"
    return None


def _probe_losses(
    objective: Objective, critic_outputs_shape: tuple[int, ...], data_shape: tuple[int, ...]
) -> str | None:
    """None if the objective's two losses run under vmap and give each seed's own loss."""
    c_real, c_fake = (torch.randn(2, PROBE_BATCH, *critic_outputs_shape) for _ in range(2))
    available = {"x_real": torch.randn(2, PROBE_BATCH, *data_shape), "x_fake": torch.randn(2, PROBE_BATCH, *data_shape)}
    extra = {key: available[key] for key in objective.extra_inputs}
    for loss in (objective.d_loss, objective.g_loss):
        try:
            stacked = vmap(lambda real, fake, inputs, loss=loss: loss(real, fake, **inputs))(c_real, c_fake, extra)
        except Exception as error:  # noqa: BLE001 - any failure under vmap is the reason
            return (f"objective {objective.name!r}: its losses do not run under torch.func.vmap "
                    f"({type(error).__name__}: {error})")
        for seed in range(2):
            alone = loss(c_real[seed], c_fake[seed], **{key: value[seed] for key, value in extra.items()})
            if not torch.allclose(stacked[seed], alone, rtol=PROBE_RTOL, atol=PROBE_ATOL):
                return f"objective {objective.name!r}: its stacked losses differ from its own"
    return None


def _probe_tricks(tricks: Sequence[Trick], critic: nn.Module, data_shape: tuple[int, ...]) -> str | None:
    """None if every trick's terms can be computed from a per-seed critic view."""
    view = _SeedCritic(critic, {name: p.detach().requires_grad_(True) for name, p in critic.named_parameters()})
    x_real, x_fake = torch.randn(PROBE_BATCH, *data_shape), torch.randn(PROBE_BATCH, *data_shape)
    inputs = TrickInputs(critic=view, x_real=x_real, x_fake=x_fake, c_real=view(x_real), c_fake=view(x_fake))  # type: ignore[arg-type]
    for trick in tricks:
        for hook in ("critic_term", "generator_term"):
            if not _overrides(trick, hook):
                continue
            try:
                getattr(trick, hook)(inputs)
            except Exception as error:  # noqa: BLE001 - any failure on a per-seed view is the reason
                return (f"trick {trick.name!r}: its {hook.replace('_', ' ')} needs more of the critic than a "
                        f"per-seed view gives ({type(error).__name__}: {error})")
    return None


def stackable(specs: Sequence[JobSpec]) -> str | None:
    """None if `specs` can be trained together by `train_stacked`, else why not (one line).

    Nothing is trained or written; the probes build small copies of the networks on the CPU (the
    global RNG is restored afterwards).
    """
    if not specs:
        return "no jobs to stack"
    first = specs[0].to_dict()
    differing = sorted({key for spec in specs[1:] for key, value in spec.to_dict().items()
                        if key != SEED_FIELD and value != first[key]})
    if differing:
        return f"the jobs differ in more than their seed: {', '.join(differing)}"
    seeds = [spec.seed for spec in specs]
    if len(set(seeds)) != len(seeds):
        return f"the seeds are not distinct: {seeds}"
    spec = specs[0]
    try:
        reuses_fakes(spec)
    except ValueError as error:
        return str(error)
    objective = get_objective(spec.objective, **dict(spec.objective_options))
    if objective.critic_input != "sample":
        return (f"objective {spec.objective!r} plays the {objective.critic_input} game (an encoder and a pair "
                f"critic); only the sample game is stacked")
    tricks = [get_trick(name, **dict(options)) for name, options in spec.tricks]
    packing = [trick.name for trick in tricks if trick.packing() > 1]
    if packing:
        return f"trick {packing[0]!r} packs samples into each critic input; stacked training judges samples one by one"
    generator_options, critic_options = network_options(spec, tricks)
    data_shape = data_lib.dataset_shape(spec.dataset, dict(spec.dataset_options))
    outputs = objective.critic_outputs
    outputs_shape = () if outputs == 1 else (outputs,)
    with torch.random.fork_rng(devices=[]):
        def generator() -> nn.Module:
            return nets.build_generator(spec.arch, data_shape=data_shape, latent_dim=spec.latent_dim,
                                        options=generator_options)

        def critic() -> nn.Module:
            return nets.build_critic(spec.arch, data_shape=data_shape, critic_outputs=outputs, options=critic_options)

        reason = (_probe_network("generator", generator, lambda: (torch.randn(PROBE_BATCH, spec.latent_dim),))
                  or _probe_network("critic", critic, lambda: (torch.randn(PROBE_BATCH, *data_shape),))
                  or _probe_losses(objective, outputs_shape, data_shape)
                  or _probe_tricks(tricks, critic(), data_shape))
    return reason


@dataclass(frozen=True)
class SeedGroup:
    """Jobs run as one unit: seeds of one grid cell trained stacked (`reason` None, two or more specs),
    or a single job; `reason` says why a cell's seeds that were to be stacked run separately."""

    specs: tuple[JobSpec, ...]
    reason: str | None = None

    @property
    def stacked(self) -> bool:
        return len(self.specs) > 1

    def describe(self) -> str:
        """"nsgan / mlp, seeds 0, 1, 2" (the cell and its seeds)."""
        first = self.specs[0]
        seeds = ", ".join(str(spec.seed) for spec in self.specs)
        return f"{first.objective} / {first.arch}, seed{'s' if len(self.specs) > 1 else ''} {seeds}"


def seed_groups(jobs: Sequence[JobSpec], stack_seeds: int) -> list[SeedGroup]:
    """`jobs` as units to run: the seeds of each grid cell (jobs equal but for the seed) in groups of up
    to `stack_seeds`, in seed order, each trained stacked when `stackable` allows, else each of its jobs
    alone with the reason. With `stack_seeds` 1 every job is its own group. A cell's groups stand where
    its first job stood in `jobs`; a stackable group with one job left over gives a single job."""
    if stack_seeds < 1:
        raise ValueError(f"stack_seeds must be >= 1, got {stack_seeds}")
    if stack_seeds == 1:
        return [SeedGroup((job,)) for job in jobs]
    cells: dict[str, list[JobSpec]] = {}
    for job in jobs:
        cell = {key: value for key, value in job.to_dict().items() if key != SEED_FIELD}
        cells.setdefault(json.dumps(cell, sort_keys=True, default=str), []).append(job)
    groups: list[SeedGroup] = []
    for cell_jobs in cells.values():
        cell_jobs = sorted(cell_jobs, key=lambda job: job.seed)
        for start in range(0, len(cell_jobs), stack_seeds):
            chunk = tuple(cell_jobs[start:start + stack_seeds])
            reason = stackable(chunk) if len(chunk) > 1 else None
            if reason is None:
                groups.append(SeedGroup(chunk))
            else:
                groups += [SeedGroup((job,), reason) for job in chunk]
    return groups


# --- one seed's share of the process-wide RNGs ------------------------------------------------


class _GlobalRNG:
    """One seed's states of the process-wide RNGs (torch CPU, CUDA, numpy, python), taken from the
    process now; `active()` installs them for that seed's work and keeps what the work left."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.capture()

    def capture(self) -> None:
        self.torch = torch.get_rng_state()
        self.cuda_states = torch.cuda.get_rng_state_all() if self.cuda else None
        self.numpy = np.random.get_state()
        self.python = random.getstate()

    def install(self) -> None:
        torch.set_rng_state(self.torch)
        if self.cuda_states is not None:
            torch.cuda.set_rng_state_all(self.cuda_states)
        np.random.set_state(self.numpy)
        random.setstate(self.python)

    @contextmanager
    def active(self) -> Iterator[None]:
        self.install()
        try:
            yield
        finally:
            self.capture()


def _owned(value: Any) -> Any:
    """`value` with every tensor cloned: a job's weights are views of the stacked ones, and torch.save
    of a view writes its whole storage (every seed)."""
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _owned(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_owned(item) for item in value)
    return value


# optimiser state entries that are one number for the whole parameter, not one per element
_SCALAR_STATE = frozenset({"step"})


# --- the stacked model ------------------------------------------------------------------------


class StackedJobs:
    """K jobs of one grid cell as one stacked model: `train_step()` updates every seed at once.

    `jobs` are built (and, when resuming, loaded from their checkpoints) by `bench.train.Job`; from
    here on each job's parameters are views of its slice of the stacked ones, and its optimisers'
    states live in the stacked optimisers until `state(seed, ...)` writes them back for a checkpoint.
    `rngs[k]` is seed k's share of the process-wide RNGs.
    """

    def __init__(self, jobs: Sequence[Job], rngs: Sequence[_GlobalRNG]) -> None:
        self.jobs, self.rngs = list(jobs), list(rngs)
        first = self.jobs[0]
        self.spec, self.device, self.objective, self.tricks = first.spec, first.device, first.objective, first.tricks
        self.reuse_fakes = first.reuse_fakes
        # the modules functional_call runs: their own weights are never read
        self.generator, self.critic = first.generator, first.critic
        self.g_params = self._stack([job.generator for job in self.jobs])
        self.d_params = self._stack([job.critic for job in self.jobs])
        spec = self.spec
        self.opt_g = _make_optimizer(spec.optimizer, list(self.g_params.values()), spec.lr_g, spec.betas)
        self.opt_d = _make_optimizer(spec.optimizer, list(self.d_params.values()), spec.lr_d, spec.betas)
        self._stack_state(self.opt_g, self.g_params, [(job.opt_g, job.generator) for job in self.jobs])
        self._stack_state(self.opt_d, self.d_params, [(job.opt_d, job.critic) for job in self.jobs])
        self.critic_terms = [t for t in self.tricks if _overrides(t, "critic_term")]
        self.generator_terms = [t for t in self.tricks if _overrides(t, "generator_term")]
        self.constraints = [t for t in self.tricks if _overrides(t, "after_critic_step")]

    @staticmethod
    def _stack(modules: list[nn.Module]) -> dict[str, Tensor]:
        stacked = {name: weights.requires_grad_(True) for name, weights in _stacked_weights(modules).items()}
        for seed, module in enumerate(modules):
            for name, parameter in module.named_parameters():
                parameter.data = stacked[name].detach()[seed]
        return stacked

    @staticmethod
    def _stack_state(stacked_opt: torch.optim.Optimizer, stacked: dict[str, Tensor],
                     per_job: list[tuple[torch.optim.Optimizer, nn.Module]]) -> None:
        """Move each job's optimiser state (from a checkpoint; none on a fresh start) into the stacked
        optimiser: per-element entries stacked, scalar ones (the step count) equal across seeds."""
        for name, leaf in stacked.items():
            states = [opt.state.pop(dict(module.named_parameters())[name], None) for opt, module in per_job]
            if not any(states):
                continue
            merged: dict[str, Any] = {}
            for key, value in states[0].items():
                values = [state[key] for state in states]
                if isinstance(value, Tensor) and key not in _SCALAR_STATE:
                    merged[key] = torch.stack(values).to(leaf.device)
                else:
                    same = [torch.equal(v, value) if isinstance(value, Tensor) else v == value for v in values]
                    if not all(same):
                        raise ValueError(f"optimiser state {key!r} of {name} differs between the seeds: {values}")
                    merged[key] = value.clone() if isinstance(value, Tensor) else value
            stacked_opt.state[leaf] = merged

    @staticmethod
    def _unstack_state(stacked_opt: torch.optim.Optimizer, stacked: dict[str, Tensor], seed: int,
                       opt: torch.optim.Optimizer, module: nn.Module) -> None:
        parameters = dict(module.named_parameters())
        opt.state.clear()
        for name, leaf in stacked.items():
            state = stacked_opt.state.get(leaf)
            if not state:
                continue
            opt.state[parameters[name]] = {
                key: (value[seed] if isinstance(value, Tensor) and key not in _SCALAR_STATE else value)
                for key, value in state.items()
            }

    # -- one step ------------------------------------------------------------------------------

    def _extra(self, x_real: Tensor, x_fake: Tensor) -> dict[str, Tensor]:
        available = {"x_real": x_real, "x_fake": x_fake}
        return {key: available[key] for key in self.objective.extra_inputs}

    def _generate(self, g_params: dict[str, Tensor], z: Tensor) -> Tensor:
        return functional_call(self.generator, g_params, (z,), tie_weights=False)

    def _critic_loss(
        self, d_params: dict[str, Tensor], x_real: Tensor, x_fake: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        c_real = functional_call(self.critic, d_params, (x_real,), tie_weights=False)
        c_fake = functional_call(self.critic, d_params, (x_fake,), tie_weights=False)
        return self.objective.d_loss(c_real, c_fake, **self._extra(x_real, x_fake)), c_real, c_fake

    def _judged_loss(
        self, d_params: dict[str, Tensor], x_real: Tensor, x_fake: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        c_fake = functional_call(self.critic, d_params, (x_fake,), tie_weights=False)
        # d_params and x_real carry no graph: C_r gives the generator no gradient
        c_real = (functional_call(self.critic, d_params, (x_real,), tie_weights=False)
                  if self.objective.generator_needs_real else c_fake.new_empty(0))
        return self.objective.g_loss(c_real, c_fake, **self._extra(x_real, x_fake)), c_real, c_fake

    def _generator_loss(self, g_params: dict[str, Tensor], d_params: dict[str, Tensor], x_real: Tensor,
                        z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x_fake = self._generate(g_params, z)
        return (*self._judged_loss(d_params, x_real, x_fake), x_fake)

    def _plus_trick_terms(self, losses: Tensor, tricks: list[Trick], hook: str, d_params: dict[str, Tensor],
                          x_real: Tensor, x_fake: Tensor, c_real: Tensor, c_fake: Tensor) -> Tensor:
        """losses (K,) plus each seed's trick terms, computed per seed in that seed's RNG states."""
        if not tricks:
            return losses
        totals = []
        for seed, rng in enumerate(self.rngs):
            critic = _SeedCritic(self.critic, {name: p[seed] for name, p in d_params.items()})
            inputs = TrickInputs(critic=critic, x_real=x_real[seed], x_fake=x_fake[seed],  # type: ignore[arg-type]
                                 c_real=c_real[seed], c_fake=c_fake[seed])
            total = losses[seed]
            with rng.active():
                for trick in tricks:
                    term = getattr(trick, hook)(inputs)
                    if term is not None:
                        total = total + term
            totals.append(total)
        return torch.stack(totals)

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One generator step with its critic steps for every seed; detached (loss_d, loss_g), each (K,)."""
        frozen_g = {name: p.detach() for name, p in self.g_params.items()}
        x_fake = None
        for _ in range(self.spec.critic_steps):
            x_real = torch.stack([job._real() for job in self.jobs])
            z = torch.stack([job._noise() for job in self.jobs])
            if self.reuse_fakes:  # G(z) once per step, its graph kept for the generator step
                x_fake = vmap(self._generate)(self.g_params, z)
                judged_fake = x_fake.detach()
            else:
                with torch.no_grad():
                    judged_fake = vmap(self._generate)(frozen_g, z)
            loss_d, c_real, c_fake = vmap(self._critic_loss)(self.d_params, x_real, judged_fake)
            loss_d = self._plus_trick_terms(loss_d, self.critic_terms, "critic_term", self.d_params, x_real,
                                            judged_fake, c_real, c_fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.sum().backward()
            self.opt_d.step()
            for trick in self.constraints:
                for job in self.jobs:
                    trick.after_critic_step(job.critic)

        frozen_d = {name: p.detach() for name, p in self.d_params.items()}
        if x_fake is None:
            z = torch.stack([job._noise() for job in self.jobs])
            loss_g, c_real, c_fake, x_fake = vmap(self._generator_loss)(self.g_params, frozen_d, x_real, z)
        else:
            loss_g, c_real, c_fake = vmap(self._judged_loss)(frozen_d, x_real, x_fake)
        loss_g = self._plus_trick_terms(loss_g, self.generator_terms, "generator_term", frozen_d, x_real, x_fake,
                                        c_real, c_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.sum().backward()
        self.opt_g.step()
        return loss_d.detach(), loss_g.detach()

    # -- per seed ------------------------------------------------------------------------------

    def evaluate(self, seed: int) -> dict[str, float]:
        """Seed `seed`'s evaluation, through its job's evaluators, in its RNG states."""
        with self.rngs[seed].active():
            return self.jobs[seed].evaluate()

    def state(self, seed: int, step: int, clocks: dict[str, float], window: dict[str, Any]) -> dict[str, Any]:
        """Seed `seed`'s checkpoint, the one `bench.train.train` writes (its own tensors, not views)."""
        job = self.jobs[seed]
        self._unstack_state(self.opt_g, self.g_params, seed, job.opt_g, job.generator)
        self._unstack_state(self.opt_d, self.d_params, seed, job.opt_d, job.critic)
        try:
            with self.rngs[seed].active():
                return _owned(job.state(step, clocks, window))
        finally:
            job.opt_g.state.clear()
            job.opt_d.state.clear()


# --- the loop ---------------------------------------------------------------------------------


def train_stacked(
    specs: Sequence[JobSpec],
    stores: Sequence[JobStore],
    *,
    data_root: Path,
    cache_dir: Path,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = print,
) -> list[TrainResult]:
    """Train (or resume) the jobs `specs` (equal but for the seed; see `stackable`) together, each
    writing status, metrics, samples and checkpoints to its own store as `bench.train.train` does.

    Returns one TrainResult per spec, in order. Jobs whose checkpoints are at different steps are
    trained one after another by `train`. Raises ValueError (before anything is written) when the
    group cannot be stacked or a store does not belong to its spec.
    """
    if len(specs) != len(stores):
        raise ValueError(f"{len(specs)} specs but {len(stores)} stores")
    reason = stackable(specs)
    if reason is not None:
        raise ValueError(f"these jobs cannot be trained stacked: {reason}")
    for spec, store in zip(specs, stores):
        if spec.job_id != store.job_id:
            raise ValueError(f"spec has job_id {spec.job_id!r} but the job folder is {store.path}")
        store.check_spec(spec)
    checkpoints = [store.load_checkpoint(map_location="cpu") for store in stores]
    starts = {None if c is None else int(c["step"]) for c in checkpoints}
    if len(starts) > 1:
        log(f"the checkpoints are at different steps ({sorted(starts, key=lambda s: -1 if s is None else s)}): "
            f"training the {len(specs)} jobs one after another")
        one_by_one = []
        for spec, store in zip(specs, stores):
            one_by_one.append(train(spec, store, data_root=data_root, cache_dir=cache_dir, should_stop=should_stop,
                                    log=log))
            if one_by_one[-1].status == Status.PENDING:
                break
        return one_by_one + [TrainResult(Status.PENDING, 0, "not started: the group was interrupted", 0.0, 0.0)] * (
            len(specs) - len(one_by_one))

    for spec, store in zip(specs, stores):
        store.write_spec(spec)
    jobs, rngs, clocks, windows = [], [], [], []
    step = 0
    for spec, store, checkpoint in zip(specs, stores, checkpoints):
        job = Job(spec, data_root=data_root, cache_dir=cache_dir)
        clock = {"train_s": 0.0, "eval_s": 0.0}
        window: dict[str, Any] = {"sum_d": torch.zeros((), device=job.device),
                                  "sum_g": torch.zeros((), device=job.device),
                                  "count": 0, "first_bad": torch.full((), -1, device=job.device, dtype=torch.long)}
        if checkpoint is not None:
            step, clock, window = job.load_state(checkpoint)
            store.truncate_metrics(after_step=step)
        else:
            store.truncate_metrics(after_step=-1)
        jobs.append(job)
        rngs.append(_GlobalRNG(job.device))  # what seeding or the checkpoint left in the process
        clocks.append(clock)
        windows.append(window)
    if checkpoints[0] is not None:
        log(f"resuming {len(jobs)} stacked seeds from their checkpoints at step {step}")
    model = StackedJobs(jobs, rngs)
    spec, device, seeds = specs[0], model.device, len(specs)
    sum_d = torch.stack([w["sum_d"] for w in windows]).to(device)
    sum_g = torch.stack([w["sum_g"] for w in windows]).to(device)
    first_bad = torch.stack([w["first_bad"] for w in windows]).to(device)
    count = int(windows[0]["count"])
    for store in stores:
        store.write_status(Status.RUNNING, step=step, pid=os.getpid(), host=socket.gethostname(),
                           attempts=int(store.read_status().get("attempts") or 0) + 1)
    results: list[TrainResult | None] = [None] * seeds
    live = list(range(seeds))

    def record(seed: int, values: dict[str, float], at_step: int) -> None:
        rows = [MetricRow(specs[seed].job_id, at_step, round(clocks[seed]["train_s"], 3), name, float(value))
                for name, value in values.items()]
        stores[seed].append_metrics(rows)

    def run_evaluation(seed: int, at_step: int) -> None:
        started = time.perf_counter()
        values = model.evaluate(seed)
        elapsed = time.perf_counter() - started
        clocks[seed]["eval_s"] += elapsed
        record(seed, values, at_step)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        log(f"seed {specs[seed].seed} eval step {at_step}: {shown} ({elapsed:.2f}s)")

    def finish(seed: int, status: Status, reason: str | None, at_step: int) -> None:
        train_s, eval_s = clocks[seed]["train_s"], clocks[seed]["eval_s"]
        stores[seed].write_status(status, reason=reason, step=at_step,
                                  train_s=round(train_s, 3), eval_s=round(eval_s, 3))
        results[seed] = TrainResult(status, at_step, reason, train_s, eval_s)
        if status != Status.PENDING:
            live.remove(seed)

    def window_state(seed: int) -> dict[str, Any]:
        return {"sum_d": sum_d[seed], "sum_g": sum_g[seed], "count": count, "first_bad": first_bad[seed]}

    if step == 0 and checkpoints[0] is None:
        for seed in range(seeds):
            run_evaluation(seed, 0)
    last_report, steps_at_report = time.perf_counter(), step
    while step < spec.steps and live:
        started = time.perf_counter()
        loss_d, loss_g = model.train_step()
        step += 1
        # divergence is tracked on the device: no host sync per step
        finite = torch.isfinite(loss_d) & torch.isfinite(loss_g)
        first_bad = torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, step), first_bad)
        sum_d, sum_g, count = sum_d + loss_d, sum_g + loss_g, count + 1
        if device.type == "cuda" and step % spec.log_every == 0:
            torch.cuda.synchronize()  # note: the clock below must include the queued GPU work
        share = (time.perf_counter() - started) / len(live)
        for seed in live:
            clocks[seed]["train_s"] += share

        if step % spec.log_every == 0 or step == spec.steps:
            bad, means_d, means_g = first_bad.tolist(), (sum_d / count).tolist(), (sum_g / count).tolist()
            now = time.perf_counter()
            rate = (step - steps_at_report) / max(now - last_report, 1e-9)
            last_report, steps_at_report = now, step
            for seed in list(live):
                if bad[seed] >= 0:
                    record(seed, {DIVERGED_METRIC: 1.0}, bad[seed])
                    finish(seed, Status.DIVERGED, f"non-finite loss at step {bad[seed]}", bad[seed])
                    log(f"seed {specs[seed].seed} diverged at step {bad[seed]}")
                    continue
                record(seed, {"loss_d": means_d[seed], "loss_g": means_g[seed]}, step)
                stores[seed].write_status(Status.RUNNING, step=step)
            sum_d, sum_g, count = torch.zeros_like(sum_d), torch.zeros_like(sum_g), 0
            shown = " ".join(f"{means_d[s]:.4f}/{means_g[s]:.4f}" for s in live)
            log(f"step {step}/{spec.steps} {len(live)} seeds, loss_d/loss_g {shown}, {rate:.1f} it/s")
        if step % spec.eval_every == 0 or step == spec.steps:
            for seed in list(live):
                if not model.jobs[seed].weights_finite():
                    record(seed, {DIVERGED_METRIC: 1.0}, step)
                    finish(seed, Status.DIVERGED, f"non-finite weights at step {step}", step)
                    continue
                run_evaluation(seed, step)
        stop_now = step < spec.steps and bool(live) and should_stop()
        if step % spec.checkpoint_every == 0 or step == spec.steps or stop_now:
            for seed in live:
                stores[seed].save_checkpoint(model.state(seed, step, clocks[seed], window_state(seed)))
        if stop_now:
            log(f"stop requested: checkpoints written at step {step}")
            for seed in list(live):
                finish(seed, Status.PENDING, f"interrupted at step {step}; resumes from its checkpoint", step)
            return [result for result in results if result is not None]
    for seed in list(live):
        with model.rngs[seed].active():
            _save_samples(model.jobs[seed], stores[seed])
        finish(seed, Status.DONE, None, step)
    return [result for result in results if result is not None]
