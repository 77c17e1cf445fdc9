"""funcdiff: train diffusion models on random subsets of points, then sample them at any resolution.

The flags are generated from the config dataclasses (`funcdiff.factory.TrainConfig`, `SampleOptions`) by tyro;
`funcdiff train --help` lists each with its description and default. Optional values take ``None``.
"""

import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

import torch
import tyro

from funcdiff.cli_autoencoder import (
    Encode, Interpolate, Reconstruct, TrainLatent, run_encode, run_interpolate, run_reconstruct, run_train_latent, sampling_latents,
)
from funcdiff.domains.audio import AudioDomain
from funcdiff.domains.grid import box_average
from funcdiff.domains.io import image_grid, read_png, save_images, side_by_side, write_png
from funcdiff.domains.sound_pictures import rate_comparison
from funcdiff.evaluation import bicubic, describe, describe_audio, evaluate, evaluate_audio, read_image_folder, sample_resolutions
from funcdiff.metrics import psnr
from funcdiff.factory import TrainConfig, build_run, make_dataset
from funcdiff.operators.kernels import native
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.sampling import resolve_grid, resolve_sampler
from funcdiff.tasks.inpainting import DEFAULT_WEIGHT as INPAINT_WEIGHT
from funcdiff.tasks.inpainting import MASK_KINDS, inpaint, make_mask, read_mask
from funcdiff.tasks.superres import DEFAULT_WEIGHT, superres
from funcdiff.training import Trainer, load_trained
from funcdiff.training.estimate import Estimate, estimate_sampling, estimate_training_step


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """How to sample a trained operator.

    Attributes:
        resolutions: sampling grid sides in pixels (any, not only the training one).
        num: samples per resolution.
        sampler: a registered sampler: "ddim", "ddpm" or "dpmpp" (DPM-Solver++ 2M) for a ddpm checkpoint, "euler" or
            "heun" for a flow; "auto" picks ddim or heun.
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


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Sample a checkpoint at any resolution.

    Attributes:
        checkpoint: a checkpoint directory.
        out_dir: where the sample grids and files go.
        device: "cpu", "cuda", "cuda:1", ...
        dry_run: print the resolved settings and exit.
        verbose: log at INFO level, and show a traceback on errors.
        yes: sample even where the estimate (printed above 4x the training resolution) exceeds an hour or 80 % of
            the memory.
        sampling: the sampling settings.
        latent: for a diffusion autoencoder checkpoint, the latent model that draws its latents (default: ``latent``
            beside the checkpoint, where ``train-latent`` puts it).
    """

    checkpoint: Path
    latent: Path | None = None
    out_dir: Path = Path("runs/samples")
    device: str = "cpu"
    dry_run: bool = False
    verbose: bool = False
    yes: bool = False
    sampling: Annotated[SampleOptions, tyro.conf.OmitArgPrefixes] = SampleOptions()


@dataclass(frozen=True, kw_only=True)
class Train:
    """Train an operator; every setting is a flag.

    Attributes:
        config: the run's components and settings.
        resume: continue from <out-dir>/checkpoint (recovering it if a save was interrupted); the learning rate,
            budget, logging and sampling settings may change and take effect.
        overwrite: replace a run already in <out-dir> (without this or --resume, an existing run is refused).
        dry_run: print the resolved config and exit.
        verbose: log at INFO level, and show a traceback on errors.
        yes: train even where the estimate (printed above 128 x 128 points) exceeds a day or 80 % of the memory.
    """

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = TrainConfig()
    resume: bool = False
    overwrite: bool = False
    dry_run: bool = False
    verbose: bool = False
    yes: bool = False


DEMO_CONFIG = TrainConfig(data="icons", resolution=32, preset="cpu-small", points=0.25, batch_size=16, lr=5e-4, steps=None,
                          time_budget=240.0, checkpoint_every=500, sample_count=16, sample_steps=50, out_dir="runs/demo")
"""The demo: cpu-small on icons at 32 px with 25 % of the points, four minutes of training."""

AUDIO_DEMO_CONFIG = dataclasses.replace(DEMO_CONFIG, data="notes", resolution=4000, preset="audio-small", time_budget=480.0,
                                        sample_count=8, out_dir="runs/demo-notes")
"""The audio demo: audio-small on recorded notes at 4 kHz with 25 % of the samples, eight minutes of training."""

