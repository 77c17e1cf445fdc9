"""Pictures of volumes: central slices and a depth-shaded view of each example, tiled into one image.

Pure functions of tensors (nothing is written here), so the sample-saving code can call them; the result goes to
`funcdiff.domains.write_png`.
"""

import math

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor


LIGHT = (-0.5, -0.5, math.sqrt(0.5))
"""Direction towards the light of `depth_view`, as (along h, along w, towards the viewer): from the upper left."""


@jaxtyped(typechecker=beartype)
def depth_view(x: Float[Tensor, "b c d h w"], *, level: float = 0.0) -> Float[Tensor, "b c h w"]:
    """The shape ``x > level`` seen along the first spatial axis, lit from the upper left: brightness from -0.5 (facing
    away) to +1 (facing the light), -1 where the ray meets nothing.

    The surface's depth on each ray is placed between the last cell outside and the first inside by linear
    interpolation of the values (so smooth occupancy averages give smooth shading); its normal comes from the depth's
    gradient, with rays that miss counted at the far side, which darkens the outline.
    """
    d = x.shape[2]
    above = x > level
    hit = above.any(dim=2)
    first = above.int().argmax(dim=2, keepdim=True)
    inside = x.gather(2, first)
    before = x.gather(2, (first - 1).clamp(min=0)).where(first > 0, x.new_tensor(-1.0))
    crossing = first - 0.5 + ((level - before) / (inside - before).clamp(min=1e-6)).clamp(0, 1)
    depth = crossing.squeeze(2).clamp(min=0).where(hit, x.new_tensor(float(d)))
    slope_h, slope_w = torch.gradient(depth, dim=(-2, -1))
    normal = F.normalize(torch.stack([-slope_h, -slope_w, torch.ones_like(depth)]), dim=0)
    lit = (normal * x.new_tensor(LIGHT).view(3, 1, 1, 1, 1)).sum(dim=0).clamp(min=0)
    return (1.5 * lit - 0.5).where(hit, x.new_tensor(-1.0))


@jaxtyped(typechecker=beartype)
def volume_slices(x: Float[Tensor, "b c d h w"], *, count: int = 8, display: int | None = None, pad: int = 1) -> Float[Tensor, "c H W"]:
    """One row per example (the first ``count``): its three central axis-aligned slices (across d, h and w) and its
    `depth_view`, each panel enlarged (nearest) to ``display`` pixels, separated by ``pad`` pixels of -1.

    Values stay as they are (``[-1, 1]`` for data in range), ready for `funcdiff.domains.write_png`.
    """
    if count < 1 or pad < 0:
        raise ValueError(f"count must be >= 1 and pad >= 0, got count={count}, pad={pad}")
    x = x[:count]
    b, c, d, h, w = x.shape
    side = display or max(d, h, w)
    views = [x[:, :, d // 2], x[:, :, :, h // 2], x[:, :, :, :, w // 2], depth_view(x)]
    panels = torch.stack([F.interpolate(v, size=(side, side), mode="nearest") for v in views], dim=1)
    panels = F.pad(panels, (pad, 0, pad, 0), value=-1.0)
    grid = panels.permute(2, 0, 3, 1, 4).reshape(c, b * (side + pad), len(views) * (side + pad))
    return F.pad(grid, (0, pad, 0, pad), value=-1.0)
