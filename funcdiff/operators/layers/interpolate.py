"""Moving features between points and a fixed grid (docs/math.md §8, §16): K-nearest inverse-distance weighting, and
band-limited (DCT) or multilinear reads."""

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Int, Tensor
from funcdiff.mollifiers.dct import dct, idct
from funcdiff.operators.kernels import native
from funcdiff.operators.kernels.lattice import LatticeHash, lattice_keys
from funcdiff.points import Points, Scattered, grid_index

_QUERY_BUDGET = 1 << 22


def cell_centres(shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device) -> Float[Tensor, "m d"]:
    """Cell-centre coordinates ``(index + 0.5) / shape`` of every node of a grid, row-major."""
    size = torch.tensor(shape, dtype=dtype, device=device)
    return (grid_index(1, shape, device=device)[0].to(dtype) + 0.5) / size


def _window(radius: tuple[int, ...], device: torch.device) -> Int[Tensor, "w d"]:
    axes = torch.meshgrid(*[torch.arange(1 - r, r + 1, device=device) for r in radius], indexing="ij")
    return torch.stack(axes, dim=-1).reshape(-1, len(radius))


def _nearest_in_window(
    table: LatticeHash, nodes: Float[Tensor, "m d"], shape: tuple[int, ...], radius: tuple[int, ...], batch: int, k: int
) -> tuple[Int[Tensor, "b m k"], Float[Tensor, "b m k"]]:
    """The k nearest present points among the ``2 radius`` cells per axis around each node, and squared distances."""
    size = torch.tensor(shape, device=nodes.device)
    cells = torch.floor(nodes * size - 0.5).long().unsqueeze(1) + _window(radius, nodes.device)
    inside = ((cells >= 0) & (cells < size)).all(-1)
    keys = lattice_keys(cells.clamp(min=0).minimum(size - 1).reshape(1, -1, len(shape)).expand(batch, -1, -1), shape)
    rows = table.lookup(torch.where(inside.reshape(1, -1), keys, -1)).view(batch, *cells.shape[:2])
    dist = ((cells.to(nodes.dtype) + 0.5) / size - nodes.unsqueeze(1)).square().sum(-1)
    dist = torch.where(rows >= 0, dist, math.inf)
    # Window cells are in row-major order, so a stable sort breaks ties by lattice position, as the C++ search does.
    best, slot = dist.sort(dim=-1, stable=True)
    return rows.gather(-1, slot[..., :k]), best[..., :k]


