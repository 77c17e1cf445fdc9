"""Reading and writing examples: PNG images (d = 2) and WAV audio (d = 1), values in ``[-1, 1]``; picture grids."""

import math
import warnings
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from PIL import Image
from safetensors.torch import save_file

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.slices import volume_slices

MAX_PIXELS = 2**26
"""The most pixels (width x height, 8192 x 8192) an image file read here may claim, checked from its header before
decoding. It sits below Pillow's own decompression-bomb limit (a warning above ``Image.MAX_IMAGE_PIXELS``, 89.5 M
pixels by default, an error above twice that), so it is the one that applies; Pillow's, where lower, is refused
the same way. An RGB image at the limit is 768 MiB as float32."""

SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I"})
"""Pillow's modes of 16-bit grey images ("I" from older versions), read with all their levels."""


@jaxtyped(typechecker=beartype)
def write_png(x: Float[Tensor, "c h w"], path: str | Path) -> Path:
    """Write one image with values in ``[-1, 1]`` and 1 or 3 channels as an 8-bit PNG."""
    if x.shape[0] not in (1, 3):
        raise ValueError(f"an image must have 1 or 3 channels, got {x.shape[0]}")
    array = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """An image file opened by Pillow (header read, pixels not yet decoded), refused if it claims over `MAX_PIXELS`.

    Raises:
        ValueError: naming the file and its claimed size, if it is over `MAX_PIXELS` or Pillow's bomb limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"{path}: {str(error).rstrip('.')}; images of at most {MAX_PIXELS} pixels are read") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{path}: the image claims {width} x {height} pixels; images of at most {MAX_PIXELS} pixels are "
                             "read")
        yield image


def sixteen_bit_levels(image: Image.Image) -> Float[np.ndarray, "h w"]:
    """A 16-bit grey image's (`SIXTEEN_BIT`) levels as float32 in ``[0, 65535]`` (mode "I" clipped to 16 bits)."""
    return np.clip(np.asarray(image).astype(np.float32), 0, 65535)


def read_levels(path: str | Path, *, channels: int) -> tuple[Float[np.ndarray, "c h w"], int]:
    """An image file's levels as float32 ``(channels, h, w)`` and their full scale: 65535 for 16-bit grey (every level
    kept), else 255 (Pillow's conversion to grey or RGB; Pillow reads 16-bit colour PNGs at 8 bits)."""
    with open_image(path) as image:
        if image.mode in SIXTEEN_BIT:
            return sixteen_bit_levels(image)[None].repeat(channels, axis=0), 65535
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    return (array[None] if channels == 1 else array.transpose(2, 0, 1)), 255


@jaxtyped(typechecker=beartype)
def read_png(path: str | Path, *, channels: int = 3) -> Float[Tensor, "c h w"]:
    """Read an image file as a float tensor in ``[-1, 1]`` with 1 (grey) or 3 (RGB) channels (see `read_levels`).

    Raises:
        ValueError: if ``channels`` is not 1 or 3, or the file claims more than `MAX_PIXELS`.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    levels, scale = read_levels(path, channels=channels)
    return torch.from_numpy(levels) / (scale / 2) - 1


@jaxtyped(typechecker=beartype)
def write_wav(x: Float[Tensor, "c n"], path: str | Path, *, sample_rate: int = 16000) -> Path:
    """Write a signal with values in ``[-1, 1]`` as 16-bit PCM WAV, one channel per row."""
    pcm = (x.detach().float().clamp(-1, 1) * 32767).round().to(torch.int16).cpu().numpy().T
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(x.shape[0])
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(np.ascontiguousarray(pcm).astype("<i2").tobytes())
    return path


def read_wav(path: str | Path) -> tuple[Float[Tensor, "c n"], int]:
    """Read a 16-bit PCM WAV file as ``(signal in [-1, 1], sample_rate)``."""
    with wave.open(str(path), "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported, got {8 * f.getsampwidth()}-bit")
        channels, rate = f.getnchannels(), f.getframerate()
        frames = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    signal = torch.from_numpy(frames.reshape(-1, channels).T.astype(np.float32)) / 32767
    return signal, rate


def image_grid(images: Float[Tensor, "b c h w"], *, nrow: int | None = None, pad: int = 1, fill: float = -1.0) -> Float[Tensor, "c H W"]:
    """Tile images into one picture, ``nrow`` per row (about square by default), separated by ``pad`` pixels of ``fill``."""
    b, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = images.new_full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), fill)
    for i, image in enumerate(images):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = image
    return grid


def save_images(images: Float[Tensor, "b c h w"], directory: str | Path, prefix: str, *, individual: bool = True) -> Path:
    """Write a grid ``<prefix>.png`` (and each image as ``<prefix>/<i>.png``); returns the grid's path."""
    directory = Path(directory)
    if individual:
        for i, image in enumerate(images):
            write_png(image, directory / prefix / f"{i:04d}.png")
    return write_png(image_grid(images), directory / f"{prefix}.png")


def side_by_side(batches: list[Float[Tensor, "_b c _h _w"]], *, count: int = 8, display: int | None = None) -> Float[Tensor, "c H W"]:
    """One row per batch (e.g. per resolution): the first ``count`` images, enlarged (nearest) to a common size."""
    display = display or max(b.shape[-1] for b in batches)
    rows = [torch.nn.functional.interpolate(b[:count], size=(display, display), mode="nearest") for b in batches]
    return image_grid(torch.cat(rows), nrow=min(count, min(len(b) for b in batches)))


def save_samples(samples: DenseField, directory: str | Path, prefix: str, *, individual: bool = True) -> Path:
    """Save samples of any domain: a PNG grid for 1- or 3-channel images, WAV files for 1-D signals, else a
    ``<prefix>.safetensors`` tensor file, with a PNG of slices (`volume_slices`) for volumes. Returns the main file's
    path (the picture, where there is one)."""
    directory = Path(directory)
    if samples.ndim == 4 and samples.shape[1] in (1, 3):
        return save_images(samples, directory, prefix, individual=individual)
    if samples.ndim == 3:
        for i, signal in enumerate(samples):
            write_wav(signal, directory / prefix / f"{i:04d}.wav", sample_rate=signal.shape[-1])
        return directory / prefix
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prefix}.safetensors"
    save_file({"samples": samples.detach().float().cpu().contiguous()}, str(path))
    if samples.ndim == 5 and samples.shape[1] in (1, 3):
        return write_png(volume_slices(samples), directory / f"{prefix}.png")
    return path
