"""The ``train`` and ``demo`` commands."""

import dataclasses
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from funcdiff.commands import latent, sample
from funcdiff.commands.common import SampleOptions, Verbosity, memory_bytes
from funcdiff.commands.latent import TrainLatent
from funcdiff.commands.sample import Sample
from funcdiff.factory import TrainConfig, build_run
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.run_file import build_from_run_file, read_run_file
from funcdiff.training import Trainer, TrainSettings
from funcdiff.training.checkpoint import newest_complete
from funcdiff.training.estimate import Estimate, estimate_training_step


@dataclass(frozen=True, kw_only=True)
class Train(Verbosity):
    """Train an operator; every setting is a flag.

    Attributes:
        config: the run's components and settings, as flags.
        run_file: instead of the flags, a run file (JSON or TOML) naming every component by its registered kind with
            its arguments (`funcdiff.run_file`; a user's kinds load with ``--plugin``).
        resume: continue from <out-dir>/checkpoint (recovering it if a save was interrupted); the learning rate,
            budget, logging and sampling settings may change and take effect.
        overwrite: replace a run already in <out-dir> (without this or --resume, an existing run is refused).
        dry_run: print the resolved config and exit.
        yes: train even where the estimate (printed above 128 x 128 points) exceeds a day or 80 % of the memory.
    """

    config: Annotated[TrainConfig, tyro.conf.OmitArgPrefixes] = TrainConfig()
    run_file: Annotated[Path | None, tyro.conf.arg(name="config")] = None
    resume: bool = False
    overwrite: bool = False
    dry_run: bool = False
    yes: bool = False


EDM_DEMO_SETTINGS = {"process": "edm", "p_mean": 0.0, "p_std": 1.6, "sampler": "edm_dpmpp", "sample_steps": 25}
"""What makes the icons demo the EDM family: the mollified EDM with x0 prediction trained at noise levels like the
cosine DDPM's, ``log sigma ~ N(0, 1.6^2)`` (docs/math.md §19), sampled with 25 steps of DPM-Solver++. On icons at the
demo's four minutes (equal steps, whose cost is the DDPM's) it beat the DDPM's finest-level SWD in 8 of 10 seed-and-
resolution pairs (README, "Three processes, one command")."""

DDPM_DEMO = TrainConfig(data="icons", resolution=32, train_resolutions=(32, 64, 128), preset="cpu-small", points=256, batch_size=16,
                        lr=5e-4, steps=None, time_budget=240.0, checkpoint_every=500, sample_count=16, sample_steps=50,
                        out_dir="runs/demo")
"""The icons demo's settings with the mollified DDPM and 50 DDIM steps, the base of the other data sets' demos and of
``funcdiff demo --process NAME`` for another family."""

DEMO_CONFIG = dataclasses.replace(DDPM_DEMO, **EDM_DEMO_SETTINGS)
"""The demo: cpu-small on icons at 32, 64 and 128 px with 256 points per icon (25 % of a 32 px one, 1.6 % of a 128 px
one), four minutes of training, the EDM family (`EDM_DEMO_SETTINGS`). At equal time training at several resolutions
beat training at 32 px alone on every score (README)."""

AUDIO_DEMO_CONFIG = dataclasses.replace(DDPM_DEMO, data="notes", resolution=4000, train_resolutions=(), points=1.0,
                                        preset="audio-small", operator="fno", conditional=True, time_budget=480.0,
                                        sample_count=8, out_dir="runs/demo-notes")
"""The audio demo: the Fourier neural operator of audio-small's size (fno-audio) on recorded notes at 4 kHz with every
sample, conditioned on instrument and pitch, eight minutes of training. At equal time it beat audio-small, and
conditioning gave the notes their pitch (README, "Audio and volumes")."""

DEMOS = {
    "icons": DEMO_CONFIG,
    "notes": AUDIO_DEMO_CONFIG,
    "digits": dataclasses.replace(AUDIO_DEMO_CONFIG, data="digits", conditional=False, out_dir="runs/demo-digits"),
    "shapes": dataclasses.replace(DDPM_DEMO, data="shapes", resolution=16, train_resolutions=(), points=0.25, preset="tiny", lr=1e-3, ema_warmup=True,
                                  time_budget=180.0, sample_count=8, out_dir="runs/demo-shapes"),
}
"""Each built-in data set's demo; ``funcdiff demo --data NAME`` starts from it, and flags the user gives change it."""


@dataclass(frozen=True, kw_only=True)
class Demo(Train):
    """Train on a built-in data set for a few minutes on a CPU, then sample at 1x, 2x and 4x its resolution.

    ``--data icons`` (the default): cpu-small at 32, 64 and 128 px for four minutes, the EDM family; ``notes`` or ``digits``: fno-audio at 4 kHz
    for eight minutes (notes conditioned on instrument and pitch), sampled at 4, 8 and 16 kHz; ``shapes``: volumes, tiny at 16^3 for three minutes, sampled at
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
    ``config``; a ``--resolution`` without ``--train-resolutions``, or data without a demo of their own (which may hold no
    detail above 32 px), train at one resolution alone, on 25 % of its points; a ``--process`` of another family than
    the icons demo's EDM drops the EDM's settings (`EDM_DEMO_SETTINGS`) for the DDPM demo's."""
    base = DEMOS.get(config.data, DEMO_CONFIG)
    if base.family == "edm" and "process" in given and config.family != "edm":
        # another family keeps none of the EDM's settings: its own sampler, the DDPM demo's 50 steps
        base = dataclasses.replace(base, **{name: getattr(DDPM_DEMO, name) for name in EDM_DEMO_SETTINGS})
    if config.data not in DEMOS or ("resolution" in given and "train_resolutions" not in given):
        # other data (whose detail above 32 px may be upsampling), or a resolution of one's own: trained at it alone
        base = dataclasses.replace(base, train_resolutions=(), points=0.25)
    return dataclasses.replace(base, **{f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in given})