def nearest_points(
    points: Points, grid_shape: tuple[int, ...], k: int, *, implementation: Literal["auto", "native", "torch"] = "auto"
) -> tuple[Int[Tensor, "b m k"], Float[Tensor, "b m k"]]:
    """Exact k nearest points of every grid node: rows into the batch-flattened points and squared distances.

    Nearest first; points at equal (computed) distances, common between regular grids, in row-major order of their
    lattice positions, so both implementations give the same rows and a model evaluates alike with either.

    Lattice-aware: each node probes a window of lattice cells around it through a lattice hash and widens the
    window only where the k-th nearest point found could lie beyond it, so the cost grows with the number of
    points plus grid nodes, never their product. ``"auto"`` uses the C++ kernel (`funcdiff.operators.kernels.native`)
    on CPU when it is already loaded (never building it just for this), else the vectorised PyTorch search.
    """
    b, n, _ = points.values.shape
    shape = points.shape
    reach = 0.5 * (2 * k / n) ** (1 / len(shape))
    if implementation == "native" or (implementation == "auto" and points.index.device.type == "cpu" and native.ready()):
        return tuple(native.load().knn_grid(points.index.long().contiguous(), list(shape), list(grid_shape), k, reach))
    table = LatticeHash(lattice_keys(points.index, shape).reshape(-1))
    nodes = cell_centres(grid_shape, dtype=torch.float64, device=points.values.device)
    rows = torch.empty(b, nodes.shape[0], k, dtype=torch.long, device=nodes.device)
    dist = torch.empty(b, nodes.shape[0], k, dtype=torch.float64, device=nodes.device)
    todo = torch.arange(nodes.shape[0], device=nodes.device)
    while todo.numel():
        radius = tuple(min(s, max(1, math.ceil(reach * s))) for s in shape)
        whole = all(r >= s for r, s in zip(radius, shape))
        # Any cell outside the window lies at least min(radius / size) away along some axis, exactly that far where a
        # node sits on a cell centre: only a k-th distance clearly below it is final (a tie there widens the window,
        # so the result does not depend on the window, the batch or rounding). Same test in the C++ search.
        final_below = min(r / s for r, s in zip(radius, shape)) ** 2 * (1 - 1e-9)
        chunk = max(1, _QUERY_BUDGET // (b * math.prod(2 * r for r in radius)))
        left = []
        for part in todo.split(chunk):
            found, best = _nearest_in_window(table, nodes[part], shape, radius, b, k)
            done = (best[..., -1] < final_below).all(0) | whole
            rows[:, part[done]], dist[:, part[done]] = found[:, done], best[:, done]
            left.append(part[~done])
        todo, reach = torch.cat(left), 2 * reach
    return rows, dist


@jaxtyped(typechecker=beartype)
def knn_to_grid(points: Points | Scattered, grid_shape: tuple[int, ...], *, k: int = 3) -> Float[Tensor, "b c *grid"]:
    """Features on a fixed grid by inverse-squared-distance weighting of the ``k`` nearest points (Qi et al. 2017, Eq. 2).

    The neighbour search (`nearest_points` on a lattice; for `Scattered` points a brute force by distance,
    `nearest_scattered`, docs/math.md §20) and the weights need no gradient; the features do.

    Args:
        points: features at distinct lattice positions of any grid, or at scattered positions.
        grid_shape: the target grid, with nodes at cell centres like the points.
        k: the number of neighbours (at most the number of points are used).
    """
    b, n, c = points.values.shape
    if len(grid_shape) != points.ndim:
        raise ValueError(f"grid_shape must have {points.ndim} axes like the points, got {grid_shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, n)
    with torch.no_grad():
        search = nearest_scattered if isinstance(points, Scattered) else nearest_points
        rows, dist = search(points, grid_shape, k)
        weight = 1.0 / dist.clamp_min(1e-20)
        weight = (weight / weight.sum(-1, keepdim=True)).to(points.values.dtype)
    flat = points.values.reshape(b * n, c)
    out = sum(weight[..., j, None] * flat[rows[..., j]] for j in range(k))
    return out.movedim(-1, 1).reshape(b, c, *grid_shape)


def nearest_scattered(points: Scattered, grid_shape: tuple[int, ...], k: int) -> tuple[Int[Tensor, "b m k"], Float[Tensor, "b m k"]]:
    """`nearest_points` for points at continuous coordinates: each node's ``k`` nearest by Euclidean distance (computed
    directly, not by the matrix-product shortcut), a brute force over chunks of nodes; rows into the batch-flattened
    points and squared distances."""
    b, n, _ = points.values.shape
    nodes = cell_centres(grid_shape, dtype=points.coords.dtype, device=points.coords.device)
    parts = [torch.cdist(part.expand(b, -1, -1), points.coords, compute_mode="donot_use_mm_for_euclid_dist").square()
             .topk(k, dim=-1, largest=False) for part in nodes.split(max(1, _QUERY_BUDGET // (b * n)))]
    rows = torch.cat([p.indices for p in parts], dim=1) + n * torch.arange(b, device=nodes.device).view(b, 1, 1)
    return rows, torch.cat([p.values for p in parts], dim=1)


@jaxtyped(typechecker=beartype)
def cosine_at(
    grid: Float[Tensor, "b c *grid"], coords: Float[Tensor, "b n d"], modes: tuple[int, ...] | None = None
) -> Float[Tensor, "b n c"]:
    """The grid's cosine interpolant (docs/math.md §16) at continuous coordinates in ``[0, 1]^d``, its first ``modes``
    per axis (all by default): `dct_reader`'s per-point read for points that are on no grid.

    Memory: the first contraction holds ``b c n prod(grid[:-1])`` values; read many points in chunks."""
    b, c, *grid_shape = grid.shape
    if coords.shape[-1] != len(grid_shape):
        raise ValueError(f"grid has {len(grid_shape)} spatial axes but coords have d={coords.shape[-1]}")
    modes = tuple(grid_shape) if modes is None else modes
    if len(modes) != len(grid_shape) or not all(1 <= m <= g for m, g in zip(modes, grid_shape)):
        raise ValueError(f"modes must give 1 to the grid's cells {tuple(grid_shape)} per axis, got {modes}")
    dtype = torch.float32 if grid.dtype in (torch.float16, torch.bfloat16) else grid.dtype
    weights = [_cosine_weights(coords[..., a].to(dtype), g, m) for a, (g, m) in enumerate(zip(grid_shape, modes))]
    # The last axis by one batched product over all other nodes, then each earlier axis by a weighted sum per point.
    out = torch.bmm(grid.to(dtype).reshape(b, -1, grid_shape[-1]), weights[-1].transpose(1, 2))  # (b, c * rest, n)
    for axis in reversed(range(len(grid_shape) - 1)):
        out = (out.reshape(b, -1, grid_shape[axis], coords.shape[1]) * weights[axis].transpose(1, 2).unsqueeze(1)).sum(2)
    return out.transpose(1, 2).to(grid.dtype).contiguous()


_SAMPLE_DIMS = {1: 2, 2: 2, 3: 3}


@jaxtyped(typechecker=beartype)
def grid_to_points(grid: Float[Tensor, "b c *grid"], coords: Float[Tensor, "b n d"]) -> Float[Tensor, "b n c"]:
    """Multilinear interpolation of a grid at coordinates in ``[0, 1]^d``, nodes at cell centres, clamped at borders.

    Cell-centre nodes are exactly ``grid_sample``'s ``align_corners=False`` convention once coordinates are mapped
    to ``2 x - 1`` and given in (last axis, ..., first axis) order; a 1-d grid is read as a 2-d grid of height one.
    The result is contiguous, as per-point layers need it (`funcdiff.operators.layers.chunking.pointwise`).
    """
    ndim = coords.shape[-1]
    if grid.ndim != ndim + 2:
        raise ValueError(f"grid has {grid.ndim - 2} spatial axes but coords have d={ndim}")
    if ndim not in _SAMPLE_DIMS:
        raise ValueError(f"coords must have d in (1, 2, 3), got {ndim}")
    where = (2 * coords - 1).flip(-1).to(grid.dtype)
    if ndim == 1:
        grid = grid.unsqueeze(2)
        where = torch.cat([where, torch.zeros_like(where)], dim=-1)
    sample = where.view(where.shape[0], where.shape[1], *(1,) * (_SAMPLE_DIMS[ndim] - 1), where.shape[-1])
    out = F.grid_sample(grid, sample, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(grid.shape[0], grid.shape[1], -1).transpose(1, 2).contiguous()


DENSE_READ_RATIO = 32
"""`dct_reader` resamples the whole grid (FFT) once a per-point evaluation would cost more than this many times the
target grid's size."""


def _cosine_weights(u: Tensor, size: int, modes: int) -> Tensor:
    """Weights over the ``size`` nodes of one axis that give the cosine interpolant's first ``modes`` modes at ``u``:
    ``sum_k s_k cos(pi k u) C[k, j]``, with ``C`` the orthonormal DCT-II (``(..., size)``)."""
    k = torch.arange(modes, dtype=u.dtype, device=u.device)
    j = torch.arange(size, dtype=u.dtype, device=u.device)
    scale = torch.full((modes,), (2.0 / size) ** 0.5, dtype=u.dtype, device=u.device)
    scale[0] = (1.0 / size) ** 0.5
    dct_rows = torch.cos(torch.pi * k[:, None] * (j[None, :] + 0.5) / size) * scale[:, None]
    return (torch.cos(torch.pi * u.unsqueeze(-1) * k) * scale) @ dct_rows


def dct_reader(
    grid: Float[Tensor, "b c *grid"], count: int, shape: tuple[int, ...], *, bounded: bool = False
) -> Callable[[Tensor], Tensor]:
    """A function of lattice positions ``index`` ``(b, n, d)`` of a grid of ``shape`` that returns the grid's cosine
    interpolant there, band-limited to the coarser of the two grids: exactly `dct_resize` to ``shape`` read at
    ``index`` (docs/math.md §16), as ``(b, n, c)``, contiguous for per-point layers.

    For ``count`` points in all (read in one call or in chunks) it evaluates per point (separable weights over the
    grid's nodes) when that is cheaper, else it resamples the whole grid once; both give the same values up to
    rounding. With ``bounded`` (chunked evaluation of a whole grid, in row-major chunks) it never holds the whole
    resampled grid: every axis but the first is resampled once, and each call resamples only the rows of the first
    axis its points lie on.
    """
    b, c, *grid_shape = grid.shape
    if len(shape) != len(grid_shape) or min(shape) < 1:
        raise ValueError(f"grid has {len(grid_shape)} spatial axes, the points' grid is {shape}")
    dtype = torch.float32 if grid.dtype in (torch.float16, torch.bfloat16) else grid.dtype
    if count * math.prod(grid_shape) > DENSE_READ_RATIO * math.prod(shape):
        if not bounded:
            fine = dct_resize(grid, shape)
            return lambda index: Points.gather(fine, index).values.contiguous()
        rest = dct_resize(grid, (grid_shape[0], *shape[1:])).to(dtype)

        def rows(index: Tensor) -> Tensor:
            low, high = int(index[..., 0].min()), int(index[..., 0].max()) + 1
            u = (torch.arange(low, high, dtype=dtype, device=grid.device) + 0.5) / shape[0]
            slab = torch.tensordot(_cosine_weights(u, grid_shape[0], min(grid_shape[0], shape[0])), rest, dims=([1], [2]))
            shifted = index - torch.tensor([low] + [0] * (len(shape) - 1), device=index.device)
            return Points.gather(slab.movedim(0, 2), shifted).values.to(grid.dtype).contiguous()

        return rows
    letters = "ijk"[: len(grid_shape)]
    equation = ",".join(f"bn{x}" for x in letters) + f",bc{letters}->bnc"
    work = grid.to(dtype)

    def per_point(index: Tensor) -> Tensor:
        weights = [_cosine_weights((index[..., a].to(dtype) + 0.5) / shape[a], g, min(g, shape[a])) for a, g in enumerate(grid_shape)]
        return torch.einsum(equation, *weights, work).to(grid.dtype).contiguous()

    return per_point


@jaxtyped(typechecker=beartype)
def dct_resize(grid: Float[Tensor, "b c *grid"], shape: tuple[int, ...]) -> Float[Tensor, "b c *shape"]:
    """Band-limited resampling of a cell-centred grid to another shape: per axis, the orthonormal DCT-II, its
    coefficients zero-padded (finer) or truncated (coarser), the inverse on the new length, times ``sqrt(new / old)``.

    This evaluates the grid's cosine interpolant ``sum_k X_k cos(pi k u)`` (even extension at the borders, as the
    mollifier's, docs/math.md §1) at the new cell centres: exact on the old nodes when they are new nodes too, no
    energy above the old Nyquist frequency, and for a coarser shape the ideal low-pass (docs/math.md §16). Half
    precision is transformed in float32.
    """
    if len(shape) != grid.ndim - 2 or min(shape) < 1:
        raise ValueError(f"shape must give {grid.ndim - 2} positive sizes, got {shape}")
    dtype = grid.dtype
    work = grid.float() if dtype in (torch.float16, torch.bfloat16) else grid
    for axis, new in enumerate(shape, start=2):
        old = work.shape[axis]
        if new == old:
            continue
        spectrum = dct(work, dim=axis)
        if new > old:
            pad = list(spectrum.shape)
            pad[axis] = new - old
            spectrum = torch.cat([spectrum, spectrum.new_zeros(pad)], dim=axis)
        else:
            spectrum = spectrum.narrow(axis, 0, new)
        work = idct(spectrum, dim=axis) * math.sqrt(new / old)
    return work.to(dtype)