DEMOS = {
    "icons": DEMO_CONFIG,
    "notes": AUDIO_DEMO_CONFIG,
    "digits": dataclasses.replace(AUDIO_DEMO_CONFIG, data="digits", out_dir="runs/demo-digits"),
    "shapes": dataclasses.replace(DEMO_CONFIG, data="shapes", resolution=16, preset="tiny", lr=1e-3, ema_warmup=True,
                                  time_budget=180.0, sample_count=8, out_dir="runs/demo-shapes"),
}
"""Each built-in data set's demo; ``funcdiff demo --data NAME`` starts from it, and flags the user gives change it."""


@dataclass(frozen=True, kw_only=True)
class Demo(Train):
    """Train on a built-in data set for a few minutes on a CPU, then sample at 1x, 2x and 4x its resolution.

    ``--data icons`` (the default): cpu-small at 32 px for four minutes; ``notes`` or ``digits``: audio-small at 4 kHz
    for eight minutes, sampled at 4, 8 and 16 kHz; ``shapes``: volumes, tiny at 16^3 for three minutes, sampled at
    16^3 and 32^3. Any other flag changes that demo's setting; with ``--autoencoder`` a latent model is trained after
    the autoencoder (``train-latent``'s defaults) and the samples decode its latents.

    Attributes:
        config: the run's components and settings (the demo's defaults).
        resolutions: sampling resolutions (seed, sampler, steps and count come from the run's settings); default 1x,
            2x and 4x the training resolution (1x and 2x for volumes).
        latent_steps: with ``--autoencoder``, the latent model's training steps.
    """

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = DEMO_CONFIG
    resolutions: tuple[int, ...] = ()
    latent_steps: int = TrainLatent.steps


def demo_config(config: TrainConfig, given: set[str]) -> TrainConfig:
    """The demo of ``config.data`` with the settings named in ``given`` (the flags on the command line) taken from
    ``config``."""
    base = DEMOS.get(config.data, DEMO_CONFIG)
    return dataclasses.replace(base, **{f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in given})


