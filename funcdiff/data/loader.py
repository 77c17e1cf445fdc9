"""Endless, deterministic and resumable batches: one seeded permutation per epoch, cut into batches as one stream."""

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from funcdiff._typing import DenseField, Int, Tensor


def epoch_permutation(size: int, *, seed: int, epoch: int) -> Int[Tensor, " size"]:
    """The order of epoch ``epoch``: a permutation of ``range(size)`` drawn from ``seed`` and ``epoch`` alone."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.randperm(size, generator=torch.Generator().manual_seed(mixed))


class StreamSampler(Sampler[int]):
    """Indices forever: the epoch permutations one after another, starting ``start`` indices into the stream.

    Args:
        size: the data set's length.
        seed: the seed of every epoch's permutation.
        start: how many indices of the stream to skip.
    """

    def __init__(self, size: int, *, seed: int, start: int = 0) -> None:
        if size < 1:
            raise ValueError(f"the data set must not be empty, got size {size}")
        self.size, self.seed, self.start = size, seed, start

    def __iter__(self) -> Iterator[int]:
        """Yield indices without end."""
        epoch, offset = divmod(self.start, self.size)
        while True:
            yield from epoch_permutation(self.size, seed=self.seed, epoch=epoch)[offset:].tolist()
            epoch, offset = epoch + 1, 0


def infinite_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[DenseField]:
    """Batches of ``batch_size`` examples forever, reshuffled every epoch; a function of ``seed`` and the step only.

    The stream of indices is the concatenation of one seeded permutation per epoch, and step ``k`` takes its
    ``k * batch_size``-th to ``(k + 1) * batch_size``-th entries, so no example is dropped, a batch may span two
    epochs, data sets smaller than a batch work, and ``start_step=k`` resumes exactly where ``k`` steps left off.

    Args:
        dataset: a map-style data set with a length, whose items are tensors of one shape.
        batch_size: examples per batch.
        seed: the seed of the epoch permutations.
        start_step: the number of batches to skip (the step to resume at).
        num_workers: DataLoader worker processes (0 loads in this process).
        pin_memory: pin batches in page-locked memory for faster copies to a GPU.

    Raises:
        ValueError: if ``batch_size`` < 1, ``start_step`` < 0 or the data set is empty.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    sampler = StreamSampler(len(dataset), seed=seed, start=start_step * batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, pin_memory=pin_memory)
    return iter(loader)