def resumed_config(config: TrainConfig, given: set[str] | frozenset[str]) -> TrainConfig:
    """The config a resumed run continues with: its checkpoint's, with only the settings named in ``given`` (the
    flags on the command line) taken from ``config``; ``config`` itself where there is no checkpoint to resume."""
    best, _ = newest_complete(Path(config.out_dir) / "checkpoint")
    stored = None if best is None else best.config.get("run")
    if not isinstance(stored, dict) or not isinstance(stored.get("data"), str):  # none, or a run file's
        return config
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(TrainConfig.from_dict({k: v for k, v in stored.items() if k in names}),
                               **{name: getattr(config, name) for name in given & names})


def given_flags(argv: list[str]) -> set[str]:
    """The names of the settings set by ``--flag value``, ``--flag=value`` or ``--no-flag`` in ``argv``, as field names."""
    names = {arg[2:].split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    return names | {name.removeprefix("no_") for name in names}


def _from_run_file(command: Train, given: set[str] | frozenset[str]) -> tuple[dict, tuple]:
    """The run file's contents and its built ``(model, process, data, settings)``; ``ValueError`` for flags of the run
    beside it, or for the demo."""
    if isinstance(command, Demo):
        raise ValueError("demo takes no --config: use funcdiff train --config")
    flags = sorted("--" + name.replace("_", "-") for name in given & {f.name for f in dataclasses.fields(TrainConfig)})
    if flags:
        raise ValueError(f"--config names the whole run; give its settings in the file, not as {', '.join(flags)}")
    spec = read_run_file(command.run_file)
    return spec, () if command.dry_run else build_from_run_file(spec)


def run(command: Train, given: set[str] | frozenset[str] = frozenset()) -> int:
    """The ``train`` and ``demo`` commands (``given``: the flags on the command line, `given_flags`)."""
    if command.run_file is not None:
        run_config, built = _from_run_file(command, given)
        sampler = "auto"
    else:
        config = demo_config(command.config, given) if isinstance(command, Demo) else command.config
        config = resumed_config(config, given) if command.resume else config
        run_config, sampler = config.to_dict(), config.sampler
        built = () if command.dry_run else (*build_run(config), config.settings())
    if command.dry_run:
        print(json.dumps(run_config, indent=2))
        return 0
    start = time.perf_counter()
    model, process, data, settings = built
    trainer = Trainer(model, process, data, settings, resume=command.resume, overwrite=command.overwrite, run_config=run_config)
    try:  # after the trainer's checks (directory, lock, device), on one process only
        if trainer.ctx.is_main:
            check_training_estimate(command.yes, settings, trainer.model, process, trainer.data_shape, trainer.ctx.device)
    except BaseException:
        trainer.release()
        raise
    trainer.sampler = sampler
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
            latent.run(TrainLatent(checkpoint=result.out_dir / "checkpoint", steps=command.latent_steps, seed=config.seed,
                                         device=config.device))
        factors = (1, 2, 4) if len(trainer.data_shape) <= 3 else (1, 2)
        options = SampleOptions(resolutions=command.resolutions or tuple(f * config.resolution for f in factors), num=config.sample_count, sampler=config.sampler,
                                sample_steps=config.sample_steps, seed=config.seed, compile=config.compile)
        code = sample.run(Sample(checkpoint=result.out_dir / "checkpoint", out_dir=result.out_dir / "samples",
                                 device=config.device, sampling=options))
        if len(trainer.data_shape) <= 3:  # eval scores images and clips, not volumes
            print(f"judge them: funcdiff eval --checkpoint {result.out_dir / 'checkpoint'} --resolution-study")
        return code
    print(f"samples:    {result.out_dir / 'samples'}")
    return 0


def check_training_estimate(yes: bool, c: TrainSettings, model: NeuralOperator, process: DiffusionProcess,
                            data_shape: tuple[int, ...], device: str) -> None:
    """Print the time and memory of a training step above 128 x 128 points; refuse over a day or 80 % of memory unless
    ``yes``."""
    if math.prod(data_shape[1:]) <= 128 * 128:
        return
    step = estimate_training_step(model, process, data_shape, batch=c.batch_size, points=c.points, device=device)
    total = step.seconds * c.steps if c.steps is not None else c.time_budget
    total = min(total, c.time_budget) if c.time_budget is not None else total
    run = Estimate(total, step.peak_bytes)
    print(f"training at {'x'.join(map(str, data_shape[1:]))}: {step.seconds:.2f} s per step, {run.describe()} in all", flush=True)
    if not yes and (total > 24 * 3600 or step.peak_bytes > 0.8 * memory_bytes(device)):
        raise ValueError(f"this run would take {run.describe()}; pass --yes to go ahead (a smaller --batch-size or "
                         "--points makes it cheaper)")
