"""Train a small ∞-Diff operator on procedural solid shapes (3-D occupancy fields) and sample volumes at the training
resolution and at twice it, from the same nested noise.

The data are `funcdiff.data.shapes.ShapeVolumes`: unions of spheres, boxes, tori and capsules, exact at every
resolution dividing 64. The pictures show one row per example: its three central slices (across depth, height and
width) and a lit view of the shape seen along the depth axis; held-out data at the same resolutions are drawn beside.

    python examples/volumes/train_shapes.py                                  # 16^3, three minutes on the CPU
    python examples/volumes/train_shapes.py --resolution 8 --steps 20 --time-budget 0 --sample-steps 5   # smoke

On a shared CPU, OMP_NUM_THREADS=1 avoids oversubscription. Writes into --out-dir the run (checkpoint/, config.json,
metrics.jsonl), and per resolution r: samples_<r>.png and samples_<r>.safetensors (the raw volumes), data_<r>.png.
"""

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from funcdiff.data.shapes import ShapeVolumes
from funcdiff.domains import write_png
from funcdiff.domains.slices import volume_slices
from funcdiff.evaluation.run import sample_resolutions
from funcdiff.factory import TrainConfig, build_model, build_process
from funcdiff.operators import NeuralOperator
from funcdiff.processes import DiffusionProcess
from funcdiff.training import Trainer


def parse(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """The run's config from the flags, and the flags themselves."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=16, help="training grid side (must divide 64)")
    parser.add_argument("--preset", default="tiny", help="operator preset (tiny, cpu-small, ...)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--points", type=float, default=0.25, help="share of the grid's points per example")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: the time budget only)")
    parser.add_argument("--time-budget", type=float, default=180.0, help="seconds of training (0: no limit)")
    parser.add_argument("--data-limit", type=int, default=None, help="train on only this many shapes")
    parser.add_argument("--sample-count", type=int, default=8)
    parser.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out-dir", default="runs/volumes")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out-dir")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    config = TrainConfig(
        data="shapes", resolution=args.resolution, data_limit=args.data_limit, preset=args.preset, batch_size=args.batch_size,
        points=args.points, lr=args.lr, ema_warmup=True, steps=args.steps, time_budget=args.time_budget or None,
        seed=args.seed, device=args.device, log_every=50, checkpoint_every=0, sample_count=args.sample_count,
        sample_steps=args.sample_steps, out_dir=args.out_dir,
    )
    return config, args


def sample_volumes(model: NeuralOperator, process: DiffusionProcess, config: TrainConfig) -> Iterator[tuple[int, Tensor, float]]:
    """``(resolution, samples, seconds per sample)`` at the training resolution and twice it, from one nested noise."""
    generator = torch.Generator(device=config.device)
    return sample_resolutions(model, process, [config.resolution, 2 * config.resolution], num=config.sample_count,
                              steps=config.sample_steps, sampler=config.sampler, generator=generator, seed=config.seed,
                              device=config.device, progress=False)


def main(argv: list[str] | None = None) -> int:
    """Train for the budget, then sample at r and 2r and write slice pictures of samples and data."""
    config, args = parse(argv)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    out = Path(config.out_dir)
    data = ShapeVolumes(resolution=config.resolution, limit=config.data_limit)
    model = build_model(config, data.shape)
    process = build_process(config, data.shape)
    trainer = Trainer(model, process, data, config.settings(), overwrite=args.overwrite, run_config=config.to_dict())
    start = time.perf_counter()
    result = trainer.run()
    seconds = time.perf_counter() - start
    print(f"trained {result.step} steps in {seconds:.1f} s ({result.step / seconds:.2f} steps/s), last loss {result.loss:.4f}")

    display = 4 * config.resolution
    for resolution, samples, per_sample in sample_volumes(result.ema, process, config):
        save_file({"samples": samples.contiguous()}, str(out / f"samples_{resolution}.safetensors"))
        write_png(volume_slices(samples, count=config.sample_count, display=display), out / f"samples_{resolution}.png")
        real = ShapeVolumes(resolution=resolution, split="test", limit=config.sample_count)
        write_png(volume_slices(torch.stack([real[i] for i in range(len(real))]), count=config.sample_count, display=display), out / f"data_{resolution}.png")
        print(f"sampled {len(samples)} volumes at {resolution}^3: {per_sample:.2f} s each ({config.sample_steps} DDIM steps)")
    print(f"pictures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
