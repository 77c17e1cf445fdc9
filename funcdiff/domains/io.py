"""Reading and writing examples: PNG images (d = 2) and WAV audio (d = 1), values in ``[-1, 1]``."""

import wave
from pathlib import Path

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from PIL import Image

from funcdiff._typing import Float, Tensor


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


@jaxtyped(typechecker=beartype)
def read_png(path: str | Path, *, channels: int = 3) -> Float[Tensor, "c h w"]:
    """Read an image file as a float tensor in ``[-1, 1]`` with 1 (grey) or 3 (RGB) channels."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with Image.open(path) as image:
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()) / 127.5 - 1


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
