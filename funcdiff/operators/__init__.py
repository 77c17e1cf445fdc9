"""Neural operators for function-space diffusion (docs/math.md §8, §17): sparse depthwise kernel integrals, points <-> grid
interpolation, a grid U-Net, the ∞-Diff denoiser, its encoder, the Fourier neural operator and the latent MLP."""

import dataclasses
from collections.abc import Mapping, Sequence

from funcdiff.operators.kernels.backends import ConvPlan, available_backends, choose_backend
from funcdiff.operators.models.autoencoder import DiffusionAutoencoder
from funcdiff.operators.base import LatentEncoder, NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.operators.models.config import LatentMLPConfig, OperatorConfig, preset_config
from funcdiff.operators.layers.conv import SparseDepthwiseConv
from funcdiff.operators.models.encoder import SparseEncoder
from funcdiff.operators.models.fno import FNO_PRESETS, FNOConfig, FourierNeuralOperator, fno_preset_config
from funcdiff.operators.models.infty_diff import InftyDiffOperator
from funcdiff.operators.layers.interpolate import cosine_at, dct_reader, dct_resize, grid_to_points, knn_to_grid, nearest_scattered
from funcdiff.operators.layers.kernel_resampling import Resampling, resample_kernel, resampled_size
from funcdiff.operators.models.label_conditional import LabelConditional
from funcdiff.operators.models.latent import LatentMLP
from funcdiff.operators.kernels.lattice import LatticeHash
from funcdiff.operators.layers.modulation import parameter_count
from funcdiff.operators.layers.unet import GridUNet


ENCODER_OF = {"fno-small": "cpu-small", "fno-audio": "audio-small", "fno-tiny": "tiny"}
"""The ∞-Diff preset whose `SparseEncoder` a diffusion autoencoder with an FNO preset's decoder uses."""
FNO_OF = {infty_diff: fno for fno, infty_diff in ENCODER_OF.items()}
"""The FNO preset of the size of an ∞-Diff preset (``--operator fno``)."""


def operator_preset(
    name: str, *, channels: int, resolution: int | tuple[int, ...], ndim: int = 2, z_dim: int = 0, resampling: Resampling = "bandlimited",
    oversample: int | None = None,
) -> InftyDiffOperator | FourierNeuralOperator:
    """An `InftyDiffOperator` built from `preset_config` (``paper-256``, ``paper-128``, ``cpu-small``, ``audio-small``,
    ``tiny``), or a `FourierNeuralOperator` from `fno_preset_config` (``fno-small``, ``fno-audio``, ``fno-tiny``;
    band-limited by construction, so ``resampling`` does not apply to them; ``oversample`` replaces the preset's
    `FNOConfig.oversample`, and is refused for the others)."""
    if name in FNO_PRESETS:
        shape = (resolution,) * ndim if isinstance(resolution, int) else tuple(resolution)
        config = fno_preset_config(name, channels=channels, resolution=shape, z_dim=z_dim)
        return FourierNeuralOperator(config if oversample is None else dataclasses.replace(config, oversample=oversample))
    if oversample is not None:
        raise ValueError(f"oversample is a setting of the Fourier neural operator (--operator fno), not of the ∞-Diff preset {name!r}")
    return InftyDiffOperator(preset_config(name, channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim, resampling=resampling))


def autoencoder_preset(
    name: str, *, channels: int, resolution: int | tuple[int, ...], z_dim: int, ndim: int = 2, resampling: Resampling = "bandlimited",
    oversample: int | None = None,
) -> DiffusionAutoencoder:
    """A `DiffusionAutoencoder` of a preset's operator (`operator_preset`) and a `SparseEncoder` (of the ∞-Diff preset
    `ENCODER_OF` an FNO preset) with latents of ``z_dim``."""
    decoder = operator_preset(name, channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim, resampling=resampling,
                              oversample=oversample)
    encoder = preset_config(ENCODER_OF.get(name, name), channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim, resampling=resampling)
    return DiffusionAutoencoder(decoder, SparseEncoder(encoder))


def conditional_preset(
    name: str, *, channels: int, resolution: int | tuple[int, ...], vocabulary: Mapping[str, Sequence[str]], z_dim: int = 64,
    dropout: float = 0.1, ndim: int = 2, resampling: Resampling = "bandlimited", oversample: int | None = None,
) -> LabelConditional:
    """A `LabelConditional` of a preset's operator (`operator_preset`) with label embeddings of ``z_dim``."""
    operator = operator_preset(name, channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim, resampling=resampling,
                               oversample=oversample)
    return LabelConditional(operator, vocabulary, z_dim=z_dim, dropout=dropout)


__all__ = [
    "ConvPlan",
    "DiffusionAutoencoder",
    "ENCODER_OF",
    "FNOConfig",
    "FNO_OF",
    "FNO_PRESETS",
    "FourierNeuralOperator",
    "GridUNet",
    "InftyDiffOperator",
    "LabelConditional",
    "LatentEncoder",
    "LatentMLP",
    "LatentMLPConfig",
    "LatticeHash",
    "NeuralOperator",
    "OperatorConfig",
    "SparseDepthwiseConv",
    "SparseEncoder",
    "autoencoder_preset",
    "available_backends",
    "choose_backend",
    "compile_operator",
    "conditional_preset",
    "dct_resize",
    "fno_preset_config",
    "grid_to_points",
    "knn_to_grid",
    "operator_preset",
    "parameter_count",
    "preset_config",
    "resample_kernel",
    "resampled_size",
    "nearest_scattered",
    "cosine_at",
    "dct_reader",
]
