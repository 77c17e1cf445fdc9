"""The training loop over built components: subsampled loss, EMA, checkpoints, samples, metrics; CPU, CUDA or torchrun."""

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
from beartype import beartype
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from funcdiff.data import infinite_loader
from funcdiff.domains.io import save_samples
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.training.checkpoint import load_weights, read_checkpoint, save_checkpoint
from funcdiff.training.config import TrainSettings
from funcdiff.training.distributed import DistributedContext, init_distributed
from funcdiff.training.ema import make_ema, update_ema
from funcdiff.training.plots import plot_loss_curve
from funcdiff.training.sampling import Sampler, default_sampler, sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run leaves: where, the trained model and its EMA, the last step and loss."""

    out_dir: Path
    model: nn.Module
    ema: nn.Module
    step: int
    loss: float


def _autocast(settings: TrainSettings, device: str) -> contextlib.AbstractContextManager:
    """Mixed precision as configured (bf16 on CPU or CUDA, fp16 on CUDA), else nothing."""
    if settings.autocast == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.autocast == "bf16" else torch.float16
    if dtype == torch.float16 and not device.startswith("cuda"):
        raise ValueError("autocast='fp16' needs a CUDA device; use 'bf16' on the CPU")
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _differences(saved: Any, current: Any, prefix: str) -> list[str]:
    """Dotted names of the settings where two nested config dicts differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [d for key in sorted(set(saved) | set(current)) for d in _differences(saved.get(key), current.get(key), f"{prefix}.{key}")]
    return [] if saved == current else [prefix]


def _label(shape: tuple[int, ...]) -> str:
    """``32px`` for a square grid, ``32x48px`` otherwise."""
    return f"{shape[0]}px" if len(set(shape)) == 1 else "x".join(map(str, shape)) + "px"


