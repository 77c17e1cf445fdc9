"""The evaluation end to end: draw a checkpoint's samples at several resolutions (or read folders of images), score them
against real data (`run_study`) and write the report."""

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from funcdiff._typing import Float, Tensor
from funcdiff.domains.io import read_png
from funcdiff.evaluation.report import write_report
from funcdiff.evaluation.study import Study, real_sets, run_study
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.sampling import GridFunction, SamplerFunction, sample, uniform_t


def sample_resolutions(
    model: NeuralOperator,
    process: DiffusionProcess,
    resolutions: Sequence[int],
    *,
    num: int,
    steps: int,
    sampler: str | SamplerFunction = "auto",
    grid: GridFunction = uniform_t,
    options: dict[str, object] | None = None,
    generator: torch.Generator,
    seed: int = 0,
    nested: bool = True,
    device: str = "cpu",
    chunk_points: int | None = None,
    progress: bool = True,
    cond: Tensor | None = None,
    guidance_scale: float | None = None,
) -> Iterator[tuple[int, Float[Tensor, "b c *spatial"], float]]:
    """``(resolution, samples on the CPU, seconds per sample)`` for each resolution in turn, every one from the same
    seed; with ``nested``, the prior's noise is nested across resolutions (drawn at the largest, which the others
    must divide), so a seed gives the same picture at every size. ``cond`` (latents of a diffusion autoencoder, or
    labels, one per sample) goes to the model, guided by ``guidance_scale`` (`funcdiff.sampling.sample`)."""
    for resolution in resolutions:
        generator.manual_seed(seed)
        start = time.perf_counter()
        samples = sample(model, process, resolution, batch=num, steps=steps, sampler=sampler, grid=grid, options=options,
                         generator=generator, device=device,
                         chunk_points=chunk_points, nest_resolution=max(resolutions) if nested else None, progress=progress,
                         cond=cond, guidance_scale=guidance_scale).cpu()
        yield resolution, samples, (time.perf_counter() - start) / num


def read_image_folder(folder: str | Path, *, channels: int) -> Float[Tensor, "n c h w"]:
    """Every PNG in ``folder`` (sorted by name) as one batch in [-1, 1]; all must have the same size."""
    paths = sorted(Path(folder).glob("*.png"))
    if not paths:
        raise ValueError(f"{folder}: no PNG images in this folder")
    images = [read_png(p, channels=channels) for p in tqdm(paths, desc=f"reading {folder}", leave=False)]
    sizes = {tuple(x.shape[1:]) for x in images}
    if len(sizes) != 1:
        raise ValueError(f"{folder}: the images must all have the same size, found {sorted(sizes)}")
    return torch.stack(images)


def evaluate(
    samples: dict[int, Float[Tensor, "_b c _h _w"]],
    *,
    data: str | Path,
    training_resolution: int,
    out_dir: str | Path,
    seconds_per_sample: dict[int, float] | None = None,
    seed: int = 0,
    data_limit: int | None = None,
    details: dict[str, object] | None = None,
    title: str = "Evaluation",
) -> tuple[Study, Path]:
    """Score each resolution's samples against as many held-out examples of ``data`` there (the floor from as many
    training examples; of the first ``data_limit`` of each split when given), and write the report into ``out_dir``;
    returns the study and the report's path."""
    num = min(len(x) for x in samples.values())
    if num < 2:
        raise ValueError(f"evaluation needs at least 2 samples per resolution, got {num}")
    real: dict[int, Tensor] = {}

    def real_at(side: int) -> tuple[Tensor, Tensor]:
        reference, other = real_sets(data, side, num, seed=seed, limit=data_limit, channels=samples[min(samples)].shape[1])
        real[side] = reference
        return reference, other

    study = run_study(samples, real_at, training_resolution=training_resolution, seconds_per_sample=seconds_per_sample,
                      seed=seed)
    details = {"data": str(data), "samples per resolution": num, "seed": seed, **(details or {})}
    path = write_report(study, out_dir, samples=samples, real=real, title=title, details=details)
    return study, path


def describe(study: Study) -> str:
    """A few lines for the terminal: per resolution, the finest-level SWD beside the floor and the derived ratios."""
    lines = []
    for row in study.rows:
        parts = [f"{row.resolution:>5} px: SWD finest {row.samples.swd[0]:.1f} (floor {row.floor.swd[0]:.1f}, "
                 f"{row.finest_to_floor:.2f}x)"]
        if row.detail_gain is not None:
            parts.append(f"detail gain {row.detail_gain:.2f}" if math.isfinite(row.detail_gain) else "detail gain n/a")
        box = study.box_to_floor(row)
        if box is not None:
            parts.append(f"box-averaged to {study.training_resolution} px {box:.2f}x floor")
        lines.append("; ".join(parts))
    return "\n".join(lines)
