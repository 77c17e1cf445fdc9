"""Faithfulness of the conditional tasks on held-out icons, whose ground truth exists at every resolution.

    python benchmarks/conditional_tasks.py runs/demo/checkpoint --num 8
    python benchmarks/conditional_tasks.py runs/ae/checkpoint --num 8      # a diffusion autoencoder adds reconstruction

For a checkpoint trained at r px on icons, prints markdown tables of:
- reconstruction (autoencoders only): PSNR at r px of the DDIM-inverted and of the stochastic reconstruction, and at 2r
  px against the true 2r px icons beside bicubic upsampling of the r px input, and box-averaged back against the input;
- super-resolution 4x from r/2 px to 2r px: PSNR of the output box-averaged back against the input, PSNR and SWD
  (x 1e3, mean over pyramid levels) against the true 2r px icons, bicubic as the baseline;
- inpainting at r px with a centred box hole: RMSE on the known part and in the hole, guidance and replacement.
Seconds per image on this machine's CPU threads.
"""

import argparse
import time

import torch

from funcdiff.domains import box_average
from funcdiff.evaluation import bicubic
from funcdiff.factory import make_dataset
from funcdiff.metrics import psnr, score_sets
from funcdiff.operators import DiffusionAutoencoder
from funcdiff.tasks import inpaint, make_mask, superres
from funcdiff.tasks.autoencoding import reconstruct
from funcdiff.training import load_trained


def held_out(resolution: int, num: int) -> torch.Tensor:
    """The first ``num`` held-out icons at ``resolution`` px."""
    data = make_dataset("icons", resolution=resolution, split="test")
    return torch.stack([data[i] for i in range(num)])


def timed(work):
    """``work()`` and its wall time in seconds."""
    start = time.perf_counter()
    out = work()
    return out, time.perf_counter() - start


def main() -> None:
    """Run every task on the held-out icons and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--num", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    model, process, _ = load_trained(args.checkpoint)
    r, n, steps = model.reference_shape[0], args.num, args.steps
    x, fine, low = held_out(r, n), held_out(2 * r, n), held_out(r // 2, n)
    generator = torch.Generator()
    mean = lambda t: float(t.mean())  # noqa: E731

    if isinstance(model, DiffusionAutoencoder):
        print(f"| reconstruction of {n} held-out icons | PSNR at {r} px | PSNR at {2 * r} px vs truth | "
              f"{2 * r} px box-averaged vs input | s per image |\n|---|---|---|---|---|")
        print(f"| bicubic upsampling of the input | - | {mean(psnr(bicubic(x, 2 * r), fine)):.1f} | "
              f"{mean(psnr(box_average(bicubic(x, 2 * r), 2), x)):.1f} | 0 |")
        for stochastic, weight in ((False, 0.0), (False, 1.0), (True, 0.0), (True, 1.0)):
            generator.manual_seed(0)
            same, t1 = timed(lambda: reconstruct(model, process, x, steps=steps, stochastic=stochastic, generator=generator))
            generator.manual_seed(0)
            up, t2 = timed(lambda: reconstruct(model, process, x, resolution=2 * r, steps=steps, stochastic=stochastic, weight=weight,
                                               generator=generator))
            name = "fresh noise, z only" if stochastic else "DDIM inversion given z, lifted to 2x"
            name += f", 2x guided (w = {weight:g})" if weight else ", 2x unguided"
            print(f"| {name} | {mean(psnr(same, x)):.1f} | {mean(psnr(up, fine)):.1f} | {mean(psnr(box_average(up, 2), x)):.1f} | "
                  f"{t1 / n:.2f} / {t2 / n:.2f} |", flush=True)

    print(f"\n| super-resolution 4x, {r // 2} -> {2 * r} px | box-averaged vs input (PSNR) | vs truth (PSNR) | SWD vs truth set | "
          "s per image |\n|---|---|---|---|---|")
    up = bicubic(low, 2 * r)
    print(f"| bicubic | {mean(psnr(box_average(up, 4), low)):.1f} | {mean(psnr(up, fine)):.1f} | {score_sets(up, fine).swd_mean:.0f} | 0 |")
    weights = (1.0, 0.0) if isinstance(model, DiffusionAutoencoder) else (1.0,)
    for weight in weights:
        generator.manual_seed(0)
        out, seconds = timed(lambda: torch.cat([superres(model, process, image, scale=4, weight=weight, steps=steps, generator=generator)
                                                for image in low]))
        name = ("z of the input" + (", guided (w = 1)" if weight else ", unguided")) if isinstance(model, DiffusionAutoencoder) else "guided (w = 1)"
        print(f"| {name} | {mean(psnr(box_average(out, 4), low)):.1f} | {mean(psnr(out, fine)):.1f} | "
              f"{score_sets(out, fine).swd_mean:.0f} | {seconds / n:.2f} |", flush=True)

    mask = make_mask("box", (r, r))
    known = lambda out: float(((out - x) * mask).square().sum() / (mask.sum() * n)).__pow__(0.5)  # noqa: E731
    hole = lambda out: float(((out - x) * (1 - mask)).square().sum() / ((1 - mask).sum() * n)).__pow__(0.5)  # noqa: E731
    print(f"\n| inpainting a box at {r} px, RMSE | known part | hole | s per image |\n|---|---|---|---|")
    for method in ("guidance", "replace"):
        generator.manual_seed(0)
        out, seconds = timed(lambda: torch.cat([inpaint(model, process, image, mask, method=method, steps=steps, generator=generator)
                                                for image in x]))
        print(f"| {method} | {known(out):.2f} | {hole(out):.2f} | {seconds / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
