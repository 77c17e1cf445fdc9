"""The ``reconstruct`` command: encode, invert and decode images at any multiple of their size."""

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from funcdiff.commands.common import CommonOptions, read_images
from funcdiff.commands.latent import load_conditioned
from funcdiff.domains.grid import box_average
from funcdiff.domains.io import image_grid, write_png
from funcdiff.metrics import psnr
from funcdiff.tasks.autoencoding import reconstruct
from funcdiff.tasks.superres import DEFAULT_WEIGHT


@dataclass(frozen=True, kw_only=True)
class Reconstruct(CommonOptions):
    """Reconstruct images with an autoencoder checkpoint: encode to z, invert DDIM given z, decode at any size.

    Attributes:
        images: image files (PNG or JPEG) of one size.
        checkpoint: a checkpoint trained with ``--autoencoder``.
        resolutions: output heights in pixels, multiples of the images' (default: their own, then twice it).
        sample_steps: DDIM steps of the inversion and of the decoding.
        stochastic: decode from fresh noise, so only ``z`` carries the image (the semantic reconstruction).
        weight: on finer grids, guide the decoding toward the images' pixels with this weight (0: off).
        seed: seeds the noise that the finer grids add.
        out_dir: where ``reconstruct.png`` (inputs, then one row per resolution) and the reconstructions go.
    """

    images: tyro.conf.Positional[tuple[Path, ...]]
    checkpoint: Path
    resolutions: tuple[int, ...] = ()
    sample_steps: int = 50
    stochastic: bool = False
    weight: float = DEFAULT_WEIGHT
    seed: int = 0
    out_dir: Path = Path("runs/reconstruct")


def run(command: Reconstruct) -> int:
    """The ``reconstruct`` command."""
    model, process, _ = load_conditioned(command.checkpoint, command.device)
    images = read_images(command.images, process.domain.channels).to(command.device)
    height, width = images.shape[2:]
    factors = [factor_to(r, height) for r in command.resolutions] or [1, 2]
    generator = torch.Generator(device=command.device)
    rows, display = [images.cpu()], (max(factors) * height, max(factors) * width)
    for factor in factors:
        generator.manual_seed(command.seed)
        start = time.perf_counter()
        out = reconstruct(model, process, images, resolution=(factor * height, factor * width), steps=command.sample_steps,
                          stochastic=command.stochastic, weight=command.weight, generator=generator).cpu()
        seconds = (time.perf_counter() - start) / len(images)
        rows.append(out)
        for i, image in enumerate(out):
            write_png(image, command.out_dir / f"{factor * height}px" / f"{i:04d}.png")
        score = psnr(box_average(out, factor), images.cpu())
        where = "" if factor == 1 else f", box-averaged to {height} px"
        print(f"{factor * height:>5} px: PSNR against the input{where} {float(score.mean()):.1f} dB  ({seconds:.2f} s per image)")
    enlarged = [torch.nn.functional.interpolate(r, size=display, mode="nearest") for r in rows]
    picture = image_grid(torch.cat(enlarged), nrow=len(images))
    print(f"picture: {write_png(picture, command.out_dir / 'reconstruct.png')}  (inputs, then one row per resolution)")
    return 0


def factor_to(resolution: int | None, height: int) -> int:
    """The integer factor from images ``height`` px high to ``resolution`` px high (1 for None)."""
    if resolution is None:
        return 1
    if resolution < height or resolution % height:
        raise ValueError(f"resolution {resolution} must be a multiple of the images' height, {height} px")
    return resolution // height
