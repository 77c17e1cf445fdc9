"""The Fourier neural operator denoiser (Li et al. 2021): points to a fixed grid, spectral blocks, a band-limited read
back to the points (docs/math.md §17)."""

import functools
from dataclasses import dataclass
from typing import Any, final

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.json_config import JsonConfig
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.kernels import native
from funcdiff.operators.layers.chunking import pointwise
from funcdiff.operators.layers.interpolate import cosine_at, dct_reader, dct_resize, knn_to_grid
from funcdiff.operators.layers.modulation import Modulation, TimeEmbedding, coordinate_features
from funcdiff.operators.layers.spectral import SpectralConv
from funcdiff.points import Points, Scattered
from funcdiff.registry import register


@dataclass(frozen=True, kw_only=True)
class FNOConfig(JsonConfig):
    """Architecture of `FourierNeuralOperator`.

    Attributes:
        channels: input = output channels of the field.
        reference_shape: the training grid (where white noise is N(0, I)).
        grid_shape: the grid the spectral blocks run on (points reach it by K nearest, as in ∞-Diff).
        modes: Fourier bins kept per axis, ``j / 2`` cycles per unit length each (docs/math.md §17); at most the grid's
            cells per axis, the bins its evenly extended FFT has.
        width: feature channels.
        layers: spectral blocks.
        mlp_ratio: expansion of each block's per-point MLP.
        time_dim: size of the sinusoidal time embedding and of its MLP.
        knn: neighbours used to move points onto the grid.
        z_dim: latent size when it decodes a diffusion autoencoder's ``z`` (0: unconditional).
        position_features: ``cos(pi k u)``, ``sin(pi k u)`` of each point's coordinates for ``k = 1..`` this many.
        depthwise: spectral layers filter each channel alone (a global depthwise convolution) and leave channel mixing
            to the blocks' MLPs: ``width`` times fewer spectral weights, for long 1-D grids such as audio.
        oversample: the blocks run on ``grid_shape`` times this per axis, reached band-limited (`dct_resize`) from the
            grid the points move to (docs/math.md §17): their nonlinear products up to this many times the grid's band
            then lie below the finer grid's Nyquist frequency instead of folding about the grid's into mirrored
            images of the band, and the read-out drops what the points' grid cannot hold.
    """

    channels: int
    reference_shape: tuple[int, ...]
    grid_shape: tuple[int, ...]
    modes: tuple[int, ...]
    width: int = 32
    layers: int = 4
    mlp_ratio: int = 2
    time_dim: int = 128
    knn: int = 3
    z_dim: int = 0
    position_features: int = 0
    depthwise: bool = False
    oversample: int = 1

    def __post_init__(self) -> None:
        ndim = len(self.reference_shape)
        if ndim not in (1, 2, 3) or len(self.grid_shape) != ndim or len(self.modes) != ndim:
            raise ValueError(f"reference_shape, grid_shape and modes must have 1 to 3 equal-length axes, got "
                             f"{self.reference_shape}, {self.grid_shape}, {self.modes}")
        for name in ("channels", "width", "layers", "mlp_ratio", "knn", "oversample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(self.modes) < 1 or any(m > n for m, n in zip(self.modes, self.grid_shape)):
            raise ValueError(f"modes {self.modes} must be >= 1 and at most the grid's cells {self.grid_shape} per axis: a "
                             f"grid of n cells holds n bins of j / 2 cycles (up to its Nyquist frequency)")
        if self.time_dim % 2 or self.time_dim < 4 or self.z_dim < 0 or self.position_features < 0:
            raise ValueError(f"need an even time_dim >= 4, z_dim >= 0 and position_features >= 0, got {self.time_dim}, "
                             f"{self.z_dim}, {self.position_features}")

    @property
    def ndim(self) -> int:
        """Spatial dimension d."""
        return len(self.reference_shape)


class SpectralBlock(nn.Module):
    """``g += K(mod(LN(g)))``; ``g += MLP(mod(LN(g)))`` on a grid, ``K`` a `SpectralConv` (ConvNeXt-like, as the sparse blocks)."""

    def __init__(self, width: int, modes: tuple[int, ...], *, time_dim: int, z_dim: int, mlp_ratio: int, depthwise: bool) -> None:
        super().__init__()
        self.norm1, self.mod1 = nn.LayerNorm(width), Modulation(width, time_dim, z_dim)
        self.spectral = SpectralConv(width, width, modes, depthwise=depthwise)
        self.norm2, self.mod2 = nn.LayerNorm(width), Modulation(width, time_dim, z_dim)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, g: Float[Tensor, "b c *grid"], emb: Tensor, z: Tensor | None) -> Float[Tensor, "b c *grid"]:
        """One block on the grid."""
        h = _modulated(self.norm1, self.mod1(emb, z), g)
        g = g + self.spectral(h.movedim(-1, 1))
        return g + self.mlp(_modulated(self.norm2, self.mod2(emb, z), g)).movedim(-1, 1)


