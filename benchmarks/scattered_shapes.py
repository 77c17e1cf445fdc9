"""Shapes learnt from scattered points against the same shapes learnt from grids, at equal training time
(docs/math.md §20).

    python benchmarks/scattered_shapes.py --minutes 15 --resolution 8 --points 256 --out runs/scattered

Trains two runs side by side on one thread each, the same operator (``fno-tiny`` on the ``--resolution`` grid),
process (the DDPM with the identity mollifier), batch and points per example: one on ``shapes`` (occupancy averaged
over the cells of that grid), one on ``shapes-points`` (exact occupancy at 4,096 random positions per shape, never
on a grid). Then samples each on the 16^3 and 32^3 grids and scores them against held-out ``shapes`` volumes there: the
sliced Wasserstein distance on Laplacian-pyramid patches (`funcdiff.metrics.score_sets`) of the three central
slices of every volume, the finest level, beside the floor (a second real set scored the same way). The last line
gives the scattered run's score as a ratio to the gridded run's at each resolution, measured in one run. The
comparison leans toward the gridded run: it learns the cell averages the held-out volumes hold, the scattered run
the exact +-1 occupancy.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

from funcdiff.data import ShapeVolumes
from funcdiff.metrics import score_sets
from funcdiff.sampling import sample
from funcdiff.training import load_trained

RUNS = {"grid": "shapes", "scattered": "shapes-points"}


def slices(volumes: torch.Tensor) -> torch.Tensor:
    """The central slice of each volume along each axis, as images ``(3 n, c, r, r)``."""
    r = volumes.shape[-1] // 2
    return torch.cat([volumes[:, :, r], volumes[:, :, :, r], volumes[:, :, :, :, r]])


def finest_swd(volumes: torch.Tensor, reference: torch.Tensor) -> float:
    """`score_sets`' finest-level SWD of the volumes' central slices against the reference's."""
    return score_sets(slices(volumes), slices(reference)).swd[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--resolution", type=int, default=8, help="the operator's grid and the gridded run's data")
    parser.add_argument("--points", type=int, default=256, help="points per example and step")
    parser.add_argument("--num", type=int, default=64, help="samples and real volumes per set")
    parser.add_argument("--out", type=Path, default=Path("runs/scattered"))
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--resolution", str(args.resolution), "--preset", "fno-tiny", "--sigma-pixels", "0", "--points", str(args.points),
              "--batch-size", "16", "--lr", "1e-3", "--ema-decay", "0.999", "--ema-warmup", "--steps", "None", "--time-budget",
              str(60 * args.minutes), "--sample-count", "4", "--sample-steps", "10"]
    jobs = [subprocess.Popen([sys.executable, "-m", "funcdiff", "train", "--data", data, *common, "--out-dir", str(args.out / name)], env=env)
            for name, data in RUNS.items()]
    if any(job.wait() for job in jobs):
        raise SystemExit("a training run failed")
    torch.set_num_threads(2)
    ratios = []
    for side in (16, 32):
        held_out = ShapeVolumes(resolution=side, split="test")
        real = torch.stack([held_out[i] for i in range(2 * args.num)])
        floor = finest_swd(real[args.num:], real[: args.num])
        scores = {}
        for name in RUNS:
            model, process, _ = load_trained(args.out / name / "checkpoint")
            with torch.no_grad():
                volumes = sample(model, process, side, batch=args.num, steps=50, generator=torch.Generator().manual_seed(0))
            scores[name] = finest_swd(volumes, real[: args.num])
        ratios.append(scores["scattered"] / scores["grid"])
        print(f"{side}^3: finest SWD grid {scores['grid']:.2f}, scattered {scores['scattered']:.2f}, floor {floor:.2f}")
    print("scattered / grid: " + ", ".join(f"{side}^3 {r:.2f}" for side, r in zip((16, 32), ratios)))


if __name__ == "__main__":
    main()
