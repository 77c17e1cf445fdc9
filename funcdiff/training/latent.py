"""The latent diffusion model of the diffusion autoencoder (docs/math.md §9): a DDPM on normalised latents, sampled by DDIM.

Unlike the official code (docs/reference-differences.md §4, §8 items 1 and 9) the latents are centred on their true mean and
sampling runs in eval mode (no dropout); the EMA starts as a copy of the network, as the official latent model's does.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn
from tqdm.auto import tqdm

from funcdiff._typing import Float, Tensor
from funcdiff.operators.models.config import LatentMLPConfig
from funcdiff.operators.models.latent import LatentMLP
from funcdiff.processes.schedules import Schedule, constant_schedule, respace
from funcdiff.registry import build
from funcdiff.training.ema import make_ema, update_ema

logger = logging.getLogger(__name__)

CONFIG, MODEL, NORMALIZER = "config.json", "model.safetensors", "normalizer.safetensors"


def _check_latents(latents: Tensor) -> None:
    """Raise ``ValueError`` unless ``latents`` holds at least two finite rows."""
    if latents.shape[0] < 2:
        raise ValueError(f"latents needs at least 2 rows (n >= 2) to estimate a spread, got {latents.shape[0]}")
    if not bool(torch.isfinite(latents).all()):
        raise ValueError("latents must be finite (found NaN or inf)")


class LatentNormalizer(nn.Module):
    """Per-dimension standardisation ``(z - mean) / std`` with the latents' true mean (docs/reference-differences.md §8 item 9).

    A dimension with zero spread keeps ``std = 1``, so it normalises to 0 and denormalises back to its mean.
    """

    def __init__(self, mean: Float[Tensor, " z"], std: Float[Tensor, " z"]) -> None:
        super().__init__()
        if mean.shape != std.shape or not bool(torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError("mean and std must have the same shape, be finite, and std must be > 0")
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    @classmethod
    @jaxtyped(typechecker=beartype)
    def fit(cls, latents: Float[Tensor, "n z"]) -> "LatentNormalizer":
        """The mean and (unbiased) std of each dimension of ``latents``, computed in float64 and stored in float32."""
        _check_latents(latents)
        x = latents.detach().double()
        std = x.std(dim=0)
        return cls(x.mean(dim=0).float(), torch.where(std > 0, std, torch.ones_like(std)).float())

    @jaxtyped(typechecker=beartype)
    def normalize(self, latents: Float[Tensor, "b z"]) -> Float[Tensor, "b z"]:
        """``(latents - mean) / std``, in the dtype of ``latents``."""
        return (latents - self.mean.to(latents)) / self.std.to(latents)

    @jaxtyped(typechecker=beartype)
    def denormalize(self, latents: Float[Tensor, "b z"]) -> Float[Tensor, "b z"]:
        """``latents * std + mean``, in the dtype of ``latents``."""
        return latents * self.std.to(latents) + self.mean.to(latents)


@dataclass(frozen=True, eq=False)
class LatentModel:
    """A trained latent model: the EMA `LatentMLP` in eval mode, the normaliser of its data and the noise schedule."""

    net: LatentMLP
    normalizer: LatentNormalizer
    schedule: Schedule

    def __post_init__(self) -> None:
        if self.net.training:
            raise ValueError("the latent network must be in eval mode (call .eval()); dropout would perturb sampling")
        if self.normalizer.mean.numel() != self.net.config.z_dim:
            raise ValueError(f"the normaliser has {self.normalizer.mean.numel()} dimensions, the network {self.net.config.z_dim}")


@jaxtyped(typechecker=beartype)
def train_latent(
    latents: Float[Tensor, "n z"],
    *,
    steps: int,
    config: LatentMLPConfig | None = None,
    schedule: Schedule | None = None,
    batch_size: int = 256,
    lr: float | int = 1e-4,
    weight_decay: float | int = 0.04,
    ema_decay: float | int = 0.995,
    ema_every: int = 10,
    grad_clip: float | int = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> LatentModel:
    """Train an ``eps``-predicting DDPM with an L1 loss on the normalised ``latents`` (docs/reference-differences.md §4 defaults).

    Defaults follow the reference latent model: the paper-sized `LatentMLPConfig` for ``z``, constant betas 0.008 over
    T = 1000 steps, uniform ``t``, AdamW (lr 1e-4, betas (0.9, 0.99), weight decay 0.04), batch 256, gradients
    clipped to norm 1, EMA 0.995 updated every 10 steps (from a copy of the network). Training runs on the device of
    ``latents`` in float32 and is deterministic given ``seed``; the global RNG is left as it was.

    Args:
        latents: the training latents, one per row.
        steps: optimiser steps.
        config: the network's sizes; its ``z_dim`` must match ``latents``.
        schedule: the noise schedule.
        batch_size, lr, weight_decay, ema_decay, ema_every, grad_clip: optimisation settings as above.
        seed: seeds the network's initialisation, the batches, the noise and dropout.
        progress: show a progress bar.

    Returns:
        The `LatentModel` holding the EMA network in eval mode.

    Raises:
        ValueError: on fewer than 2 or non-finite latents, a ``config`` of another ``z_dim``, or bad settings.
    """
    _check_latents(latents)
    z_dim = latents.shape[1]
    config = LatentMLPConfig(z_dim=z_dim) if config is None else config
    if config.z_dim != z_dim:
        raise ValueError(f"config.z_dim={config.z_dim} but latents have {z_dim} dimensions")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("ema_every", ema_every)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (lr > 0 and weight_decay >= 0 and 0 <= ema_decay <= 1 and grad_clip > 0):
        raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= ema_decay <= 1, grad_clip > 0; got {lr}, {weight_decay}, {ema_decay}, {grad_clip}")
    schedule = constant_schedule(1000, beta=0.008) if schedule is None else schedule
    device = latents.device
    normalizer = LatentNormalizer.fit(latents).to(device)
    data = normalizer.normalize(latents.detach().float())
    alpha_bar = schedule.alpha_bar.to(device)
    T = schedule.num_steps
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # the network's initialisation and dropout draw from the global generator
        net = LatentMLP(config).to(device).train()
        ema = make_ema(net)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=weight_decay)
        for step in tqdm(range(1, steps + 1), desc="latent DDPM", disable=not progress):
            z0 = data[torch.randint(data.shape[0], (batch_size,), device=device, generator=generator)]
            t = torch.randint(1, T + 1, (batch_size,), device=device, generator=generator)
            eps = torch.randn(z0.shape, device=device, generator=generator)
            a = alpha_bar[t].float()[:, None]
            loss = F.l1_loss(net(a.sqrt() * z0 + (1 - a).sqrt() * eps, t.float() / T), eps)  # docs/math.md §3, Eq. 11 with T = I
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            optimizer.step()
            if step % ema_every == 0:
                update_ema(ema, net, ema_decay)
            if step % max(1, steps // 10) == 0:
                logger.info("latent step %d/%d: L1 loss %.4f", step, steps, loss.item())
    return LatentModel(ema.eval(), normalizer, schedule)


@torch.no_grad()
@jaxtyped(typechecker=beartype)
def sample_latents(model: LatentModel, num: int, *, steps: int = 50, generator: torch.Generator | None = None) -> Float[Tensor, "num z"]:
    """``num`` latents by deterministic DDIM (``eta = 0``) over ``steps`` respaced steps, denormalised.

    docs/math.md §6 with ``T = I``: ``x0 = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)`` (no clipping, as in the reference),
    ``z_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps``; the last step lands on ``x0``. The network runs in
    eval mode (dropout off); only the starting noise draws from ``generator``.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    net, T = model.net, model.schedule.num_steps
    if net.training:
        raise ValueError("the latent network must be in eval mode (call .eval()); dropout would perturb sampling")
    device = net.out.weight.device
    alpha_bar = model.schedule.alpha_bar.tolist()
    z = torch.randn((num, net.config.z_dim), device=device, generator=generator)
    timesteps = respace(T, steps)
    for t, prev in zip(timesteps, timesteps[1:] + [0]):
        a, a_prev = alpha_bar[t], alpha_bar[prev]
        eps = net(z, torch.full((num,), t / T, device=device))
        x0 = (z - math.sqrt(1 - a) * eps) / math.sqrt(a)
        z = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    return model.normalizer.denormalize(z)


