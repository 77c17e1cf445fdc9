"""Evaluating per-point and per-slab work in chunks, so that dense evaluation of large grids keeps a bounded footprint."""

from collections.abc import Callable, Sequence

import torch

from funcdiff._typing import Tensor


def pointwise(fn: Callable[..., Tensor], *xs: Tensor, chunk: int | None) -> Tensor:
    """``fn`` applied to (b, n, ...) tensors in chunks of at most ``chunk`` points along n (all at once if None).

    ``fn`` sees contiguous tensors: an ``nn.Linear`` given a (b, n, c) view that is not (a chunk of several examples,
    a transposed field) multiplies by another path when its weight requires grad (``torch.matmul`` then folds the
    batch into one matrix product, else it runs a batched one, summing in another order), so the model and its
    frozen copy (the EMA, a reloaded model) would differ in the last bits. Without autograd the chunks are written
    into one preallocated output, so the peak is the output plus one chunk's temporaries.
    """
    if chunk is None:
        return fn(*(x.contiguous() for x in xs))
    return fill_chunks(lambda i, j: fn(*(x[:, i:j].contiguous() for x in xs)), xs[0].shape[1], chunk, dim=1)


def fill_chunks(part: Callable[[int, int], Tensor], n: int, chunk: int, *, dim: int) -> Tensor:
    """Concatenate ``part(i, j)`` over ``[0, n)`` in steps of ``chunk`` along ``dim`` (in place when no grad is needed)."""
    first = part(0, min(chunk, n))
    if chunk >= n:
        return first
    if first.requires_grad:
        return torch.cat([first] + [part(i, min(i + chunk, n)) for i in range(chunk, n, chunk)], dim=dim)
    shape = list(first.shape)
    shape[dim] = n
    out = empty_in_layout(shape, first)  # e.g. channels-last stays so: no copy is needed afterwards
    out.narrow(dim, 0, first.shape[dim]).copy_(first)
    for i in range(chunk, n, chunk):
        out.narrow(dim, i, min(chunk, n - i)).copy_(part(i, min(i + chunk, n)))
    return out


def empty_in_layout(shape: Sequence[int], like: Tensor) -> Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype, device and order of axes in memory."""
    order = sorted(range(like.dim()), key=like.stride, reverse=True)
    return like.new_empty([shape[a] for a in order]).permute(*[order.index(a) for a in range(like.dim())])
