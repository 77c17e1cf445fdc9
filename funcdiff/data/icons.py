"""The built-in ``icons`` data set: vector glyphs with exact ground truth at every resolution that divides 512."""

import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import final

import numpy as np
from beartype import beartype
from jaxtyping import jaxtyped
from torch.utils.data import Dataset

from funcdiff._typing import Float, Tensor
from funcdiff.data.glyphs import MASTER, GlyphSource, find_glyphs, render_masters
from funcdiff.data.pixels import box_sums, sums_to_field
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.1
"""The share of glyphs held out; the split is fixed (seed 0), so every run holds out the same glyphs."""


def default_cache_dir() -> Path:
    """Where funcdiff caches derived data: ``$FUNCDIFF_CACHE``, else ``~/.cache/funcdiff``."""
    return Path(os.environ.get("FUNCDIFF_CACHE") or Path.home() / ".cache" / "funcdiff")


@register("icons")
@final
class IconDataset(Dataset):
    """Vector icons as grey fields ``(1, r, r)`` in ``[-1, 1]``: glyph +1 (white) on background -1 (black).

    Each field is the exact box-average of a 512 px master rendered by Pillow, so the data at resolution ``r``
    is the 2 x 2 box-average of the data at ``2r``. Block sums are cached as integers per glyph set and
    resolution in ``<cache_dir>/icons/<set>-r<resolution>.npz``; glyphs missing from the cache are rendered
    and added to it.

    Args:
        resolution: the side in pixels; must divide 512.
        split: "train" (about 90 % of the glyphs) or "test" (the rest), by a fixed hash of each glyph.
        limit: use only the first ``limit`` glyphs of the split (quick demos and tests).
        source: "mdi6" (Material Design Icons 6 from the qtawesome wheel, 7,367 glyphs), "latin" (letters and
            digits in the DejaVu faces), or None: MDI6 when installed, else Latin with a logged warning.
        cache_dir: the cache root; default `default_cache_dir`.
        progress: show a progress bar while rendering; None shows one only on a terminal.
    """

    def __init__(
        self,
        *,
        resolution: int,
        split: Split = "train",
        limit: int | None = None,
        source: GlyphSource | None = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1 or MASTER % resolution:
            raise ValueError(f"resolution must be a positive divisor of {MASTER}, got {resolution!r}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")
        self.glyph_set = find_glyphs(source)
        keys = [self.glyph_set.key(i) for i in range(len(self.glyph_set.glyphs))]
        chosen = split_indices(keys, split, fraction=TEST_FRACTION, seed=0)[:limit]
        self.keys = [keys[i] for i in chosen]
        self.shape = (1, resolution, resolution)
        self.factor = MASTER // resolution
        root = default_cache_dir() if cache_dir is None else Path(cache_dir)
        self.cache_path = root / "icons" / f"{self.glyph_set.name}-r{resolution}.npz"
        self._sums = self._load(chosen, progress)

    def _load(self, chosen: list[int], progress: bool | None) -> np.ndarray:
        """Block sums of the chosen glyphs: read from the cache, rendering (and caching) whatever is missing."""
        index = dict(zip(self.keys, chosen, strict=True))

        def render(keys: list[str]) -> np.ndarray:
            masters = render_masters(self.glyph_set, [index[key] for key in keys], progress=progress)
            return np.stack([box_sums(m, self.factor) for m in masters])

        return cached_rows(self.cache_path, self.keys, render, what="icon")

    def __len__(self) -> int:
        """The number of glyphs."""
        return len(self.keys)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "1 r r"]:
        """Glyph ``index`` as a grey field in ``[-1, 1]``."""
        return sums_to_field(self._sums[index], self.factor)[None]


def cached_rows(
    path: Path, keys: Sequence[str], render: Callable[[list[str]], np.ndarray], *, what: str, compress: bool = True
) -> np.ndarray:
    """The cached rows (integer block sums, or audio masters) of ``keys``, rendering and caching the missing ones.

    Args:
        path: the cache, an ``.npz`` of "keys" and their rows "sums".
        keys: the items wanted, in the order wanted.
        render: makes the rows of the keys it is given, stacked in their order.
        what: names the data in log messages ("icon": "ignoring unreadable icon cache ...").
        compress: compress the file (pays for sparse images; audio barely shrinks and is read 10x faster raw).
    """
    cached_keys, cached_sums = read_cache(path, what=what)
    row = {key: i for i, key in enumerate(cached_keys)}
    missing = [key for key in dict.fromkeys(keys) if key not in row]
    if missing:
        new_sums = render(missing)
        cached_keys = np.concatenate([cached_keys, missing]) if len(cached_keys) else np.array(missing)
        cached_sums = np.concatenate([cached_sums, new_sums]) if len(cached_sums) else new_sums
        write_cache(path, cached_keys, cached_sums, compress=compress)
        row = {key: i for i, key in enumerate(cached_keys)}
    return cached_sums[[row[key] for key in keys]]


def read_cache(path: Path, *, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Keys and rows cached at ``path``; empty arrays when absent or unreadable (with a warning)."""
    empty = (np.array([], dtype=str), np.array([]))
    if not path.exists():
        return empty
    try:
        with np.load(path) as cache:
            return cache["keys"], cache["sums"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        logger.warning("ignoring unreadable %s cache %s (%s); rendering again", what, path, error)
        return empty


def write_cache(path: Path, keys: np.ndarray, sums: np.ndarray, *, compress: bool = True) -> None:
    """Write keys and rows atomically (a temporary file, then a rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
        (np.savez_compressed if compress else np.savez)(f, keys=keys, sums=sums)
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)
    logger.info("cached %d items in %s", len(keys), path)
