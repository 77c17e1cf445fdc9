"""Image folders (CelebA-HQ or any tree of PNG/JPEG files of any size) as fields at a training resolution."""

import logging
from pathlib import Path
from typing import final

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from funcdiff._typing import Float, Tensor
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

logger = logging.getLogger(__name__)

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises on a corrupt, truncated or hostile file."""


@register("folder")
@final
class ImageFolder(Dataset):
    """Every image below ``root`` (recursive), resized on its shorter side and centre-cropped to ``resolution``.

    Files that are not images or fail ``verify()`` are skipped when indexing; a file that still fails to
    decode when loaded is skipped then, and the next image is returned instead. Both are logged as warnings
    and listed in `skipped` (load-time skips only in the process that hit them, e.g. a DataLoader worker).

    Horizontal flips double the data set, as in EDM's ``--xflip``: index ``i + n`` is image ``i`` mirrored, so
    flips are random exactly when the sampler's order is, deterministic under its seed and safe in workers.

    Args:
        root: the folder; images in subfolders count too.
        resolution: the side of a square crop, or ``(height, width)``.
        channels: 3 (RGB) or 1 (grey).
        split: "train" or "test" (the held-out ``test_fraction``), by a seeded hash of each relative path.
        test_fraction: the share of images held out, in ``[0, 1)``.
        seed: the seed of the split.
        flip: add horizontally mirrored copies.
        verify: check every file with Pillow's ``verify()`` when indexing (reads each file once).
        progress: show a progress bar while indexing; None shows one only on a terminal.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        resolution: int | tuple[int, int],
        channels: int = 3,
        split: Split = "train",
        test_fraction: float = 0.1,
        seed: int = 0,
        flip: bool = False,
        verify: bool = True,
        progress: bool | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"resolution must be a positive int or a (height, width) pair, got {resolution!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.shape = (channels, *size)
        self.flip = flip
        self.skipped: list[Path] = []
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if verify:
            bar = tqdm(paths, desc=f"checking {self.root}", unit="file", disable=None if progress is None else not progress)
            paths = [p for p in bar if self._readable(p)]
        keys = [p.relative_to(self.root).as_posix() for p in paths]
        self.paths = [paths[i] for i in split_indices(keys, split, fraction=test_fraction, seed=seed)]
        if not self.paths:
            raise ValueError(f"no readable images in the {split!r} split of {self.root} (extensions {sorted(EXTENSIONS)})")

    def _readable(self, path: Path) -> bool:
        """Whether Pillow can parse ``path``; if not, log it and add it to `skipped`."""
        try:
            with Image.open(path) as image:
                image.verify()
        except UNREADABLE as error:
            self._skip(path, error)
            return False
        return True

    def _skip(self, path: Path, error: BaseException) -> None:
        """Log an unreadable file and remember it."""
        logger.warning("skipping unreadable image %s: %s", path, error)
        self.skipped.append(path)

    def __len__(self) -> int:
        """The number of images, twice the number of files when flipping."""
        return len(self.paths) * (2 if self.flip else 1)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "c h w"]:
        """Image ``index`` (mirrored if ``index >= len(paths)``) as a field in ``[-1, 1]``.

        Raises:
            IndexError: if ``index`` is out of range.
            RuntimeError: if no file can be read any more.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        count = len(self.paths)
        mirrored, first = divmod(index % len(self), count)
        for step in range(count):
            path = self.paths[(first + step) % count]
            try:
                array = self._load(path)
            except UNREADABLE as error:
                self._skip(path, error)
                continue
            return torch.from_numpy(array[..., ::-1].copy() if mirrored else array)
        raise RuntimeError(f"none of the {count} images in {self.root} could be read")

    def _load(self, path: Path) -> np.ndarray:
        """Decode, crop to the target aspect ratio about the centre, and resize (box filter when shrinking)."""
        channels, height, width = self.shape
        with Image.open(path) as image:
            planes = _planes(image, channels)
        w, h = planes[0].size
        crop_w, crop_h = min(w, h * width / height), min(h, w * height / width)
        box = ((w - crop_w) / 2, (h - crop_h) / 2, (w + crop_w) / 2, (h + crop_h) / 2)
        resample = Image.Resampling.BOX if crop_w >= width else Image.Resampling.BICUBIC
        planes = [np.clip(np.asarray(p.resize((width, height), resample, box=box)), 0, 1) for p in planes]  # bicubic overshoots
        return (np.stack(planes) * 2 - 1).astype(np.float32)


def _planes(image: Image.Image, channels: int) -> list[Image.Image]:
    """The image as ``channels`` float planes in [0, 1]: 16-bit grey (Pillow's "I;16", or "I" from older versions)
    scaled by 65535, transparency composited over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image).astype(np.float32) / 65535
        return [Image.fromarray(np.clip(grey, 0, 1), mode="F")] * channels
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255
    array = array[..., None] if channels == 1 else array
    return [Image.fromarray(np.ascontiguousarray(array[..., c]), mode="F") for c in range(channels)]
