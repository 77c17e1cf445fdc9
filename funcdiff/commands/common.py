"""What the commands share: the options every command has, the sampling options, the sampler choice, the
estimates that guard long runs, and reading images."""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
import tyro

from funcdiff.conditioning import LabelConditioning, parse_labels
from funcdiff.domains.io import read_png
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DenoisingProcess, DiffusionProcess
from funcdiff.sampling import resolve_grid, resolve_sampler
from funcdiff.training.estimate import estimate_sampling


@dataclass(frozen=True, kw_only=True)
class Verbosity:
    """The option of every command.

    Attributes:
        verbose: log at INFO level, and show a traceback on errors.
    """

    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class CommonOptions(Verbosity):
    """The options of every command but ``train`` and ``demo`` (whose device is a setting of the run).

    Attributes:
        device: "cpu", "cuda", "cuda:1", ...
    """

    device: str = "cpu"


@dataclass(frozen=True, kw_only=True)
class GuidedOptions(CommonOptions):
    """The options of the commands that sample a checkpoint under guidance toward an image (``superres``, ``inpaint``).

    Attributes:
        num: samples of the one input (per method).
        sampler: a registered sampler that runs the checkpoint's process ("auto": DDIM for a ddpm, Heun for a flow);
            guidance works with every one (docs/math.md §13).
        sample_steps: sampler steps.
        seed: seeds the prior noise (and inpaint's strokes).
        yes: sample even where the estimate (printed above 4x the training resolution) exceeds an hour or 80 % of
            the memory.
    """

    num: int = 4
    sampler: str = "auto"
    sample_steps: int = 50
    seed: int = 0
    yes: bool = False


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """How to sample a trained operator.

    Attributes:
        resolutions: sampling grid sides in pixels (any, not only the training one).
        num: samples per resolution.
        sampler: a registered sampler: "ddim", "ddpm" or "dpmpp" (DPM-Solver++ 2M) for a ddpm checkpoint, "euler" or
            "heun" for a flow, "edm_heun", "edm_dpmpp" or "edm_ddim" for an edm one; "auto" picks ddim, heun or edm_heun.
        grid: the time grid: "uniform_t" (evenly spaced steps), "uniform_logsnr" (evenly spaced log-SNR) or "karras"
            (Karras et al. 2022, rho = 7).
        sample_steps: sampler steps.
        eta: DDIM noise (0 = deterministic, 1 = DDPM's variance).
        seed: seeds the prior noise.
        chunk_points: evaluate the operator this many points at a time (bounds memory at high resolution).
        ema: use the EMA weights.
        nested: nest the prior noise across resolutions, so a seed gives the same picture at every size.
        compile: compile the operator's per-point layers and U-Net with `torch.compile` first (tens of seconds once;
            pays at high resolution: 1.25x at 1024 px on a CPU).
        classes: for a label-conditional checkpoint (``train --conditional``), the labels of the samples, taken in
            turn: a class (``--class Sandal``, or its index) or, for several kinds, ``--class
            "instrument=church organ,pitch=C4"`` (kinds left out are any); default: each kind's classes spread
            over the samples (every class in turn where there are more samples than classes).
        guidance_scale: classifier-free guidance toward those labels (docs/math.md §18): 1 (or none) samples the
            conditional model, larger values follow the labels more closely, 0 ignores them.
    """

    resolutions: tuple[int, ...] = (32,)
    num: int = 16
    sampler: str = "auto"
    grid: Literal["uniform_t", "uniform_logsnr", "karras"] = "uniform_t"
    sample_steps: int = 100
    eta: float = 0.0
    seed: int = 0
    chunk_points: int | None = None
    ema: bool = True
    nested: bool = True
    compile: bool = False
    classes: Annotated[tuple[str, ...], tyro.conf.arg(name="class")] = ()
    guidance_scale: float | None = None


EVAL_SAMPLING = SampleOptions(resolutions=(), num=128, sample_steps=50)
"""Evaluation's sampling: 128 samples per resolution, 50 steps; no resolutions means the training one."""


