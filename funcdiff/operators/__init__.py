"""Neural operators for function-space diffusion (MATH.md §8): sparse depthwise kernel integrals, points <-> grid
interpolation, a grid U-Net, the ∞-Diff denoiser, its encoder and the latent MLP."""

from funcdiff.operators.backends import ConvPlan, available_backends, choose_backend
from funcdiff.operators.autoencoder import DiffusionAutoencoder
from funcdiff.operators.base import LatentEncoder, NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.operators.config import LatentMLPConfig, OperatorConfig, preset_config
from funcdiff.operators.conv import SparseDepthwiseConv
from funcdiff.operators.encoder import SparseEncoder
from funcdiff.operators.infty_diff import InftyDiffOperator
from funcdiff.operators.interpolate import grid_to_points, knn_to_grid
from funcdiff.operators.kernels import resample_kernel, resampled_size
from funcdiff.operators.latent import LatentMLP
from funcdiff.operators.lattice import LatticeHash
from funcdiff.operators.layers import parameter_count
from funcdiff.operators.unet import GridUNet


def operator_preset(name: str, *, channels: int, resolution: int | tuple[int, ...], ndim: int = 2, z_dim: int = 0) -> InftyDiffOperator:
    """An `InftyDiffOperator` built from `preset_config` (``paper-256``, ``paper-128``, ``cpu-small``, ``audio-small``,
    ``tiny``)."""
    return InftyDiffOperator(preset_config(name, channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim))


def autoencoder_preset(name: str, *, channels: int, resolution: int | tuple[int, ...], z_dim: int, ndim: int = 2) -> DiffusionAutoencoder:
    """A `DiffusionAutoencoder` of an `InftyDiffOperator` and a `SparseEncoder` of one preset with latents of ``z_dim``."""
    config = preset_config(name, channels=channels, resolution=resolution, ndim=ndim, z_dim=z_dim)
    return DiffusionAutoencoder(InftyDiffOperator(config), SparseEncoder(config))


__all__ = [
    "ConvPlan",
    "DiffusionAutoencoder",
    "GridUNet",
    "InftyDiffOperator",
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
    "grid_to_points",
    "knn_to_grid",
    "operator_preset",
    "parameter_count",
    "preset_config",
    "resample_kernel",
    "resampled_size",
]
