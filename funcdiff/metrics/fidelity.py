"""Per-example fidelity of a reconstruction to its original: the peak signal-to-noise ratio."""

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor


@jaxtyped(typechecker=beartype)
def psnr(x: Float[Tensor, "b *rest"], y: Float[Tensor, "b *rest"], *, value_range: tuple[float, float] = (-1.0, 1.0)) -> Float[Tensor, " b"]:
    """Peak signal-to-noise ratio ``10 log10(peak^2 / MSE)`` in dB of each example of ``x`` against ``y``; the peak is
    the width of ``value_range`` (2 for data in [-1, 1]); a perfect match gives 120 dB (MSE floored at 1e-12)."""
    error = (x - y).square().flatten(1).mean(1)
    return 10 * torch.log10((value_range[1] - value_range[0]) ** 2 / error.clamp_min(1e-12))
