"""Train the paper's CelebA-HQ 256 model (Bond-Taylor & Willcocks 2024) on a folder of face images.

The defaults are the official run: preset paper-256, batch 32, Adam (0.9, 0.99) at lr 5e-5, a quarter of the
pixels per image, EMA 0.995 every 10 steps, cosine schedule with 1000 steps, mollified-noise prediction, mollifier
sigma of 1 pixel, random
horizontal flips. Every flag shrinks or changes it, e.g. for a CPU smoke run:

    python examples/images/train_celebahq.py --data path/to/celebahq --resolution 32 --preset tiny \
        --batch-size 4 --steps 20 --time-budget None --device cpu --autocast none

Use several GPUs with torchrun:  torchrun --nproc-per-node 8 examples/images/train_celebahq.py --data ...
"""

import sys

import torch
import tyro

from funcdiff.commands.train import Train, run
from funcdiff.factory import TrainConfig

PAPER = TrainConfig(
    data="data/celebahq", resolution=256, channels=3, flip=True, preset="paper-256", process="ddpm", points=0.25, batch_size=32, lr=5e-5,
    adam_betas=(0.9, 0.99), ema_decay=0.995, ema_every=10, steps=None, time_budget=7 * 24 * 3600.0, sigma_pixels=1.0,
    prediction="mollified_eps",
    autocast="bf16" if torch.cuda.is_available() else "none", device="cuda" if torch.cuda.is_available() else "cpu",
    log_every=100, sample_every=5000, checkpoint_every=10000, sample_count=8, sample_steps=100, out_dir="runs/celebahq256",
)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags (the same as ``funcdiff train``'s, with the paper's defaults) and train."""
    return run(tyro.cli(Train, args=argv, default=Train(config=PAPER), description=__doc__))


if __name__ == "__main__":
    sys.exit(main())
