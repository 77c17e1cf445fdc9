"""The Domain protocol: where functions live, how they are discretised, subsampled and noised."""

from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, PointIndex, Tensor
from funcdiff.domains.io import save_samples, side_by_side
from funcdiff.points import Points

SubsampleScheme = Literal["uniform", "stratified"]


@runtime_checkable
class Domain(Protocol):
    """A family of functions ``[0, 1]^d -> R^c`` held on regular grids of any shape.

    Processes get everything spatial from their domain: which points a training step sees (`draw_index`), the
    resolution-consistent noise (`white_noise`) and the range samples are clipped to (``value_range``).
    """

    ndim: int
    channels: int
    value_range: tuple[float, float]

    @abstractmethod
    def grid_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """The spatial grid shape at ``resolution`` (one size for every axis, or one per axis)."""

    @abstractmethod
    def draw_index(
        self,
        batch: int,
        shape: tuple[int, ...],
        n: int | float,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PointIndex:
        """Lattice positions of ``n`` distinct cells per example of a grid of ``shape`` (a count or a fraction)."""

    @abstractmethod
    def white_noise(
        self,
        batch: int,
        shape: tuple[int, ...],
        reference_shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> DenseField:
        """Discrete white noise of shape ``(batch, *shape)`` with per-point variance ``prod(N / N_ref)`` (docs/math.md §2)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this domain (`funcdiff.registry.build`)."""

    @jaxtyped(typechecker=beartype)
    def subsample(self, x: DenseField, n: int | float, *, generator: torch.Generator | None = None) -> Points:
        """``x`` at ``n`` cells per example drawn by `draw_index`, a count or a fraction of the grid (docs/math.md §5)."""
        check_field(self, x, "x")
        index = self.draw_index(x.shape[0], tuple(x.shape[2:]), n, generator=generator, device=x.device)
        return Points.gather(x, index)

    def coarsen(self, x: DenseField, factor: int) -> Float[Tensor, "b c *coarse"]:
        """``x`` on a grid ``factor`` times coarser per axis: the mean of each coarse cell's fine cells weighted by their
        measure, the map that nests white noise across resolutions (docs/math.md §2). Cells of a regular grid have one
        measure, so this is the box average; a domain with cells of other sizes overrides it."""
        from funcdiff.domains.grid import box_average  # grid.py builds on this module

        return box_average(x, factor)

    def label(self, shape: tuple[int, ...]) -> str:
        """A file-name-safe name of the grid ``shape``: ``32px`` for a square grid, ``32x48px`` otherwise."""
        return f"{shape[0]}px" if len(set(shape)) == 1 else "x".join(map(str, shape)) + "px"

    def comparison(self, batches: list[Float[Tensor, "_b _c *_spatial"]]) -> tuple[Float[Tensor, "_c _h _w"], str] | None:
        """A picture comparing batches of samples at several resolutions (the same seeds), and its file name; None
        where this domain has no such picture. The default: one row per resolution for grey or RGB images."""
        if len(batches) < 2 or batches[0].ndim != 4 or batches[0].shape[1] not in (1, 3):
            return None
        return side_by_side(batches), "resolutions.png"

    def save_samples(self, samples: DenseField, directory: str | Path, prefix: str, *, individual: bool = True) -> Path:
        """Write samples of this domain under ``directory`` named by ``prefix``; returns the main file's path.

        The default (`funcdiff.domains.io.save_samples`) writes PNG grids for images, WAV files for 1-D signals, slice
        pictures for volumes and a tensor file otherwise; a domain overrides it to write its own formats.
        """
        return save_samples(samples, directory, prefix, individual=individual)


def check_field(domain: Domain, x: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty dense field ``(b, channels, *spatial)`` of ``domain``."""
    if x.ndim != domain.ndim + 2 or x.shape[1] != domain.channels or 0 in x.shape:
        axes = ", ".join(["N"] * domain.ndim)
        raise ValueError(f"{name} must have shape (b, {domain.channels}, {axes}) with no empty axis, got {tuple(x.shape)}")
