"""Reconstruction guidance for inpainting (Ho et al. 2022; docs/math.md §10)."""

from typing import Protocol, runtime_checkable, final

import math

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.mollifiers.base import Mollifier


@runtime_checkable
class Guidance(Protocol):
    """A correction of ``T xhat0`` made with gradients through the model: ``(y_t, T xhat0(y_t), abar_t) -> T xhat0'``."""

    def __call__(self, y_t: DenseField, tx0: DenseField, alpha_bar: Tensor) -> DenseField: ...


@final
class InpaintingGuidance(Guidance):
    """Steer samples toward known values: ``T xhat0 - (w sqrt(abar_t) / 2) grad_{y_t} ||m (T x_a - T xhat0)||^2``.

    Args:
        known: data ``x_a`` on the sampling grid (values where ``mask`` is 0 are ignored by the loss, though ``T``
            mixes them into known cells within a few ``sigma`` of the mask's border).
        mask: 1 where ``known`` is known, 0 elsewhere; broadcastable to ``known``.
        mollifier: the process's ``T``.
        weight: the guidance weight ``w_r``.
    """

    @jaxtyped(typechecker=beartype)
    def __init__(self, known: DenseField, mask: Float[Tensor, "#b #c *#spatial"], mollifier: Mollifier, weight: float = 1.0) -> None:
        if not 0 <= weight < math.inf:
            raise ValueError(f"weight must be a finite number >= 0, got {weight}")
        self.target = mollifier.mollify(known).detach()
        self.mask = mask.to(known.dtype)
        self.weight = weight

    def __call__(self, y_t: DenseField, tx0: DenseField, alpha_bar: Tensor) -> DenseField:
        """The corrected ``T xhat0``; ``y_t`` must require grad and ``tx0`` be computed from it."""
        residual = (self.mask * (self.target - tx0)).square().sum()
        (grad,) = torch.autograd.grad(residual, y_t)
        return tx0 - self.weight * alpha_bar.sqrt() / 2 * grad
