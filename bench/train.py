"""The one training loop, for every objective.

Per generator step: `critic_steps` critic updates (objective's L_D plus every trick's critic term,
then each trick's after-step constraint), then one generator update (L_G plus trick generator
terms); with `reuse_fakes` (one critic step only) the generator update is taken on the critic step's
fakes, judged again by the updated critic, instead of on a new draw. Evaluation every `eval_every`
steps, atomic checkpoints every `checkpoint_every` steps (networks, optimisers, every RNG state,
step, clocks), divergence recorded instead of raised.

Determinism: the seed fixes network init (global RNG), the real-data stream and the noise stream
(each its own torch.Generator), and evaluation noise (fixed z); every RNG state is checkpointed, so
a resumed job ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench import data as data_lib
from bench import nets
from bench.metrics import EvalContext, get_evaluator
from bench.objectives import Objective, bigan_qp_reconstruction, get_objective
from bench.penalties import TRICKS, Trick, TrickInputs, get_trick
from bench.spec import JobSpec
from bench.store import DIVERGED_METRIC, JobStore, MetricRow, Status

# evaluation noise is drawn in chunks of this many samples (bounded memory on any device)
EVAL_CHUNK = 1024

# the final samples saved with a finished job: a scatter of 2-D points, an 8 x 8 grid of images
FINAL_POINTS = 2500
FINAL_GRID_IMAGES = 64


class Interrupted(Exception):
    """Raised inside the loop when a stop was requested (signal, preemption); the checkpoint is written."""


@dataclass(frozen=True)
class TrainResult:
    status: Status  # done | diverged | pending (interrupted)
    step: int
    reason: str | None
    train_s: float
    eval_s: float


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the suite asks for device 'cuda' but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int, *, deterministic: bool, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cuda":
        # deterministic cuBLAS needs a fixed workspace; cudnn.benchmark trades determinism for speed
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def _make_optimizer(name: str, params: Any, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; valid: adam, rmsprop, sgd")


@dataclass
class Judged:
    """One batch as the critic saw it: outputs, the samples, and the extras an objective may ask for."""

    c_real: Tensor
    c_fake: Tensor
    x_real: Tensor
    x_fake: Tensor
    extra: dict[str, Tensor]


class SampleGame:
    """The usual game: the critic judges samples, C(x_r) against C(G(z)). Under a packing trick
    (PacGAN) it judges packed samples (`nets.pack_samples`), and the Judged carries them packed."""

    def __init__(self, job: Job) -> None:
        spec, shape = job.spec, tuple(job.source.shape)
        self.pack = job.packing
        self.generator = nets.build_generator(spec.arch, data_shape=shape, latent_dim=spec.latent_dim,
                                              options=job.generator_options).to(job.device)
        self.critic = nets.build_critic(spec.arch, data_shape=shape, critic_outputs=job.objective.critic_outputs,
                                        options=job.critic_options, pack=self.pack).to(job.device)
        self.generator_side: list[nn.Module] = [self.generator]
        self.needs_real = job.objective.generator_needs_real

    def for_critic(self, x_real: Tensor, z: Tensor, x_fake: Tensor | None = None) -> Judged:
        """`x_fake`: G(z) already drawn (with its graph, kept for the generator step); judged detached."""
        if x_fake is None:
            with torch.no_grad():
                x_fake = self.generator(z)
        else:
            x_fake = x_fake.detach()
        x_real, x_fake = nets.pack_samples(x_real, self.pack), nets.pack_samples(x_fake, self.pack)
        return Judged(self.critic(x_real), self.critic(x_fake), x_real, x_fake, {})

    def for_generator(self, x_real: Tensor, z: Tensor, x_fake: Tensor | None = None) -> Judged:
        x_fake = self.generator(z) if x_fake is None else x_fake
        x_real, x_fake = nets.pack_samples(x_real, self.pack), nets.pack_samples(x_fake, self.pack)
        c_fake = self.critic(x_fake)
        if self.needs_real:
            with torch.no_grad():  # C_r carries no gradient to the generator
                c_real = self.critic(x_real)
        else:
            c_real = c_fake.new_empty(0)
        return Judged(c_real, c_fake, x_real, x_fake, {})

    def guide_loss(self, x_real: Tensor, z: Tensor) -> Tensor | None:
        return None


class PairGame:
    """BiGAN-QP's game: an encoder E, and a critic T judging pairs, T(x_r, E(x_r)) against T(G(z), z)."""

    def __init__(self, job: Job) -> None:
        spec, shape = job.spec, tuple(job.source.shape)
        self.generator = nets.build_generator(spec.arch, data_shape=shape, latent_dim=spec.latent_dim,
                                              options=job.generator_options).to(job.device)
        self.encoder = nets.build_encoder(spec.arch, data_shape=shape, latent_dim=spec.latent_dim,
                                          options=job.generator_options).to(job.device)
        self.pack = job.packing
        self.critic = nets.build_pair_critic(spec.arch, data_shape=shape, latent_dim=spec.latent_dim,
                                             options=job.critic_options, pack=self.pack).to(job.device)
        self.generator_side = [self.generator, self.encoder]
        self.beta1 = float(job.objective.options["beta1"])
        self.beta2 = float(job.objective.options["beta2"])

    def _judged(self, x_real: Tensor, z_real: Tensor, x_fake: Tensor, z_fake: Tensor) -> Judged:
        """T on both pairs, each of x and z packed under a packing trick (the Judged carries them packed)."""
        x_real, z_real, x_fake, z_fake = (nets.pack_samples(t, self.pack) for t in (x_real, z_real, x_fake, z_fake))
        extra = {"z_real": z_real, "z_fake": z_fake}
        return Judged(self.critic(x_real, z_real), self.critic(x_fake, z_fake), x_real, x_fake, extra)

    def for_critic(self, x_real: Tensor, z: Tensor, x_fake: Tensor | None = None) -> Judged:
        with torch.no_grad():
            x_fake = self.generator(z) if x_fake is None else x_fake.detach()
            z_real = self.encoder(x_real)
        return self._judged(x_real, z_real, x_fake, z)

    def for_generator(self, x_real: Tensor, z: Tensor, x_fake: Tensor | None = None) -> Judged:
        # both sides carry gradients: G moves T(G(z), z), E moves T(x, E(x))
        x_fake = self.generator(z) if x_fake is None else x_fake
        return self._judged(x_real, self.encoder(x_real), x_fake, z)

    def guide_loss(self, x_real: Tensor, z: Tensor) -> Tensor:
        # seed 002: each guide trains one network; the other's output is a stop-gradient
        z_rec = self.encoder(self.generator(z).detach())
        x_rec = self.generator(self.encoder(x_real).detach())
        return bigan_qp_reconstruction(z, z_rec, x_real, x_rec, beta1=self.beta1, beta2=self.beta2)


