"""Sampling a trained operator at any resolution through the process's own samplers."""

import contextlib
import functools
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from beartype import beartype
from torch import nn
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.grid import box_average
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DenoisingProcess, DenseModel, DiffusionProcess, FlowProcess
from funcdiff.processes.flow_samplers import sample_heun
from funcdiff.processes.samplers import sample_ddim


@runtime_checkable
class Sampler(Protocol):
    """A sampler with its options bound: ``(model, process, y_T, steps, *, cond, progress) -> samples``."""

    def __call__(
        self, model: DenseModel, process: DiffusionProcess, y_T: DenseField, steps: int, *, cond: Tensor | None, progress: bool
    ) -> DenseField: ...


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (dropout off) for the block, then back in the mode it was in, also after an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def default_sampler(process: DiffusionProcess, *, reference_shape: tuple[int, ...], generator: torch.Generator | None = None) -> Sampler:
    """DDIM (eta = 0) for a `DenoisingProcess`, Heun for a `FlowProcess`; other processes must pass their own."""
    if isinstance(process, DenoisingProcess):
        return functools.partial(sample_ddim, reference_shape=reference_shape, generator=generator)
    if isinstance(process, FlowProcess):
        return sample_heun
    raise ValueError(f"no default sampler for {type(process).__name__}: it is neither a DenoisingProcess nor a FlowProcess; pass sampler=")


@torch.no_grad()
@jaxtyped(typechecker=beartype)
def sample(
    model: NeuralOperator,
    process: DiffusionProcess,
    resolution: int | tuple[int, ...],
    *,
    batch: int,
    steps: int = 100,
    sampler: Sampler | None = None,
    reference_shape: tuple[int, ...] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    chunk_points: int | None = None,
    nest_resolution: int | tuple[int, ...] | None = None,
    cond: Tensor | None = None,
    progress: bool = False,
) -> Float[Tensor, "b c *spatial"]:
    """Draw ``batch`` samples on a grid of ``resolution`` with an operator trained at ``reference_shape``.

    Builds the process's prior at that resolution (resolution-consistent noise from its domain; the same ``T``,
    whose ``sigma`` is in domain units), runs ``sampler`` (default: `default_sampler`) over ``steps`` steps with
    the operator evaluated densely in chunks of ``chunk_points`` points, and returns the reported samples clipped
    to the domain's value range. ``reference_shape`` defaults to the operator's own. With ``nest_resolution`` the
    prior's white noise is one draw at that resolution, box-averaged (exactly the noise at the sampling resolution,
    docs/math.md §2), so a seed gives the same picture at every resolution that divides it; the prior is then ``T eps``,
    as for both process families of `docs/math.md` (§6, §11).
    """
    reference = tuple(reference_shape) if reference_shape is not None else tuple(model.reference_shape)
    domain = process.domain
    shape = domain.grid_shape(resolution)
    if len(shape) != len(reference):
        raise ValueError(f"resolution {resolution} must have {len(reference)} axes like reference_shape {reference}")
    sampler = default_sampler(process, reference_shape=reference, generator=generator) if sampler is None else sampler
    if nest_resolution is None:
        y_T = process.prior(batch, (domain.channels, *shape), reference, generator=generator, device=device)
    else:
        nest = domain.grid_shape(nest_resolution)
        factors = {n // s for n, s in zip(nest, shape)}
        if len(factors) != 1 or any(n % s for n, s in zip(nest, shape)):
            raise ValueError(f"nest_resolution {nest} must be the same integer multiple of every axis of {shape}")
        fine = domain.white_noise(batch, (domain.channels, *nest), reference, generator=generator, device=device)
        y_T = process.mollifier.mollify(box_average(fine, factors.pop()))  # the prior T eps of both families

    def dense(y: DenseField, t: Tensor, c: Tensor | None) -> DenseField:
        return model.forward_dense(y, t, c, chunk_points=chunk_points)

    with eval_mode(model):
        out = sampler(dense, process, y_T, steps, cond=cond, progress=progress)
    return out.clamp(*domain.value_range)

