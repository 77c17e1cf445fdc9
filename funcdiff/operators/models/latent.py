"""The latent denoiser of the diffusion autoencoder: an MLP with skip connections of its input (Preechakul et al. 2022)."""

from typing import final

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.models.config import LatentMLPConfig
from funcdiff.operators.layers.modulation import SinusoidalEmbedding


class _Layer(nn.Module):
    """Linear, scaled by ``1 + Linear(GELU(c))`` of the time condition, LayerNorm, GELU, dropout."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, c_out)
        self.cond = nn.Linear(cond_dim, c_out)
        self.norm = nn.LayerNorm(c_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """One modulated layer."""
        h = self.linear(x) * (1 + self.cond(F.gelu(cond)))
        return self.dropout(F.gelu(self.norm(h)))


@final
class LatentMLP(nn.Module):
    """``eps``-prediction on latents ``z`` (MLPSkipNet; docs/reference-differences.md §4): every layer after the first also sees ``z``.

    Time is continuous in ``[0, 1]``, embedded sinusoidally after scaling by 1000, then Linear-GELU-Linear to ``z_dim``.

    Args:
        config: sizes (the paper: hidden 2048, 10 or 20 layers, time embedding 128).
    """

    def __init__(self, config: LatentMLPConfig) -> None:
        super().__init__()
        self.config = config
        z, hidden = config.z_dim, config.hidden
        self.time = nn.Sequential(SinusoidalEmbedding(config.time_dim), nn.Linear(config.time_dim, z), nn.GELU(), nn.Linear(z, z))
        self.layers = nn.ModuleList(
            [_Layer(z, hidden, z, config.dropout)]
            + [_Layer(hidden + z, hidden, z, config.dropout) for _ in range(config.layers - 2)]
        )
        self.out = nn.Linear(hidden + z, z)

    @jaxtyped(typechecker=beartype)
    def forward(self, z: Float[Tensor, "b z"], t: Float[Tensor, " b"]) -> Float[Tensor, "b z"]:
        """The prediction for noisy latents ``z`` at times ``t``."""
        if z.shape[-1] != self.config.z_dim:
            raise ValueError(f"z must have {self.config.z_dim} features, got {z.shape[-1]}")
        cond = self.time(t)
        h = self.layers[0](z, cond)
        for layer in self.layers[1:]:
            h = layer(torch.cat([h, z], dim=-1), cond)
        return self.out(torch.cat([h, z], dim=-1))
