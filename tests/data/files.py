"""Writers of small test files: IDX archives and random images."""

import gzip
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file, the MNIST format."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def save_random_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    """Save an image of ``size`` (width, height) with random pixels, creating folders as needed."""
    channels = {"RGB": (3,), "L": ()}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