def _modulated(norm: nn.LayerNorm, mod: tuple[Tensor, Tensor] | None, g: Tensor) -> Tensor:
    """``LN(g)`` over channels, scaled and shifted per example, channels last."""
    h = norm(g.movedim(1, -1))
    if mod is None:
        return h
    view = (h.shape[0], *(1,) * (h.ndim - 2), h.shape[-1])
    return h * mod[0].view(view) + mod[1].view(view)


@register("fno")
@final
class FourierNeuralOperator(nn.Module, NeuralOperator):
    """Point-wise denoiser on any subset of any grid: ``linear_in`` at the points, K nearest onto a fixed grid,
    spectral blocks there (Li et al. 2021, time-modulated), a band-limited read back at the points (the grid's
    cosine interpolant, `dct_reader`), and a per-point MLP of the read and the
    point's own features.

    Band-limited by construction: the spectral layers pass only ``config.modes`` bins at every resolution, the blocks'
    residual stream carries the fixed grid's band (up to its Nyquist frequency) and the read-back adds nothing above
    it; what varies faster than the grid reaches the output only through the per-point path. ``cond`` is a diffusion
    autoencoder's ``z`` when ``config.z_dim > 0`` and must be None otherwise.
    """

    def __init__(self, config: FNOConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.time = TimeEmbedding(config.time_dim, config.time_dim)
        self.linear_in = nn.Linear(config.channels + 2 * config.position_features * config.ndim, width)
        self.blocks = nn.ModuleList(
            SpectralBlock(width, config.modes, time_dim=config.time_dim, z_dim=config.z_dim, mlp_ratio=config.mlp_ratio,
                          depthwise=config.depthwise)
            for _ in range(config.layers)
        )
        self.norm_out = nn.LayerNorm(width)
        self.linear_out = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, config.channels))

    def _check(self, values: Tensor, ndim: int, t: Tensor, cond: Tensor | None) -> None:
        b, c = values.shape[0], values.shape[-1]
        if c != self.config.channels or ndim != self.config.ndim:
            raise ValueError(f"input has {c} channels on a {ndim}-d grid, the operator expects {self.config.channels} on "
                             f"a {self.config.ndim}-d one")
        if t.shape[0] != b:
            raise ValueError(f"t must have one time per example ({b}), got {tuple(t.shape)}")
        if (cond is None) != (self.config.z_dim == 0) or (cond is not None and cond.shape != (b, self.config.z_dim)):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must be a ({b}, {self.config.z_dim}) latent iff config.z_dim > 0, got {got}")

    def _body(self, points: Points | Scattered, t: Tensor, cond: Tensor | None, chunk: int | None) -> Tensor:
        emb = self.time(t)
        count = self.config.position_features

        def read_input(values: Tensor, coords: Tensor) -> Tensor:
            features = [values, coordinate_features(coords, count)] if count else [values]
            return self.linear_in(torch.cat(features, dim=-1))

        h = pointwise(read_input, points.values, points.coords, chunk=chunk)
        if isinstance(points, Points) and h.device.type == "cpu":
            native.load()  # the C++ neighbour search (built once per environment), ~20x faster than PyTorch's on sparse points
        grid = knn_to_grid(points.with_values(h), self.config.grid_shape, k=self.config.knn)
        if self.config.oversample > 1:
            grid = dct_resize(grid, tuple(self.config.oversample * n for n in self.config.grid_shape))
        for block in self.blocks:
            grid = block(grid, emb, cond)
        grid = self.norm_out(grid.movedim(1, -1)).movedim(-1, 1)
        if isinstance(points, Scattered):
            read, where = functools.partial(cosine_at, grid, modes=self.config.grid_shape), points.coords
        else:
            read, where = dct_reader(grid, points.index.shape[1], points.shape, bounded=chunk is not None), points.index

        def read_output(features: Tensor, at: Tensor) -> Tensor:
            return self.linear_out(torch.cat([features, read(at)], dim=-1))

        return pointwise(read_output, h, where, chunk=chunk)

    @jaxtyped(typechecker=beartype)
    def forward(
        self, points: Points | Scattered, t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None
    ) -> Float[Tensor, "b n c"]:
        """The prediction at the given points of a grid of any shape, or at scattered points (docs/math.md §20)."""
        self._check(points.values, points.ndim, t, cond)
        return self._body(points, t, cond, None)

    @jaxtyped(typechecker=beartype)
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The prediction at every point of a grid of any shape (per-point work in chunks of ``chunk_points``)."""
        b, c, *spatial = x.shape
        self._check(x.movedim(1, -1), len(spatial), t, cond)
        if chunk_points is not None and chunk_points < 1:
            raise ValueError(f"chunk_points must be >= 1 or None, got {chunk_points}")
        return self._body(Points.from_dense(x), t, cond, chunk_points).transpose(1, 2).reshape(b, c, *spatial)

    @property
    def reference_shape(self) -> tuple[int, ...]:
        """The training grid, where white noise is N(0, I)."""
        return self.config.reference_shape

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this operator's architecture (`funcdiff.registry.build`)."""
        return {"kind": self.kind, **self.config.to_dict()}

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "FourierNeuralOperator":
        """The operator (freshly initialised) that `to_dict`'s settings describe."""
        return cls(FNOConfig.from_dict(settings))


