"""The endless loader: seeded, reshuffled every epoch, resumable at any step, the same with workers."""

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import Dataset

from funcdiff.data import ImageFolder, epoch_permutation, infinite_loader


class Numbers(Dataset):
    """Item ``i`` is the field ``(1, 1)`` holding ``i``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return torch.full((1, 1), float(index))


def indices(size: int, batch_size: int, steps: int, **options: int) -> list[list[int]]:
    """The item indices of the first ``steps`` batches."""
    batches = infinite_loader(Numbers(size), batch_size, **options)
    return [next(batches)[:, 0, 0].long().tolist() for _ in range(steps)]


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    """The batches are a function of the seed."""
    assert indices(10, 4, 6, seed=1) == indices(10, 4, 6, seed=1)
    assert indices(10, 4, 6, seed=1) != indices(10, 4, 6, seed=2)


def test_every_epoch_is_a_fresh_permutation() -> None:
    """Each epoch visits every item once, in a new order given by epoch_permutation."""
    stream = sum(indices(12, 4, 9, seed=0), [])
    epochs = [stream[i : i + 12] for i in range(0, 36, 12)]
    assert all(sorted(e) == list(range(12)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    assert epochs[1] == epoch_permutation(12, seed=0, epoch=1).tolist()


@given(size=st.integers(1, 20), batch_size=st.integers(1, 8), start=st.integers(0, 12), seed=st.integers(0, 3))
def test_starting_at_step_k_equals_skipping_k_batches(size: int, batch_size: int, start: int, seed: int) -> None:
    """start_step=k yields exactly the batches after the first k."""
    skipped = indices(size, batch_size, start + 3, seed=seed)[start:]
    assert indices(size, batch_size, 3, seed=seed, start_step=start) == skipped


@given(world_size=st.integers(1, 4), batch_size=st.integers(1, 5), start=st.integers(0, 6))
def test_ranks_split_each_global_batch(world_size: int, batch_size: int, start: int) -> None:
    """Rank r's batch is the r-th part of the single-process batch of batch_size * world_size."""
    whole = indices(11, batch_size * world_size, 2, seed=7, start_step=start)
    parts = [indices(11, batch_size, 2, seed=7, start_step=start, rank=r, world_size=world_size) for r in range(world_size)]
    assert [sum((part[step] for part in parts), []) for step in range(2)] == whole


@given(first=st.integers(1, 4), then=st.integers(1, 4), batch_size=st.integers(1, 5), steps=st.integers(0, 5))
def test_the_stream_continues_from_an_example_count_with_another_world_size(first: int, then: int, batch_size: int, steps: int) -> None:
    """After ``steps`` steps with ``first`` ranks, resuming with ``then`` ranks at start_example = steps * batch_size *
    first gives, across its ranks, exactly the next entries of the one-process stream."""
    seen = steps * batch_size * first
    stream = sum(indices(13, 1, seen + 2 * batch_size * then, seed=3), [])
    parts = [indices(13, batch_size, 2, seed=3, start_example=seen, rank=r, world_size=then) for r in range(then)]
    assert [i for step in range(2) for part in parts for i in part[step]] == stream[seen:]


def test_batches_larger_than_the_data_set() -> None:
    """A batch larger than the data set spans several epochs."""
    batches = indices(3, 7, 2, seed=0)
    assert all(len(b) == 7 for b in batches)
    assert sorted(batches[0][:3]) == [0, 1, 2]


def test_workers_give_the_same_batches() -> None:
    """Worker processes do not change the batches."""
    assert indices(10, 4, 5, seed=5, num_workers=1) == indices(10, 4, 5, seed=5)


@pytest.mark.parametrize("cache", [True, False])
def test_workers_give_the_same_image_batches_and_resume_alike(image_tree: Path, tmp_path: Path, cache: bool) -> None:
    """Two workers over an image folder (cached or decoding, with flips) give the batches of none, also from a step."""
    dataset = ImageFolder(image_tree, resolution=8, test_fraction=0.0, flip=True, progress=False, cache=cache,
                          cache_dir=tmp_path / "cache")

    def batches(workers: int, start_step: int) -> list[torch.Tensor]:
        loader = infinite_loader(dataset, 4, seed=3, start_step=start_step, num_workers=workers, pin_memory=True)
        return [next(loader) for _ in range(4)]

    for start_step in (0, 5):
        assert all(torch.equal(a, b) for a, b in zip(batches(2, start_step), batches(0, start_step), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(batches(2, 5)[:2], batches(0, 3)[2:], strict=True))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2, "start_step": -1}, "start_step"),
        ({"batch_size": 2, "rank": 2, "world_size": 2}, "rank"),
    ],
)
def test_bad_arguments(options: dict, match: str) -> None:
    """Missing or empty folders, bad resolutions, channels and indices raise clear errors."""
    with pytest.raises(ValueError, match=match):
        infinite_loader(Numbers(4), **options)


def test_an_empty_data_set_is_rejected() -> None:
    """An empty data set is a ValueError."""
    with pytest.raises(ValueError, match="empty"):
        infinite_loader(Numbers(0), 2)
