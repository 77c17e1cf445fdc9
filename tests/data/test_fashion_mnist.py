"""Fashion-MNIST: a clear error when absent, exact loading of IDX files, the real files when installed."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from funcdiff.data import CLASSES, DatasetNotFoundError, FashionMNIST, read_idx
from funcdiff.data.fashion_mnist import DEFAULT_ROOT
from funcdiff.domains import box_average


def test_absent_files_raise_an_error_that_says_how_to_install(tmp_path: Path) -> None:
    """Missing files raise a FileNotFoundError subclass that names them and the apt-get command."""
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y dataset-fashion-mnist") as error:
        FashionMNIST(root=tmp_path)
    assert isinstance(error.value, FileNotFoundError)
    assert "train-images-idx3-ubyte.gz" in str(error.value)


def test_fake_files_load_exactly(fashion_root: Path) -> None:
    """Pixels map to [-1, 1] exactly, splits and labels come as shipped."""
    train = FashionMNIST(root=fashion_root)
    test = FashionMNIST(root=fashion_root, split="test")
    assert (len(train), len(test)) == (6, 4)
    assert train.shape == (1, 28, 28)
    pixels = read_idx(fashion_root / "train-images-idx3-ubyte.gz")
    expected = torch.from_numpy(pixels[2].astype(np.float32) / 127.5 - 1)[None]
    torch.testing.assert_close(train[2], expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(test.labels, np.arange(4))


def test_fourteen_pixels_is_the_box_average_of_twenty_eight(fashion_root: Path) -> None:
    """Resolution 14 is the exact 2 x 2 box-average of resolution 28."""
    full = torch.stack([x for x in FashionMNIST(root=fashion_root)])
    half = torch.stack([x for x in FashionMNIST(root=fashion_root, resolution=14)])
    assert half.shape == (6, 1, 14, 14)
    torch.testing.assert_close(half, box_average(full, 2), atol=1e-6, rtol=0)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    """A wrong magic number or a short payload is a ValueError."""
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01"))
    with pytest.raises(ValueError, match="unsigned bytes"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abc"))
    with pytest.raises(ValueError, match="holds 3 bytes"):
        read_idx(tmp_path / "short.gz")


def test_resolution_must_be_28_or_14(fashion_root: Path) -> None:
    """Other resolutions are a ValueError naming resolution."""
    with pytest.raises(ValueError, match="resolution"):
        FashionMNIST(root=fashion_root, resolution=32)


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="apt-get install -y dataset-fashion-mnist")
def test_the_real_files_when_installed() -> None:
    """Debian's files load with the shipped sizes and balanced test classes."""
    train, test = FashionMNIST(resolution=14), FashionMNIST(split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train[0].shape == (1, 14, 14) and test[0].shape == (1, 28, 28)
    assert test[0].min() >= -1 and test[0].max() <= 1
    assert np.bincount(test.labels).tolist() == [1000] * len(CLASSES)


def test_the_classes_label_the_images(fashion_root: Path) -> None:
    """`labelled` pairs each image with its class, named by `CLASSES`."""
    from funcdiff.data.labels import labelled

    data = labelled(FashionMNIST(root=fashion_root, split="test"))
    assert data.vocabulary == {"class": CLASSES}
    image, label = data[3]
    assert torch.equal(image, FashionMNIST(root=fashion_root, split="test")[3]) and label.tolist() == [3]
