"""The built-in ``shapes`` data set: procedural solid shapes as 3-D occupancy fields, exact at every resolution that
divides 64.

Each example is a union of one to three primitives (spheres, boxes, tori, capsules) with a random size, position
and rotation drawn from a generator seeded by the example's index. Occupancy is evaluated at the centres of a
``64^3`` master grid by signed-distance functions (union = minimum) and box-averaged to the requested resolution
by integer counts, so the data at ``r`` is the 2 x 2 x 2 box-average of the data at ``2r``.
"""

import math
from dataclasses import dataclass
from typing import Literal, final

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch.utils.data import Dataset

from funcdiff._typing import Bool, Float, Int, Tensor
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

MASTER = 64
"""The side of the master grid whose cell occupancies are averaged; resolutions must divide it."""

TEST_FRACTION = 0.1
"""The share of examples held out; the split is a fixed hash of each index (seed 0)."""

PrimitiveKind = Literal["sphere", "box", "torus", "capsule"]
KINDS: tuple[PrimitiveKind, ...] = ("sphere", "box", "torus", "capsule")
"""The primitives an example is built from, each drawn with equal chance."""


@dataclass(frozen=True)
class Primitive:
    """One solid in the unit cube: its kind, sizes (in domain units), centre and rotation (local = R^T (p - centre))."""

    kind: PrimitiveKind
    sizes: tuple[float, ...]
    centre: Float[Tensor, "3"]
    rotation: Float[Tensor, "3 3"]


def sphere_sdf(p: Float[Tensor, "n 3"], radius: float) -> Float[Tensor, " n"]:
    """Signed distance to a sphere of ``radius`` at the origin."""
    return p.norm(dim=-1) - radius


def box_sdf(p: Float[Tensor, "n 3"], half_x: float, half_y: float, half_z: float) -> Float[Tensor, " n"]:
    """Signed distance to an axis-aligned box at the origin with the given half-extents."""
    q = p.abs() - p.new_tensor([half_x, half_y, half_z])
    return q.clamp(min=0).norm(dim=-1) + q.amax(dim=-1).clamp(max=0)


def torus_sdf(p: Float[Tensor, "n 3"], major: float, minor: float) -> Float[Tensor, " n"]:
    """Signed distance to a torus around the z axis: tube of radius ``minor`` on a circle of radius ``major``."""
    ring = p[:, :2].norm(dim=-1) - major
    return torch.stack([ring, p[:, 2]], dim=-1).norm(dim=-1) - minor


def capsule_sdf(p: Float[Tensor, "n 3"], half_length: float, radius: float) -> Float[Tensor, " n"]:
    """Signed distance to a capsule along the z axis: a segment of ``2 half_length`` thickened by ``radius``."""
    axis = p[:, 2].clamp(-half_length, half_length)
    return torch.stack([p[:, 0], p[:, 1], p[:, 2] - axis], dim=-1).norm(dim=-1) - radius


SDFS = {"sphere": sphere_sdf, "box": box_sdf, "torus": torus_sdf, "capsule": capsule_sdf}
"""Each primitive kind's signed distance in its local frame, called with the primitive's sizes."""


def random_rotation(generator: torch.Generator) -> Float[Tensor, "3 3"]:
    """A uniformly random rotation matrix, from a random unit quaternion (Shoemake 1992)."""
    w, x, y, z = torch.nn.functional.normalize(torch.randn(4, generator=generator, dtype=torch.float64), dim=0).tolist()
    return torch.tensor([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ], dtype=torch.float32)