Game = SampleGame | PairGame
GAMES: dict[str, type[SampleGame] | type[PairGame]] = {"sample": SampleGame, "pair": PairGame}


def _refuse_per_sample_penalties_on_coupled_critic(spec: JobSpec, critic_options: dict[str, Any]) -> None:
    """A penalty on per-sample gradients never runs on a critic whose output for one sample depends on
    its batch-mates (suites are refused at load for this; a spec built by hand is refused here)."""
    couplings = nets.critic_sample_coupling(spec.arch, critic_options)
    needing = [name for name, _ in spec.tricks if TRICKS.get(name).needs_per_sample_gradients]
    if couplings and needing:
        found = ", ".join(f"{c.option}={c.value!r}" for c in couplings)
        raise ValueError(f"trick {needing[0]!r} needs per-sample critic gradients; the {spec.arch!r} critic has "
                         f"{found}, so each sample's output depends on its batch-mates")


def network_options(spec: JobSpec, tricks: list[Trick]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The generator's and the critic's architecture options: the spec's, with every trick's merged in."""
    generator_options, critic_options = dict(spec.arch_options), dict(spec.arch_options)
    for trick in tricks:
        generator_options.update(trick.generator_options())
        critic_options.update(trick.critic_options())
    return generator_options, critic_options


def reuses_fakes(spec: JobSpec) -> bool:
    """Whether the generator step reuses the critic step's fakes G(z) (the DCGAN tutorial's loop): one
    generator forward and one noise draw per step instead of two, the critic re-judging the same
    samples after its update. Defined for one critic step per generator step only: with more, the
    generator would learn from the last critic batch's noise alone, which is another algorithm.
    Read from the spec's `reuse_fakes` (False when the spec has no such field)."""
    reuse = bool(getattr(spec, "reuse_fakes", False))
    if reuse and spec.critic_steps != 1:
        raise ValueError(f"reuse_fakes needs critic_steps 1 (the generator step reuses the one critic step's "
                         f"fakes); got critic_steps {spec.critic_steps}")
    return reuse


