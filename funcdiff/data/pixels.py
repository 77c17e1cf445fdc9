"""Exact box-averaging of 8-bit images: integer block sums, and their map to block means in ``[-1, 1]``.

Summing in integers keeps the nesting of resolutions exact: the block sums at resolution ``r`` are the
2 x 2 sums of those at ``2r``, so ``box_average(x at 2r) == x at r`` up to float32 rounding.
"""

import numpy as np
import torch
from jaxtyping import Float, UInt, UInt8

from funcdiff._typing import Tensor


def box_sums(images: UInt8[np.ndarray, "*batch h w"], factor: int) -> UInt[np.ndarray, "*batch hr wr"]:
    """Sum 8-bit pixels over ``factor x factor`` blocks, in the narrowest unsigned type that holds the sums exactly."""
    *batch, h, w = images.shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor must be a positive divisor of the image size {(h, w)}, got {factor}")
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32) if 255 * factor**2 <= np.iinfo(t).max)
    blocks = images.reshape(*batch, h // factor, factor, w // factor, factor)
    return blocks.sum(axis=(-3, -1), dtype=dtype)


def sums_to_field(sums: UInt[np.ndarray, "*batch h w"], factor: int) -> Float[Tensor, "*batch h w"]:
    """Map block sums from `box_sums` to block means in ``[-1, 1]`` (pixel 0 -> -1, 255 -> 1) as float32."""
    return torch.from_numpy((sums / (127.5 * factor**2) - 1).astype(np.float32))
