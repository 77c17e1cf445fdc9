"""The command line of diffusion autoencoders: ``train-latent``, ``encode``, ``reconstruct``, ``interpolate``, and the
latents that ``sample`` and ``eval`` draw for an autoencoder checkpoint."""

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from safetensors.torch import save_file

from funcdiff.domains.grid import box_average
from funcdiff.domains.io import image_grid, read_png, write_png
from funcdiff.factory import TrainConfig, build_dataset
from funcdiff.metrics import psnr
from funcdiff.operators.models.autoencoder import DiffusionAutoencoder
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.models.config import LatentMLPConfig
from funcdiff.processes.base import DiffusionProcess
from funcdiff.tasks.autoencoding import cached_latents, interpolate, reconstruct
from funcdiff.tasks.superres import DEFAULT_WEIGHT
from funcdiff.training import load_trained, load_latent_model, sample_latents, save_latent_model, train_latent
from funcdiff.training.latent import read_latent_config

LATENT_DIR = "latent"
"""Where ``train-latent`` puts the latent model by default: beside the checkpoint, in ``<run>/latent``."""


@dataclass(frozen=True, kw_only=True)
class TrainLatent:
    """Train the latent diffusion model of an autoencoder checkpoint, so that funcdiff sample can draw from it.

    The EMA encoder (in eval mode) encodes the training set, mirrored copies too for images; the latents are
    normalised by their true mean and std and cached in ``<out-dir>/latents.safetensors`` with their provenance.
    The latent DDPM follows the paper: constant betas 0.008 over 1000 steps, L1 loss on eps, AdamW (weight decay
    0.04), EMA 0.995 every 10 steps.

    Attributes:
        checkpoint: a checkpoint trained with ``--autoencoder``.
        out_dir: where the latent model goes (default: ``latent`` beside the checkpoint, where ``sample`` looks).
        steps: optimiser steps.
        batch_size: latents per step.
        lr: AdamW's learning rate.
        hidden: the MLP's width (the paper: 2048).
        layers: the MLP's layers (the paper: 10 or 20).
        flip: add mirrored copies of the examples (default: as the autoencoder's training did, ``--flip``).
        data: the data set to encode (default: the checkpoint's run's).
        data_limit: encode only this many examples.
        encode_batch: examples per encoder call.
        chunk_points: points per encoder call within them (bounds memory at high resolution).
        seed: seeds the network, batches and noise.
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    checkpoint: Path
    out_dir: Path | None = None
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-4
    hidden: int = 512
    layers: int = 10
    flip: bool | None = None
    data: str | None = None
    data_limit: int | None = None
    encode_batch: int = 64
    chunk_points: int | None = None
    seed: int = 0
    device: str = "cpu"
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class Encode:
    """Encode images with an autoencoder checkpoint's encoder: their latents z into a safetensors file.

    Attributes:
        images: image files (PNG or JPEG), any size (the encoder reads any grid).
        checkpoint: a checkpoint trained with ``--autoencoder``.
        out: the file the latents go to (tensor ``latents``, one row per image, in the order given).
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    images: tyro.conf.Positional[tuple[Path, ...]]
    checkpoint: Path
    out: Path = Path("runs/latents.safetensors")
    device: str = "cpu"
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class Reconstruct:
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
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    images: tyro.conf.Positional[tuple[Path, ...]]
    checkpoint: Path
    resolutions: tuple[int, ...] = ()
    sample_steps: int = 50
    stochastic: bool = False
    weight: float = DEFAULT_WEIGHT
    seed: int = 0
    out_dir: Path = Path("runs/reconstruct")
    device: str = "cpu"
    verbose: bool = False


@dataclass(frozen=True, kw_only=True)
class Interpolate:
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
        device: "cpu", "cuda", ...
        verbose: log at INFO level, and show a traceback on errors.
    """

    first: tyro.conf.Positional[Path]
    second: tyro.conf.Positional[Path]
    checkpoint: Path
    count: int = 7
    resolution: int | None = None
    sample_steps: int = 50
    seed: int = 0
    out_dir: Path = Path("runs/interpolate")
    device: str = "cpu"
    verbose: bool = False


def _autoencoder(checkpoint: Path, device: str) -> tuple[DiffusionAutoencoder, DiffusionProcess, dict]:
    """A checkpoint's EMA autoencoder, process and config; ``ValueError`` for a checkpoint of a plain model."""
    model, process, config = load_trained(checkpoint, device=device)
    if not isinstance(model, DiffusionAutoencoder):
        raise ValueError(f"{checkpoint} holds a plain {type(model).__name__}, not a diffusion autoencoder (train with --autoencoder)")
    return model, process, config


def _read_images(paths: tuple[Path, ...], channels: int) -> torch.Tensor:
    """Image files of one size as a batch in [-1, 1]."""
    if not paths:
        raise ValueError("give at least one image")
    images = [read_png(p, channels=channels) for p in paths]
    if len({tuple(x.shape) for x in images}) != 1:
        raise ValueError(f"the images must all have one size, got {sorted({tuple(x.shape[1:]) for x in images})}")
    return torch.stack(images)


def checkpoint_identity(checkpoint: Path, config: dict) -> dict[str, str | int]:
    """What identifies the weights a latent model was fitted to: the checkpoint's path, and from its (verified)
    config the step and the EMA weights' checksum."""
    return {"checkpoint": str(Path(checkpoint).resolve()), "step": int(config.get("step", 0)),
            "ema_sha256": config.get("files", {}).get("ema.safetensors", "")}


