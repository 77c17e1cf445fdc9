"""Data sets by name for the command line: "icons", "fashion-mnist", or the path of an image folder."""

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from funcdiff.data.fashion_mnist import FashionMNIST
from funcdiff.data.folder import ImageFolder
from funcdiff.data.icons import IconDataset
from funcdiff.data.split import Split

NAMES = ("icons", "fashion-mnist")


def make_dataset(
    name_or_path: str | Path, *, resolution: int | tuple[int, int], split: Split = "train", **options: Any
) -> Dataset:
    """The data set ``name_or_path`` at ``resolution``; ``options`` go to its constructor.

    Args:
        name_or_path: "icons" (`IconDataset`), "fashion-mnist" (`FashionMNIST`), or a folder of images (`ImageFolder`).
        resolution: the side in pixels (icons and fashion-mnist), or for folders also ``(height, width)``.
        split: "train" or "test".
        **options: further keyword arguments of the data set's class, e.g. ``limit`` or ``flip``.

    Raises:
        ValueError: if ``name_or_path`` is neither a known name nor an existing folder.
    """
    if name_or_path == "icons":
        return IconDataset(resolution=resolution, split=split, **options)
    if name_or_path == "fashion-mnist":
        return FashionMNIST(resolution=resolution, split=split, **options)
    if Path(name_or_path).is_dir():
        return ImageFolder(name_or_path, resolution=resolution, split=split, **options)
    raise ValueError(f"name_or_path must be one of {NAMES} or an existing folder of images, got {str(name_or_path)!r}")
