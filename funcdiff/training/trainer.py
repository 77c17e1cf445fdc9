"""The training loop: subsampled mollified loss, EMA, checkpoints, samples, metrics; CPU, CUDA or torchrun."""

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from funcdiff.data import infinite_loader, make_dataset
from funcdiff.mollifiers import GaussianMollifier, IdentityMollifier
from funcdiff.operators import InftyDiffOperator, OperatorConfig, operator_preset
from funcdiff.processes import MollifiedDDPM, cosine_schedule, linear_schedule
from funcdiff.training.checkpoint import load_weights, read_checkpoint, save_checkpoint
from funcdiff.training.config import TrainConfig
from funcdiff.training.distributed import DistributedContext, init_distributed
from funcdiff.training.ema import make_ema, update_ema
from funcdiff.training.plots import plot_loss_curve
from funcdiff.training.sampling import sample, save_images

logger = logging.getLogger(__name__)

MODEL_FIELDS = ("data", "resolution", "channels", "preset", "diffusion_steps", "schedule", "prediction", "sigma_pixels")
"""Settings a resumed run must share with its checkpoint."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished run leaves: where, the trained model and its EMA, the last step and loss."""

    out_dir: Path
    model: nn.Module
    ema: nn.Module
    step: int
    loss: float


def build_process(config: TrainConfig) -> MollifiedDDPM:
    """The diffusion process a training config describes (sigma given in training pixels, stored in domain units)."""
    schedule = cosine_schedule(config.diffusion_steps) if config.schedule == "cosine" else linear_schedule(config.diffusion_steps)
    mollifier = GaussianMollifier(config.sigma_pixels / config.resolution) if config.sigma_pixels > 0 else IdentityMollifier()
    return MollifiedDDPM(schedule, mollifier, config.prediction)


def build_dataset(config: TrainConfig, *, split: str = "train") -> Dataset:
    """The training data a config names, limited to ``data_limit`` examples."""
    if config.data == "icons":
        return make_dataset("icons", resolution=config.resolution, split=split, limit=config.data_limit)
    options = {} if config.data == "fashion-mnist" else {"channels": config.channels, "flip": config.flip}
    dataset = make_dataset(config.data, resolution=config.resolution, split=split, **options)
    return dataset if config.data_limit is None else Subset(dataset, range(min(config.data_limit, len(dataset))))


def _autocast(config: TrainConfig, device: str) -> contextlib.AbstractContextManager:
    """Mixed precision as configured (bf16 on CPU or CUDA, fp16 on CUDA), else nothing."""
    if config.autocast == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.autocast == "bf16" else torch.float16
    if dtype == torch.float16 and not device.startswith("cuda"):
        raise ValueError("autocast='fp16' needs a CUDA device; use 'bf16' on the CPU")
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


class Trainer:
    """Runs one training configuration to its end; rank 0 writes everything under ``config.out_dir``.

    Args:
        config: the run's settings.
        resume: continue from ``<out_dir>/checkpoint`` if it exists (same model settings required).
        progress: show a progress bar (None: only on a terminal).
    """

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: bool | None = None) -> None:
        self.config = config
        self.ctx: DistributedContext = init_distributed(config.device)
        self.out_dir = Path(config.out_dir)
        self.progress = progress
        self.process = build_process(config)
        self.dataset = build_dataset(config)
        self.data_shape = tuple(self.dataset[0].shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = operator_preset(config.preset, channels=self.data_shape[0], resolution=config.resolution).to(self.ctx.device)
        self.ema = make_ema(self.model)
        opt = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay)
        self.step = 0
        self.noise = torch.Generator(device=self.ctx.device).manual_seed(config.seed * 1000 + self.ctx.rank)
        self.rng_state = torch.Generator().manual_seed(config.seed * 1000 + self.ctx.rank + 1).get_state()
        if resume and (self.out_dir / "checkpoint").exists():
            self._resume(self.out_dir / "checkpoint")

    @property
    def checkpoint_config(self) -> dict:
        """The config.json of this run's checkpoints: operator, process, training settings and data shape."""
        return {
            "operator": self.model.config.to_dict(),
            "process": self.process.to_dict(),
            "train": self.config.to_dict(),
            "data_shape": list(self.data_shape),
            "step": self.step,
        }

    def _resume(self, path: Path) -> None:
        """Load weights, optimizer, step and RNG states from a checkpoint of the same model."""
        checkpoint = read_checkpoint(path)
        saved = TrainConfig.from_dict(checkpoint.config["train"])
        differing = [f for f in MODEL_FIELDS if getattr(saved, f) != getattr(self.config, f)]
        if differing:
            raise ValueError(f"cannot resume {path}: settings differ from the checkpoint's: {differing}")
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
        """Sample the EMA model at 1x, 2x and 4x the training resolution with nested noise (rank 0 only)."""
        if not self.ctx.is_main:
            return []
        c = self.config
        paths = []
        generator = torch.Generator(device=self.ctx.device)
        for factor in (1, 2, 4):
            generator.manual_seed(c.seed)
            images = sample(self.ema, self.process, c.resolution * factor, batch=c.sample_count, channels=self.data_shape[0],
                            reference_shape=self.data_shape[1:], steps=c.sample_steps, generator=generator,
                            device=self.ctx.device, nest_resolution=c.resolution * 4)
            paths.append(save_images(images.cpu(), self.out_dir / "samples", f"step{self.step:07d}_{c.resolution * factor}px", individual=False))
        return paths

    def _plot(self) -> None:
        """Redraw the loss curve from metrics.jsonl."""
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            plot_loss_curve([r["step"] for r in rows], [r["loss"] for r in rows], self.out_dir / "loss.png")

    def run(self) -> TrainResult:
        """Train until ``steps`` or ``time_budget`` is reached; a checkpoint is saved on exit, even on Ctrl-C."""
        c, ctx = self.config, self.ctx
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
        c = self.config
        over = (c.steps is not None and self.step >= c.steps) or (c.time_budget is not None and time.perf_counter() - start >= c.time_budget)
        return self.ctx.any(over)

    def _log(self, losses: list[float], since: float, bar: tqdm | None) -> float:
        """Append the mean loss and throughput since the last log to metrics.jsonl; returns the new window start."""
        now = time.perf_counter()
        loss = self.ctx.mean(sum(losses) / len(losses))
        rate = len(losses) * self.config.batch_size * self.ctx.world_size / max(now - since, 1e-9)
        if self.ctx.is_main:
            row = {"step": self.step, "loss": loss, "images_per_s": rate, "lr": self.optimizer.param_groups[0]["lr"], "time": time.time()}
            with (self.out_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}")
        return now


def train(config: TrainConfig, *, resume: bool = False, progress: bool | None = None) -> TrainResult:
    """Train an ∞-Diff operator as ``config`` says and write samples at 1x, 2x and 4x resolution at the end."""
    trainer = Trainer(config, resume=resume, progress=progress)
    result = trainer.run()
    if not (config.sample_every and result.step % config.sample_every == 0):  # else the last step already sampled
        trainer.write_samples()
    return result


def load_trained(path: str | Path, *, ema: bool = True, device: str = "cpu") -> tuple[InftyDiffOperator, MollifiedDDPM, dict]:
    """An operator (EMA weights by default), its process and the checkpoint config, ready to sample."""
    checkpoint = read_checkpoint(path, with_state=False)
    model = InftyDiffOperator(OperatorConfig.from_dict(checkpoint.config["operator"]))
    load_weights(model, path, ema=ema)
    return model.to(device).eval(), MollifiedDDPM.from_dict(checkpoint.config["process"]), checkpoint.config
