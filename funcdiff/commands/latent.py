"""The ``train-latent`` command, and the latents that ``sample`` and ``eval`` draw for a conditioned checkpoint."""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from funcdiff.commands.common import CommonOptions
from funcdiff.conditioning import EncodedConditioning
from funcdiff.factory import TrainConfig, build_dataset
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.models.config import LatentMLPConfig
from funcdiff.processes.base import DiffusionProcess
from funcdiff.tasks.autoencoding import cached_latents
from funcdiff.training import load_trained, load_latent_model, sample_latents, save_latent_model, train_latent
from funcdiff.training.latent import read_latent_config


LATENT_DIR = "latent"
"""Where ``train-latent`` puts the latent model by default: beside the checkpoint, in ``<run>/latent``."""


@dataclass(frozen=True, kw_only=True)
class TrainLatent(CommonOptions):
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


def load_conditioned(checkpoint: Path, device: str) -> tuple[EncodedConditioning, DiffusionProcess, dict]:
    """A checkpoint's EMA autoencoder, process and config; ``ValueError`` for a checkpoint of a plain model."""
    model, process, config = load_trained(checkpoint, device=device)
    if not isinstance(model, EncodedConditioning):
        raise ValueError(f"{checkpoint} holds a plain {type(model).__name__}, not a diffusion autoencoder (train with --autoencoder)")
    return model, process, config


def checkpoint_identity(checkpoint: Path, config: dict) -> dict[str, str | int]:
    """What identifies the weights a latent model was fitted to: the checkpoint's path, and from its (verified)
    config the step and the EMA weights' checksum."""
    return {"checkpoint": str(Path(checkpoint).resolve()), "step": int(config.get("step", 0)),
            "ema_sha256": config.get("files", {}).get("ema.safetensors", "")}


def run(command: TrainLatent) -> int:
    """The ``train-latent`` command."""
    model, process, config = load_conditioned(command.checkpoint, command.device)
    run = config.get("run")
    if isinstance(run, dict) and not isinstance(run.get("data"), str):  # a run file's: its settings are not flags
        run = None
    if run is None and command.data is None:
        raise ValueError("this checkpoint does not record its data set as train-latent can rebuild it; pass --data")
    if not isinstance(config.get("data_shape"), list) or len(config["data_shape"]) < 2:
        raise ValueError(f"{command.checkpoint} does not record the shape of its data (data_shape); it was not saved by a Trainer")
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
    if not isinstance(model, EncodedConditioning):
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
