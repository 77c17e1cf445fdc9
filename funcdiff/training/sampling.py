"""Sampling a trained operator at any resolution, and saving the pictures."""

import math
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.grid import box_average, white_noise
from funcdiff.domains.io import write_png
from funcdiff.processes.mollified import MollifiedDDPM
from funcdiff.processes.samplers import sample_ddim, sample_ddpm


def nested_white_noise(
    batch: int,
    shape: tuple[int, ...],
    reference_shape: tuple[int, ...],
    nest_shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
) -> DenseField:
    """White noise at ``shape = (c, *spatial)`` made by box-averaging noise drawn at ``nest_shape`` (MATH.md §2).

    Noise at a finer grid, box-averaged, has exactly the distribution of noise at the coarser one, so one seed
    and one ``nest_shape`` give the same underlying noise, hence (with a deterministic sampler) matching pictures,
    at every resolution that divides ``nest_shape``.
    """
    spatial = shape[1:]
    factors = {n // s for n, s in zip(nest_shape, spatial)}
    if len(factors) != 1 or any(n % s for n, s in zip(nest_shape, spatial)):
        raise ValueError(f"nest shape {nest_shape} must be the same integer multiple of every axis of {spatial}")
    fine = white_noise(batch, (shape[0], *nest_shape), reference_shape, generator=generator, device=device)
    return box_average(fine, factors.pop())


@torch.no_grad()
def sample(
    model: nn.Module,
    process: MollifiedDDPM,
    resolution: int | tuple[int, ...],
    *,
    batch: int,
    channels: int,
    reference_shape: tuple[int, ...],
    steps: int = 100,
    sampler: Literal["ddim", "ddpm"] = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    chunk_points: int | None = None,
    nest_resolution: int | tuple[int, ...] | None = None,
    cond: Tensor | None = None,
    progress: bool = False,
) -> Float[Tensor, "b c *spatial"]:
    """Draw ``batch`` samples on a grid of ``resolution`` with an operator trained at ``reference_shape``.

    Builds the prior at that resolution (resolution-consistent noise; the same ``T``, whose ``sigma`` is in domain
    units), runs DDIM or DDPM over ``steps`` respaced steps with the operator evaluated densely in chunks of
    ``chunk_points`` points, and returns the Wiener-filtered samples (MATH.md §6) in ``[-1, 1]``. With
    ``nest_resolution`` the prior noise is nested across resolutions (see `nested_white_noise`).
    """
    ndim = len(reference_shape)
    shape = (resolution,) * ndim if isinstance(resolution, int) else tuple(resolution)
    if len(shape) != ndim:
        raise ValueError(f"resolution {resolution} must have {ndim} axes like reference_shape {reference_shape}")
    was_training = model.training
    model.eval()
    if nest_resolution is None:
        noise = white_noise(batch, (channels, *shape), reference_shape, generator=generator, device=device)
    else:
        nest = (nest_resolution,) * ndim if isinstance(nest_resolution, int) else tuple(nest_resolution)
        noise = nested_white_noise(batch, (channels, *shape), reference_shape, nest, generator=generator, device=device)
    y_T = process.mollifier.mollify(noise)

    def dense(y: DenseField, t: Tensor, c: Tensor | None) -> DenseField:
        return model.forward_dense(y, t, c, chunk_points=chunk_points)

    run = sample_ddim if sampler == "ddim" else sample_ddpm
    options = {"eta": eta} if sampler == "ddim" else {}
    out = run(dense, process, y_T, steps, generator=generator, cond=cond, reference_shape=reference_shape, progress=progress, **options)
    model.train(was_training)
    return out.clamp(-1, 1)


def image_grid(images: Float[Tensor, "b c h w"], *, nrow: int | None = None, pad: int = 1) -> Float[Tensor, "c H W"]:
    """Tile images into one picture, ``nrow`` per row (about square by default), separated by ``pad`` pixels of -1."""
    b, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = images.new_full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), -1.0)
    for i, image in enumerate(images):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = image
    return grid


def save_images(images: Float[Tensor, "b c h w"], directory: str | Path, prefix: str, *, individual: bool = True) -> Path:
    """Write a grid ``<prefix>.png`` (and each image as ``<prefix>/<i>.png``); returns the grid's path."""
    directory = Path(directory)
    if individual:
        for i, image in enumerate(images):
            write_png(image, directory / prefix / f"{i:04d}.png")
    return write_png(image_grid(images), directory / f"{prefix}.png")


def side_by_side(batches: list[Float[Tensor, "_b c _h _w"]], *, count: int = 8, display: int | None = None) -> Float[Tensor, "c H W"]:
    """One row per batch (e.g. per resolution): the first ``count`` images, enlarged (nearest) to a common size."""
    display = display or max(b.shape[-1] for b in batches)
    rows = [torch.nn.functional.interpolate(b[:count], size=(display, display), mode="nearest") for b in batches]
    return image_grid(torch.cat(rows), nrow=min(count, min(len(b) for b in batches)))
