"""TrainConfig: every setting of a training run, frozen, with a JSON round trip."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training run of an ∞-Diff operator with the mollified diffusion loss (defaults: the CPU demo).

    Attributes:
        data: "icons", "fashion-mnist", or a folder of images.
        resolution: training grid side in pixels (the operator's reference resolution).
        channels: 1 (grey) or 3 (RGB); icons and fashion-mnist are grey.
        data_limit: use only this many examples (quick runs), or all.
        flip: add mirrored copies (image folders).
        preset: operator preset ("tiny", "cpu-small", "paper-128", "paper-256").
        points: points per example, a fraction of the grid (the paper's 0.25) or a count.
        batch_size: examples per step and process.
        lr: the optimiser's learning rate.
        optimizer: "adam" or "adamw".
        adam_betas: the optimiser's two moment decays.
        weight_decay: AdamW's decoupled weight decay (Adam: L2 added to the gradient).
        grad_clip: clip the gradient's global norm to this (0 turns clipping off).
        ema_decay: decay of the exponential moving average of the weights that samples are drawn from.
        ema_every: update the EMA every this many steps.
        steps: stop after this many steps (None: only the time budget stops the run).
        time_budget: stop after this many seconds of training (None: no limit).
        diffusion_steps: the number T of diffusion steps.
        schedule: the noise schedule, "cosine" (Nichol & Dhariwal 2021) or "linear".
        prediction: what the network predicts. The paper predicts the mollified noise; the default here is x0,
            which after 500 CPU steps of the demo gave clean icon shapes where mollified-eps still gave speckle (the
            Wiener filter at the end amplifies an undertrained model's high-frequency errors).
        sigma_pixels: the mollifier's standard deviation in pixels at the training resolution (0 = white noise).
        autocast: "none", or "bf16" / "fp16" mixed precision (fp16 on CUDA only).
        seed: seeds the model, the data order and the noise.
        device: "cpu", "cuda", "cuda:1", ...
        log_every: append the loss and images/s to metrics.jsonl every this many steps (0 = only at the end).
        sample_every: write sample grids every this many steps (0 = only at the end of `train`).
        checkpoint_every: write a checkpoint every this many steps (0 = only at the end, which always happens).
        sample_count: samples drawn at each sampling.
        sample_steps: DDIM steps of each sampling.
        out_dir: where checkpoints, samples, metrics and the resolved config go.
    """

    data: str = "icons"
    resolution: int = 32
    channels: int = 1
    data_limit: int | None = None
    flip: bool = False
    preset: str = "cpu-small"
    points: float | int = 0.25
    batch_size: int = 16
    lr: float = 2e-4
    optimizer: Literal["adam", "adamw"] = "adam"
    adam_betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    ema_every: int = 1
    steps: int | None = 2000
    time_budget: float | None = None
    diffusion_steps: int = 1000
    schedule: Literal["cosine", "linear"] = "cosine"
    prediction: Literal["mollified_eps", "x0"] = "x0"
    sigma_pixels: float = 1.0
    autocast: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    device: str = "cpu"
    log_every: int = 25
    sample_every: int = 0
    checkpoint_every: int = 250
    sample_count: int = 16
    sample_steps: int = 50
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        checks = {
            "resolution": self.resolution >= 2,
            "channels": self.channels in (1, 3),
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "grad_clip": self.grad_clip >= 0,
            "ema_decay": 0 <= self.ema_decay <= 1,
            "ema_every": self.ema_every >= 1,
            "steps": self.steps is None or self.steps >= 1,
            "time_budget": self.time_budget is None or self.time_budget > 0,
            "sigma_pixels": self.sigma_pixels >= 0,
            "diffusion_steps": self.diffusion_steps >= 2,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        if self.steps is None and self.time_budget is None:
            raise ValueError("set steps or time_budget (or both): a run needs a way to stop")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(config: dict[str, Any]) -> "TrainConfig":
        """Rebuild from `to_dict` output (lists become tuples)."""
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
