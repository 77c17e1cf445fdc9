"""The ``sample`` command: a checkpoint at any resolutions, with nested noise."""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import tyro

from funcdiff.commands.common import CommonOptions, SampleOptions, check_sampling_estimates, sampling_choice, sampling_labels
from funcdiff.commands.latent import sampling_latents
from funcdiff.domains.io import write_png
from funcdiff.evaluation import sample_resolutions
from funcdiff.operators.compiling import compile_operator
from funcdiff.training import load_trained


@dataclass(frozen=True, kw_only=True)
class Sample(CommonOptions):
    """Sample a checkpoint at any resolution.

    Attributes:
        checkpoint: a checkpoint directory, or a packaged model's name (`funcdiff.training.pretrained`: icons, shapes,
            notes).
        out_dir: where the sample grids and files go.
        dry_run: print the resolved settings and exit.
        yes: sample even where the estimate (printed above 4x the training resolution) exceeds an hour or 80 % of
            the memory.
        sampling: the sampling settings.
        latent: for a diffusion autoencoder checkpoint, the latent model that draws its latents (default: ``latent``
            beside the checkpoint, where ``train-latent`` puts it).
    """

    checkpoint: Path
    latent: Path | None = None
    out_dir: Path = Path("runs/samples")
    dry_run: bool = False
    yes: bool = False
    sampling: Annotated[SampleOptions, tyro.conf.OmitArgPrefixes] = SampleOptions()


def run(command: Sample) -> int:
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
    labels = sampling_labels(model, o)
    cond = labels.to(command.device) if labels is not None else cond
    choice = sampling_choice(o, process)  # every check before anything is written
    check_sampling_estimates(o, command.device, command.yes, model, process)
    out = Path(command.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample_config.json").write_text(json.dumps(settings, indent=2))
    generator = torch.Generator(device=command.device)
    grids = []
    for resolution, samples, seconds in sample_resolutions(model, process, o.resolutions, num=o.num, steps=o.sample_steps,
                                                           **choice, generator=generator, seed=o.seed,
                                                           nested=o.nested, device=command.device, chunk_points=o.chunk_points,
                                                           cond=cond, guidance_scale=o.guidance_scale):
        label = process.domain.label(tuple(samples.shape[2:]))
        path = process.domain.save_samples(samples, out, label)
        grids.append(samples)
        print(f"{label:>8}: {path}  ({seconds:.2f} s per sample)")
    comparison = process.domain.comparison(grids)
    if comparison is not None:
        print(f"compare: {write_png(comparison[0], out / comparison[1])}")
    return 0
