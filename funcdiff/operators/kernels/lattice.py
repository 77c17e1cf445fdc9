"""Lattice hash: expected O(1) lookup of integer lattice points, vectorised in PyTorch by open addressing.

Memory scales with the number of points (a table of twice their count), never with the grid, so the
kernel maps and neighbour searches built on it stay cheap for very sparse point sets on large grids.
"""

import itertools
import math

import torch

from funcdiff._typing import Int, Tensor
from funcdiff.points import flat_index

# Knuth's multiplicative constant 0x9E3779B97F4A7C15 as a signed 64-bit integer (products wrap modulo 2^64).
_GOLDEN = -7046029254386353131


def lattice_keys(index: Int[Tensor, "b n d"], shape: tuple[int, ...]) -> Int[Tensor, "b n"]:
    """A unique non-negative int64 key per (example, lattice position)."""
    batch = torch.arange(index.shape[0], device=index.device).unsqueeze(1)
    return flat_index(index.long(), shape) + batch * math.prod(shape)


def window_offsets(kernel_shape: tuple[int, ...], *, device: torch.device | None = None) -> Int[Tensor, "k d"]:
    """Offsets ``o - (k - 1) / 2`` of every tap of an odd kernel, in row-major tap order (centred)."""
    axes = [range(-(k // 2), k // 2 + 1) for k in kernel_shape]
    return torch.tensor(list(itertools.product(*axes)), dtype=torch.long, device=device).reshape(-1, len(kernel_shape))


class LatticeHash:
    """An open-addressing hash table from int64 keys to their row, built and queried in vectorised rounds.

    Each round moves every unresolved key one slot along its probe sequence (linear probing); with the
    load factor kept at most 1/2 the expected number of probes per key is constant, so building and
    querying cost O(keys) and O(queries).

    Args:
        keys: distinct non-negative keys; ``lookup`` returns their position in this tensor.
    """

    def __init__(self, keys: Int[Tensor, " m"]) -> None:
        bits = max(4, (2 * keys.numel()).bit_length())
        self._shift = 64 - bits
        self._mask = (1 << bits) - 1
        self._keys = torch.full((1 << bits,), -1, dtype=torch.long, device=keys.device)
        self._rows = torch.full((1 << bits,), -1, dtype=torch.long, device=keys.device)
        keys = keys.long()
        rows = torch.arange(keys.numel(), device=keys.device)
        slot = self._hash(keys)
        while rows.numel():
            free = self._keys[slot] == -1
            # Several keys may race for one free slot; exactly one write survives and the rest probe on.
            self._keys[slot[free]] = keys[rows[free]]
            won = self._keys[slot] == keys[rows]
            self._rows[slot[won]] = rows[won]
            rows, slot = rows[~won], (slot[~won] + 1) & self._mask

    def _hash(self, keys: Tensor) -> Tensor:
        return ((keys * _GOLDEN) >> self._shift) & self._mask

    def lookup(self, queries: Int[Tensor, "*q"]) -> Int[Tensor, "*q"]:
        """The row of each query key, or -1 where it is absent (negative queries are absent)."""
        flat = queries.reshape(-1).long()
        out = torch.full_like(flat, -1)
        todo = torch.nonzero(flat >= 0).squeeze(1)
        slot = self._hash(flat[todo])
        while todo.numel():
            found = self._keys[slot]
            hit = found == flat[todo]
            out[todo[hit]] = self._rows[slot[hit]]
            again = ~hit & (found != -1)
            todo, slot = todo[again], (slot[again] + 1) & self._mask
        return out.view(queries.shape)


def neighbour_keys(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], offset: Int[Tensor, " d"]
) -> Int[Tensor, "b n"]:
    """Keys of the lattice positions ``index + offset``, or -1 where they fall off the grid."""
    moved = index.long() + offset
    size = torch.tensor(shape, device=index.device)
    inside = ((moved >= 0) & (moved < size)).all(-1)
    keys = lattice_keys(moved.clamp(min=0).minimum(size - 1), shape)
    return torch.where(inside, keys, -1)


def kernel_map(index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> Int[Tensor, "k m"]:
    """For every tap and point (rows flattened over the batch), the row of the neighbour, or ``m`` if absent.

    Built with a `LatticeHash` in O(m k) time and O(m k) memory, where ``m = b n``.
    """
    table = LatticeHash(lattice_keys(index, shape).reshape(-1))
    m = index.shape[0] * index.shape[1]
    offsets = window_offsets(kernel_shape, device=index.device)
    rows = [table.lookup(neighbour_keys(index, shape, offset)).reshape(-1) for offset in offsets]
    nbr = torch.stack(rows)
    return torch.where(nbr < 0, m, nbr)
