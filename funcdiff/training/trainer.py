"""The training loop over built components: subsampled loss, EMA, checkpoints, samples, metrics; CPU, CUDA or torchrun."""

import contextlib
import inspect
import functools
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from beartype import beartype
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from funcdiff.data import ResolutionMixture, infinite_loader
from funcdiff.conditioning import EncodedConditioning, LabelConditioning
from funcdiff.data.labels import Labelled, fields_of
from funcdiff.data.scattered import as_scattered, example_shape, is_scattered
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.owner_lock import OwnerLock
from funcdiff.processes.base import DiffusionProcess
from funcdiff.registry import check_round_trip
from funcdiff.sampling import SamplerFunction, resolve_sampler, sample
from funcdiff.training.checkpoint import (
    candidates, load_weights, non_finite_weights, read_checkpoint, recover_checkpoint, save_checkpoint, set_aside,
)
from funcdiff.training.config import TrainSettings, check_device
from funcdiff.training.distributed import DistributedContext, init_distributed
from funcdiff.training.ema import make_ema, update_ema
from funcdiff.training.metrics import append_metrics, read_metrics, truncate_metrics
from funcdiff.training.plots import plot_loss_curve
from funcdiff.training.stop_signals import StopSignals

logger = logging.getLogger(__name__)


FIXED_ON_RESUME = ("optimizer",)
"""Settings a resumed run may not change (its optimizer state would not fit); the others take effect."""
RUN_FILES = ("config.json", "metrics.jsonl", "loss.png", "samples", "latent")
"""What a run writes into its directory besides checkpoints, with the latent model that ``train-latent`` puts there
(all removed by ``overwrite``)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run leaves: where, the trained model and its EMA, the last step and loss, the steps skipped
    for a non-finite loss or gradient, and the signal that stopped it early (None if it ran to its budget)."""

    out_dir: Path
    model: nn.Module
    ema: nn.Module
    step: int
    loss: float
    skipped_steps: int = 0
    stopped_by: str | None = None


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one process's random draws (noise, time steps, points, dropout) at one step: resuming needs no saved
    random state, and a run resumed with another number of processes draws as a fresh one would for its ranks."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def loss_model(net: nn.Module, process: DiffusionProcess, x0: Tensor, *, points: int | float, generator: torch.Generator | None
               ) -> nn.Module | functools.partial:
    """What the training loss calls: the network, or for an `EncodedConditioning` operator (or a DDP wrapper of one)
    its conditional call given the clean ``x0`` at an independent draw of the domain's points (docs/math.md §9)."""
    module = getattr(net, "module", net)
    if not isinstance(module, EncodedConditioning):
        return net
    return functools.partial(net, **module.training_inputs(process.domain.subsample(x0, points, generator=generator)))


