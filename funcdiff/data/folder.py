"""Image folders (CelebA-HQ or any tree of PNG/JPEG files of any size) as fields at a training resolution."""

import logging
import os
import re
from bisect import bisect_right
from pathlib import Path
from typing import final

import numpy as np
import PIL
import torch
from beartype import beartype
from jaxtyping import UInt, jaxtyped
from numpy.lib.format import open_memmap
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from funcdiff._typing import Float, Tensor
from funcdiff.data.array_cache import cached_array, digest, files_key
from funcdiff.data.icons import default_cache_dir
from funcdiff.data.split import Split, split_indices
from funcdiff.domains.io import SIXTEEN_BIT, sixteen_bit_levels
from funcdiff.registry import register

logger = logging.getLogger(__name__)

EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
"""What Pillow raises on a corrupt, truncated or hostile file."""

CACHE_FORMAT = 1
"""Part of every cache key: bump it when decoding changes, so that older caches are decoded again."""

LEVELS = 65535
"""Decoded images are 16-bit levels: an 8-bit source's level ``k`` is ``257 k``, so both kinds keep every value."""

_FIELD = (np.arange(LEVELS + 1) / LEVELS * 2 - 1).astype(np.float32)
"""The field value of each level, correctly rounded (exactly -1 and 1 at the ends)."""


