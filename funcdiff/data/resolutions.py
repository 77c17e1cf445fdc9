"""Multi-resolution training: each step's batch, loaded at the finest grid, is coarsened to one of several resolutions."""

from dataclasses import dataclass

import numpy as np
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.base import Domain


@dataclass(frozen=True)
class ResolutionMixture:
    """The resolutions a run trains at, as factors by which the data's grid is coarsened (docs/math.md §15).

    Step ``k`` trains at ``factors[i]``, with ``i`` drawn uniformly from ``(seed, k)`` alone, so a resumed run draws
    what an uninterrupted one would and every process of a distributed run trains at the same resolution in a step.
    The domain coarsens (`Domain.coarsen`: the box average on regular grids, which nests exactly like the data's own
    resolutions and the sampler's white noise).

    Attributes:
        factors: the coarsening factors, e.g. ``(4, 2, 1)`` for data at 128 px trained at 32, 64 and 128 px.
        seed: the run's seed.
    """

    factors: tuple[int, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.factors or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in self.factors):
            raise ValueError(f"factors must be one or more positive ints, got {self.factors!r}")
        if len(set(self.factors)) != len(self.factors):
            raise ValueError(f"factors must be distinct, got {self.factors}")

    def factor(self, step: int) -> int:
        """The coarsening factor of step ``step``."""
        if len(self.factors) == 1:
            return self.factors[0]
        draw = np.random.SeedSequence([self.seed, step, 0x5EED]).generate_state(1, dtype=np.uint64)[0]
        return self.factors[int(draw % np.uint64(len(self.factors)))]

    @jaxtyped(typechecker=beartype)
    def batch(self, domain: Domain, x: DenseField, step: int) -> Float[Tensor, "b c *coarse"]:
        """The batch ``x`` of step ``step`` at its resolution (``x`` itself for the factor 1)."""
        factor = self.factor(step)
        return x if factor == 1 else domain.coarsen(x, factor)

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` unless every factor divides every axis of the spatial ``shape``."""
        bad = [f for f in self.factors if any(s % f for s in shape)]
        if bad:
            raise ValueError(f"the training resolutions must divide the data's grid {shape}: coarsening factors {bad} do not")
