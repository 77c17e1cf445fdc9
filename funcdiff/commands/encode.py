"""The ``encode`` command: images to the latents of a conditioned checkpoint's encoder."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from safetensors.torch import save_file

from funcdiff.commands.common import CommonOptions, read_images
from funcdiff.commands.latent import load_conditioned


@dataclass(frozen=True, kw_only=True)
class Encode(CommonOptions):
    """Encode images with an autoencoder checkpoint's encoder: their latents z into a safetensors file.

    Attributes:
        images: image files (PNG or JPEG), any size (the encoder reads any grid).
        checkpoint: a checkpoint trained with ``--autoencoder``.
        out: the file the latents go to (tensor ``latents``, one row per image, in the order given).
    """

    images: tyro.conf.Positional[tuple[Path, ...]]
    checkpoint: Path
    out: Path = Path("runs/latents.safetensors")


def run(command: Encode) -> int:
    """The ``encode`` command."""
    model, process, _ = load_conditioned(command.checkpoint, command.device)
    images = read_images(command.images, process.domain.channels).to(command.device)
    with torch.no_grad():
        latents = model.encode(images).cpu()
    command.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": latents.contiguous()}, str(command.out),
              metadata={"checkpoint": str(command.checkpoint), "images": json.dumps([str(p) for p in command.images])})
    print(f"latents {tuple(latents.shape)}: {command.out}  (mean norm {float(latents.norm(dim=1).mean()):.2f})")
    return 0
