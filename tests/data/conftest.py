"""Fixtures for the data tests: fake Fashion-MNIST files and a small tree of images."""

from collections.abc import Iterator
from pathlib import Path

import jaxtyping
import numpy as np
import pytest

from tests.data.files import save_random_image, write_idx


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    """A folder with tiny fake Fashion-MNIST files: 6 train and 4 test images with random pixels."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    return tmp_path


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
