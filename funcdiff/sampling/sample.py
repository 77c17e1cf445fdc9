"""Sampling a trained operator at any resolution: the one path the CLI, evaluation, the tasks and the trainer share."""

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.conditioning import LabelConditioning
from funcdiff.domains import GridDomain
from funcdiff.mollifiers import IdentityMollifier
from funcdiff.operators.base import NeuralOperator
from funcdiff.points import Scattered
from funcdiff.processes import MollifiedDDPM
from funcdiff.processes.base import DiffusionProcess
from funcdiff.sampling.free_guidance import free_guidance
from funcdiff.sampling.grids import uniform_t
from funcdiff.sampling.guidance import Guidance
from funcdiff.sampling.samplers import GridFunction, SamplerFunction, resolve_sampler


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (dropout off) for the block, then back in the mode it was in, also after an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def nested_prior(
    process: DiffusionProcess,
    batch: int,
    shape: tuple[int, ...],
    nest_shape: tuple[int, ...],
    reference_shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> DenseField:
    """The process's prior at ``shape = (c, *spatial)`` from white noise drawn at the finer ``nest_shape`` and coarsened
    by the domain (`Domain.coarsen`, the cell-measure average: exactly white noise at ``shape``, docs/math.md §2), so a
    seed gives the same picture at every resolution dividing ``nest_shape``."""
    factors = {n // s for n, s in zip(nest_shape, shape[1:])}
    if len(nest_shape) != len(shape) - 1 or len(factors) != 1 or any(n % s for n, s in zip(nest_shape, shape[1:])):
        raise ValueError(f"nest_resolution {nest_shape} must be the same integer multiple of every axis of {shape[1:]}")
    domain = process.domain
    fine = domain.white_noise(batch, (shape[0], *nest_shape), reference_shape, generator=generator, device=device)
    return process.prior(batch, shape, reference_shape, generator=generator, device=device, noise=domain.coarsen(fine, factors.pop()))


@torch.no_grad()
@jaxtyped(typechecker=beartype)
def sample(
    model: NeuralOperator,
    process: DiffusionProcess,
    resolution: int | tuple[int, ...],
    *,
    batch: int,
    steps: int = 100,
    sampler: str | SamplerFunction = "auto",
    grid: GridFunction = uniform_t,
    guidance: Guidance | None = None,
    options: dict[str, Any] | None = None,
    reference_shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    chunk_points: int | None = None,
    nest_resolution: int | tuple[int, ...] | None = None,
    start: DenseField | None = None,
    cond: Tensor | None = None,
    guidance_scale: float | None = None,
    progress: bool = False,
) -> Float[Tensor, "b c *spatial"]:
    """Draw ``batch`` samples on a grid of ``resolution`` with an operator trained at ``reference_shape``.

    Builds the process's prior at that resolution (its `DiffusionProcess.prior`: resolution-consistent noise from
    its domain and the same ``T``, whose ``sigma`` is in domain units), runs the sampler over ``grid(process,
    steps)`` with the operator evaluated densely in chunks of ``chunk_points`` points, and returns the reported
    samples clipped to the domain's value range.

    Args:
        model: the operator.
        process: its process.
        resolution: the sampling grid (one size per axis, or one for all).
        batch: how many samples.
        steps: the time grid's steps.
        sampler: a registered sampler's name (`funcdiff.sampling.SAMPLERS`; ``"auto"`` picks by the process's
            protocol) or a function of the common signature (docs/math.md §14).
        grid: the time-grid builder ``(process, steps) -> grid`` (`uniform_t`, `uniform_logsnr`, `karras`).
        guidance: a correction of the data estimate at every step (docs/math.md §13), for any process the sampler
            runs.
        options: the sampler's own keyword options (``eta``, ``clip``).
        reference_shape: the training grid (default: the operator's).
        generator: for the prior's and the sampler's noise.
        device: where to sample.
        chunk_points: evaluate the operator in chunks of this many points.
        nest_resolution: draw the prior's white noise at this finer resolution and coarsen it (`nested_prior`).
        start: the starting state itself instead of a prior (e.g. an inverted and lifted state); ``resolution``
            must be its grid.
        cond: passed to the model (e.g. an autoencoder's latents, or a label-conditional model's labels, one per sample).
        guidance_scale: classifier-free guidance of a label-conditional model toward the labels ``cond``
            (`free_guidance`; 1 is the conditional model, larger values follow the labels more closely).
        progress: show a progress bar.
    """
    reference = tuple(reference_shape) if reference_shape is not None else tuple(model.reference_shape)
    domain = process.domain
    shape = (domain.channels, *domain.grid_shape(resolution))
    if len(shape) - 1 != len(reference):
        raise ValueError(f"resolution {resolution} must have {len(reference)} axes like reference_shape {reference}")
    function = resolve_sampler(sampler, process).function if isinstance(sampler, str) else sampler
    if start is not None:
        if tuple(start.shape) != (batch, *shape):
            raise ValueError(f"start must have shape {(batch, *shape)}, got {tuple(start.shape)}")
        y_start = start
    elif nest_resolution is None:
        y_start = process.prior(batch, shape, reference, generator=generator, device=device)
    else:
        y_start = nested_prior(process, batch, shape, domain.grid_shape(nest_resolution), reference, generator=generator, device=device)

    dense = functools.partial(model.forward_dense, chunk_points=chunk_points)  # the samplers check what it returns
    if isinstance(model, LabelConditioning) and cond is not None and cond.shape[0] != batch:
        raise ValueError(f"cond must hold one row of labels per sample: {batch}, got {cond.shape[0]}")
    if guidance_scale is not None and guidance_scale != 1:
        dense = free_guidance(model, dense, cond, guidance_scale)
    elif guidance_scale is not None or (isinstance(model, LabelConditioning) and cond is not None):
        free_guidance(model, dense, cond, 1.0)  # the same checks; scale 1 is the conditional model, at half the cost
    with eval_mode(model):
        out = function(dense, y_start, grid(process, steps), process=process, cond=cond, guidance=guidance, generator=generator,
                       reference_shape=reference, progress=progress, **(options or {}))
    return out.clamp(*domain.value_range)


@torch.no_grad()
@jaxtyped(typechecker=beartype)
def sample_at(
    model: NeuralOperator,
    process: DiffusionProcess,
    coords: Float[Tensor, "b n d"],
    *,
    steps: int = 100,
    sampler: str | SamplerFunction = "auto",
    start: Float[Tensor, "b c n"] | None = None,
    cond: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Float[Tensor, "b n c"]:
    """Samples at scattered positions ``coords`` in ``[0, 1]^d`` (one set per sample, docs/math.md §20) from an
    operator that reads `Scattered` points and a white-noise DDPM (the identity mollifier), clipped to the domain's
    value range.

    The identity mollifier makes every step of the DDPM's samplers act point by point, so they run on the points as
    on a grid of ``n`` cells: the same process on a 1-D domain, the noise ``N(0, 1)`` per point (its reference grid is
    the points themselves), the model called on the points at ``coords``. At the cell centres of a grid, from the same
    start, a deterministic sampler gives what `sample` gives on that grid.

    Raises:
        ValueError: for another process or mollifier, positions outside the domain or repeated, or a start that is
            not ``(b, channels, n)``.
    """
    if not isinstance(process, MollifiedDDPM) or not isinstance(process.mollifier, IdentityMollifier):
        raise ValueError("sampling at scattered points needs the DDPM with the identity mollifier (docs/math.md §20), got "
                         f"{type(process).__name__} with {type(getattr(process, 'mollifier', None)).__name__}")
    domain = process.domain
    b, n, _ = coords.shape
    positions = Scattered(coords.new_zeros(b, n, domain.channels), coords)  # refuses positions outside the domain or repeated
    pointwise = MollifiedDDPM(GridDomain(ndim=1, channels=domain.channels, value_range=domain.value_range), process.schedule,
                              IdentityMollifier(), process.prediction, process.inv_snr)
    if start is not None and tuple(start.shape) != (b, domain.channels, n):
        raise ValueError(f"start must have shape {(b, domain.channels, n)}, got {tuple(start.shape)}")
    y = start if start is not None else torch.randn(b, domain.channels, n, generator=generator, device=coords.device, dtype=coords.dtype)

    def on_points(values: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor:
        return model(positions.with_values(values.transpose(1, 2)), t, condition).transpose(1, 2)

    function = resolve_sampler(sampler, pointwise).function if isinstance(sampler, str) else sampler
    with eval_mode(model):
        out = function(on_points, y, uniform_t(pointwise, steps), process=pointwise, cond=cond, generator=generator,
                       reference_shape=(n,), progress=progress)
    return out.clamp(*domain.value_range).transpose(1, 2)
