"""Compare trained checkpoints (e.g. the mollified DDPM and functional flow matching after the same wall-clock
budget) by the sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018) to held-out icons.

    python benchmarks/compare_processes.py runs/cmp-ddpm/checkpoint runs/cmp-flow/checkpoint --num 256 --resolution 32

Prints, per checkpoint, SWD x 1e3 per pyramid level (finest first) and their mean, with the real/real floor (train
icons against held-out icons) on the first line; lower is better. Sampling uses each process's default sampler with
``--steps`` network evaluations (Heun takes ``(steps + 1) // 2`` steps, so both use about the same number).
"""

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from funcdiff.factory import make_dataset
from funcdiff.processes import FlowProcess
from funcdiff.training import load_trained, sample

BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur with reflecting borders."""
    c = x.shape[1]
    kernel = BINOMIAL.to(x)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), kernel.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), kernel.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def laplacian_pyramid(x: torch.Tensor, coarsest: int = 16) -> list[torch.Tensor]:
    """Band-pass levels, finest first, down to the ``coarsest`` side (whose low-pass image is the last level)."""
    levels = []
    while x.shape[-1] > coarsest:
        low = _blur(x)[..., ::2, ::2]
        levels.append(x - F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False))
        x = low
    return levels + [x]


def patches(level: torch.Tensor, per_image: int, generator: torch.Generator) -> np.ndarray:
    """``per_image`` random 7 x 7 patches of every image, flattened, normalised per channel over the set."""
    b, c, h, w = level.shape
    rows = torch.randint(0, h - 6, (b, per_image), generator=generator)
    cols = torch.randint(0, w - 6, (b, per_image), generator=generator)
    offsets = torch.arange(7)
    r = (rows[..., None, None] + offsets[:, None]).expand(b, per_image, 7, 7)
    q = (cols[..., None, None] + offsets[None, :]).expand(b, per_image, 7, 7)
    batch = torch.arange(b)[:, None, None, None].expand_as(r)
    out = level.permute(0, 2, 3, 1)[batch, r, q]  # (b, per_image, 7, 7, c)
    out = (out - out.mean(dim=(0, 1, 2, 3))) / out.std(dim=(0, 1, 2, 3)).clamp(min=1e-8)
    return out.reshape(b * per_image, -1).numpy()


def swd(a: np.ndarray, b: np.ndarray, *, directions: int = 512, seed: int = 0) -> float:
    """Sliced Wasserstein distance between two equal-size descriptor sets, x 1e3."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((a.shape[1], directions))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    pa, pb = np.sort(a @ theta, axis=0), np.sort(b @ theta, axis=0)
    return float(np.abs(pa - pb).mean() * 1e3)


def swd_per_level(x: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> list[float]:
    """SWD x 1e3 between two image sets at every Laplacian level, finest first."""
    out = []
    for level, (lx, ly) in enumerate(zip(laplacian_pyramid(x.double()), laplacian_pyramid(y.double()))):
        g = torch.Generator().manual_seed(seed + level)
        out.append(swd(patches(lx, 64, g), patches(ly, 64, g), seed=seed + level))
    return out


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
    levels = swd_per_level(floor, held_out)
    print(f"{'set':<32} {'SWD x 1e3 per level (fine -> coarse)':<40} mean   s/sample")
    print(f"{'real/real floor':<32} {', '.join(f'{v:.1f}' for v in levels):<40} {np.mean(levels):.1f}")
    for path in args.checkpoints:
        model, process, _ = load_trained(path)
        steps = (args.steps + 1) // 2 if isinstance(process, FlowProcess) else args.steps
        start = time.perf_counter()
        samples = sample(model, process, args.resolution, batch=args.num, steps=steps, generator=torch.Generator().manual_seed(0))
        seconds = (time.perf_counter() - start) / args.num
        levels = swd_per_level(samples, held_out)
        print(f"{path:<32} {', '.join(f'{v:.1f}' for v in levels):<40} {np.mean(levels):.1f}   {seconds:.3f}")


if __name__ == "__main__":
    main()
