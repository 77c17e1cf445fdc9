"""Fashion-MNIST (Zalando, MIT) from Debian's ``dataset-fashion-mnist`` files, with a pure-numpy IDX reader."""

import gzip
from pathlib import Path
from typing import final

import numpy as np
from beartype import beartype
from jaxtyping import jaxtyped
from torch.utils.data import Dataset

from funcdiff._typing import Float, Tensor
from funcdiff.data.pixels import box_sums, sums_to_field
from funcdiff.data.split import SPLITS, Split
from funcdiff.registry import register

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are absent; the message says how to install them."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the MNIST format) as an array of its declared shape.

    Raises:
        ValueError: if the header is not that of an unsigned-byte IDX file or the data do not fill the shape.
    """
    data = gzip.decompress(Path(path).read_bytes())
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header declares shape {shape} but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


@register("fashion-mnist")
@final
class FashionMNIST(Dataset):
    """Fashion-MNIST as grey fields ``(1, r, r)`` in ``[-1, 1]`` (ink +1), at 28 px or box-averaged to 14 px.

    Args:
        resolution: 28 (as shipped) or 14 (2 x 2 box-average).
        split: "train" (60,000 images) or "test" (10,000), as shipped.
        root: the folder holding the four IDX ``.gz`` files; default ``/usr/share/datasets/fashion-mnist``.

    Attributes:
        labels: the class of each image, an index into `CLASSES`.
        vocabulary: ``{"class": CLASSES}``, the labels' names (`funcdiff.data.labelled`).
        label_rows: ``labels`` as a column ``(n, 1)``.

    Raises:
        DatasetNotFoundError: if the files are absent (install: ``apt-get install -y dataset-fashion-mnist``).
    """

    def __init__(self, *, resolution: int = 28, split: Split = "train", root: str | Path | None = None) -> None:
        if resolution not in (28, 14):
            raise ValueError(f"resolution must be 28 or 14 for fashion-mnist, got {resolution!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = DEFAULT_ROOT if root is None else Path(root)
        images_file, labels_file = (root / name for name in FILES[split])
        absent = [str(p) for p in (images_file, labels_file) if not p.is_file()]
        if absent:
            raise DatasetNotFoundError(
                f"Fashion-MNIST files not found: {', '.join(absent)}. Install them with "
                f"`apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or pass root= a folder holding {FILES[split]}."
            )
        images = read_idx(images_file)
        self.labels = read_idx(labels_file).astype(np.int64)
        self.vocabulary, self.label_rows = {"class": CLASSES}, self.labels[:, None]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(self.labels):
            raise ValueError(f"{root}: expected (n, 28, 28) images and n labels, got {images.shape} and {self.labels.shape}")
        self.factor = 28 // resolution
        self.shape = (1, resolution, resolution)
        self._sums = box_sums(images, self.factor)

    def __len__(self) -> int:
        """The number of images."""
        return len(self._sums)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "1 r r"]:
        """Image ``index`` as a grey field in ``[-1, 1]``."""
        return sums_to_field(self._sums[index], self.factor)[None]