_FNO_PRESETS: dict[str, dict[str, Any]] = {
    "fno-small": dict(width=32, layers=4, time_dim=128, mode_fraction=0.5),
    "fno-audio": dict(width=32, layers=4, time_dim=128, mode_fraction=1.0, position_features=16, depthwise=True),
    "fno-tiny": dict(width=8, layers=2, time_dim=16, mode_fraction=0.5),
}
FNO_PRESETS = tuple(_FNO_PRESETS)
"""The named `FourierNeuralOperator` presets."""


def fno_preset_config(name: str, *, channels: int, resolution: tuple[int, ...], z_dim: int = 0) -> FNOConfig:
    """The configuration of a named FNO preset on a training grid ``resolution``: the spectral grid is that grid, and
    ``fno-small`` / ``fno-tiny`` keep half its bins per axis (up to half its Nyquist frequency), ``fno-audio`` all of
    them, depthwise (a learnt global filter per channel: full channel mixing at every bin of a 4 kHz clip costs 0.7 s
    a step on one CPU thread), with position features (where a sound lies in its clip matters, as for ``audio-small``)."""
    if name not in _FNO_PRESETS:
        raise ValueError(f"name must be one of {FNO_PRESETS}, got {name!r}")
    fields = dict(_FNO_PRESETS[name])
    fraction = fields.pop("mode_fraction")
    modes = tuple(max(1, round(fraction * n)) for n in resolution)
    return FNOConfig(channels=channels, reference_shape=resolution, grid_shape=resolution, modes=modes, z_dim=z_dim, **fields)

