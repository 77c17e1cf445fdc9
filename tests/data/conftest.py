"""Fixtures for the data tests: fake Fashion-MNIST files and a small tree of images."""

import gzip
from collections.abc import Iterator
from pathlib import Path

import jaxtyping
import numpy as np
import pytest
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file, the MNIST format."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """A folder with tiny fake Fashion-MNIST files: 6 train and 4 test images with random pixels."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    return tmp_path


def save_random_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    """Save an image of ``size`` (width, height) with random pixels, creating folders as needed."""
    channels = {"RGB": (3,), "L": ()}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """Three readable images of different sizes in nested folders, one corrupt PNG, and a text file."""
    root = tmp_path / "images"
    save_random_image(root / "a.png", (40, 30))
    save_random_image(root / "sub" / "deep" / "b.jpg", (20, 50), seed=1)
    save_random_image(root / "sub" / "c.png", (16, 16), mode="L", seed=2)
    (root / "bad.png").write_bytes(b"\x89PNG not really")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def unchecked() -> Iterator[None]:
    """Turn jaxtyping's checks off, as outside the tests, to reach the explicit ValueErrors behind ``Literal`` options."""
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)