def random_primitives(index: int, *, seed: int = 0) -> list[Primitive]:
    """The primitives of example ``index``: one to three, each of a random kind, size, centre and rotation."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))

    primitives = []
    for _ in range(1 + int(torch.randint(3, (), generator=generator))):
        kind = KINDS[int(torch.randint(len(KINDS), (), generator=generator))]
        if kind == "sphere":
            sizes: tuple[float, ...] = (uniform(0.15, 0.3),)
        elif kind == "box":
            sizes = (uniform(0.08, 0.26), uniform(0.08, 0.26), uniform(0.08, 0.26))
        elif kind == "torus":
            sizes = (uniform(0.16, 0.26), uniform(0.06, 0.11))
        else:
            sizes = (uniform(0.12, 0.28), uniform(0.07, 0.13))
        centre = torch.tensor([uniform(0.35, 0.65) for _ in range(3)], dtype=torch.float32)
        primitives.append(Primitive(kind, sizes, centre, random_rotation(generator)))
    return primitives


@jaxtyped(typechecker=beartype)
def union_sdf(primitives: list[Primitive], p: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
    """Signed distance to the union of ``primitives`` (the minimum of theirs) at points ``p`` of the unit cube."""
    distances = [SDFS[q.kind]((p - q.centre) @ q.rotation, *q.sizes) for q in primitives]
    return torch.stack(distances).amin(dim=0)


BLOCK = 4
"""Master cells per axis of the blocks that are decided from their centre when the surface is far (`master_inside`)."""


def cell_centres(side: int) -> Float[Tensor, "n 3"]:
    """The cell centres ``(i + 0.5) / side`` of a ``side^3`` grid, in ``(d, h, w)`` order as ``(x, y, z)``."""
    u = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    return torch.stack(torch.meshgrid(u, u, u, indexing="ij"), dim=-1).reshape(-1, 3)


@jaxtyped(typechecker=beartype)
def master_inside(primitives: list[Primitive]) -> Bool[Tensor, "m m m"]:
    """Whether each master cell's centre lies inside the union of ``primitives``.

    Equal to evaluating the signed distance at every centre, but cheaper: the distance is 1-Lipschitz (each
    primitive's is exact and a minimum keeps the bound), so a block of ``BLOCK^3`` cells whose centre is farther from
    the surface than the block's half-diagonal lies wholly on one side; only the other blocks are evaluated per cell.
    (Block centre plus cell offset is the cell centre exactly: both are multiples of ``1 / (2 MASTER)``.)
    """
    blocks = MASTER // BLOCK
    centres = cell_centres(blocks)
    distance = union_sdf(primitives, centres)
    inside = (distance < 0)[:, None].repeat(1, BLOCK**3)
    near = distance.abs() <= math.sqrt(3) / 2 * BLOCK / MASTER + 1e-4
    offsets = cell_centres(BLOCK) * (BLOCK / MASTER) - BLOCK / (2 * MASTER)
    points = (centres[near][:, None] + offsets).reshape(-1, 3)
    inside[near] = (union_sdf(primitives, points) < 0).reshape(-1, BLOCK**3)
    cells = inside.reshape(blocks, blocks, blocks, BLOCK, BLOCK, BLOCK)
    return cells.permute(0, 3, 1, 4, 2, 5).reshape(MASTER, MASTER, MASTER)


@jaxtyped(typechecker=beartype)
def occupancy_counts(primitives: list[Primitive], factor: int) -> Int[Tensor, "r r r"]:
    """How many master cells inside the shape each block of ``factor^3`` master cells holds (integers, so nesting is
    exact)."""
    r = MASTER // factor
    return master_inside(primitives).reshape(r, factor, r, factor, r, factor).sum(dim=(1, 3, 5), dtype=torch.int32)


def allowed_resolutions() -> list[int]:
    """The resolutions the data set offers: the divisors of `MASTER`."""
    return [r for r in range(1, MASTER + 1) if MASTER % r == 0]


@register("shapes")
@final
class ShapeVolumes(Dataset):
    """Procedural solid shapes as occupancy fields ``(1, r, r, r)`` in ``[-1, 1]``: inside +1, outside -1.

    Each cell holds the occupancy averaged over the ``(64 / r)^3`` master cells it covers, so the data at resolution
    ``r`` is the 2 x 2 x 2 box-average of the data at ``2r``. Example ``i`` is always the same shape (its primitives
    come from a generator seeded by ``i``); fields are computed on first access (about 3 ms each on one CPU core) and kept in memory
    (``4 r^3`` bytes each: 16 KiB at 16^3, 1 MiB at 64^3).

    Args:
        resolution: the side in cells; must divide 64.
        split: "train" (about 90 % of the examples) or "test" (the rest), by a fixed hash of each index.
        size: the number of examples of both splits together.
        limit: use only the first ``limit`` examples of the split (quick demos and tests).

    Raises:
        ValueError: if ``resolution`` does not divide 64, or ``size`` or ``limit`` is not positive.
    """

    def __init__(self, *, resolution: int, split: Split = "train", size: int = 2048, limit: int | None = None) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution not in allowed_resolutions():
            raise ValueError(f"resolution must be one of {allowed_resolutions()}, got {resolution!r}")
        if size < 1:
            raise ValueError(f"size must be a positive int, got {size}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")
        self.indices = split_indices([f"shape-{i}" for i in range(size)], split, fraction=TEST_FRACTION, seed=0)[:limit]
        self.shape = (1, resolution, resolution, resolution)
        self.factor = MASTER // resolution
        self._fields: dict[int, Tensor] = {}

    def __len__(self) -> int:
        """The number of examples in the split."""
        return len(self.indices)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "1 r r r"]:
        """Example ``index`` of the split as an occupancy field in ``[-1, 1]``."""
        if index not in self._fields:
            counts = occupancy_counts(random_primitives(self.indices[index]), self.factor)
            self._fields[index] = (counts.double() * (2 / self.factor**3) - 1).float()[None]
        return self._fields[index]


@register("shapes-points")
@final
class ShapePoints(Dataset):
    """The ``shapes`` observed at scattered points: each example's occupancy (+1 inside, -1 outside, exact from the
    signed distance) at ``observations`` positions drawn uniformly in the unit cube, never on a grid (docs/math.md §20).

    Example ``i`` is always the same shape at the same positions (both drawn from generators seeded by its index);
    items are ``{"values": (n, 1), "coords": (n, 3)}`` (`funcdiff.data.scattered`), computed on first access and kept.

    Args:
        resolution: the side of the grid a model reads the points on and samples on (``shape``); the data have none.
        split: "train" or "test", the same examples as `ShapeVolumes`'.
        size: the number of examples of both splits together.
        limit: use only the first ``limit`` examples of the split.
        observations: positions per example.

    Raises:
        ValueError: if ``resolution``, ``size``, ``limit`` or ``observations`` is not positive.
    """

    scattered = True

    def __init__(self, *, resolution: int, split: Split = "train", size: int = 2048, limit: int | None = None,
                 observations: int = 4096) -> None:
        for name, value in (("resolution", resolution), ("size", size), ("observations", observations), ("limit", limit)):
            if (value is not None or name != "limit") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.indices = split_indices([f"shape-{i}" for i in range(size)], split, fraction=TEST_FRACTION, seed=0)[:limit]
        self.shape = (1, resolution, resolution, resolution)
        self.observations = observations
        self._items: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        """The number of examples in the split."""
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Example ``index``'s occupancy at its positions."""
        if index not in self._items:
            example = self.indices[index]
            generator = torch.Generator().manual_seed(1_000_003 * 7 + example)
            coords = torch.rand(self.observations, 3, generator=generator)
            inside = union_sdf(random_primitives(example), coords) < 0
            self._items[index] = {"values": inside.float()[:, None] * 2 - 1, "coords": coords}
        return self._items[index]
