"""Shape-annotated tensor aliases and the dimension glossary used across funcdiff.

Dimension names (jaxtyping):
    b         batch
    c         channels (of a field or of features)
    n         points per example (every example in a batch has the same n)
    d         spatial dimension of the domain ``[0, 1]^d``
    *spatial  the grid axes of a dense field, ``d`` of them
    z         latent size of a diffusion autoencoder
    t         one time step per example (written ``" b"``)
"""

from typing import TypeAlias

from jaxtyping import Bool, Float, Int
from torch import Tensor

DenseField: TypeAlias = Float[Tensor, "b c *spatial"]
PointValues: TypeAlias = Float[Tensor, "b n c"]
PointIndex: TypeAlias = Int[Tensor, "b n d"]
PointCoords: TypeAlias = Float[Tensor, "b n d"]

__all__ = [
    "Bool",
    "DenseField",
    "Float",
    "Int",
    "PointCoords",
    "PointIndex",
    "PointValues",
    "Tensor",
]
