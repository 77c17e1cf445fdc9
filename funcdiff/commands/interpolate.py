"""The ``interpolate`` command: decodings between two images, latents mixed linearly and inverted noise spherically."""

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from funcdiff.commands.common import CommonOptions, read_images
from funcdiff.commands.latent import load_conditioned
from funcdiff.commands.reconstruct import factor_to
from funcdiff.domains.io import image_grid, write_png
from funcdiff.tasks.autoencoding import interpolate


@dataclass(frozen=True, kw_only=True)
class Interpolate(CommonOptions):
    """Interpolate between two images with an autoencoder checkpoint: latents linearly, inverted noise spherically.

    Attributes:
        first: one end (PNG or JPEG).
        second: the other end, of the same size.
        checkpoint: a checkpoint trained with ``--autoencoder``.
        count: pictures from one end to the other, ends included.
        resolution: output height in pixels, a multiple of the images' (default: their own).
        sample_steps: DDIM steps.
        seed: seeds the noise that a finer grid adds.
        out_dir: where ``interpolate.png`` (the ends, then the row) and the images go.
    """

    first: tyro.conf.Positional[Path]
    second: tyro.conf.Positional[Path]
    checkpoint: Path
    count: int = 7
    resolution: int | None = None
    sample_steps: int = 50
    seed: int = 0
    out_dir: Path = Path("runs/interpolate")


def run(command: Interpolate) -> int:
    """The ``interpolate`` command."""
    model, process, _ = load_conditioned(command.checkpoint, command.device)
    ends = read_images((command.first, command.second), process.domain.channels).to(command.device)
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    height, width = ends.shape[2:]
    factor = factor_to(command.resolution, height)
    start = time.perf_counter()
    out = interpolate(model, process, ends[0], ends[1], count=command.count, resolution=(factor * height, factor * width),
                      steps=command.sample_steps, generator=generator).cpu()
    for i, image in enumerate(out):
        write_png(image, command.out_dir / f"{i:04d}.png")
    enlarged = torch.nn.functional.interpolate(ends.cpu(), size=tuple(out.shape[2:]), mode="nearest")
    picture = image_grid(torch.cat([enlarged[:1], out, enlarged[1:]]), nrow=command.count + 2)
    print(f"{command.count} pictures at {out.shape[2]} px in {time.perf_counter() - start:.1f} s: "
          f"{write_png(picture, command.out_dir / 'interpolate.png')}  (first input, the path, second input)")
    return 0