def sampling_choice(o: SampleOptions, process: DiffusionProcess) -> dict[str, object]:
    """The sampler, time grid and options ``o`` names for ``process``, as `funcdiff.sampling.sample` takes them.

    Raises:
        ValueError: for a sampler that does not fit the process, an ``eta`` it does not take or outside [0, 1], or a
            count below 1.
    """
    for flag, value in (("--num", o.num), ("--sample-steps", o.sample_steps), *(("--resolutions", r) for r in o.resolutions)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not 0 <= o.eta <= 1:
        raise ValueError(f"--eta must be a number in [0, 1], got {o.eta}")
    entry = resolve_sampler(o.sampler, process)
    if isinstance(process, DenoisingProcess) and o.sample_steps > process.num_steps:
        raise ValueError(f"--sample-steps must be <= the checkpoint's {process.num_steps} diffusion steps, got {o.sample_steps}")
    if o.eta != 0 and "eta" not in entry.options:
        raise ValueError(f"--eta applies to samplers that take it (ddim); {entry.name!r} does not")
    return {"sampler": entry.name, "grid": resolve_grid(o.grid), "options": {"eta": o.eta} if "eta" in entry.options else None}


def sampling_labels(model: NeuralOperator, o: SampleOptions) -> torch.Tensor | None:
    """The labels ``(num, k)`` of a label-conditional model's samples: the ``--class`` values in turn, or for each
    kind of ``n`` classes, sample ``i`` gets class ``i mod n`` (``num >= n``) or ``floor(i n / num)`` (fewer samples
    than classes: spread over them); None for other models.

    Raises:
        ValueError: for ``--class`` or ``--guidance-scale`` with another model, or a class the model does not know.
    """
    if not isinstance(model, LabelConditioning):
        if o.classes or o.guidance_scale is not None:
            raise ValueError("--class and --guidance-scale are for label-conditional checkpoints (train --conditional); "
                             f"this one holds a {type(model).__name__}")
        return None
    vocabulary = model.vocabulary
    if o.guidance_scale is not None and not math.isfinite(o.guidance_scale):
        raise ValueError(f"--guidance-scale must be a finite number, got {o.guidance_scale}")
    if o.classes:
        rows = [parse_labels(text, vocabulary) for text in o.classes]
        return torch.tensor([rows[i % len(rows)] for i in range(o.num)], dtype=torch.int64)
    sizes = [len(names) for names in vocabulary.values()]
    return torch.tensor([[i % n if o.num >= n else i * n // o.num for n in sizes] for i in range(o.num)], dtype=torch.int64)


def memory_bytes(device: str) -> int:
    """The memory sampling may use: the GPU's, or the machine's physical memory."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_sampling_estimates(o: SampleOptions, device: str, yes: bool, model: NeuralOperator, process: DiffusionProcess) -> None:
    """`check_sampling_estimate` at each of the resolutions ``o`` asks for."""
    calls = resolve_sampler(o.sampler, process).model_calls(o.sample_steps)
    guided = o.guidance_scale is not None and o.guidance_scale != 1  # a guided call evaluates a doubled batch
    for resolution in o.resolutions:
        check_sampling_estimate(model, process, process.domain.grid_shape(resolution), f"{resolution} px", num=o.num * (2 if guided else 1),
                                calls=calls, device=device, yes=yes, chunk_points=o.chunk_points)


def check_sampling_estimate(model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...], label: str, *, num: int,
                            calls: int, device: str, yes: bool, chunk_points: int | None = None) -> None:
    """Above 16 times the training grid's points, print the time and memory of sampling ``num`` fields on ``shape``
    with ``calls`` network evaluations; refuse over an hour or 80 % of the memory unless ``yes``."""
    if math.prod(shape) <= 16 * math.prod(model.reference_shape):
        return
    estimate = estimate_sampling(model, process, shape, batch=num, evaluations=calls, device=device, chunk_points=chunk_points)
    print(f"{label:>8}: estimated {estimate.describe()} for {num} sample(s)", flush=True)
    if not yes and (estimate.seconds > 3600 or estimate.peak_bytes > 0.8 * memory_bytes(device)):
        raise ValueError(f"sampling at {label} would take {estimate.describe()}; pass --yes to go ahead "
                         "(fewer --num, --sample-steps or a --chunk-points bound make it cheaper)")


def check_guided_estimate(o: "GuidedOptions", model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...]) -> None:
    """`check_sampling_estimate` for a guided task's ``num`` samples on ``shape`` (guidance's backward pass counted as
    a second evaluation per call)."""
    if o.num < 1 or o.sample_steps < 1:
        raise ValueError(f"--num and --sample-steps must be >= 1, got {o.num} and {o.sample_steps}")
    calls = 2 * resolve_sampler(o.sampler, process).model_calls(o.sample_steps)
    check_sampling_estimate(model, process, shape, process.domain.label(shape), num=o.num, calls=calls, device=o.device, yes=o.yes)


def read_images(paths: tuple[Path, ...], channels: int) -> torch.Tensor:
    """Image files of one size as a batch in [-1, 1]."""
    if not paths:
        raise ValueError("give at least one image")
    images = [read_png(p, channels=channels) for p in paths]
    if len({tuple(x.shape) for x in images}) != 1:
        raise ValueError(f"the images must all have one size, got {sorted({tuple(x.shape[1:]) for x in images})}")
    return torch.stack(images)