def save_latent_model(model: LatentModel, directory: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``normalizer.safetensors`` into ``directory``; never pickles.
    ``provenance`` (JSON-safe: e.g. the autoencoder checkpoint and data its latents came from) goes into the config."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    save_model(model.net, str(path / MODEL))
    save_file({"mean": model.normalizer.mean.contiguous(), "std": model.normalizer.std.contiguous()}, str(path / NORMALIZER))
    config = {"kind": "latent_model", "net": model.net.config.to_dict(), "schedule": model.schedule.to_dict(), "provenance": provenance or {}}
    (path / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))  # last: a complete folder has a config
    return path


def read_latent_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a latent model directory (``ValueError`` if it is not one)."""
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{directory} is not a latent model directory: {error}") from error
    if not isinstance(config, dict) or config.get("kind") != "latent_model":
        raise ValueError(f"{path} does not describe a latent model")
    return config


def load_latent_model(directory: str | Path, *, device: str | torch.device = "cpu") -> LatentModel:
    """The `LatentModel` that `save_latent_model` wrote into ``directory``, on ``device``, in eval mode."""
    path = Path(directory)
    config = read_latent_config(path)
    net = LatentMLP(LatentMLPConfig.from_dict(config["net"]))
    load_model(net, str(path / MODEL), device=str(device))
    stats = load_file(str(path / NORMALIZER), device=str(device))
    return LatentModel(net.to(device).eval(), LatentNormalizer(stats["mean"], stats["std"]), build(config["schedule"]))
