"""The ``inpaint`` command: fill the unknown part of an image by reconstruction guidance or replacement."""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

from funcdiff.commands.common import GuidedOptions, check_guided_estimate
from funcdiff.domains.io import image_grid, read_png, save_images, write_png
from funcdiff.tasks.inpainting import DEFAULT_WEIGHT, MASK_KINDS, inpaint, make_mask, read_mask
from funcdiff.training import load_trained


@dataclass(frozen=True, kw_only=True)
class Inpaint(GuidedOptions):
    """Fill the unknown part of an image with a checkpoint: reconstruction guidance, or the replacement baseline.

    Attributes:
        image: the image (PNG or JPEG).
        mask: a mask image (white = known, black = to fill; resized to the image), or a built-in mask: "box" (a
            centred square hole of half the side), "half" (the right half unknown) or "strokes" (random strokes).
        checkpoint: an image checkpoint (any training resolution), or a packaged model's name (icons).
        resolution: inpaint at this side in pixels (default: the image's own size).
        method: "guidance" (reconstruction guidance, docs/math.md §10), "replace" (the known part of each step's estimate
            replaced by the image) or "both" (one picture row each).
        weight: the reconstruction guidance weight.
        out_dir: where ``inpaint.png`` (image, masked image, samples per method) and the samples go.
    """

    image: tyro.conf.Positional[Path]
    mask: tyro.conf.Positional[str]
    checkpoint: Path
    resolution: int | None = None
    method: Literal["guidance", "replace", "both"] = "both"
    weight: float = DEFAULT_WEIGHT
    out_dir: Path = Path("runs/inpaint")


def run(command: Inpaint) -> int:
    """The ``inpaint`` command."""
    model, process, _ = load_trained(command.checkpoint, device=command.device)
    image = read_png(command.image, channels=process.domain.channels)
    if command.resolution is not None and command.resolution < 1:
        raise ValueError(f"--resolution must be >= 1, got {command.resolution}")
    shape = tuple(image.shape[1:]) if command.resolution is None else (command.resolution, command.resolution)
    check_guided_estimate(command, model, process, shape)
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    builtin = command.mask in MASK_KINDS and not Path(command.mask).is_file()
    mask = make_mask(command.mask, shape, generator=generator) if builtin else read_mask(command.mask, shape)
    truth = torch.nn.functional.interpolate(image[None], size=shape, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    rows, out = [], Path(command.out_dir)
    for method in ("guidance", "replace") if command.method == "both" else (command.method,):
        generator.manual_seed(command.seed)
        start = time.perf_counter()
        samples = inpaint(model, process, image, mask, resolution=shape, method=method, weight=command.weight,
                          steps=command.sample_steps, sampler=command.sampler, num=command.num, generator=generator,
                          device=command.device).cpu()
        seconds = (time.perf_counter() - start) / command.num
        save_images(samples, out, method)
        rows += [truth, truth * mask, samples]  # one picture row per method: the image, what is known, the samples
        known = float(((samples - truth) * mask).square().sum() / (mask.sum() * samples.shape[0] * samples.shape[1])) ** 0.5
        print(f"{method:>8}: {out / method}  (RMSE on the known part {known:.3f}; {seconds:.2f} s per sample)")
    picture = image_grid(torch.cat(rows), nrow=2 + command.num)
    print(f"picture: {write_png(picture, out / 'inpaint.png')}")
    return 0
