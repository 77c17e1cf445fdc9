"""Frozen, JSON-safe configurations of the operators and the named presets (docs/reference-differences.md §6 for the paper's)."""

from dataclasses import dataclass
from typing import Any

from funcdiff.json_config import JsonConfig
from funcdiff.operators.layers.kernel_resampling import Resampling, check_resampling

@dataclass(frozen=True, kw_only=True)
class OperatorConfig(JsonConfig):
    """Architecture of `InftyDiffOperator` and `SparseEncoder` (field names follow docs/reference-differences.md §2-3).

    Attributes:
        channels: input = output channels of the field.
        reference_shape: the training grid; kernels have ``kernel_size`` taps per axis there.
        width: point feature width (the paper's ``nf``).
        sparse_blocks: sparse residual blocks before and after the U-Net (each).
        kernel_size, mlp_ratio: depthwise kernel taps per axis and MLP expansion of a sparse block.
        time_dim: size of the sinusoidal time embedding and of its MLP.
        knn: neighbours used to move points onto the U-Net grid.
        unet_shape, unet_channels, unet_mults, unet_blocks: the grid U-Net (Nichol & Dhariwal 2021).
        attention_resolutions, dropout, dropout_from_resolution: attention and dropout placement in the U-Net.
        z_dim: latent size of the diffusion autoencoder (0: unconditional decoder, no encoder).
        position_features: give each point ``cos(pi k u)``, ``sin(pi k u)`` of its coordinates for ``k = 1..`` this
            many (0: none, the paper's operator, equivariant to shifts), so that it knows where in the domain it lies
            (an onset at the start of a clip) at any resolution.
        resampling: how kernels and the U-Net read-out change resolution: ``"bandlimited"`` (sinc kernels, DCT read-out;
            no images of the trained band, docs/math.md §16) or ``"linear"`` (multilinear: the first releases, and
            every config saved before this field existed).
    """

    channels: int
    reference_shape: tuple[int, ...]
    width: int = 64
    sparse_blocks: int = 3
    kernel_size: int = 7
    mlp_ratio: int = 2
    time_dim: int = 256
    knn: int = 3
    unet_shape: tuple[int, ...]
    unet_channels: int = 128
    unet_mults: tuple[int, ...] = (1, 2, 4, 8, 8)
    unet_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    dropout: float = 0.1
    dropout_from_resolution: int = 16
    z_dim: int = 0
    position_features: int = 0
    resampling: str = "bandlimited"

    def __post_init__(self) -> None:
        check_resampling(self.resampling)
        if len(self.reference_shape) not in (1, 2, 3) or len(self.unet_shape) != len(self.reference_shape):
            raise ValueError(
                "reference_shape and unet_shape must have 1 to 3 equal-length axes, "
                f"got {self.reference_shape}, {self.unet_shape}"
            )
        positive = ("channels", "width", "sparse_blocks", "kernel_size", "mlp_ratio", "time_dim", "knn")
        for name in (*positive, "unet_channels", "unet_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.time_dim % 2 or self.time_dim < 4:
            raise ValueError(f"time_dim must be an even int >= 4, got {self.time_dim}")
        if self.z_dim < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"z_dim must be >= 0 and dropout in [0, 1), got {self.z_dim}, {self.dropout}")
        if self.position_features < 0:
            raise ValueError(f"position_features must be >= 0, got {self.position_features}")
        if any(s % 2 ** (len(self.unet_mults) - 1) for s in self.unet_shape):
            raise ValueError(f"unet_shape {self.unet_shape} must be divisible by 2^(len(unet_mults) - 1)")

    @property
    def ndim(self) -> int:
        """Spatial dimension d."""
        return len(self.reference_shape)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OperatorConfig":
        """Rebuild from `to_dict` output; a config saved before ``resampling`` existed resampled linearly, and keeps to it."""
        return super().from_dict({"resampling": "linear", **data})


@dataclass(frozen=True, kw_only=True)
class LatentMLPConfig(JsonConfig):
    """Architecture of `LatentMLP`, the latent denoiser (Preechakul et al. 2022; docs/reference-differences.md §4)."""

    z_dim: int
    hidden: int = 2048
    layers: int = 10
    time_dim: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.z_dim < 1 or self.hidden < 1 or self.layers < 2 or self.time_dim < 4 or self.time_dim % 2:
            raise ValueError(f"need z_dim >= 1, hidden >= 1, layers >= 2, even time_dim >= 4; got {self}")


def _unet_size(resolution: int, levels: int) -> int:
    step = 2 ** (levels - 1)
    return max(step, resolution // 2 // step * step)


_PRESETS: dict[str, dict[str, Any]] = {
    # docs/reference-differences.md §6: the 256 configs (uno_res 128 at 256 px) and ffhq_128 (uno_res 64, base 64, four levels).
    "paper-256": dict(width=64, sparse_blocks=3, kernel_size=7, time_dim=256, unet_channels=128, unet_mults=(1, 2, 4, 8, 8)),
    "paper-128": dict(width=64, sparse_blocks=3, kernel_size=7, time_dim=256, unet_channels=64, unet_mults=(1, 2, 4, 8)),
    "cpu-small": dict(
        width=32, sparse_blocks=2, kernel_size=7, time_dim=128, unet_channels=32, unet_mults=(1, 2, 2), unet_blocks=1
    ),
    "audio-small": dict(
        width=32, sparse_blocks=2, kernel_size=31, time_dim=128, unet_channels=32, unet_mults=(1, 2, 2, 4, 4, 4), unet_blocks=1,
        position_features=16,
    ),
    "tiny": dict(width=8, sparse_blocks=1, kernel_size=3, time_dim=16, unet_channels=8, unet_mults=(1, 2), unet_blocks=1),
}


def preset_config(
    name: str, *, channels: int, resolution: int | tuple[int, ...], ndim: int = 2, z_dim: int = 0, resampling: Resampling = "bandlimited",
) -> OperatorConfig:
    """The configuration of a named preset for fields of ``channels`` on a training grid: ``resolution`` points along
    each of ``ndim`` axes, or a grid shape ``(n_1, ..., n_d)`` (which sets ``ndim``).

    ``paper-*`` keep the official hyper-parameters (attention at 16 and 8, dropout 0.1 at <= 16); the U-Net grid is
    half the training grid as in the paper. ``cpu-small`` and ``tiny`` put attention and dropout at their two coarsest
    U-Net levels. ``audio-small`` is ``cpu-small`` for clips: 1-D layers are cheap, so it has wider kernels (31
    samples) and a deeper U-Net (six levels), whose coarsest level sees 1/64 of the clip per cell; and it has position
    features, since where a sound lies in its clip matters (notes start at 0 s and are released at 0.75 s: after 700
    steps on notes, samples without them were bursts at random times, with them they held until 0.75 s).
    """
    if name not in _PRESETS:
        raise ValueError(f"name must be one of {sorted(_PRESETS)}, got {name!r}")
    shape = (resolution,) * ndim if isinstance(resolution, int) else tuple(resolution)
    if not shape or min(shape) < 2:
        raise ValueError(f"resolution must be >= 2 along every axis, got {resolution}")
    fields = dict(_PRESETS[name])
    levels = len(fields["unet_mults"])
    unet = tuple(_unet_size(size, levels) for size in shape)
    if not name.startswith("paper"):
        coarse = max(unet) // 2 ** (levels - 1)
        fields.update(attention_resolutions=(coarse,), dropout_from_resolution=2 * coarse)
    return OperatorConfig(channels=channels, reference_shape=shape, unet_shape=unet, z_dim=z_dim, resampling=resampling, **fields)
