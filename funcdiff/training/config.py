"""TrainSettings: how a run trains (optimiser, loop, budget, outputs), frozen, with a JSON round trip.

What is trained (model, process, data) is passed to the `Trainer` as built objects; `funcdiff.factory.TrainConfig`
describes both halves for the command line.
"""

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from funcdiff.json_config import JsonConfig


class SettingsError(ValueError):
    """Settings with invalid values; ``invalid`` maps each field's name to its value."""

    def __init__(self, invalid: dict[str, object]) -> None:
        super().__init__(f"invalid training settings: {', '.join(f'{n}={v!r}' for n, v in invalid.items())}")
        self.invalid = invalid


_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("funcdiff_deferred_checks", default=False)


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Settings built in the block skip their checks (the command line parses first, then calls `validate`)."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def check_device(device: str) -> None:
    """Raise ``ValueError`` unless ``device`` names a device this machine's torch can use."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1, mps, ...): {error}") from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this torch build has no CUDA or sees no GPU; use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")


def _is_device(name: str) -> bool:
    """Whether torch parses ``name`` as a device ("cpu", "cuda", "cuda:1", ...)."""
    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class TrainSettings(JsonConfig):
    """The optimiser and loop settings of a training run (defaults: the CPU demo).

    Attributes:
        points: points per example, a fraction in (0, 1] of the grid (the paper's 0.25) or a count (with several
            resolutions a count is the same budget at each, so finer grids are seen more sparsely).
        downscales: train at the data's grid coarsened by each of these factors, one drawn per step
            (`funcdiff.data.ResolutionMixture`): ``(4, 2, 1)`` trains data loaded at 128 px at 32, 64 and 128 px.
        batch_size: examples per step and process.
        lr: the optimiser's learning rate.
        warmup_steps: raise the learning rate linearly from ``lr / warmup_steps`` to ``lr`` over this many steps.
        lr_schedule: "constant" keeps ``lr`` after the warm-up; "cosine" lowers it from ``lr`` to 0 along half a cosine,
            ``lr (1 + cos(pi p)) / 2`` at the fraction ``p`` of the steps between the warm-up's end and ``steps`` (which
            it needs; a time budget that stops the run first leaves it part-way down, and resuming with more steps
            stretches the curve from the step reached).
        optimizer: "adam" or "adamw".
        adam_betas: the optimiser's two moment decays.
        weight_decay: AdamW's decoupled weight decay (Adam: L2 added to the gradient).
        grad_clip: clip the gradient's global norm to this (0 turns clipping off).
        ema_decay: decay of the exponential moving average of the weights that samples are drawn from.
        ema_every: update the EMA every this many steps.
        ema_warmup: use the decay ``min(ema_decay, (1 + n) / (10 + n))`` at the EMA's n-th update, so early weights
            are forgotten quickly in short runs.
        steps: stop after this many steps (None: only the time budget stops the run).
        time_budget: stop after this many seconds of training, counted from the end of the first step, which pays for
            one-off work such as compiling the native kernel on a fresh machine (None: no limit).
        autocast: "none", or "bf16" / "fp16" mixed precision (fp16 on CUDA only).
        compile: compile the operator's fixed-shape parts with `torch.compile` (`funcdiff.operators.compile_operator`;
            a one-off cost per input shape, tens of seconds).
        seed: seeds the model, the data order and the noise.
        device: "cpu", "cuda", "cuda:1", ...
        log_every: append the loss and examples/s to metrics.jsonl every this many steps (0 = only at the end).
        sample_every: write samples every this many steps (0 = only at the end of `train`).
        checkpoint_every: write a checkpoint every this many steps (0 = only at the end, which always happens).
        sample_count: samples drawn at each sampling.
        sample_steps: sampler steps of each sampling.
        max_nonfinite_steps: stop the run (keeping the last checkpoint) after this many steps in a row whose loss or
            gradient is NaN or Inf; such steps are skipped and counted in metrics.jsonl.
        data_workers: DataLoader processes that load batches (0: in the training process; they pay when decoding is
            slow, e.g. image folders without their cache); batches are pinned for the GPU on CUDA.
        out_dir: where checkpoints, samples, metrics and the resolved config go.
    """

    points: int | float = 0.25
    downscales: tuple[int, ...] = (1,)
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    optimizer: Literal["adam", "adamw"] = "adam"
    adam_betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    ema_every: int = 1
    ema_warmup: bool = False
    steps: int | None = 2000
    time_budget: float | None = None
    autocast: Literal["none", "bf16", "fp16"] = "none"
    compile: bool = False
    seed: int = 0
    device: str = "cpu"
    log_every: int = 25
    sample_every: int = 0
    checkpoint_every: int = 250
    sample_count: int = 16
    sample_steps: int = 50
    max_nonfinite_steps: int = 20
    data_workers: int = 0
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        if not _DEFERRED.get():
            self.validate()

    def validate(self) -> None:
        """Raise `SettingsError` naming every field whose value is invalid (`TypeError` for a wrong type)."""
        wrong = self.type_errors()
        if wrong:
            raise TypeError(f"invalid training settings: {', '.join(wrong)}")
        bad = {name: getattr(self, name) for name, ok in self.checks().items() if not ok}
        if bad:
            raise SettingsError(bad)
        if self.steps is None and self.time_budget is None:
            raise ValueError("set steps or time_budget (or both): a run needs a way to stop")
        if self.lr_schedule == "cosine" and (self.steps is None or self.steps <= self.warmup_steps):
            raise ValueError(f"lr_schedule 'cosine' follows steps, not a time budget: set steps above warmup_steps "
                             f"({self.warmup_steps}), got {self.steps}")

    def checks(self) -> dict[str, bool]:
        """Each checked field's name and whether its value is valid."""
        finite = math.isfinite
        return {
            "points": (isinstance(self.points, int) and not isinstance(self.points, bool) and self.points >= 1) or (isinstance(self.points, float) and 0 < self.points <= 1),
            "downscales": bool(self.downscales) and all(f >= 1 for f in self.downscales) and len(set(self.downscales)) == len(self.downscales),
            "batch_size": self.batch_size >= 1,
            "lr": finite(self.lr) and self.lr > 0,
            "adam_betas": len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "weight_decay": finite(self.weight_decay) and self.weight_decay >= 0,
            "grad_clip": finite(self.grad_clip) and self.grad_clip >= 0,
            "ema_decay": 0 <= self.ema_decay <= 1,
            "ema_every": self.ema_every >= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "steps": self.steps is None or self.steps >= 1,
            "time_budget": self.time_budget is None or (finite(self.time_budget) and self.time_budget > 0),
            "seed": self.seed >= 0,
            "device": _is_device(self.device),
            "log_every": self.log_every >= 0,
            "sample_every": self.sample_every >= 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "sample_count": self.sample_count >= 1,
            "sample_steps": self.sample_steps >= 1,
            "max_nonfinite_steps": self.max_nonfinite_steps >= 1,
            "data_workers": self.data_workers >= 0,
            "out_dir": bool(self.out_dir.strip()),
        }

    def settings(self) -> "TrainSettings":
        """Only the `TrainSettings` fields (drops a subclass's extra fields)."""
        names = {f.name for f in dataclasses.fields(TrainSettings)}
        return TrainSettings(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})
