"""Sample a trained checkpoint at any resolution with the Python API and save PNG grids.

    python examples/images/sample.py runs/celebahq256/checkpoint --resolutions 256 512 --num 8
"""

import argparse
import sys

import torch

from funcdiff.domains import save_images
from funcdiff.sampling import sample
from funcdiff.training import load_trained


def main(argv: list[str] | None = None) -> int:
    """Load the EMA weights, sample each resolution from the same nested noise, and save the pictures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint directory")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256])
    parser.add_argument("--num", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="sampler steps (DDIM for a ddpm checkpoint, Heun for a flow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunk-points", type=int, default=65536, help="points per operator call (bounds memory)")
    parser.add_argument("--out-dir", default="runs/samples")
    args = parser.parse_args(argv)

    model, process, _ = load_trained(args.checkpoint, device=args.device)
    for resolution in args.resolutions:
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
        images = sample(model, process, resolution, batch=args.num, steps=args.steps, generator=generator, device=args.device,
                        chunk_points=args.chunk_points, nest_resolution=max(args.resolutions), progress=True)
        print(save_images(images.cpu(), args.out_dir, f"{resolution}px"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
