"""The guidance protocol, for any process (docs/math.md §13), and reconstruction guidance for inpainting (Ho et al. 2022;
docs/math.md §10)."""

from typing import Protocol, runtime_checkable, final

import math

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.mollifiers.base import Mollifier
from funcdiff.processes.base import broadcast


@runtime_checkable
class Guidance(Protocol):
    """A correction of the data estimate ``D = T xhat0`` made with gradients through the model:
    ``(y_t, D(y_t), a_t) -> D'``, with ``a_t`` the signal coefficient of the state ``y_t = a_t T x0 + s_t T eps``
    (``sqrt(abar_t)`` for a DDPM, ``s`` for the built-in flow; docs/math.md §13). The samplers of both families call it."""

    def __call__(self, y_t: DenseField, tx0: DenseField, signal: Float[Tensor, " b"]) -> DenseField: ...


@final
class InpaintingGuidance(Guidance):
    """Steer samples toward known values: ``T xhat0 - (w a_t / 2) grad_{y_t} ||m (T x_a - T xhat0)||^2`` (docs/math.md §10, §13).

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

    def __call__(self, y_t: DenseField, tx0: DenseField, signal: Float[Tensor, " b"]) -> DenseField:
        """The corrected ``T xhat0``; ``y_t`` must require grad and ``tx0`` be computed from it."""
        residual = (self.mask * (self.target - tx0)).square().sum()
        (grad,) = torch.autograd.grad(residual, y_t)
        return tx0 - self.weight / 2 * broadcast(signal, grad) * grad
