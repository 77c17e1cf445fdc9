"""make_dataset: names and folders dispatch to their data sets; anything else is a ValueError."""

from pathlib import Path

import pytest

from funcdiff.data import FashionMNIST, IconDataset, ImageFolder, make_dataset


def test_icons_by_name(tmp_path: Path) -> None:
    """'icons' makes an IconDataset with the options passed through."""
    dataset = make_dataset("icons", resolution=8, limit=2, cache_dir=tmp_path, progress=False)
    assert isinstance(dataset, IconDataset) and len(dataset) == 2 and dataset.shape == (1, 8, 8)


def test_fashion_mnist_by_name(fashion_root: Path) -> None:
    """'fashion-mnist' makes a FashionMNIST with the options passed through."""
    dataset = make_dataset("fashion-mnist", resolution=14, split="test", root=fashion_root)
    assert isinstance(dataset, FashionMNIST) and len(dataset) == 4 and dataset[0].shape == (1, 14, 14)


@pytest.mark.parametrize("as_path", [True, False])
def test_a_folder_by_path(image_tree: Path, as_path: bool) -> None:
    """An existing folder, as str or Path, makes an ImageFolder."""
    root = image_tree if as_path else str(image_tree)
    dataset = make_dataset(root, resolution=(4, 6), channels=1, test_fraction=0.0, progress=False)
    assert isinstance(dataset, ImageFolder) and dataset[0].shape == (1, 4, 6)


@pytest.mark.parametrize("name", ["cifar10", "no/such/folder"])
def test_unknown_names_raise(name: str) -> None:
    """Anything else is a ValueError naming name_or_path."""
    with pytest.raises(ValueError, match="name_or_path must be one of"):
        make_dataset(name, resolution=8)


def test_unknown_options_raise(tmp_path: Path) -> None:
    """An option the data set does not take is a TypeError naming it."""
    with pytest.raises(TypeError, match="flip"):
        make_dataset("icons", resolution=8, flip=True, cache_dir=tmp_path)
