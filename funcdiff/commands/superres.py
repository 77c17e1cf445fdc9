"""The ``superres`` command: samples at an integer multiple of an image's size that box-average back to it."""

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from funcdiff.commands.common import GuidedOptions, check_guided_estimate
from funcdiff.domains.grid import box_average
from funcdiff.domains.io import image_grid, read_png, save_images, write_png
from funcdiff.evaluation import bicubic
from funcdiff.metrics import psnr
from funcdiff.tasks.superres import DEFAULT_WEIGHT, superres
from funcdiff.training import load_trained


@dataclass(frozen=True, kw_only=True)
class Superres(GuidedOptions):
    """Super-resolve an image with a checkpoint: samples at --scale times its size that box-average back to it.

    Attributes:
        image: the low-resolution image (PNG or JPEG; square).
        checkpoint: an image checkpoint (any training resolution: the operator samples at any size), or a packaged
            model's name (icons).
        scale: the integer upsampling factor.
        weight: the reconstruction guidance weight (0: unguided samples; 1 removes the box-average residual in one step).
        out_dir: where ``superres.png`` (input enlarged, bicubic, the samples) and the samples go.
    """

    image: tyro.conf.Positional[Path]
    checkpoint: Path
    scale: int = 4
    weight: float = DEFAULT_WEIGHT
    out_dir: Path = Path("runs/superres")


def run(command: Superres) -> int:
    """The ``superres`` command."""
    model, process, _ = load_trained(command.checkpoint, device=command.device)
    low = read_png(command.image, channels=process.domain.channels)
    if low.shape[-1] != low.shape[-2]:
        raise ValueError(f"{command.image}: superres takes square images, got {tuple(low.shape[1:])}")
    if command.scale >= 2:  # superres refuses other scales itself
        check_guided_estimate(command, model, process, tuple(command.scale * s for s in low.shape[1:]))
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    start = time.perf_counter()
    samples = superres(model, process, low, scale=command.scale, weight=command.weight, steps=command.sample_steps,
                       sampler=command.sampler, num=command.num, generator=generator, device=command.device).cpu()
    seconds = (time.perf_counter() - start) / command.num
    size = samples.shape[-1]
    enlarged = torch.nn.functional.interpolate(low[None], size=(size, size), mode="nearest")
    out = Path(command.out_dir)
    save_images(samples, out, "samples")
    picture = write_png(image_grid(torch.cat([enlarged, bicubic(low[None], size), samples]), nrow=command.num + 2), out / "superres.png")
    back = box_average(samples, command.scale)
    consistency = ", ".join(f"{float(p):.1f}" for p in psnr(back, low.expand_as(back)))
    print(f"{size} px from {low.shape[-1]} px: {picture}  ({seconds:.2f} s per sample)")
    print(f"box-averaged back to {low.shape[-1]} px, PSNR against the input (dB): {consistency}")
    return 0