@register("folder")
@final
class ImageFolder(Dataset):
    """Every image below ``root`` (recursive), resized on its shorter side and centre-cropped to ``resolution``.

    Each image is decoded and resized at its own bit depth (8 bits by Pillow, 16-bit grey in floating point) once; the
    results are cached on disk (``cache``) as one memory-mapped array per folder, split and shape, so that later
    epochs and later runs only read them: ``uint8`` when every source has 8 bits, else ``uint16``. The cache lives
    in ``<cache_dir>/folders/`` and is keyed by the file names, sizes and modification times (and Pillow's
    version): a changed folder is decoded again. Cached and decoded images are the same, bit for bit.

    Files that are not images or fail ``verify()`` are skipped when indexing; a file that still fails to
    decode when loaded is skipped then, and the next image is returned instead (the cache stores that image in
    its place). Both are logged as warnings and listed in `skipped` (load-time skips only in the process that hit
    them, e.g. a DataLoader worker, or the one that built the cache).

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
        progress: show progress bars while indexing and caching; None shows them only on a terminal.
        cache: keep the decoded images on disk; None: yes unless the environment variable
            ``FUNCDIFF_FOLDER_CACHE`` is ``0``. A cache that cannot be written (read-only or full disk) is
            skipped with a warning.
        cache_dir: the cache root; default `default_cache_dir` (``$FUNCDIFF_CACHE`` or ``~/.cache/funcdiff``).
        workers: processes that decode while building the cache; None: one per available CPU for large folders.

    Attributes:
        paths: the image files of the split, in order.
        shape: ``(channels, height, width)``.
        skipped: the unreadable files met so far.
        cache_path: the cache file in use; None when decoding every time.
        vocabulary: with one subfolder of ``root`` per class, ``{"class": their names, sorted}``; None where images
            lie directly in ``root`` (`funcdiff.data.labelled`).
        label_rows: then each item's class ``(n, 1)`` (a mirrored copy's is its image's); else None.
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
        cache: bool | None = None,
        cache_dir: str | Path | None = None,
        workers: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"resolution must be a positive int or a (height, width) pair, got {resolution!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0 or None, got {workers}")
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
        self.vocabulary, self.label_rows = _class_labels(self.root, paths, self.paths, 2 if flip else 1)
        self.cache_path: Path | None = None
        self._levels: np.ndarray | None = None
        if cache if cache is not None else os.environ.get("FUNCDIFF_FOLDER_CACHE", "1") != "0":
            root_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
            name = re.sub(r"[^\w.-]", "_", self.root.resolve().name)[:40]
            selection = digest(str(self.root.resolve()), self.shape, split, test_fraction, seed)[:12]
            entry = root_dir / "folders" / f"{name}-{split}-{'x'.join(map(str, self.shape))}-{selection}"
            self._open_cache(entry, workers, progress)

    def _open_cache(self, entry: Path, workers: int | None, progress: bool | None) -> None:
        """Map the cache in ``entry``, decoding every image into it first if it is missing or stale."""
        key = files_key(self.root, self.paths, CACHE_FORMAT, PIL.__version__, self.shape)[:32]
        expected = (len(self.paths), *self.shape)

        def build(path: Path) -> bool:
            return self._write_levels(path, _build_workers(workers, len(self.paths)), progress)

        try:
            self._levels = cached_array(entry, key, build, check=lambda a: a.shape == expected and a.dtype in (np.uint8, np.uint16))
        except OSError as error:
            logger.warning("cannot cache %s in %s (%s); decoding every image every time", self.root, entry, error)
        self.cache_path = None if self._levels is None else entry / f"{key}.npy"

    def _write_levels(self, path: Path, workers: int, progress: bool | None) -> bool:
        """Decode every image into an ``.npy`` file at ``path`` (`uint8` unless a level needs 16 bits); False when
        no image can be read. An unreadable image's row holds the next readable one, as `__getitem__` would return."""
        count = len(self.paths)
        logger.info("decoding %d images of %s once into the cache %s (%d workers)", count, self.root, path.parent, workers)
        rows = open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, *self.shape))
        loader = DataLoader(_Decoded(self), batch_size=8, num_workers=workers, collate_fn=list)
        bar = tqdm(total=count, desc=f"caching {self.root} at {self.shape[1]}x{self.shape[2]}", unit="image",
                   disable=None if progress is None else not progress)
        readable = []
        for index, (levels, error) in enumerate(item for batch in loader for item in batch):
            if levels is None:
                self._skip(self.paths[index], error)
            else:
                if rows.dtype == np.uint8 and (levels % 257).any():
                    rows = _widen(rows, path, index)
                rows[index] = levels // 257 if rows.dtype == np.uint8 else levels
                readable.append(index)
            bar.update()
        bar.close()
        if not readable:
            return False
        for index in sorted(set(range(count)) - set(readable)):
            rows[index] = rows[readable[bisect_right(readable, index) % len(readable)]]
        rows.flush()
        logger.info("cached %d images of %s in %s (%.1f MB)", count, self.root, path.parent, rows.nbytes / 1e6)
        return True

    def _readable(self, path: Path) -> bool:
        """Whether Pillow can parse ``path``; if not, log it and add it to `skipped`."""
        try:
            with Image.open(path) as image:
                image.verify()
        except UNREADABLE as error:
            self._skip(path, error)
            return False
        return True

    def _skip(self, path: Path, error: BaseException | str) -> None:
        """Log an unreadable file and remember it (once)."""
        if path not in self.skipped:
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
        mirrored, first = divmod(index % len(self), len(self.paths))
        levels = self._decode(first) if self._levels is None else self._levels[first]
        return torch.from_numpy(_field(levels[..., ::-1] if mirrored else levels))

    def _decode(self, first: int) -> UInt[np.ndarray, "c h w"]:
        """The levels of image ``first``, or of the next image that can be read (skipping and reporting the others)."""
        count = len(self.paths)
        for step in range(count):
            path = self.paths[(first + step) % count]
            try:
                return self._load(path)
            except UNREADABLE as error:
                self._skip(path, error)
        raise RuntimeError(f"none of the {count} images in {self.root} could be read")

    def _load(self, path: Path) -> UInt[np.ndarray, "c h w"]:
        """Decode, crop to the target aspect ratio about the centre, and resize (box filter when shrinking), as 16-bit
        levels: 8-bit sources are resized by Pillow in 8 bits, 16-bit grey ones in floating point and rounded."""
        channels = self.shape[0]
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT:
                grey = sixteen_bit_levels(image) / LEVELS
                plane = np.clip(np.asarray(self._resized(Image.fromarray(grey))), 0, 1)  # bicubic overshoots
                return np.rint(plane * LEVELS).astype(np.uint16)[None].repeat(channels, axis=0)
            resized = np.asarray(self._resized(_eight_bit(image, channels)))
        levels = resized[None] if channels == 1 else resized.transpose(2, 0, 1)
        return levels.astype(np.uint16) * np.uint16(LEVELS // 255)

    def _resized(self, image: Image.Image) -> Image.Image:
        """``image``'s centre crop of the target aspect ratio at the target size (box filter shrinking, else bicubic)."""
        _, height, width = self.shape
        w, h = image.size
        crop_w, crop_h = min(w, h * width / height), min(h, w * height / width)
        box = ((w - crop_w) / 2, (h - crop_h) / 2, (w + crop_w) / 2, (h + crop_h) / 2)
        resample = Image.Resampling.BOX if crop_w >= width else Image.Resampling.BICUBIC
        return image.resize((width, height), resample, box=box)

    def __getstate__(self) -> dict:
        """The state without the memory map (DataLoader workers started by spawning map the file again)."""
        return {**self.__dict__, "_levels": None}

    def __setstate__(self, state: dict) -> None:
        """Restore the state, mapping the cache file again."""
        self.__dict__.update(state)
        if self.cache_path is not None:
            self._levels = np.load(self.cache_path, mmap_mode="r", allow_pickle=False)


@final
class _Decoded(Dataset):
    """An image folder's decoded levels, and the error when a file cannot be read (what the cache is built from)."""

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        """The number of files."""
        return len(self.folder.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, str | None]:
        """Levels of file ``index`` and None, or None and why it cannot be read."""
        try:
            return self.folder._load(self.folder.paths[index]), None
        except UNREADABLE as error:
            return None, str(error)


def _field(levels: UInt[np.ndarray, "c h w"]) -> Float[np.ndarray, "c h w"]:
    """Levels (``uint16``, or ``uint8`` standing for ``257`` times theirs) as a float32 field in ``[-1, 1]``."""
    table = _FIELD[:: LEVELS // 255] if levels.dtype == np.uint8 else _FIELD
    return table[levels]


def _widen(rows: np.ndarray, path: Path, filled: int) -> np.ndarray:
    """The ``uint8`` rows of the ``.npy`` file at ``path`` rewritten as ``uint16`` levels (the first ``filled`` copied)."""
    wide_path = path.with_name(path.stem + "-wide.npy")
    wide = open_memmap(wide_path, mode="w+", dtype=np.uint16, shape=rows.shape)
    for start in range(0, filled, 256):
        stop = min(start + 256, filled)
        wide[start:stop] = rows[start:stop].astype(np.uint16) * 257
    os.replace(wide_path, path)
    return wide


def _build_workers(workers: int | None, count: int) -> int:
    """Decoding processes for building a cache of ``count`` images: as asked, else one per CPU when it pays."""
    if workers is not None:
        return workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, count // 64) if cpus > 1 else 0


def _eight_bit(image: Image.Image, channels: int) -> Image.Image:
    """The image in Pillow's "L" (``channels`` 1) or "RGB" mode, transparency composited over white."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _class_labels(root: Path, every: list[Path], chosen: list[Path], copies: int) -> tuple[dict | None, np.ndarray | None]:
    """``({"class": names}, rows)`` from the first folder below ``root`` of each image (names from ``every`` image, so
    both splits agree; rows for ``chosen``, repeated ``copies`` times); ``(None, None)`` if any image lies in ``root``."""
    first = [p.relative_to(root).parts for p in every]
    if any(len(parts) < 2 for parts in first):
        return None, None
    names = tuple(sorted({parts[0] for parts in first}))
    rows = np.array([names.index(p.relative_to(root).parts[0]) for p in chosen] * copies, dtype=np.int64)[:, None]
    return {"class": names}, rows
