"""Image inputs of the commands (`read_png`, `read_mask`): 16-bit PNGs at full precision, and files that claim more
pixels than `MAX_PIXELS` refused from their header with a one-line error naming the file."""

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from funcdiff.commands import main
from funcdiff.domains import io
from funcdiff.domains.io import read_png
from funcdiff.tasks.inpainting import read_mask
from tests.data.files import save_random_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, kind, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path: Path, pixels: np.ndarray, colour_type: int) -> None:
    """Write 16-bit ``pixels`` (``(h, w)`` grey or ``(h, w, 3)`` RGB) as a PNG by hand (Pillow writes no 16-bit RGB)."""
    h, w = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG at ``path`` whose header claims ``width`` x ``height`` pixels (IHDR patched, its CRC fixed)."""
    save_random_image(path, (2, 2), mode="L")
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_a_sixteen_bit_grey_png_reads_at_full_precision(tmp_path: Path) -> None:
    """A 16-bit grey gradient (Pillow's mode "I;16") reads back to within float32 rounding, as grey and as RGB."""
    levels = np.linspace(0, 65535, 24 * 32).round().astype(np.uint16).reshape(24, 32)
    Image.fromarray(levels).save(tmp_path / "ramp.png")
    with Image.open(tmp_path / "ramp.png") as image:
        assert image.mode == "I;16"
    expected = torch.from_numpy(levels.astype(np.float64) / 32767.5 - 1)
    grey = read_png(tmp_path / "ramp.png", channels=1)
    assert grey.shape == (1, 24, 32) and grey.dtype == torch.float32
    assert (grey[0].double() - expected).abs().max() < 1e-6 and grey.min() == -1 and grey.max() == 1
    rgb = read_png(tmp_path / "ramp.png")
    assert rgb.shape == (3, 24, 32) and all(torch.equal(plane, grey[0]) for plane in rgb)


def test_a_sixteen_bit_rgb_png_reads_at_the_eight_bits_pillow_keeps(tmp_path: Path) -> None:
    """Pillow opens a 16-bit RGB PNG as 8-bit RGB (each level's high byte): no collapse, 8-bit precision."""
    levels = np.random.default_rng(0).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    write_png16(tmp_path / "rgb16.png", levels, colour_type=2)
    x = read_png(tmp_path / "rgb16.png")
    assert torch.equal(x, torch.from_numpy((levels >> 8).transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1)


def test_a_sixteen_bit_mask_is_made_binary_at_half_grey(tmp_path: Path) -> None:
    """A 16-bit mask whose left half is just below half grey and right half just above reads 0 on the left, 1 on the right."""
    levels = np.full((8, 8), 32768, dtype=np.uint16)
    levels[:, :4] = 32767
    Image.fromarray(levels).save(tmp_path / "mask16.png")
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., 4:] = 1
    assert torch.equal(read_mask(tmp_path / "mask16.png", (8, 8)), expected)


SIZES = [(60000, 60000), (10000, 8000), (12000, 12000)]
"""Claimed sizes: past Pillow's own error, past `MAX_PIXELS` only, and past Pillow's warning (not its error)."""


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_images_claiming_too_many_pixels_are_refused_from_the_header(tmp_path: Path, width: int, height: int) -> None:
    """`read_png` and `read_mask` raise one ValueError naming the file and its claimed size, without decoding it."""
    bomb = claiming(tmp_path / "bomb.png", width, height)
    claimed = f"{width} x {height}" if width * height < Image.MAX_IMAGE_PIXELS else str(width * height)
    for read in (lambda: read_png(bomb), lambda: read_png(bomb, channels=1), lambda: read_mask(bomb, (8, 8))):
        with pytest.raises(ValueError, match=f"^{re.escape(str(bomb))}: .*{claimed}") as error:
            read()
        assert "\n" not in str(error.value)


def test_the_pixel_limit_is_below_pillows_and_the_claimed_sizes_exceed_it(tmp_path: Path) -> None:
    """`MAX_PIXELS` is the limit that applies (under Pillow's warning), every size above is past it, and an ordinary
    image still reads."""
    assert all(width * height > io.MAX_PIXELS for width, height in SIZES) and io.MAX_PIXELS < Image.MAX_IMAGE_PIXELS
    save_random_image(tmp_path / "small.png", (2, 2))
    assert read_png(tmp_path / "small.png").shape == (3, 2, 2)


def test_eval_of_a_samples_folder_with_a_bomb_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``funcdiff eval --samples`` (which reads the images before anything else heavy) exits 1 with one line naming
    the file, not a traceback."""
    monkeypatch.setenv("FUNCDIFF_FOLDER_CACHE", "0")
    data = tmp_path / "data"
    for i in range(20):
        save_random_image(data / f"{i}.png", (8, 8), seed=i)
    bomb = claiming(tmp_path / "samples" / "0000.png", 60000, 60000)
    assert main(["eval", "--samples", str(bomb.parent), "--data", str(data), "--out-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err  # the error follows the unfinished progress bar on its line
    assert err.count("funcdiff: error: ") == 1 and "Traceback" not in err
    line = err[err.index("funcdiff: error: "):].splitlines()[0]
    assert line.startswith(f"funcdiff: error: {bomb}: ") and "3600000000 pixels" in line
