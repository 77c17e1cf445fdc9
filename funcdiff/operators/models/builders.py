"""Builders shared by the ∞-Diff denoiser and its encoder: sparse block stacks, the grid U-Net, sparse layouts."""

from torch import nn

from funcdiff.operators.kernels.backends import BackendName
from funcdiff.operators.layers.blocks import Layout, SparseBlock
from funcdiff.operators.models.config import OperatorConfig
from funcdiff.operators.layers.unet import GridUNet
from funcdiff.points import Points


def sparse_stack(config: OperatorConfig, *, time_dim: int, z_dim: int, skip: bool, backend: BackendName) -> nn.ModuleList:
    """``config.sparse_blocks`` sparse residual blocks of width ``config.width``."""
    return nn.ModuleList(
        SparseBlock(
            config.width, kernel_size=config.kernel_size, reference_shape=config.reference_shape, time_dim=time_dim,
            z_dim=z_dim, mlp_ratio=config.mlp_ratio, skip=skip, backend=backend,
            resampling=config.resampling,
        )
        for _ in range(config.sparse_blocks)
    )


def unet_for(config: OperatorConfig, *, time_dim: int, z_dim: int, decoder: bool) -> GridUNet:
    """The grid U-Net of ``config``."""
    return GridUNet(
        config.unet_channels, config.unet_channels, ndim=config.ndim, shape=config.unet_shape, channels=config.unet_channels,
        mults=config.unet_mults, blocks=config.unet_blocks, attention_resolutions=config.attention_resolutions,
        dropout=config.dropout, dropout_from_resolution=config.dropout_from_resolution, time_dim=time_dim, z_dim=z_dim,
        decoder=decoder,
    )


def layout_for(points: Points, conv: nn.Module, chunk: int | None) -> Layout:
    """A sparse layout with the plan of ``conv`` (shared by every block: same kernel size and backend)."""
    return Layout(points.index, points.shape, conv.plan(points), chunk)
