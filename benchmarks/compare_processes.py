"""Compare trained checkpoints (e.g. the mollified DDPM and functional flow matching after the same wall-clock
budget) by the sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018) to held-out icons.

    python benchmarks/compare_processes.py runs/cmp-ddpm/checkpoint runs/cmp-flow/checkpoint --num 256 --resolution 32

Prints, per checkpoint, SWD x 1e3 per pyramid level (finest first; `funcdiff.metrics.swd_per_level` with 64 patches
per image, as when the README's figures were measured) and their mean, with the real/real floor (train icons against
held-out icons) on the first line; lower is better. Sampling uses each process's default sampler with
``--steps`` network evaluations (Heun takes ``(steps + 1) // 2`` steps, so both use about the same number).
"""

import argparse
import time

import numpy as np
import torch

from funcdiff.factory import make_dataset
from funcdiff.metrics import swd_per_level
from funcdiff.processes import FlowProcess
from funcdiff.sampling import sample
from funcdiff.training import load_trained

PATCHES_PER_IMAGE = 64


def main() -> None:
    """Sample each checkpoint and print the SWD table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50, help="network evaluations per sample")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = torch.stack([make_dataset("icons", resolution=args.resolution, split="test")[i] for i in range(args.num)])
    train = make_dataset("icons", resolution=args.resolution, split="train")
    floor = torch.stack([train[i] for i in range(args.num)])
    levels = swd_per_level(floor, held_out, patches_per_image=PATCHES_PER_IMAGE)
    print(f"{'set':<32} {'SWD x 1e3 per level (fine -> coarse)':<40} mean   s/sample")
    print(f"{'real/real floor':<32} {', '.join(f'{v:.1f}' for v in levels):<40} {np.mean(levels):.1f}")
    for path in args.checkpoints:
        model, process, _ = load_trained(path)
        steps = (args.steps + 1) // 2 if isinstance(process, FlowProcess) else args.steps
        start = time.perf_counter()
        samples = sample(model, process, args.resolution, batch=args.num, steps=steps, generator=torch.Generator().manual_seed(0))
        seconds = (time.perf_counter() - start) / args.num
        levels = swd_per_level(samples, held_out, patches_per_image=PATCHES_PER_IMAGE)
        print(f"{path:<32} {', '.join(f'{v:.1f}' for v in levels):<40} {np.mean(levels):.1f}   {seconds:.3f}")


if __name__ == "__main__":
    main()
