"""Endless, deterministic and resumable batches: one seeded permutation per epoch, cut into batches as one stream."""

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from funcdiff._typing import DenseField, Int, Tensor


def epoch_permutation(size: int, *, seed: int, epoch: int) -> Int[Tensor, " size"]:
    """The order of epoch ``epoch``: a permutation of ``range(size)`` drawn from ``seed`` and ``epoch`` alone."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.randperm(size, generator=torch.Generator().manual_seed(mixed))


class StreamSampler(Sampler[int]):
    """One rank's indices forever, from the stream of epoch permutations cut into global batches.

    The stream is the epoch permutations one after another. Global batch ``k`` is its ``k``-th run of
    ``batch_size * world_size`` indices; rank ``r`` takes the ``r``-th ``batch_size`` of each, from step ``start_step`` on.

    Args:
        size: the data set's length.
        seed: the seed of every epoch's permutation.
        batch_size: examples per batch and rank.
        start_step: how many global batches to skip.
        rank: this process's rank, in ``[0, world_size)``.
        world_size: the number of processes sharing the stream.
        start_example: how many entries of the stream to skip, instead of ``start_step`` global batches (a run that
            resumes with another world size or batch size continues where the stream was left).
    """

    def __init__(
        self, size: int, *, seed: int, batch_size: int, start_step: int = 0, rank: int = 0, world_size: int = 1,
        start_example: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"the data set must not be empty, got size {size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        if start_example is not None and start_example < 0:
            raise ValueError(f"start_example must be >= 0, got {start_example}")
        self.size, self.seed, self.batch_size = size, seed, batch_size
        self.rank, self.world_size = rank, world_size
        self.start = start_step * batch_size * world_size if start_example is None else start_example

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices without end."""
        global_batch = self.batch_size * self.world_size
        first, last = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        position = self.start
        epoch, offset = divmod(position, self.size)
        while True:
            for index in epoch_permutation(self.size, seed=self.seed, epoch=epoch)[offset:].tolist():
                if first <= (position - self.start) % global_batch < last:
                    yield index
                position += 1
            epoch, offset = epoch + 1, 0


def infinite_loader(
    dataset: Dataset | Sequence[Tensor],
    batch_size: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
    start_example: int | None = None,
) -> Iterator[DenseField]:
    """Batches of ``batch_size`` examples forever, reshuffled every epoch; a function of ``seed`` and the step only.

    The stream of indices is the concatenation of one seeded permutation per epoch, and step ``k`` takes its
    ``k * batch_size``-th to ``(k + 1) * batch_size``-th entries, so no example is dropped, a batch may span two
    epochs, data sets smaller than a batch work, and ``start_step=k`` resumes exactly where ``k`` steps left off.
    With ``world_size`` processes each step takes ``batch_size * world_size`` entries, rank ``r`` the ``r``-th part.

    Args:
        dataset: a map-style data set with a length (or a list), whose items are tensors of one shape.
        batch_size: examples per batch (per rank).
        seed: the seed of the epoch permutations; the same on every rank.
        start_step: the number of batches to skip (the step to resume at).
        rank: this process's rank for distributed training.
        world_size: the number of processes.
        num_workers: DataLoader worker processes (0 loads in this process). They live as long as the iterator, so
            for a whole run. They pay when items are expensive (decoding images); reading `ImageFolder`'s cache at
            256 px is faster in this process on 2 cores (benchmarks/README.md, "Image-folder loader").
        pin_memory: pin batches in page-locked memory for faster copies to a GPU; ignored without CUDA.
        start_example: the number of stream entries to skip instead of ``start_step`` batches (all ranks together),
            so that a run resumed with another world size or batch size continues the stream where it stopped.

    Raises:
        ValueError: if ``batch_size`` < 1, ``start_step`` < 0, ``rank`` is outside ``[0, world_size)``, the data set
            is empty, or ``num_workers`` < 0.
    """
    sampler = StreamSampler(
        len(dataset), seed=seed, batch_size=batch_size, start_step=start_step, rank=rank, world_size=world_size,
        start_example=start_example,
    )
    pin = pin_memory and torch.cuda.is_available()
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, pin_memory=pin)
    return iter(loader)