def _autocast(settings: TrainSettings, device: str) -> contextlib.AbstractContextManager:
    """Mixed precision as configured (bf16 on CPU or CUDA, fp16 on CUDA), else nothing."""
    if settings.autocast == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.autocast == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _check_before_work(settings: TrainSettings, data: Dataset | Sequence[Tensor], device: str) -> tuple[int, ...]:
    """Refuse what would only fail later (empty data, a missing device, fp16 on a CPU, downscales that do not divide
    the grid, more points than the cells of its coarsest resolution); returns the shape of one example."""
    check_device(device)
    if settings.autocast == "fp16" and torch.device(device).type != "cuda":
        raise ValueError("autocast='fp16' needs a CUDA device; use 'bf16' on the CPU")
    if len(data) == 0:
        raise ValueError("the training data set is empty")
    shape = example_shape(data)
    if is_scattered(data):
        if settings.downscales != (1,):
            raise ValueError(f"observations at scattered points train at one resolution, got downscales {settings.downscales}")
        return shape
    ResolutionMixture(settings.downscales).check(shape[1:])
    coarsest = tuple(s // max(settings.downscales) for s in shape[1:])
    if isinstance(settings.points, int) and settings.points > math.prod(coarsest):
        raise ValueError(f"points={settings.points} is more than the {math.prod(coarsest)} cells of the {coarsest} training grid")
    return shape


def _differences(saved: Any, current: Any, prefix: str) -> list[str]:
    """Dotted names of the settings where two nested config dicts differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [d for key in sorted(set(saved) | set(current)) for d in _differences(saved.get(key), current.get(key), f"{prefix}.{key}")]
    return [] if saved == current else [prefix]


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The learning rate of step ``step`` (from 0): a linear warm-up, then ``lr`` or its cosine decay (`TrainSettings`)."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.lr_schedule == "cosine":
        assert settings.steps is not None  # validated: cosine needs steps
        done = (step - settings.warmup_steps) / (settings.steps - settings.warmup_steps)
        return settings.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return settings.lr


def ema_decay(settings: TrainSettings, updates: int) -> float:
    """The EMA's decay at its ``updates``-th update: ``ema_decay``, or with ``ema_warmup`` at most ``(1 + n) / (10 + n)``."""
    return min(settings.ema_decay, (1 + updates) / (10 + updates)) if settings.ema_warmup else settings.ema_decay


class Trainer:
    """Trains a model under a process on a data set; rank 0 writes everything under ``settings.out_dir``.

    The components arrive built (`funcdiff.factory` builds them from a config): any `NeuralOperator` that is an
    ``nn.Module``, any `DiffusionProcess`, and any data set of dense fields ``(c, *spatial)``. Their ``to_dict()``
    goes into every checkpoint, so `funcdiff.training.load_trained` rebuilds them by their registered kinds.

    Args:
        model: the network, initialised (seed it before building it for a reproducible run).
        process: the diffusion process (it owns the domain and the mollifier).
        data: the training examples (a data set or a list of tensors), all of one shape ``(c, *spatial)``; for a
            `LabelConditioning` model, a `funcdiff.data.Labelled` data set of the model's vocabulary (other models
            train on a labelled data set's fields alone).
        settings: optimiser, loop, budget and output settings.
        sampler: how the periodic samples are drawn: a registered sampler's name (``"auto"`` picks by the process's
            protocol, `funcdiff.sampling.resolve_sampler`) or a sampler function of the common signature.
        resume: continue from ``<out_dir>/checkpoint`` (the same components required; settings such as the learning
            rate or the budget may change and take effect); without one, say so and start a new run.
        overwrite: replace a run already in ``out_dir`` (without it, or ``resume``, an existing run is refused).
        progress: show a progress bar (None: only on a terminal).
        run_config: the config that built the components (e.g. the command line's), recorded in config.json.
    """

    @beartype
    def __init__(
        self,
        model: NeuralOperator,
        process: DiffusionProcess,
        data: Dataset | Sequence[Tensor],
        settings: TrainSettings,
        *,
        sampler: str | SamplerFunction = "auto",
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other")
        if isinstance(sampler, str):
            resolve_sampler(sampler, process)  # refuse a sampler that does not fit before any work
        else:
            try:
                inspect.signature(sampler).bind(None, None, None, process=process)
            except TypeError as error:
                raise ValueError(f"sampler must take (model, y_start, grid, *, process, ...) (docs/math.md §14): {error}") from None
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module implementing NeuralOperator, got {type(model).__name__}")
        check_round_trip(model, "operator")  # a component that would not reload is refused now, not at load time
        check_round_trip(process, "process")
        self.settings = settings
        self.ctx: DistributedContext = init_distributed(settings.device)
        self.out_dir = Path(settings.out_dir)
        self.progress = progress
        self.process = process
        self.dataset = data
        self.data_shape = _check_before_work(settings, data, self.ctx.device)
        if self.data_shape[0] != process.domain.channels or len(self.data_shape) - 1 != process.domain.ndim:
            raise ValueError(f"data of shape {self.data_shape} does not fit the domain {process.domain!r}")
        self.reference_shape = tuple(model.reference_shape)
        self.labels = isinstance(model, LabelConditioning)
        if self.labels and (not isinstance(data, Labelled) or data.vocabulary != model.vocabulary):
            have = f"labels {data.vocabulary}" if isinstance(data, Labelled) else "no labels"
            raise ValueError(f"a label-conditional model of the labels {model.vocabulary} needs data labelled alike "
                             f"(funcdiff.data.labelled); the data have {have}")
        self.resolutions = ResolutionMixture(settings.downscales, settings.seed)
        self.sampler = sampler
        # Seeded before each sampling; the prior and any sampler that draws noise draw from it.
        self.sample_generator = torch.Generator(device=self.ctx.device)
        self.run_config = run_config
        self.model = model.to(self.ctx.device)
        self.ema = make_ema(self.model)
        if settings.compile and not compile_operator(self.model):  # the training model only: the EMA samples at many shapes
            logger.warning("compile: %s has no compilable parts; it runs eagerly", type(model).__name__)
        # Gradient norms clipped together: a diffusion autoencoder's decoder and encoder separately (as the paper does).
        conditioned = isinstance(self.model, EncodedConditioning)
        self.clip_groups = self.model.parameter_groups() if conditioned else [list(self.model.parameters())]
        opt = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=settings.lr, betas=settings.adam_betas, weight_decay=settings.weight_decay)
        self.step = self.saved_step = self.skipped_steps = 0
        self.noise = torch.Generator(device=self.ctx.device)  # reseeded every step (`step_seed`)
        self.examples = 0  # entries of the data stream consumed, all ranks together
        self.lock = OwnerLock(self.out_dir / ".lock")
        self._made_out_dir = not self.out_dir.exists()
        self._replacing = False  # an --overwrite run replaces the old run's files once its first step has completed
        owner = self.lock.try_acquire() if self.ctx.is_main else None
        if owner is not None:
            raise RuntimeError(f"{self.out_dir} is in use by another run ({owner}); wait for it or choose another --out-dir")
        try:
            self._take_over_directory(resume, overwrite)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give up the output directory: its lock, and the directory itself if this run made it and left it empty."""
        self.lock.release()
        if self._made_out_dir and self.ctx.is_main and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()

    def _start_writing(self) -> None:
        """After this invocation's first completed step: remove the run an --overwrite replaces (not before, so a
        refused or failed run destroys nothing), and write config.json."""
        if self._replacing:
            path = self.out_dir / "checkpoint"
            for leftover in [*candidates(path), *(self.out_dir / name for name in RUN_FILES), set_aside(path)]:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            self._replacing = False
        (self.out_dir / "config.json").write_text(json.dumps(self.checkpoint_config, indent=2, sort_keys=True))

    def _take_over_directory(self, resume: bool, overwrite: bool) -> None:
        """Resume from, replace or refuse a run already in ``out_dir``; recover a checkpoint an interrupted save left."""
        path = self.out_dir / "checkpoint"
        if self.ctx.is_main:
            existing = bool(candidates(path)) or (self.out_dir / "metrics.jsonl").exists()
            if existing and not (resume or overwrite):
                raise FileExistsError(f"{self.out_dir} already holds a run; pass --resume to continue it, --overwrite to replace it, "
                                      "or choose another --out-dir")
            self._replacing = overwrite and existing
            found = recover_checkpoint(path) if resume else None
            if resume and found is None:
                logger.warning("no checkpoint in %s to resume from: starting a new run", self.out_dir)
                truncate_metrics(self.out_dir / "metrics.jsonl", 0)
        self.ctx.any(False)  # every process waits until rank 0 has recovered the checkpoint
        if resume and path.exists():
            self._resume(path)

    @property
    def checkpoint_config(self) -> dict[str, Any]:
        """The config.json of this run's checkpoints: operator, process, settings, data shape and step."""
        config = {
            "operator": self.model.to_dict(),
            "process": self.process.to_dict(),
            "train": self.settings.to_dict(),
            "data_shape": list(self.data_shape),
            "step": self.step,
        }
        return config if self.run_config is None else {**config, "run": self.run_config}

    def _resume(self, path: Path) -> None:
        """Load weights, optimizer, step and RNG states from a checkpoint of the same model."""
        checkpoint = read_checkpoint(path)
        current = json.loads(json.dumps(self.checkpoint_config))  # as the checkpoint stores it (tuples become lists)
        differing = [d for key in ("operator", "process") for d in _differences(checkpoint.config.get(key), current[key], key)]
        if differing:
            hint = ("; a run saved before --resampling existed resamples linearly: resume it with --resampling linear"
                    if "operator.resampling" in differing else "")
            raise ValueError(f"cannot resume {path}: the components differ from the checkpoint's in {differing}{hint}")
        if checkpoint.training_state is None:
            raise ValueError(f"cannot resume {path}: it has no training_state.pt")
        saved = {**checkpoint.config.get("train", {}), **checkpoint.config.get("run", {})}
        now = {**self.settings.to_dict(), **(self.run_config or {})}
        changed = {k: (saved[k], now[k]) for k in now if k in saved and saved[k] != now[k]}
        fixed = [k for k in FIXED_ON_RESUME if k in changed]
        if fixed:
            raise ValueError(f"cannot resume {path} with another {', '.join(fixed)}: "
                             + ", ".join(f"{k} was {changed[k][0]!r}" for k in fixed))
        load_weights(self.model, path)
        load_weights(self.ema, path, ema=True)
        state = checkpoint.training_state
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the settings of this run, not the checkpoint's
            group.update(lr=self.settings.lr, betas=self.settings.adam_betas, weight_decay=self.settings.weight_decay)
        self.step = self.saved_step = int(state["step"])
        saved_world = int(state.get("world_size", self.ctx.world_size))
        self.examples = int(state.get("examples", self.step * self.settings.batch_size * saved_world))
        if self.ctx.is_main:
            truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
            if saved_world != self.ctx.world_size:
                logger.warning("resuming with %d processes where the checkpoint's run had %d: a step now takes %d examples; the "
                               "data stream continues at example %d, and each process's noise is drawn for its rank and step",
                               self.ctx.world_size, saved_world, self.settings.batch_size * self.ctx.world_size, self.examples)
            if changed:
                logger.warning("resuming at step %d with changed settings: %s", self.step,
                               ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        logger.info("resumed %s at step %d", path, self.step)

    def save(self) -> Path | None:
        """Write the checkpoint (rank 0 only) if a step completed since the last one and every weight is finite."""
        if not self.ctx.is_main or self.step == self.saved_step:
            return None
        bad = non_finite_weights(self.model) + non_finite_weights(self.ema)
        if bad:
            logger.error("not saving step %d: weights %s are NaN or Inf; the checkpoint of step %d is kept", self.step, bad[:3], self.saved_step)
            return None
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "examples": self.examples, "world_size": self.ctx.world_size}
        path = save_checkpoint(self.out_dir / "checkpoint", config=self.checkpoint_config, model=self.model, ema=self.ema, training_state=state)
        self.saved_step = self.step
        self._plot()
        return path

    def write_samples(self) -> list[Path]:
        """Sample the EMA model at 1x, 2x and 4x its reference resolution (1x and 2x for volumes, where 4x costs 64
        training grids) with nested noise (rank 0 only); a diffusion autoencoder decodes the latents of training
        examples."""
        if not self.ctx.is_main:
            return []
        s = self.settings
        paths = []
        generator = self.sample_generator
        factors = (1, 2, 4) if len(self.reference_shape) <= 2 else (1, 2)
        nest = tuple(factors[-1] * r for r in self.reference_shape)
        cond = self._sample_latents()
        batch = s.sample_count if cond is None else cond.shape[0]
        for factor in factors:
            generator.manual_seed(s.seed)
            shape = tuple(factor * r for r in self.reference_shape)
            samples = sample(self.ema, self.process, shape, batch=batch, steps=s.sample_steps, sampler=self.sampler,
                             generator=generator, device=self.ctx.device, nest_resolution=nest, cond=cond)
            domain = self.process.domain
            paths.append(domain.save_samples(samples.cpu(), self.out_dir / "samples", f"step{self.step:07d}_{domain.label(shape)}", individual=False))
        return paths

    @torch.no_grad()
    def _sample_latents(self) -> Tensor | None:
        """For an `EncodedConditioning` operator, the EMA encoder's latents of the first ``sample_count`` training
        examples (whose decodings the samples then are; the examples are written beside them once); for a
        `LabelConditioning` one, those examples' labels; else None."""
        count = min(self.settings.sample_count, len(self.dataset))
        if self.labels:
            return self.dataset.labels[:count].to(self.ctx.device)
        if not isinstance(self.ema, EncodedConditioning):
            return None
        examples = torch.stack([fields_of(self.dataset)[i] for i in range(count)])
        folder, domain = self.out_dir / "samples", self.process.domain
        if not any(folder.glob("inputs_*")):
            domain.save_samples(examples, folder, f"inputs_{domain.label(tuple(examples.shape[2:]))}", individual=False)
        return self.ema.encode(examples.to(self.ctx.device))

    def write_final_samples(self) -> list[Path]:
        """`write_samples` after a run, unless samples of its last step exist (written during the run or before a
        resume that had nothing left to do)."""
        done = any((self.out_dir / "samples").glob(f"step{self.step:07d}_*"))
        return [] if done else self.write_samples()

    def _plot(self) -> None:
        """Redraw the loss curve from metrics.jsonl."""
        rows = [r for r in read_metrics(self.out_dir / "metrics.jsonl") if isinstance(r.get("loss"), float)]
        if rows:
            plot_loss_curve([r["step"] for r in rows], [r["loss"] for r in rows], self.out_dir / "loss.png")

    def run(self) -> TrainResult:
        """Train until ``steps`` or ``time_budget`` is reached, or a SIGINT/SIGTERM asks to stop; the checkpoint is saved
        on exit (also after an error) when a step completed since the last save.

        A step whose loss or gradient is NaN or Inf is skipped (no update) and counted; ``max_nonfinite_steps`` of
        them in a row raise ``FloatingPointError`` and leave the last checkpoint as it was.
        """
        try:
            return self._run()
        finally:
            self.release()

    def _run(self) -> TrainResult:
        """`run` while holding the directory's lock."""
        c, ctx = self.settings, self.ctx
        first_step = self.step + 1  # the run's files are written from its end on, never before a step completed
        net = DistributedDataParallel(self.model) if ctx.world_size > 1 else self.model
        loader = infinite_loader(self.dataset, c.batch_size, seed=c.seed, start_example=self.examples, rank=ctx.rank,
                                 world_size=ctx.world_size, num_workers=c.data_workers,
                                 pin_memory=torch.device(ctx.device).type == "cuda")
        self.model.train()
        start, window, loss_value, streak, diverged = time.perf_counter(), _Window(time.perf_counter()), float("nan"), 0, False
        budget = "" if c.time_budget is None else f" for {c.time_budget:.0f} s"
        bar = tqdm(total=c.steps, initial=self.step, desc=f"training{budget}", unit="step",
                   disable=not ctx.is_main or self.progress is False, dynamic_ncols=True)
        cuda = [torch.device(ctx.device)] if torch.device(ctx.device).type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), StopSignals(announce=ctx.is_main) as signals:
            failed = updating = False
            try:
                while not self._done(start, signals):
                    fields, labels = batch if isinstance(batch := next(loader), (tuple, list)) else (batch, None)
                    x0 = (as_scattered(fields).to(ctx.device) if isinstance(fields, dict)
                          else self.resolutions.batch(self.process.domain, fields.to(ctx.device, non_blocking=True), self.step))
                    cond = labels.to(ctx.device) if self.labels else None
                    seed = step_seed(c.seed, ctx.rank, self.step)  # noise and dropout: a function of the run, rank and step
                    self.noise.manual_seed(seed)
                    torch.manual_seed(seed + 1)
                    with _autocast(c, ctx.device):
                        loss = self.process.loss(loss_model(net, self.process, x0, points=c.points, generator=self.noise), x0,
                                                 points=c.points, generator=self.noise, reference_shape=self.reference_shape, cond=cond)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()  # on every process, even for a non-finite loss, so DDP's all-reduce never waits
                    norms = [nn.utils.clip_grad_norm_(group, c.grad_clip if c.grad_clip > 0 else math.inf) for group in self.clip_groups]
                    value = loss.item()
                    if ctx.any(not (math.isfinite(value) and all(bool(n.isfinite()) for n in norms))):
                        streak, window.skipped, self.skipped_steps = streak + 1, window.skipped + 1, self.skipped_steps + 1
                        if streak >= c.max_nonfinite_steps:
                            diverged = True
                            kept = f"the last checkpoint (step {self.saved_step}) is kept" if self.saved_step else "nothing was saved"
                            raise FloatingPointError(
                                f"training diverged: {streak} steps in a row (to step {self.step + 1}) had a NaN or Inf loss or "
                                f"gradient; {kept}; try a lower learning rate (lr={c.lr:g})")
                    else:
                        streak, updating = 0, True
                        for group in self.optimizer.param_groups:
                            group["lr"] = learning_rate(c, self.step)
                        self.optimizer.step()
                        if (self.step + 1) % c.ema_every == 0:
                            update_ema(self.ema, self.model, ema_decay(c, (self.step + 1) // c.ema_every))
                        updating, loss_value = False, value
                        window.losses.append(value)
                    self.step += 1  # the step is complete: only now may it be saved
                    if self.step == first_step:
                        start = time.perf_counter()  # the budget is for training: not the first step's one-off compiling
                        if ctx.is_main:
                            self._start_writing()
                    self.examples += c.batch_size * ctx.world_size
                    window.steps += 1
                    bar.update(1)
                    if c.log_every and self.step % c.log_every == 0:
                        window = self._log(window, bar)
                    if c.checkpoint_every and self.step % c.checkpoint_every == 0 and streak == 0:
                        self.save()
                    if c.sample_every and self.step % c.sample_every == 0 and signals.received is None:
                        self.write_samples()
            except BaseException:
                failed = True
                raise
            finally:
                bar.close()
                try:
                    if window.steps and (not failed or ctx.world_size == 1):  # a collective, unless one rank failed
                        self._log(window, None)
                finally:
                    if updating:
                        logger.error("not saving: the error interrupted a weight update; the checkpoint of step %d is kept", self.saved_step)
                    elif not diverged:
                        self.save()
        stopped_by = None if signals.received is None else signals.received.name
        return TrainResult(self.out_dir, self.model, self.ema, self.step, loss_value, self.skipped_steps, stopped_by)

    def _done(self, start: float, signals: StopSignals) -> bool:
        """Whether the step or time budget is spent or a signal asked to stop (agreed across processes)."""
        c = self.settings
        over = (c.steps is not None and self.step >= c.steps) or (c.time_budget is not None and time.perf_counter() - start >= c.time_budget)
        return self.ctx.any(over or signals.received is not None)

    def _log(self, window: "_Window", bar: tqdm | None) -> "_Window":
        """Append the window's mean loss, throughput and skipped steps to metrics.jsonl; returns the next window."""
        now = time.perf_counter()
        local = sum(window.losses) / len(window.losses) if window.losses else math.nan
        loss = self.ctx.mean(local)
        rate = window.steps * self.settings.batch_size * self.ctx.world_size / max(now - window.start, 1e-9)
        if self.ctx.is_main:
            row = {"step": self.step, "loss": loss if math.isfinite(loss) else None, "examples_per_s": rate,
                   "lr": self.optimizer.param_groups[0]["lr"], "skipped": window.skipped, "time": time.time()}
            append_metrics(self.out_dir / "metrics.jsonl", row)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{rate:.1f}", **({"skipped": window.skipped} if window.skipped else {}))
        return _Window(now)


@dataclass
class _Window:
    """The steps since the last log line: when they began, how many, the finite losses, and how many were skipped."""

    start: float
    steps: int = 0
    skipped: int = 0
    losses: list[float] = field(default_factory=list)


@beartype
def train(
    model: NeuralOperator,
    process: DiffusionProcess,
    data: Dataset | Sequence[Tensor],
    settings: TrainSettings,
    *,
    sampler: str | SamplerFunction = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    run_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train with a `Trainer` (same arguments) and write samples at 1x, 2x and 4x resolution at the end (not when a
    signal stopped it)."""
    trainer = Trainer(model, process, data, settings, sampler=sampler, resume=resume, overwrite=overwrite, progress=progress,
                      run_config=run_config)
    result = trainer.run()
    if result.stopped_by is None:
        trainer.write_final_samples()
    return result
