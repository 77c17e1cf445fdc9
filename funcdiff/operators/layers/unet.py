"""A grid U-Net for any d (Ronneberger et al. 2015) in the style of Nichol & Dhariwal 2021 and the official UNO."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.compiling import CompileMode, run_part
from funcdiff.operators.layers.modulation import Modulation

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``channels`` (Wu & He 2018)."""
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _broadcast(v: Tensor, ndim: int) -> Tensor:
    return v.view(*v.shape, *(1,) * ndim)


class ResBlock(nn.Module):
    """Norm-GELU-conv, norm modulated by time (scale, shift) and latent (scale), GELU-dropout-conv, plus a residual."""

    def __init__(self, c_in: int, c_out: int, *, ndim: int, time_dim: int, z_dim: int, dropout: float) -> None:
        super().__init__()
        conv = _CONV[ndim]
        self.ndim = ndim
        self.norm1, self.conv1 = group_norm(c_in), conv(c_in, c_out, 3, padding=1)
        self.norm2, self.modulation = group_norm(c_out), Modulation(c_out, time_dim, z_dim)
        self.dropout, self.conv2 = nn.Dropout(dropout), conv(c_out, c_out, 3, padding=1)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Float[Tensor, "b c *s"], emb: Tensor | None, z: Tensor | None) -> Float[Tensor, "b c2 *s"]:
        """One residual step."""
        h = self.norm2(self.conv1(F.gelu(self.norm1(x))))
        mod = self.modulation(emb, z)
        if mod is not None:
            h = h * _broadcast(mod[0], self.ndim) + _broadcast(mod[1], self.ndim)
        return self.skip(x) + self.conv2(self.dropout(F.gelu(h)))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over all grid nodes with ``scaled_dot_product_attention`` (Vaswani et al. 2017)."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: Float[Tensor, "b c *s"]) -> Float[Tensor, "b c *s"]:
        """Residual attention."""
        b, c = x.shape[:2]
        tokens = self.norm(x).flatten(2).transpose(1, 2).contiguous()  # see `funcdiff.operators.layers.chunking.pointwise`
        q, k, v = self.qkv(tokens).view(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, c)
        return x + self.out(h).transpose(1, 2).reshape(x.shape)


class Stage(nn.Module):
    """A residual block, optionally followed by attention."""

    def __init__(self, block: ResBlock, attention: bool, channels: int) -> None:
        super().__init__()
        self.block = block
        self.attention = Attention(channels) if attention else None

    def forward(self, x: Tensor, emb: Tensor | None, z: Tensor | None) -> Tensor:
        """Block then attention."""
        x = self.block(x, emb, z)
        return x if self.attention is None else self.attention(x)


class GridUNet(nn.Module):
    """U-Net on a fixed grid of ``shape`` with the official UNO's channel plan (docs/reference-differences.md §3) and ADM blocks.

    Down level ``i`` runs ``blocks`` residual blocks at ``channels * (1, *mults)[i]`` and then a stride-2 convolution
    to the next width (a stride-1 one after the last level); the middle is block, attention, block at
    ``channels * mults[-1]``; up level ``i`` runs ``blocks`` blocks to ``channels * mults[i]``, each taking one skip
    from the matching down block, then a stride-2 transposed convolution (4 taps) back to the level's input width.
    Attention follows every block at a resolution (the largest grid axis) in ``attention_resolutions``; dropout is
    used at resolutions up to ``dropout_from_resolution`` (Nichol & Dhariwal 2021).

    Args:
        c_in: input channels; c_out: output channels (ignored with ``decoder=False``).
        ndim: spatial dimension (1, 2 or 3); shape: the grid, divisible by 2^(levels - 1) on every axis.
        channels: base width; mults: width multiplier per level; blocks: residual blocks per level.
        attention_resolutions, dropout, dropout_from_resolution: as above.
        time_dim, z_dim: sizes of the time embedding and latent (0 for none).
        decoder: build the up path and output head; without it only `encode` is available.
    """

    def __init__(
        self, c_in: int, c_out: int, *, ndim: int, shape: tuple[int, ...], channels: int, mults: tuple[int, ...], blocks: int,
        attention_resolutions: tuple[int, ...], dropout: float, dropout_from_resolution: int, time_dim: int, z_dim: int,
        decoder: bool = True,
    ) -> None:
        super().__init__()
        levels = len(mults)
        if any(s % 2 ** (levels - 1) for s in shape):
            raise ValueError(f"the U-Net grid {shape} must be divisible by 2^(levels - 1) = {2 ** (levels - 1)}")
        conv = _CONV[ndim]
        widths = [channels * m for m in (1, *mults)]

        def stage(c_a: int, c_b: int, res: int, attention: bool | None = None) -> Stage:
            p = dropout if res <= dropout_from_resolution else 0.0
            block = ResBlock(c_a, c_b, ndim=ndim, time_dim=time_dim, z_dim=z_dim, dropout=p)
            return Stage(block, res in attention_resolutions if attention is None else attention, c_b)

        self.input = conv(c_in, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, res = [], max(shape)
        for level in range(levels):
            for _ in range(blocks):
                self.down.append(stage(widths[level], widths[level], res))
                skips.append(widths[level])
            last = level == levels - 1
            self.down.append(conv(widths[level], widths[level + 1], 3, stride=1 if last else 2, padding=1))
            res = res if last else res // 2
        ch = widths[-1]
        # The middle is block, attention, block (Nichol & Dhariwal 2021).
        self.mid = nn.ModuleList([stage(ch, ch, res, attention=True), stage(ch, ch, res, attention=False)])
        self.out_channels = ch
        self.up = nn.ModuleList()
        self.head = None
        self.compile_mode: CompileMode | None = None  # `funcdiff.operators.compile_operator`
        if not decoder:
            return
        for level in reversed(range(levels)):
            for _ in range(blocks):
                self.up.append(stage(ch + skips.pop(), widths[level + 1], res))
                ch = widths[level + 1]
            if level:
                self.up.append(_TRANSPOSED[ndim](ch, widths[level], 4, stride=2, padding=1))
                ch = widths[level]
                res *= 2
        self.head = nn.Sequential(group_norm(ch), nn.GELU(), conv(ch, c_out, 3, padding=1))

    def encode(self, x: Tensor, emb: Tensor | None, z: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        """The deepest features after the middle blocks, and the outputs of the down blocks (the skips)."""
        return run_part(self, _encode, x, emb, z)

    def forward(self, x: Float[Tensor, "b c *s"], emb: Tensor | None, z: Tensor | None) -> Float[Tensor, "b c2 *s"]:
        """The full U-Net."""
        if self.head is None:
            raise ValueError("this GridUNet was built with decoder=False; use encode")
        return run_part(self, _unet, x, emb, z)


# The U-Net's work, as functions of the U-Net that `run_part` may compile (`funcdiff.operators.compiling`).

def _encode(unet: GridUNet, x: Tensor, emb: Tensor | None, z: Tensor | None) -> tuple[Tensor, list[Tensor]]:
    h = unet.input(x)
    skips = []
    for layer in unet.down:
        if isinstance(layer, Stage):
            h = layer(h, emb, z)
            skips.append(h)
        else:
            h = layer(h)
    for layer in unet.mid:
        h = layer(h, emb, z)
    return h, skips


def _unet(unet: GridUNet, x: Tensor, emb: Tensor | None, z: Tensor | None) -> Tensor:
    h, skips = _encode(unet, x, emb, z)
    for layer in unet.up:
        h = layer(torch.cat([h, skips.pop()], dim=1), emb, z) if isinstance(layer, Stage) else layer(h)
    return unet.head(h)