class Job:
    """Everything one job needs, built from its JobSpec."""

    def __init__(self, spec: JobSpec, *, data_root: Path, cache_dir: Path) -> None:
        self.spec = spec
        self.device = resolve_device(spec.device)
        seed_everything(spec.seed, deterministic=spec.deterministic, device=self.device)
        self.source = data_lib.load_dataset(spec.dataset, root=data_root, options=dict(spec.dataset_options))
        self.objective: Objective = get_objective(spec.objective, **dict(spec.objective_options))
        self.tricks: list[Trick] = [get_trick(name, **dict(options)) for name, options in spec.tricks]
        self.generator_options, self.critic_options = network_options(spec, self.tricks)
        _refuse_per_sample_penalties_on_coupled_critic(spec, self.critic_options)
        self.packing = math.prod(trick.packing() for trick in self.tricks)
        if spec.batch_size % self.packing:
            raise ValueError(f"the tricks pack {self.packing} samples into each critic input; batch_size "
                             f"{spec.batch_size} is not a multiple of {self.packing}")
        self.game: Game = GAMES[self.objective.critic_input](self)
        self.generator, self.critic = self.game.generator, self.game.critic
        generator_params = [p for module in self.game.generator_side for p in module.parameters()]
        self.opt_g = _make_optimizer(spec.optimizer, generator_params, spec.lr_g, spec.betas)
        self.opt_d = _make_optimizer(spec.optimizer, self.critic.parameters(), spec.lr_d, spec.betas)
        # independent streams: real batches (CPU), training noise and evaluation noise
        self.data_rng = torch.Generator().manual_seed(spec.seed * 7919 + 1)
        self.noise_rng = torch.Generator(device=self.device).manual_seed(spec.seed * 7919 + 2)
        self.evaluators = [get_evaluator(name) for name in spec.metrics]
        for evaluator in self.evaluators:  # a bad metric option fails here, before the first step
            evaluator.resolve(self._metric_options(evaluator))
        self.cache_dir = cache_dir
        self.reuse_fakes = reuses_fakes(spec)

    # -- one step ---------------------------------------------------------------------------

    def _noise(self) -> Tensor:
        return torch.randn(
            self.spec.batch_size, self.spec.latent_dim, generator=self.noise_rng, device=self.device
        )

    def _real(self) -> Tensor:
        batch = self.source.sample(self.spec.batch_size, self.data_rng)
        return batch.to(self.device, non_blocking=True)

    def _losses_input(self, judged: Judged) -> dict[str, Tensor]:
        available = {"x_real": judged.x_real, "x_fake": judged.x_fake, **judged.extra}
        return {key: available[key] for key in self.objective.extra_inputs}

    def _plus_trick_terms(self, loss: Tensor, hook: str, judged: Judged) -> Tensor:
        """`loss` plus every trick's `critic_term` or `generator_term` (those that are not None)."""
        inputs = TrickInputs(critic=self.critic, x_real=judged.x_real, x_fake=judged.x_fake,
                             c_real=judged.c_real, c_fake=judged.c_fake)
        for trick in self.tricks:
            term = getattr(trick, hook)(inputs)
            if term is not None:
                loss = loss + term
        return loss

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One generator step with its critic steps; returns detached (loss_d, loss_g) on device."""
        objective, critic, game = self.objective, self.critic, self.game
        critic.requires_grad_(True)
        x_fake = None
        for _ in range(self.spec.critic_steps):
            x_real = self._real()
            z = self._noise()
            if self.reuse_fakes:  # G(z) once per step, its graph kept for the generator step
                x_fake = game.generator(z)
            judged = game.for_critic(x_real, z, x_fake)
            loss_d = objective.d_loss(judged.c_real, judged.c_fake, **self._losses_input(judged))
            loss_d = self._plus_trick_terms(loss_d, "critic_term", judged)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            for trick in self.tricks:
                trick.after_critic_step(critic)

        # the critic is not updated in the generator step: no gradients for its parameters
        critic.requires_grad_(False)
        if not self.reuse_fakes:
            z = self._noise()
        judged = game.for_generator(x_real, z, x_fake)
        loss_g = objective.g_loss(judged.c_real, judged.c_fake, **self._losses_input(judged))
        loss_g = self._plus_trick_terms(loss_g, "generator_term", judged)
        guide = game.guide_loss(x_real, z)
        if guide is not None:
            loss_g = loss_g + guide
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        critic.requires_grad_(True)
        return loss_d.detach(), loss_g.detach()

    # -- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, count: int) -> Tensor:
        """`count` generator samples (count, *data_shape) from fixed evaluation noise: the same z at
        every evaluation of a job, drawn from its own generator (training RNGs are not touched)."""
        was_training = self.generator.training
        self.generator.eval()
        eval_rng = torch.Generator().manual_seed(self.spec.seed * 7919 + 3)
        chunks = []
        bf16 = self.spec.eval_precision == "bf16"
        for start in range(0, count, EVAL_CHUNK):
            z = torch.randn(min(EVAL_CHUNK, count - start), self.spec.latent_dim, generator=eval_rng)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
                chunks.append(self.generator(z.to(self.device)).float())
        self.generator.train(was_training)
        return torch.cat(chunks)

    @torch.no_grad()
    def _eval_mode(self, module: nn.Module, inputs: Tensor) -> Tensor:
        was_training = module.training
        module.eval()
        try:
            return module(inputs)
        finally:
            module.train(was_training)

    def evaluate(self) -> dict[str, float]:
        """Every evaluator's metrics at the current weights: metric name -> value.

        The evaluators share one draw per sample count: `sample(n)` is a function of n at fixed
        weights, so two evaluators of 1,000 samples each (fidelity-classifier and class-coverage)
        run the generator once, and see the same tensor (which they do not modify).
        """
        values: dict[str, float] = {}
        encoder = getattr(self.game, "encoder", None)
        coders = {}
        if encoder is not None:
            coders = {"encode": lambda x: self._eval_mode(encoder, x),
                      "decode": lambda z: self._eval_mode(self.generator, z)}
        drawn: dict[int, Tensor] = {}

        def sample(count: int) -> Tensor:
            if count not in drawn:
                drawn[count] = self.sample(count)
            return drawn[count]

        for evaluator in self.evaluators:
            context = EvalContext(
                sample=sample,
                source=self.source,
                device=self.device,
                cache_dir=self.cache_dir,
                seed=self.spec.seed,
                options=self._metric_options(evaluator),
                **coders,
            )
            values.update(evaluator.evaluate(context))
        return values

    def _metric_options(self, evaluator: Any) -> dict[str, Any]:
        """The suite's options for this evaluator, as given: whatever they leave out (the number of
        samples included) takes the evaluator's own default, its protocol's."""
        return dict(dict(self.spec.metric_options).get(evaluator.name, ()))

    def weights_finite(self) -> bool:
        modules = [*self.game.generator_side, self.critic]
        flags = [p.detach().isfinite().all() for m in modules for p in m.parameters()]
        return bool(torch.stack(flags).all())

    # -- checkpoints ---------------------------------------------------------------------------

    def state(self, step: int, clocks: dict[str, float], window: dict[str, Any]) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "step": step,
            "generator_side": [module.state_dict() for module in self.game.generator_side],
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": {
                "data": self.data_rng.get_state(),
                "noise": self.noise_rng.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "clocks": clocks,
            "window": {key: (value.cpu() if isinstance(value, Tensor) else value) for key, value in window.items()},
        }

    def load_state(self, state: dict[str, Any]) -> tuple[int, dict[str, float], dict[str, Any]]:
        for module, module_state in zip(self.game.generator_side, state["generator_side"]):
            module.load_state_dict(module_state)
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        rng = state["rng"]
        self.data_rng.set_state(rng["data"])
        self.noise_rng.set_state(rng["noise"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        window = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in state["window"].items()}
        return int(state["step"]), dict(state["clocks"]), window


def _save_samples(job: Job, store: JobStore) -> Path:
    """Save the final samples as they are, without drawing them: FINAL_POINTS points (float32 (N, 2))
    for 2-D data, FINAL_GRID_IMAGES images (uint8 (N, H, W, C)) otherwise; the counts are fixed,
    whatever the metrics draw. Their figure is drawn outside training (bench.report.figures)."""
    count = FINAL_POINTS if len(job.source.shape) == 1 else FINAL_GRID_IMAGES
    samples = job.sample(count).float().cpu()
    if samples.dim() == 2:
        return store.save_final_samples(samples.numpy())
    from bench.metrics.classifier import images_to_uint8

    return store.save_final_samples(images_to_uint8(samples).permute(0, 2, 3, 1).numpy())


def train(
    spec: JobSpec,
    store: JobStore,
    *,
    data_root: Path,
    cache_dir: Path,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) one job, writing status, metrics, samples and checkpoints to `store`.

    Returns how the job ended; a diverged job is a result, not an exception. `should_stop` is
    polled after every step: when it says stop, a checkpoint is written (with the partial logging
    window, so a resumed job logs exactly as an uninterrupted one) and the job is left `pending`,
    to be resumed by the next run.
    """
    store.check_spec(spec)
    store.write_spec(spec)
    job = Job(spec, data_root=data_root, cache_dir=cache_dir)
    clocks = {"train_s": 0.0, "eval_s": 0.0}
    zero = torch.zeros((), device=job.device)
    window: dict[str, Any] = {"sum_d": zero.clone(), "sum_g": zero.clone(), "count": 0,
                              "first_bad": torch.full((), -1, device=job.device, dtype=torch.long)}
    step = 0
    # on the CPU: RNG states must be CPU tensors; weights and optimiser states are copied to
    # their parameters' device by load_state_dict
    checkpoint = store.load_checkpoint(map_location="cpu")
    if checkpoint is not None:
        step, clocks, window = job.load_state(checkpoint)
        store.truncate_metrics(after_step=step)
        log(f"resuming from the checkpoint at step {step}")
    else:
        store.truncate_metrics(after_step=-1)
    store.write_status(Status.RUNNING, step=step, pid=os.getpid(), host=socket.gethostname(),
                       attempts=int(store.read_status().get("attempts") or 0) + 1)

    def record(values: dict[str, float], at_step: int) -> None:
        rows = [MetricRow(spec.job_id, at_step, round(clocks["train_s"], 3), name, float(value))
                for name, value in values.items()]
        store.append_metrics(rows)

    def run_evaluation(at_step: int) -> None:
        started = time.perf_counter()
        values = job.evaluate()
        elapsed = time.perf_counter() - started
        clocks["eval_s"] += elapsed
        record(values, at_step)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        log(f"eval step {at_step}: {shown} ({elapsed:.2f}s)")

    def finish(status: Status, reason: str | None, at_step: int) -> TrainResult:
        store.write_status(status, reason=reason, step=at_step, train_s=round(clocks["train_s"], 3),
                           eval_s=round(clocks["eval_s"], 3))
        return TrainResult(status, at_step, reason, clocks["train_s"], clocks["eval_s"])

    if step == 0 and checkpoint is None:
        run_evaluation(0)
    last_report = time.perf_counter()
    steps_at_report = step
    while step < spec.steps:
        started = time.perf_counter()
        loss_d, loss_g = job.train_step()
        step += 1
        # divergence is tracked on the device: no host sync per step
        finite = torch.isfinite(loss_d) & torch.isfinite(loss_g)
        window["first_bad"] = torch.where(
            (window["first_bad"] < 0) & ~finite, torch.full_like(window["first_bad"], step), window["first_bad"]
        )
        window["sum_d"] = window["sum_d"] + loss_d
        window["sum_g"] = window["sum_g"] + loss_g
        window["count"] += 1
        if job.device.type == "cuda" and step % spec.log_every == 0:
            torch.cuda.synchronize()  # note: the clock below must include the queued GPU work
        clocks["train_s"] += time.perf_counter() - started

        if step % spec.log_every == 0 or step == spec.steps:
            first_bad = int(window["first_bad"])  # note: the one CPU-GPU sync per logging interval
            if first_bad >= 0:
                record({DIVERGED_METRIC: 1.0}, first_bad)
                return finish(Status.DIVERGED, f"non-finite loss at step {first_bad}", first_bad)
            count = window["count"]
            losses = {"loss_d": float(window["sum_d"]) / count, "loss_g": float(window["sum_g"]) / count}
            record(losses, step)
            window.update(sum_d=zero.clone(), sum_g=zero.clone(), count=0)
            now = time.perf_counter()
            rate = (step - steps_at_report) / max(now - last_report, 1e-9)
            last_report, steps_at_report = now, step
            log(f"step {step}/{spec.steps} loss_d={losses['loss_d']:.4f} loss_g={losses['loss_g']:.4f} "
                f"{rate:.1f} it/s")
            store.write_status(Status.RUNNING, step=step)
        if step % spec.eval_every == 0 or step == spec.steps:
            if not job.weights_finite():
                record({DIVERGED_METRIC: 1.0}, step)
                return finish(Status.DIVERGED, f"non-finite weights at step {step}", step)
            run_evaluation(step)
        # polled every step (a flag, no device sync): a stop must land before a supervisor's
        # grace period ends (submitit's local controller kills 1 s after forwarding Ctrl-C)
        stop_now = step < spec.steps and should_stop()
        if step % spec.checkpoint_every == 0 or step == spec.steps or stop_now:
            store.save_checkpoint(job.state(step, clocks, window))
        if stop_now:
            log(f"stop requested: checkpoint written at step {step}")
            return finish(Status.PENDING, f"interrupted at step {step}; resumes from its checkpoint", step)
    _save_samples(job, store)
    return finish(Status.DONE, None, step)


def steps_per_second(spec: JobSpec, *, data_root: Path, cache_dir: Path, steps: int = 50) -> float:
    """Measured training speed of a spec (generator steps per second) over `steps` steps."""
    job = Job(spec, data_root=data_root, cache_dir=cache_dir)
    job.train_step()  # warm-up (allocations, cudnn autotune)
    started = time.perf_counter()
    for _ in range(steps):
        loss_d, _ = job.train_step()
    float(loss_d)
    return steps / (time.perf_counter() - started)