def run_train_latent(command: TrainLatent) -> int:
    """The ``train-latent`` command."""
    model, process, config = _autoencoder(command.checkpoint, command.device)
    run = config.get("run")
    if run is None and command.data is None:
        raise ValueError("this checkpoint does not name its data set; pass --data")
    shape = tuple(config["data_shape"])
    if run is None and len(set(shape[1:])) != 1:
        raise ValueError(f"this checkpoint does not record its run's settings and its data of shape {shape} are not square; "
                         "train-latent needs the run's config")
    base = TrainConfig.from_dict(run) if run is not None else TrainConfig(data=command.data, resolution=shape[1], channels=shape[0])
    limit = base.data_limit if command.data_limit is None else command.data_limit
    data = build_dataset(dataclasses.replace(base, data=command.data or base.data, data_limit=limit, flip=False))
    flip = base.flip if command.flip is None else command.flip
    out = command.out_dir or Path(command.checkpoint).parent / LATENT_DIR
    provenance = {**checkpoint_identity(command.checkpoint, config), "data": command.data or base.data, "data_limit": limit}
    start = time.perf_counter()
    latents = cached_latents(model, data, out / "latents.safetensors", provenance, flip=flip, batch_size=command.encode_batch,
                             chunk_points=command.chunk_points, device=command.device, progress=True)
    print(f"latents: {tuple(latents.shape)} ({'with' if flip else 'without'} mirrored copies) in {time.perf_counter() - start:.0f} s")
    net = LatentMLPConfig(z_dim=latents.shape[1], hidden=command.hidden, layers=command.layers)
    start = time.perf_counter()
    trained = train_latent(latents.to(command.device), steps=command.steps, config=net, batch_size=command.batch_size, lr=command.lr,
                           seed=command.seed, progress=True)
    save_latent_model(trained, out, provenance={**provenance, "flip": flip, "count": latents.shape[0]})
    print(f"trained the latent model ({command.steps} steps) in {time.perf_counter() - start:.0f} s: {out}")
    print(f"sample: funcdiff sample --checkpoint {command.checkpoint}")
    return 0


def sampling_latents(model: NeuralOperator, checkpoint: Path, config: dict, latent: Path | None, *, num: int, seed: int,
                     device: str) -> torch.Tensor | None:
    """Latents to decode for ``sample`` and ``eval``: for an autoencoder (``config``: its checkpoint's), ``num`` drawn
    (seeded) from its latent model (``latent``, default ``latent`` beside the checkpoint); None for a plain model."""
    if not isinstance(model, DiffusionAutoencoder):
        if latent is not None:
            raise ValueError(f"--latent is for diffusion autoencoder checkpoints; {checkpoint} holds a plain model")
        return None
    folder = Path(latent) if latent is not None else Path(checkpoint).parent / LATENT_DIR
    if not (folder / "config.json").is_file():
        raise ValueError(f"{checkpoint} is a diffusion autoencoder: sampling it needs a latent model, and {folder} has none; "
                         f"train one with `funcdiff train-latent --checkpoint {checkpoint}` (or pass --latent DIR)")
    recorded = read_latent_config(folder).get("provenance", {})
    current = checkpoint_identity(checkpoint, config)
    if recorded.get("ema_sha256") != current["ema_sha256"]:
        raise ValueError(f"the latent model in {folder} was fitted to the latents of {recorded.get('checkpoint', 'another checkpoint')} "
                         f"at step {recorded.get('step', '?')}, not to {checkpoint} at step {current['step']}: its encoder has changed "
                         f"since; run `funcdiff train-latent --checkpoint {checkpoint}` again")
    generator = torch.Generator(device=device).manual_seed(seed)
    return sample_latents(load_latent_model(folder, device=device), num, generator=generator)


def run_encode(command: Encode) -> int:
    """The ``encode`` command."""
    model, process, _ = _autoencoder(command.checkpoint, command.device)
    images = _read_images(command.images, process.domain.channels).to(command.device)
    with torch.no_grad():
        latents = model.encode(images).cpu()
    command.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": latents.contiguous()}, str(command.out),
              metadata={"checkpoint": str(command.checkpoint), "images": json.dumps([str(p) for p in command.images])})
    print(f"latents {tuple(latents.shape)}: {command.out}  (mean norm {float(latents.norm(dim=1).mean()):.2f})")
    return 0


def run_reconstruct(command: Reconstruct) -> int:
    """The ``reconstruct`` command."""
    model, process, _ = _autoencoder(command.checkpoint, command.device)
    images = _read_images(command.images, process.domain.channels).to(command.device)
    height, width = images.shape[2:]
    factors = [_factor(r, height) for r in command.resolutions] or [1, 2]
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


def _factor(resolution: int | None, height: int) -> int:
    """The integer factor from images ``height`` px high to ``resolution`` px high (1 for None)."""
    if resolution is None:
        return 1
    if resolution < height or resolution % height:
        raise ValueError(f"resolution {resolution} must be a multiple of the images' height, {height} px")
    return resolution // height


def run_interpolate(command: Interpolate) -> int:
    """The ``interpolate`` command."""
    model, process, _ = _autoencoder(command.checkpoint, command.device)
    ends = _read_images((command.first, command.second), process.domain.channels).to(command.device)
    generator = torch.Generator(device=command.device).manual_seed(command.seed)
    height, width = ends.shape[2:]
    factor = _factor(command.resolution, height)
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