def given_flags(argv: list[str]) -> set[str]:
    """The names of the settings set by ``--flag value``, ``--flag=value`` or ``--no-flag`` in ``argv``, as field names."""
    names = {arg[2:].split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    return names | {name.removeprefix("no_") for name in names}


EVAL_SAMPLING = SampleOptions(resolutions=(), num=128, sample_steps=50)
"""Evaluation's sampling: 128 samples per resolution, 50 steps; no resolutions means the training one."""


@dataclass(frozen=True, kw_only=True)
class Eval:
    """Score a checkpoint's samples (or folders of images) against real data and write a report with plots.

    Image checkpoints are scored with `funcdiff.metrics` (SWD per Laplacian level, random-CNN FD and KID, spectra),
    audio checkpoints with `funcdiff.metrics.audio` (multi-resolution STFT distance, log-mel Fréchet distance, pitch
    and harmonic-to-noise ratio); above the training resolution both compare with upsampling the training-resolution
    samples (bicubic for images, band-limited for audio).

    Attributes:
        checkpoint: a checkpoint to sample and score.
        samples: instead of a checkpoint, folders of PNG images, one resolution per folder (e.g. a `sample` run's
            ``samples/64px``); the smallest resolution plays the training resolution's part.
        data: the real data set, a built-in name or a folder of images (default: the checkpoint's).
        data_limit: draw the real sets from only the first this many examples of each split (quick checks).
        resolution_study: sample at the training resolution r, 2r and 4r with nested noise (sample rates for audio);
            above r, score the upsampling of the r samples (the baseline), the detail gain, and for images the samples
            box-averaged to r.
        out_dir: where report.md, scores.json, the plots and the samples' picture go.
        latent: for a diffusion autoencoder checkpoint, its latent model (default: ``latent`` beside the checkpoint).
        device: where to sample.
        sampling: how to sample (``--resolutions`` default to the training resolution; the study sets its own).
        verbose: log at INFO level, and show a traceback on errors.
        yes: sample even when the estimate is over an hour or 80 % of memory.
    """

    checkpoint: Path | None = None
    samples: tuple[Path, ...] = ()
    data: str | None = None
    data_limit: int | None = None
    resolution_study: bool = False
    out_dir: Path = Path("runs/eval")
    latent: Path | None = None
    device: str = "cpu"
    sampling: Annotated[SampleOptions, tyro.conf.OmitArgPrefixes] = EVAL_SAMPLING
    verbose: bool = False
    yes: bool = False


@dataclass(frozen=True, kw_only=True)
class Superres:
    """Super-resolve an image with a checkpoint: samples at --scale times its size that box-average back to it.

    Attributes:
        image: the low-resolution image (PNG or JPEG; square).
        checkpoint: an image checkpoint (any training resolution: the operator samples at any size).
        scale: the integer upsampling factor.
        weight: the reconstruction guidance weight (0: unguided samples; 1 removes the box-average residual in one step).
        num: samples of the one input.
        sample_steps: DDIM steps.
        seed: seeds the prior noise.
        out_dir: where ``superres.png`` (input enlarged, bicubic, the samples) and the samples go.
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    image: tyro.conf.Positional[Path]
    checkpoint: Path
    scale: int = 4
    weight: float = DEFAULT_WEIGHT
    num: int = 4
    sample_steps: int = 50
    seed: int = 0
    out_dir: Path = Path("runs/superres")
    device: str = "cpu"
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class Inpaint:
    """Fill the unknown part of an image with a checkpoint: reconstruction guidance, or the replacement baseline.

    Attributes:
        image: the image (PNG or JPEG).
        mask: a mask image (white = known, black = to fill; resized to the image), or a built-in mask: "box" (a
            centred square hole of half the side), "half" (the right half unknown) or "strokes" (random strokes).
        checkpoint: an image checkpoint (any training resolution).
        resolution: inpaint at this side in pixels (default: the image's own size).
        method: "guidance" (reconstruction guidance, docs/math.md §10), "replace" (the known part of each step's estimate
            replaced by the image) or "both" (one picture row each).
        weight: the reconstruction guidance weight.
        num: samples per method.
        sample_steps: DDIM steps.
        seed: seeds the prior noise and the strokes.
        out_dir: where ``inpaint.png`` (image, masked image, samples per method) and the samples go.
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    image: tyro.conf.Positional[Path]
    mask: tyro.conf.Positional[str]
    checkpoint: Path
    resolution: int | None = None
    method: Literal["guidance", "replace", "both"] = "both"
    weight: float = INPAINT_WEIGHT
    num: int = 4
    sample_steps: int = 50
    seed: int = 0
    out_dir: Path = Path("runs/inpaint")
    device: str = "cpu"
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class BuildKernel:
    """Compile the native sparse-convolution kernel now (once per environment) instead of on first use.

    Attributes:
        force: compile again even if this environment's kernel exists.
        timeout: give up after this many seconds (waiting for another process's build included).
        verbose: log at INFO level, and show a traceback on errors.
    """

    force: bool = False
    timeout: float = 600.0
    verbose: bool = False


Command = Union[
    Annotated[Demo, tyro.conf.subcommand("demo", description=Demo.__doc__.split("\n")[0])],
    Annotated[Train, tyro.conf.subcommand("train", description=Train.__doc__.split("\n")[0])],
    Annotated[Sample, tyro.conf.subcommand("sample", description=Sample.__doc__.split("\n")[0])],
    Annotated[Eval, tyro.conf.subcommand("eval", description=Eval.__doc__.split("\n")[0])],
    Annotated[Superres, tyro.conf.subcommand("superres", description=Superres.__doc__.split("\n")[0])],
    Annotated[Inpaint, tyro.conf.subcommand("inpaint", description=Inpaint.__doc__.split("\n")[0])],
    Annotated[TrainLatent, tyro.conf.subcommand("train-latent", description=TrainLatent.__doc__.split("\n")[0])],
    Annotated[Encode, tyro.conf.subcommand("encode", description=Encode.__doc__.split("\n")[0])],
    Annotated[Reconstruct, tyro.conf.subcommand("reconstruct", description=Reconstruct.__doc__.split("\n")[0])],
    Annotated[Interpolate, tyro.conf.subcommand("interpolate", description=Interpolate.__doc__.split("\n")[0])],
    Annotated[BuildKernel, tyro.conf.subcommand("build-kernel", description=BuildKernel.__doc__.split("\n")[0])],
]

RUNNERS = {TrainLatent: run_train_latent, Encode: run_encode, Reconstruct: run_reconstruct, Interpolate: run_interpolate}
"""The commands of `funcdiff.cli_autoencoder`."""


def sampling_choice(o: SampleOptions, process: DiffusionProcess) -> dict[str, object]:
    """The sampler, time grid and options ``o`` names for ``process``, as `funcdiff.sampling.sample` takes them.

    Raises:
        ValueError: for a sampler that does not fit the process, or an ``eta`` it does not take.
    """
    entry = resolve_sampler(o.sampler, process)
    if o.eta != 0 and "eta" not in entry.options:
        raise ValueError(f"--eta applies to samplers that take it (ddim); {entry.name!r} does not")
    return {"sampler": entry.name, "grid": resolve_grid(o.grid), "options": {"eta": o.eta} if "eta" in entry.options else None}


def run_train(command: Train, given: set[str] | frozenset[str] = frozenset()) -> int:
    """The ``train`` and ``demo`` commands (``given``: the demo's flags, `given_flags`)."""
    config = demo_config(command.config, given) if isinstance(command, Demo) else command.config
    if command.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    start = time.perf_counter()
    model, process, data = build_run(config)
    trainer = Trainer(model, process, data, config.settings(), resume=command.resume, overwrite=command.overwrite, run_config=config.to_dict())
    try:  # after the trainer's checks (directory, lock, device), on one process only
        if trainer.ctx.is_main:
            _check_training_estimate(command, trainer.model, process, trainer.data_shape, trainer.ctx.device)
    except BaseException:
        trainer.lock.release()
        raise
    trainer.sampler = config.sampler
    result = trainer.run()
    if result.stopped_by is not None:
        if trainer.ctx.is_main:
            print(f"{result.stopped_by}: stopped at step {result.step}; checkpoint: {result.out_dir / 'checkpoint'}", file=sys.stderr)
        return 128 + int(getattr(signal, result.stopped_by))
    if not isinstance(command, Demo):  # the demo samples once, after training, at the resolutions asked for
        trainer.write_final_samples()
    loss = f"{result.loss:.4f}" if math.isfinite(result.loss) else "n/a (no step in this run)"
    print(f"trained {result.step} steps in {time.perf_counter() - start:.0f} s; final loss {loss}")
    print(f"checkpoint: {result.out_dir / 'checkpoint'}")
    if isinstance(command, Demo):
        if config.autoencoder:  # sampling an autoencoder draws its latents from a latent model: train one first
            run_train_latent(TrainLatent(checkpoint=result.out_dir / "checkpoint", steps=command.latent_steps, seed=config.seed,
                                         device=config.device))
        factors = (1, 2, 4) if len(trainer.data_shape) <= 3 else (1, 2)
        options = SampleOptions(resolutions=command.resolutions or tuple(f * config.resolution for f in factors), num=config.sample_count, sampler=config.sampler,
                                sample_steps=config.sample_steps, seed=config.seed, compile=config.compile)
        code = run_sample(Sample(checkpoint=result.out_dir / "checkpoint", out_dir=result.out_dir / "samples",
                                 device=config.device, sampling=options))
        if len(trainer.data_shape) <= 3:  # eval scores images and clips, not volumes
            print(f"judge them: funcdiff eval --checkpoint {result.out_dir / 'checkpoint'} --resolution-study")
        return code
    print(f"samples:    {result.out_dir / 'samples'}")
    return 0


def run_sample(command: Sample) -> int:
    """The ``sample`` command (and the demo's last part)."""
    o = command.sampling
    settings = {**dataclasses.asdict(o), "checkpoint": str(command.checkpoint), "device": command.device}
    if command.dry_run:
        print(json.dumps({**settings, "out_dir": str(command.out_dir)}, indent=2))
        return 0
    model, process, config = load_trained(command.checkpoint, ema=o.ema, device=command.device)
    if o.compile:
        compile_operator(model)
    cond = sampling_latents(model, command.checkpoint, config, command.latent, num=o.num, seed=o.seed, device=command.device)
    _check_estimates(o, command.device, command.yes, model, process)
    out = Path(command.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample_config.json").write_text(json.dumps(settings, indent=2))
    generator = torch.Generator(device=command.device)
    grids = []
    for resolution, samples, seconds in sample_resolutions(model, process, o.resolutions, num=o.num, steps=o.sample_steps,
                                                           **sampling_choice(o, process), generator=generator, seed=o.seed,
                                                           nested=o.nested, device=command.device, chunk_points=o.chunk_points,
                                                           cond=cond):
        label = process.domain.label(tuple(samples.shape[2:]))
        path = process.domain.save_samples(samples, out, label)
        grids.append(samples)
        print(f"{label:>8}: {path}  ({seconds:.2f} s per sample)")
    if len(grids) > 1 and isinstance(process.domain, AudioDomain):
        rates = [process.domain.sample_rate(g.shape[-1]) for g in grids]
        print(f"compare: {write_png(rate_comparison(grids, rates), out / 'rates.png')}")
    elif len(grids) > 1 and grids[0].ndim == 4 and grids[0].shape[1] in (1, 3):
        print(f"compare: {write_png(side_by_side(grids), out / 'resolutions.png')}")
    return 0


def run_eval(command: Eval) -> int:
    """The ``eval`` command."""
    o = command.sampling
    if (command.checkpoint is None) == (not command.samples):
        raise ValueError("give either --checkpoint (to sample and score it) or --samples (folders of images to score)")
    details: dict[str, object] = {}
    seconds, audio = None, False
    if command.checkpoint is not None:
        model, process, config = load_trained(command.checkpoint, ema=o.ema, device=command.device)
        if o.compile:
            compile_operator(model)
        reference = tuple(model.reference_shape)
        audio = isinstance(process.domain, AudioDomain)
        if not audio and (len(reference) != 2 or reference[0] != reference[1]):
            raise ValueError(f"eval scores square images and audio clips; this checkpoint's domain has shape {reference}")
        data = command.data or config.get("run", {}).get("data")
        if data is None:
            raise ValueError("this checkpoint does not name its data set; pass --data")
        r = round(process.domain.sample_rate(reference[0])) if audio else reference[0]
        resolutions = (r, 2 * r, 4 * r) if command.resolution_study else (o.resolutions or (r,))
        o = dataclasses.replace(o, resolutions=resolutions)
        cond = sampling_latents(model, command.checkpoint, config, command.latent, num=o.num, seed=o.seed, device=command.device)
        _check_estimates(o, command.device, command.yes, model, process)
        generator = torch.Generator(device=command.device)
        drawn = list(sample_resolutions(model, process, resolutions, num=o.num, steps=o.sample_steps, **sampling_choice(o, process),
                                        generator=generator, seed=o.seed, nested=o.nested, device=command.device,
                                        chunk_points=o.chunk_points, cond=cond))
        samples, seconds = {r: x for r, x, _ in drawn}, {r: s for r, _, s in drawn}
        details.update(checkpoint=str(command.checkpoint), sampler=o.sampler, grid=o.grid, steps=o.sample_steps, ema=o.ema)
    else:
        if command.data is None:
            raise ValueError("--samples needs --data, the real data set to compare with")
        data, r = command.data, None
        channels = make_dataset(data, resolution=16, split="test")[0].shape[0]
        samples = {}
        for folder in command.samples:
            images = read_image_folder(folder, channels=channels)
            if images.shape[-1] in samples or images.shape[-1] != images.shape[-2]:
                raise ValueError(f"{folder}: each folder must hold square images of its own resolution, got {tuple(images.shape[1:])}")
            samples[images.shape[-1]] = images
        details.update(folders=", ".join(map(str, command.samples)))
    title = "Resolution study" if command.resolution_study else "Evaluation"
    if audio:
        audio_study, path = evaluate_audio(samples, data=data, training_rate=r, out_dir=command.out_dir, seconds_per_sample=seconds,
                                           seed=o.seed, data_limit=command.data_limit, details=details, title=f"Audio {title.lower()}")
        print(describe_audio(audio_study))
        print(f"report: {path}")
        return 0
    study, path = evaluate(samples, data=data, training_resolution=r or min(samples), out_dir=command.out_dir,
                           seconds_per_sample=seconds, seed=o.seed, data_limit=command.data_limit,
                           details=details, title=title)
    print(describe(study))
    print(f"report: {path}")
    return 0


def run_superres(command: Superres) -> int:
    """The ``superres`` command."""
    model, process, _ = load_trained(command.checkpoint, device=command.device)
    low = read_png(command.image, channels=process.domain.channels)
    if low.shape[-1] != low.shape[-2]:
        raise ValueError(f"{command.image}: superres takes square images, got {tuple(low.shape[1:])}")
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    start = time.perf_counter()
    samples = superres(model, process, low, scale=command.scale, weight=command.weight, steps=command.sample_steps,
                       num=command.num, generator=generator, device=command.device).cpu()
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


def run_inpaint(command: Inpaint) -> int:
    """The ``inpaint`` command."""
    model, process, _ = load_trained(command.checkpoint, device=command.device)
    image = read_png(command.image, channels=process.domain.channels)
    shape = tuple(image.shape[1:]) if command.resolution is None else (command.resolution, command.resolution)
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    builtin = command.mask in MASK_KINDS and not Path(command.mask).is_file()
    mask = make_mask(command.mask, shape, generator=generator) if builtin else read_mask(command.mask, shape)
    truth = torch.nn.functional.interpolate(image[None], size=shape, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    rows, out = [], Path(command.out_dir)
    for method in ("guidance", "replace") if command.method == "both" else (command.method,):
        generator.manual_seed(command.seed)
        start = time.perf_counter()
        samples = inpaint(model, process, image, mask, resolution=shape, method=method, weight=command.weight,
                          steps=command.sample_steps, num=command.num, generator=generator, device=command.device).cpu()
        seconds = (time.perf_counter() - start) / command.num
        save_images(samples, out, method)
        rows += [truth, truth * mask, samples]  # one picture row per method: the image, what is known, the samples
        known = float(((samples - truth) * mask).square().sum() / (mask.sum() * samples.shape[0] * samples.shape[1])) ** 0.5
        print(f"{method:>8}: {out / method}  (RMSE on the known part {known:.3f}; {seconds:.2f} s per sample)")
    picture = image_grid(torch.cat(rows), nrow=2 + command.num)
    print(f"picture: {write_png(picture, out / 'inpaint.png')}")
    return 0


def run_build_kernel(command: BuildKernel) -> int:
    """The ``build-kernel`` command."""
    try:
        result = native.build(force=command.force, timeout=command.timeout)
    except native.NativeBuildError as error:
        print(f"native kernel not built: {error}", file=sys.stderr)
        return 1
    print(f"built: {result.path} ({result.seconds:.0f} s)" if result.built else f"already built: {result.path}")
    return 0


def _memory_bytes(device: str) -> int:
    """The memory sampling may use: the GPU's, or the machine's physical memory."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_training_estimate(command: Train, model: NeuralOperator, process: DiffusionProcess, data_shape: tuple[int, ...],
                             device: str) -> None:
    """Print the time and memory of a training step above 128 x 128 points; refuse over a day or 80 % of memory without
    --yes."""
    c = command.config
    if math.prod(data_shape[1:]) <= 128 * 128:
        return
    step = estimate_training_step(model, process, data_shape, batch=c.batch_size, points=c.points, device=device)
    total = step.seconds * c.steps if c.steps is not None else c.time_budget
    total = min(total, c.time_budget) if c.time_budget is not None else total
    run = Estimate(total, step.peak_bytes)
    print(f"training at {'x'.join(map(str, data_shape[1:]))}: {step.seconds:.2f} s per step, {run.describe()} in all", flush=True)
    if not command.yes and (total > 24 * 3600 or step.peak_bytes > 0.8 * _memory_bytes(device)):
        raise ValueError(f"this run would take {run.describe()}; pass --yes to go ahead (a smaller --batch-size or "
                         "--points makes it cheaper)")


def _check_estimates(o: SampleOptions, device: str, yes: bool, model: NeuralOperator, process: DiffusionProcess) -> None:
    """Print the time and memory of each resolution above 4x the training one; refuse huge ones without ``yes``."""
    reference = tuple(model.reference_shape)
    calls = resolve_sampler(o.sampler, process).model_calls(o.sample_steps)
    for resolution in o.resolutions:
        shape = process.domain.grid_shape(resolution)
        if math.prod(shape) <= 16 * math.prod(reference):
            continue
        estimate = estimate_sampling(model, process, shape, batch=o.num, evaluations=calls,
                                     device=device, chunk_points=o.chunk_points)
        print(f"{resolution:>5} px: estimated {estimate.describe()} for {o.num} sample(s)", flush=True)
        if not yes and (estimate.seconds > 3600 or estimate.peak_bytes > 0.8 * _memory_bytes(device)):
            raise ValueError(f"sampling at {resolution} px would take {estimate.describe()}; pass --yes to go ahead "
                             "(fewer --num, --sample-steps or a --chunk-points bound make it cheaper)")


FAILURES = (ValueError, TypeError, OSError, RuntimeError, FloatingPointError)
"""Errors reported as one line (with --verbose, as a traceback)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``funcdiff`` command: 0 on success, 1 on an error (one line), 128 + N after signal N."""
    command = tyro.cli(Command, args=argv, prog="funcdiff", description=__doc__)
    logging.basicConfig(level=logging.INFO if command.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if isinstance(command, BuildKernel):
            return run_build_kernel(command)
        if isinstance(command, Eval):
            return run_eval(command)
        if isinstance(command, Superres):
            return run_superres(command)
        if isinstance(command, Inpaint):
            return run_inpaint(command)
        if type(command) in RUNNERS:
            return RUNNERS[type(command)](command)
        return run_sample(command) if isinstance(command, Sample) else run_train(command, given_flags(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except FAILURES as error:
        if command.verbose:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"funcdiff: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
