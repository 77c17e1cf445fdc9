"""Samples at several resolutions scored against real data there: the real/real floor beside every score, the bicubic
upsampling of the training-resolution samples as the baseline above it, the detail gain, and the box-average check."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.domains.grid import box_average
from funcdiff.factory import make_split
from funcdiff.metrics import SetScores, score_sets

RealSets = Callable[[int], tuple[Float[Tensor, "n c *spatial"], Float[Tensor, "m c *spatial"]]]
"""``resolution -> (reference, other)``: two disjoint real sets at that resolution (the reference, and the floor's)."""


def detail_gain(samples: float, baseline: float, floor: float) -> float:
    """The share of the baseline-to-floor gap that the samples close: 0 at the baseline, 1 at the floor."""
    if not baseline > floor:
        return math.nan  # the baseline is already at the floor: there is no gap to close
    return (baseline - samples) / (baseline - floor)


@jaxtyped(typechecker=beartype)
def bicubic(x: Float[Tensor, "b c h w"], side: int) -> Float[Tensor, "b c {side} {side}"]:
    """Bicubic upsampling to ``side`` pixels, clipped to [-1, 1]: the baseline that adds no detail."""
    return F.interpolate(x, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


@dataclass(frozen=True)
class Row:
    """One resolution's scores against real data there, each beside the real/real floor.

    Attributes:
        resolution: the side in pixels.
        samples: the samples' scores.
        floor: a second real set's scores (what a perfect model would get).
        bicubic: the training-resolution samples upsampled bicubically (above the training resolution only).
        box: the samples box-averaged to the training resolution, scored against real data there (above it only).
        seconds_per_sample: the sampling time, when the samples were drawn here.
    """

    resolution: int
    samples: SetScores
    floor: SetScores
    bicubic: SetScores | None = None
    box: SetScores | None = None
    seconds_per_sample: float | None = None

    @property
    def detail_gain(self) -> float | None:
        """`detail_gain` on the finest pyramid level, above the training resolution."""
        return None if self.bicubic is None else detail_gain(self.samples.swd[0], self.bicubic.swd[0], self.floor.swd[0])

    @property
    def finest_to_floor(self) -> float:
        """The samples' finest-level SWD as a multiple of the floor's."""
        return self.samples.swd[0] / self.floor.swd[0]


@dataclass(frozen=True)
class Study:
    """Rows of scores, one per resolution, and the training resolution they refer to."""

    training_resolution: int
    rows: tuple[Row, ...]

    def row(self, resolution: int) -> Row:
        """The row at ``resolution``."""
        for row in self.rows:
            if row.resolution == resolution:
                return row
        raise KeyError(f"no row at {resolution} px; rows: {[r.resolution for r in self.rows]}")

    def box_to_floor(self, row: Row) -> float | None:
        """The finest-level SWD of ``row``'s box-averaged samples as a multiple of the training resolution's floor."""
        if row.box is None:
            return None
        return row.box.swd[0] / self.row(self.training_resolution).floor.swd[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dictionary of every score, with the derived ratios."""
        rows = []
        for row in self.rows:
            entry: dict[str, Any] = {"resolution": row.resolution, "seconds_per_sample": row.seconds_per_sample}
            for name in ("samples", "floor", "bicubic", "box"):
                scores = getattr(row, name)
                entry[name] = None if scores is None else scores.as_dict()
            entry.update(detail_gain=row.detail_gain, finest_to_floor=row.finest_to_floor, box_to_floor=self.box_to_floor(row))
            rows.append(entry)
        return {"training_resolution": self.training_resolution, "rows": rows}


def _check_images(samples: dict[int, Tensor]) -> None:
    """Raise ``ValueError`` unless every entry is a square image batch at its key's resolution."""
    for side, x in samples.items():
        if x.ndim != 4 or x.shape[-2:] != (side, side):
            raise ValueError(f"samples at {side} px must be images (b, c, {side}, {side}), got shape {tuple(x.shape)}; "
                             "evaluation scores 2-D images only")


def run_study(
    samples: dict[int, Float[Tensor, "_b c _h _w"]],
    real: RealSets,
    *,
    training_resolution: int,
    seconds_per_sample: dict[int, float] | None = None,
    seed: int = 0,
) -> Study:
    """Score each resolution's samples against real data there (`Row`).

    Above the training resolution ``r`` (when the samples at ``r`` are given and ``r`` divides the resolution), also
    score the bicubic upsampling of the ``r`` samples and the samples box-averaged back to ``r``.
    """
    _check_images(samples)
    cache: dict[int, tuple[Tensor, Tensor]] = {}

    def real_at(side: int) -> tuple[Tensor, Tensor]:
        if side not in cache:
            cache[side] = real(side)
        return cache[side]

    r = training_resolution
    rows = []
    for side, x in sorted(samples.items()):
        reference, other = real_at(side)
        score = lambda s, ref=reference: score_sets(s, ref, seed=seed)  # noqa: E731
        above = side > r and side % r == 0 and r in samples
        rows.append(Row(
            resolution=side,
            samples=score(x),
            floor=score(other),
            bicubic=score(bicubic(samples[r], side)) if above else None,
            box=score_sets(box_average(x, side // r), real_at(r)[0], seed=seed) if above else None,
            seconds_per_sample=(seconds_per_sample or {}).get(side),
        ))
    return Study(training_resolution=r, rows=tuple(rows))


@jaxtyped(typechecker=beartype)
def real_sets(
    data: str | Path, resolution: int, num: int, *, seed: int = 0, limit: int | None = None, channels: int | None = None,
) -> tuple[Float[Tensor, "n c *spatial"], Float[Tensor, "n c *spatial"]]:
    """``num`` held-out examples (the reference) and ``num`` training examples (the floor's set) at ``resolution``
    (images at a side in pixels, clips at a sample rate in Hz), each a seeded random subset (of the first ``limit``
    examples of each split, when given), so the two are disjoint real sets of the same distribution; image folders
    are read with ``channels``."""
    sets = []
    for split in ("test", "train"):
        dataset = make_split(data, resolution=resolution, split=split, channels=channels, limit=limit)
        if len(dataset) < num:
            raise ValueError(f"the {split} split of {data!r} has {len(dataset)} examples, fewer than num={num}")
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num]
        sets.append(torch.stack([dataset[int(i)] for i in order]).float())
    return sets[0], sets[1]
