"""Shared layers: the sinusoidal time embedding and time/latent modulation (scale and shift) of normalised features."""

import math

import torch
from torch import nn

from funcdiff._typing import Float, Int, Tensor

TIME_SCALE = 1000.0


class SinusoidalEmbedding(nn.Module):
    """``[sin(s t w_i), cos(s t w_i)]`` with ``w_i = 10^(-4 i / (half - 1))`` and ``s = 1000`` (Vaswani et al. 2017).

    Continuous time in ``[0, 1]`` is scaled by 1000 first, so the frequencies match a model trained on step
    indices of a T = 1000 schedule (docs/reference-differences.md §1, "Timestep handling").
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even int >= 4, got {dim}")
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1)), persistent=False)

    def forward(self, t: Float[Tensor, " b"]) -> Float[Tensor, "b e"]:
        """Embed one time per example."""
        angle = TIME_SCALE * t.unsqueeze(-1).to(self.freqs.dtype) * self.freqs
        return torch.cat([angle.sin(), angle.cos()], dim=-1)


def position_features(index: Int[Tensor, "b n d"], shape: tuple[int, ...], count: int, dtype: torch.dtype) -> Float[Tensor, "b n f"]:
    """`coordinate_features` of each cell-centre coordinate ``u = (index + 0.5) / N``: where a point lies in the
    domain, the same at every resolution."""
    size = torch.tensor(shape, dtype=dtype, device=index.device)
    return coordinate_features((index.to(dtype) + 0.5) / size, count)


def coordinate_features(coords: Float[Tensor, "b n d"], count: int) -> Float[Tensor, "b n f"]:
    """``cos(pi k u)`` and ``sin(pi k u)`` for ``k = 1..count`` of each coordinate ``u`` in ``[0, 1]``."""
    k = torch.pi * torch.arange(1, count + 1, dtype=coords.dtype, device=coords.device)
    angle = (coords.unsqueeze(-1) * k).flatten(-2)
    return torch.cat([angle.cos(), angle.sin()], dim=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding followed by Linear-GELU-Linear (Ho et al. 2020; docs/reference-differences.md §3)."""

    def __init__(self, sinusoidal_dim: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            SinusoidalEmbedding(sinusoidal_dim), nn.Linear(sinusoidal_dim, dim), nn.GELU(), nn.Linear(dim, dim)
        )

    def forward(self, t: Float[Tensor, " b"]) -> Float[Tensor, "b e"]:
        """Embed continuous time in ``[0, 1]``."""
        return self.net(t)


class Modulation(nn.Module):
    """Per-example scale and shift ``h (1 + s_t)(1 + s_z) + b_t`` from a time embedding and an optional latent.

    Time gives scale and shift through GELU-Linear; the latent gives a scale through Linear-GELU-Linear, as in
    the official ∞-Diff blocks (docs/reference-differences.md §2). Either input may be absent (``time_dim`` or ``z_dim`` of 0).
    """

    def __init__(self, channels: int, time_dim: int, z_dim: int) -> None:
        super().__init__()
        self.time = nn.Sequential(nn.GELU(), nn.Linear(time_dim, 2 * channels)) if time_dim else None
        self.latent = nn.Sequential(nn.Linear(z_dim, channels), nn.GELU(), nn.Linear(channels, channels)) if z_dim else None

    def forward(self, emb: Float[Tensor, "b e"] | None, z: Float[Tensor, "b z"] | None) -> tuple[Tensor, Tensor] | None:
        """``(scale, shift)`` of shape ``(b, channels)`` with ``h * scale + shift``, or None if nothing modulates."""
        scale = shift = None
        if self.time is not None and emb is not None:
            s, shift = self.time(emb).chunk(2, dim=-1)
            scale = 1 + s
        if self.latent is not None and z is not None:
            s = 1 + self.latent(z)
            scale = s if scale is None else scale * s
        if scale is None:
            return None
        return scale, torch.zeros_like(scale) if shift is None else shift


def parameter_count(module: nn.Module) -> int:
    """The number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
