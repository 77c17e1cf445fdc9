"""The ``eval`` command: score a checkpoint's samples (or folders of images) against real data and write a report."""

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import tyro

from funcdiff.commands.common import (
    EVAL_SAMPLING, CommonOptions, SampleOptions, check_sampling_estimates, sampling_choice, sampling_labels,
)
from funcdiff.commands.latent import sampling_latents
from funcdiff.data.audio import AudioDataset
from funcdiff.evaluation import sample_resolutions
from funcdiff.evaluation.classes import class_study, describe_classes
from funcdiff.evaluation.evaluators import AUDIO, IMAGES, evaluator_for
from funcdiff.factory import dataset_class, make_dataset
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.compiling import compile_operator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.training import load_trained


@dataclass(frozen=True, kw_only=True)
class Eval(CommonOptions):
    """Score a checkpoint's samples (or folders of images) against real data and write a report with plots.

    Image checkpoints are scored with `funcdiff.metrics` (SWD per Laplacian level, random-CNN FD and KID, spectra),
    audio checkpoints with `funcdiff.metrics.audio` (multi-resolution STFT distance, log-mel Fréchet distance, pitch
    and harmonic-to-noise ratio); above the training resolution both compare with upsampling the training-resolution
    samples (bicubic for images, band-limited for audio).

    Attributes:
        checkpoint: a checkpoint to sample and score, or a packaged model's name (icons, shapes, notes).
        samples: instead of a checkpoint, folders of PNG images or of WAV clips (for an audio ``--data``), one resolution
            (side, or sample rate) per folder (e.g. a `sample` run's ``samples/64px`` or ``samples/8000Hz``); the
            smallest plays the training resolution's part.
        data: the real data set, a built-in name or a folder of images (default: the checkpoint's).
        data_limit: draw the real sets from only the first this many examples of each split (quick checks).
        resolution_study: sample at the training resolution r, 2r and 4r with nested noise (sample rates for audio);
            above r, score the upsampling of the r samples (the baseline), the detail gain, and for images the samples
            box-averaged to r.
        out_dir: where report.md, scores.json, the plots and the samples' picture go.
        latent: for a diffusion autoencoder checkpoint, its latent model (default: ``latent`` beside the checkpoint).
        sampling: how to sample (``--resolutions`` default to the training resolution; the study sets its own).
        yes: sample even when the estimate is over an hour or 80 % of memory.
        per_class: for a label-conditional image checkpoint (``train --conditional``): ``--num`` samples of every class
            at each of ``--guidance-scales``, each class scored against held-out images of it, and the share that a
            classifier trained on the real training split (cached after its first training) assigns to the class.
        guidance_scales: the guidance scales of ``--per-class`` (1: the conditional model unguided).
    """

    checkpoint: Path | None = None
    samples: tuple[Path, ...] = ()
    data: str | None = None
    data_limit: int | None = None
    resolution_study: bool = False
    out_dir: Path = Path("runs/eval")
    latent: Path | None = None
    sampling: Annotated[SampleOptions, tyro.conf.OmitArgPrefixes] = EVAL_SAMPLING
    yes: bool = False
    per_class: bool = False
    guidance_scales: tuple[float, ...] = (1.0, 2.0, 3.0)


def run(command: Eval) -> int:
    """The ``eval`` command."""
    o = command.sampling
    if (command.checkpoint is None) == (not command.samples):
        raise ValueError("give either --checkpoint (to sample and score it) or --samples (folders of images or clips to score)")
    if command.per_class and (command.checkpoint is None or command.resolution_study):
        raise ValueError("--per-class samples a checkpoint at its training resolution: give --checkpoint, without --resolution-study")
    details: dict[str, object] = {}
    seconds, evaluator = None, IMAGES
    if command.checkpoint is not None:
        run = load_trained(command.checkpoint, ema=o.ema, device=command.device)
        model, process, config = run
        if o.compile:
            compile_operator(model)
        evaluator = evaluator_for(process.domain)
        r = evaluator.resolution(process.domain, tuple(model.reference_shape))
        data = command.data or run.data
        if data is None:
            raise ValueError("this checkpoint does not name its data set; pass --data")
        if command.per_class:
            return _per_class(command, model, process, command.data or run.data)
        resolutions = (r, 2 * r, 4 * r) if command.resolution_study else (o.resolutions or (r,))
        o = dataclasses.replace(o, resolutions=resolutions)
        cond = sampling_latents(model, command.checkpoint, config, command.latent, num=o.num, seed=o.seed, device=command.device)
        labels = sampling_labels(model, o)
        cond = labels.to(command.device) if labels is not None else cond
        check_sampling_estimates(o, command.device, command.yes, model, process)
        generator = torch.Generator(device=command.device)
        drawn = list(sample_resolutions(model, process, resolutions, num=o.num, steps=o.sample_steps, **sampling_choice(o, process),
                                        generator=generator, seed=o.seed, nested=o.nested, device=command.device,
                                        chunk_points=o.chunk_points, cond=cond, guidance_scale=o.guidance_scale))
        samples, seconds = {r: x for r, x, _ in drawn}, {r: s for r, _, s in drawn}
        details.update(checkpoint=str(command.checkpoint), sampler=o.sampler, grid=o.grid, steps=o.sample_steps, ema=o.ema)
        if labels is not None:  # a label-conditional model: which labels, how guided
            details.update(classes=", ".join(o.classes) or "each kind's classes spread", guidance=1.0 if o.guidance_scale is None else o.guidance_scale)
    else:
        if command.data is None:
            raise ValueError("--samples needs --data, the real data set to compare with")
        data, r = command.data, None
        audio = issubclass(dataset_class(data), AudioDataset)
        evaluator = AUDIO if audio else IMAGES
        channels = 1 if audio else make_dataset(data, resolution=16, split="test")[0].shape[0]
        samples = {}
        for folder in command.samples:
            resolution, batch = evaluator.read_folder(folder, channels)
            if resolution in samples:
                raise ValueError(f"{folder}: each folder must hold samples of its own resolution; {resolution} came twice")
            samples[resolution] = batch
        details.update(folders=", ".join(map(str, command.samples)))
    title = evaluator.titles[command.resolution_study]
    study, path = evaluator.evaluate(samples, data=data, training_resolution=r or min(samples), out_dir=command.out_dir,
                                     seconds_per_sample=seconds, seed=o.seed, data_limit=command.data_limit, details=details,
                                     title=title)
    print(evaluator.describe(study))
    print(f"report: {path}")
    return 0


def _per_class(command: Eval, model: NeuralOperator, process: DiffusionProcess, data: str | None) -> int:
    """``eval --per-class``: `class_study` of a label-conditional checkpoint."""
    o = command.sampling
    if data is None:
        raise ValueError("this checkpoint does not name its data set; pass --data")
    if not command.guidance_scales or any(not math.isfinite(s) for s in command.guidance_scales):
        raise ValueError(f"--guidance-scales must be finite numbers, got {command.guidance_scales}")
    if o.classes or o.guidance_scale is not None:
        raise ValueError("--per-class samples every class at each of --guidance-scales; leave out --class and --guidance-scale")
    choice = sampling_choice(o, process)
    study, path = class_study(model, process, data, scales=command.guidance_scales, num=o.num, steps=o.sample_steps, out_dir=command.out_dir,
                              sampling=choice, seed=o.seed, device=command.device, limit=command.data_limit, chunk_points=o.chunk_points)
    print(describe_classes(study))
    print(f"report: {path}")
    return 0