class Trainer:
    """Trains a model under a process on a data set; rank 0 writes everything under ``settings.out_dir``.

    The components arrive built (`funcdiff.factory` builds them from a config): any `NeuralOperator` that is an
    ``nn.Module``, any `DiffusionProcess`, and any data set of dense fields ``(c, *spatial)``. Their ``to_dict()``
    goes into every checkpoint, so `funcdiff.training.load_trained` rebuilds them by their registered kinds.

    Args:
        model: the network, initialised (seed it before building it for a reproducible run).
        process: the diffusion process (it owns the domain and the mollifier).
        data: the training examples (a data set or a list of tensors), all of one shape ``(c, *spatial)``.
        settings: optimiser, loop, budget and output settings.
        sampler: how the periodic samples are drawn (default: `default_sampler` of the process).
        resume: continue from ``<out_dir>/checkpoint`` if it exists (the same components required).
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
        sampler: Sampler | None = None,
        resume: bool = False,
        progress: bool | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module implementing NeuralOperator, got {type(model).__name__}")
        self.settings = settings
        self.ctx: DistributedContext = init_distributed(settings.device)
        self.out_dir = Path(settings.out_dir)
        self.progress = progress
        self.process = process
        self.dataset = data
        self.data_shape = tuple(data[0].shape)
        if self.data_shape[0] != process.domain.channels or len(self.data_shape) - 1 != process.domain.ndim:
            raise ValueError(f"data of shape {self.data_shape} does not fit the domain {process.domain!r}")
        self.reference_shape = tuple(model.reference_shape)
        self.sampler = sampler
        # Seeded before each sampling; a sampler that draws noise is bound to it (`funcdiff.factory.make_sampler`).
        self.sample_generator = torch.Generator(device=self.ctx.device)
        self.run_config = run_config
        self.model = model.to(self.ctx.device)
        self.ema = make_ema(self.model)
        opt = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=settings.lr, betas=settings.adam_betas, weight_decay=settings.weight_decay)
        self.step = 0
        self.noise = torch.Generator(device=self.ctx.device).manual_seed(settings.seed * 1000 + self.ctx.rank)
        self.rng_state = torch.Generator().manual_seed(settings.seed * 1000 + self.ctx.rank + 1).get_state()
        if resume and (self.out_dir / "checkpoint").exists():
            self._resume(self.out_dir / "checkpoint")

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
            raise ValueError(f"cannot resume {path}: the components differ from the checkpoint's in {differing}")
        if checkpoint.training_state is None:
            raise ValueError(f"cannot resume {path}: it has no training_state.pt")
        load_weights(self.model, path)
        load_weights(self.ema, path, ema=True)
        state = checkpoint.training_state
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if self.ctx.is_main:
            self.noise.set_state(state["noise_rng"])
            self.rng_state = state["torch_rng"]
        logger.info("resumed %s at step %d", path, self.step)

    def save(self) -> Path | None:
        """Write the checkpoint (rank 0 only)."""
        if not self.ctx.is_main:
            return None
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "noise_rng": self.noise.get_state(), "torch_rng": torch.get_rng_state()}
        path = save_checkpoint(self.out_dir / "checkpoint", config=self.checkpoint_config, model=self.model, ema=self.ema, training_state=state)
        self._plot()
        return path

    def write_samples(self) -> list[Path]:
        """Sample the EMA model at 1x, 2x and 4x its reference resolution with nested noise (rank 0 only)."""
        if not self.ctx.is_main:
            return []
        s = self.settings
        paths = []
        generator = self.sample_generator
        sampler = self.sampler or default_sampler(self.process, reference_shape=self.reference_shape, generator=generator)
        nest = tuple(4 * r for r in self.reference_shape)
        for factor in (1, 2, 4):
            generator.manual_seed(s.seed)
            shape = tuple(factor * r for r in self.reference_shape)
            samples = sample(self.ema, self.process, shape, batch=s.sample_count, steps=s.sample_steps, sampler=sampler,
                             generator=generator, device=self.ctx.device, nest_resolution=nest)
            paths.append(save_samples(samples.cpu(), self.out_dir / "samples", f"step{self.step:07d}_{_label(shape)}", individual=False))
        return paths

    def write_final_samples(self) -> list[Path]:
        """`write_samples` after a run, unless its last step already did."""
        s = self.settings
        return [] if s.sample_every and self.step % s.sample_every == 0 else self.write_samples()

    def _plot(self) -> None:
        """Redraw the loss curve from metrics.jsonl."""
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            plot_loss_curve([r["step"] for r in rows], [r["loss"] for r in rows], self.out_dir / "loss.png")

    def run(self) -> TrainResult:
        """Train until ``steps`` or ``time_budget`` is reached; a checkpoint is saved on exit, even on Ctrl-C."""
        c, ctx = self.settings, self.ctx
        if ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(self.checkpoint_config, indent=2, sort_keys=True))
        net = DistributedDataParallel(self.model) if ctx.world_size > 1 else self.model
        loader = infinite_loader(self.dataset, c.batch_size, seed=c.seed, start_step=self.step, rank=ctx.rank, world_size=ctx.world_size)
        self.model.train()
        start, window_losses, window_start, loss_value = time.perf_counter(), [], time.perf_counter(), float("nan")
        budget = "" if c.time_budget is None else f" for {c.time_budget:.0f} s"
        bar = tqdm(total=c.steps, initial=self.step, desc=f"training{budget}", unit="step",
                   disable=not ctx.is_main or self.progress is False, dynamic_ncols=True)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            try:
                while not self._done(start):
                    x0 = next(loader).to(ctx.device, non_blocking=True)
                    with _autocast(c, ctx.device):
                        loss = self.process.loss(net, x0, points=c.points, generator=self.noise)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if c.grad_clip > 0:
                        nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                    self.optimizer.step()
                    self.step += 1
                    if self.step % c.ema_every == 0:
                        update_ema(self.ema, self.model, c.ema_decay)
                    loss_value = loss.item()
                    window_losses.append(loss_value)
                    bar.update(1)
                    if c.log_every and self.step % c.log_every == 0:
                        window_start = self._log(window_losses, window_start, bar)
                        window_losses = []
                    if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                        self.save()
                    if c.sample_every and self.step % c.sample_every == 0:
                        self.write_samples()
            finally:
                bar.close()
                if window_losses:
                    self._log(window_losses, window_start, None)
                self.save()
        return TrainResult(self.out_dir, self.model, self.ema, self.step, loss_value)

    def _done(self, start: float) -> bool:
        """Whether the step or time budget is spent (agreed across processes)."""
        c = self.settings
        over = (c.steps is not None and self.step >= c.steps) or (c.time_budget is not None and time.perf_counter() - start >= c.time_budget)
        return self.ctx.any(over)

    def _log(self, losses: list[float], since: float, bar: tqdm | None) -> float:
        """Append the mean loss and throughput since the last log to metrics.jsonl; returns the new window start."""
        now = time.perf_counter()
        loss = self.ctx.mean(sum(losses) / len(losses))
        rate = len(losses) * self.settings.batch_size * self.ctx.world_size / max(now - since, 1e-9)
        if self.ctx.is_main:
            row = {"step": self.step, "loss": loss, "examples_per_s": rate, "lr": self.optimizer.param_groups[0]["lr"], "time": time.time()}
            with (self.out_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{rate:.1f}")
        return now


@beartype
def train(
    model: NeuralOperator,
    process: DiffusionProcess,
    data: Dataset | Sequence[Tensor],
    settings: TrainSettings,
    *,
    sampler: Sampler | None = None,
    resume: bool = False,
    progress: bool | None = None,
    run_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train with a `Trainer` (same arguments) and write samples at 1x, 2x and 4x resolution at the end."""
    trainer = Trainer(model, process, data, settings, sampler=sampler, resume=resume, progress=progress, run_config=run_config)
    result = trainer.run()
    trainer.write_final_samples()
    return result
