"""Glyphs from vector fonts rendered by Pillow as 512 px masters: icons from qtawesome's MDI6 font, or Latin fallbacks."""

import importlib.util
import json
import logging
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
from jaxtyping import UInt8
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

logger = logging.getLogger(__name__)

MASTER = 512
"""Side of the master rendering in pixels; every resolution that divides it is an exact box-average of it."""

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
GlyphSource: TypeAlias = Literal["mdi6", "latin"]


@dataclass(frozen=True)
class GlyphSet:
    """Glyphs to render: font files, ``(font index, codepoint)`` pairs, and the font size that fits a glyph in the master.

    Attributes:
        name: names the set in cache files, with its version.
        fonts: TrueType files; ``None`` stands for Pillow's built-in scalable font.
        glyphs: each glyph as the index of its font and its codepoint, sorted.
        size: the font size in pixels used for the master.
    """

    name: str
    fonts: tuple[Path | None, ...]
    glyphs: tuple[tuple[int, int], ...]
    size: int

    def key(self, i: int) -> str:
        """A stable name for glyph ``i``: its font's file stem and its codepoint."""
        font, codepoint = self.glyphs[i]
        path = self.fonts[font]
        return f"{'default' if path is None else path.stem}:{codepoint:x}"


def mdi6_glyphs() -> GlyphSet | None:
    """The 7,367 Material Design Icons 6 glyphs shipped in the qtawesome wheel, or ``None`` when absent.

    The font is found without importing qtawesome, which would need Qt.
    """
    spec = importlib.util.find_spec("qtawesome")
    if spec is None or spec.origin is None:
        return None
    fonts = Path(spec.origin).parent / "fonts"
    ttfs = sorted(fonts.glob("materialdesignicons6-webfont-*.ttf"))
    charmaps = sorted(fonts.glob("materialdesignicons6-webfont-charmap-*.json"))
    if not ttfs or not charmaps:
        return None
    codepoints = sorted({int(code, 16) for code in json.loads(charmaps[-1].read_text()).values()})
    return GlyphSet(name=ttfs[-1].stem, fonts=(ttfs[-1],), glyphs=tuple((0, c) for c in codepoints), size=MASTER)


def latin_glyphs() -> GlyphSet:
    """Letters and digits in every DejaVu face installed, or in Pillow's built-in font when there is none."""
    faces: tuple[Path | None, ...] = tuple(sorted(DEJAVU_DIR.glob("*.ttf"))) or (None,)
    chars = string.ascii_letters + string.digits
    glyphs = tuple((f, ord(ch)) for f in range(len(faces)) for ch in chars)
    name = "latin-dejavu" if faces[0] is not None else "latin-default"
    return GlyphSet(name=name, fonts=faces, glyphs=glyphs, size=MASTER * 5 // 8)


def find_glyphs(source: GlyphSource | None) -> GlyphSet:
    """The glyph set for ``source``; ``None`` picks MDI6 when qtawesome is installed and else Latin, with a warning.

    Raises:
        ValueError: if ``source`` is not "mdi6", "latin" or None.
        FileNotFoundError: if "mdi6" is asked for and qtawesome's fonts are absent.
    """
    if source not in ("mdi6", "latin", None):
        raise ValueError(f"source must be 'mdi6', 'latin' or None, got {source!r}")
    if source == "latin":
        return latin_glyphs()
    icons = mdi6_glyphs()
    if icons is not None:
        return icons
    if source == "mdi6":
        raise FileNotFoundError("the MDI6 icon font ships in the qtawesome wheel: pip install qtawesome")
    logger.warning("qtawesome's icon fonts are absent (pip install qtawesome); falling back to Latin glyphs")
    return latin_glyphs()


def render_masters(
    glyph_set: GlyphSet, indices: Sequence[int], *, progress: bool | None = None
) -> Iterator[UInt8[np.ndarray, "512 512"]]:
    """Render each glyph in ``indices`` white (255) on black (0), centred, as a ``MASTER x MASTER`` 8-bit image.

    Args:
        glyph_set: the fonts and glyphs.
        indices: positions in ``glyph_set.glyphs``.
        progress: show a tqdm bar; ``None`` shows one only on a terminal.
    """
    fonts: dict[int, ImageFont.FreeTypeFont] = {}
    for i in tqdm(indices, desc=f"rendering {glyph_set.name}", unit="glyph", disable=None if progress is None else not progress):
        font_index, codepoint = glyph_set.glyphs[i]
        if font_index not in fonts:
            path = glyph_set.fonts[font_index]
            size = glyph_set.size
            fonts[font_index] = ImageFont.load_default(size=size) if path is None else ImageFont.truetype(str(path), size=size)
        image = Image.new("L", (MASTER, MASTER), 0)
        ImageDraw.Draw(image).text((MASTER / 2, MASTER / 2), chr(codepoint), fill=255, font=fonts[font_index], anchor="mm")
        yield np.asarray(image)
