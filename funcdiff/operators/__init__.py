"""Neural operators for function-space diffusion (docs/math.md §8): sparse depthwise kernel integrals, points <-> grid
interpolation, a grid U-Net, the ∞-Diff denoiser, its encoder and the latent MLP."""

from funcdiff.operators.kernels.backends import ConvPlan, available_backends, choose_backend
from funcdiff.operators.models.autoencoder import DiffusionAutoencoder
from funcdiff.operators.base import LatentEncoder, NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.operators.models.config import LatentMLPConfig, OperatorConfig, preset_config
from funcdiff.operators.layers.conv import SparseDepthwiseConv
from funcdiff.operators.models.encoder import SparseEncoder
from funcdiff.operators.models.infty_diff import InftyDiffOperator
from funcdiff.operators.layers.interpolate import grid_to_points, knn_to_grid
from funcdiff.operators.layers.kernel_resampling import resample_kernel, resampled_size
from funcdiff.operators.models.latent import LatentMLP
from funcdiff.operators.kernels.lattice import LatticeHash
from funcdiff.operators.layers.modulation import parameter_count
from funcdiff.operators.layers.unet import GridUNet


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
