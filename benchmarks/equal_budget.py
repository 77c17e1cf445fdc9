"""Train variants of the demo for the same wall-clock budget, one after another, and score each one's samples with
`funcdiff.evaluation` at one resolution (lower is better; the real/real floor on the first line).

    python benchmarks/equal_budget.py subsampling --budget 240 --num 128    # the paper's premise (its Table 3 in small)
    python benchmarks/equal_budget.py levers --budget 240 --num 256         # quality per CPU-minute, one change at a time
    python benchmarks/equal_budget.py resolutions --budget 240 --num 128    # training at one resolution or several

``subsampling``: 32 px with all points vs 64 px with all, 25 % and 6 % of the points, all scored at 64 px.
Every variant starts from the demo's settings with the mollified DDPM (`DDPM_DEMO`, with which the README's tables
were measured; the demo itself now trains the EDM family).
``levers``: the demo's settings as they are, then one change each (prediction type, warm-ups, mollifier width, batch, points, width,
the flow-matching process), all scored at 32 px.
``resolutions``: 32 px alone (25 % of the points) vs 32 + 64 and 32 + 64 + 128 px with 256 points per example (the
demo), all scored at 64 px, twice the reference resolution. Prints a markdown table and writes ``<out>/<experiment>.json``. Runs
share the machine with nothing else only if you make it so: the budget is wall time.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from funcdiff.commands.train import DDPM_DEMO
from funcdiff.evaluation import real_sets, sample_resolutions
from funcdiff.factory import build_run
from funcdiff.metrics import score_sets
from funcdiff.training import Trainer

EXPERIMENTS: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {
    "subsampling": (64, {
        "32 px, all points": dict(resolution=32, train_resolutions=(), points=1.0),
        "64 px, all points": dict(resolution=64, train_resolutions=(), points=1.0),
        "64 px, 25 % of points": dict(resolution=64, train_resolutions=(), points=0.25),
        "64 px, 6 % of points": dict(resolution=64, train_resolutions=(), points=0.0625),
    }),
    "levers": (32, {
        "demo": {},
        "lr warm-up 100 + EMA warm-up": dict(warmup_steps=100, ema_warmup=True),
        "mollified-eps prediction": dict(prediction="mollified_eps"),
        "mollifier sigma 0.5 px": dict(sigma_pixels=0.5),
        "512 points": dict(points=512),
        "batch 32": dict(batch_size=32),
        "lr 1e-3": dict(lr=1e-3),
        "stratified points": dict(point_scheme="stratified"),
        "flow matching (x1)": dict(process="flow"),
    }),
    "resolutions": (64, {
        "32 px alone, 25 % of points": dict(train_resolutions=(), points=0.25),
        "32 + 64 px, 256 points": dict(train_resolutions=(32, 64)),
        "32 + 64 + 128 px, 256 points (demo)": {},
    }),
}


def main() -> None:
    """Train, sample and score every variant of the chosen experiment; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of training per variant")
    parser.add_argument("--num", type=int, default=128, help="samples scored per variant")
    parser.add_argument("--steps", type=int, default=50, help="network evaluations per sample")
    parser.add_argument("--sampler", default="auto", help="auto (DDIM for the DDPM, Heun for the flow), dpmpp, ...")
    parser.add_argument("--only", nargs="*", help="run only the variants whose names contain one of these")
    parser.add_argument("--out", default="runs/equal-budget")
    args = parser.parse_args()
    resolution, variants = EXPERIMENTS[args.experiment]
    reference, other = real_sets("icons", resolution, args.num)
    floor = score_sets(other, reference)
    print("| variant | steps | examples/s | SWD x1e3 finest (x floor) | SWD mean | FD | spectrum | s/sample |\n|---|---|---|---|---|---|---|---|")
    print(f"| real/real floor | | | {floor.swd[0]:.1f} (1.00) | {floor.swd_mean:.1f} | {floor.fd:.3f} | {floor.spectrum:.3f} | |", flush=True)
    results = []
    for name, overrides in variants.items():
        if args.only and not any(part in name for part in args.only):
            continue
        slug = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")
        config = dataclasses.replace(DDPM_DEMO, time_budget=args.budget, out_dir=f"{args.out}/{args.experiment}/{slug}", **overrides)
        model, process, data = build_run(config)
        start = time.perf_counter()
        result = Trainer(model, process, data, config.settings(), overwrite=True, run_config=config.to_dict(), progress=False).run()
        rate = result.step * config.batch_size / (time.perf_counter() - start)
        steps = (args.steps + 1) // 2 if config.process == "flow" and args.sampler in ("auto", "heun") else args.steps
        generator = torch.Generator()
        (_, samples, seconds), = sample_resolutions(result.ema, process, [resolution], num=args.num, steps=steps, sampler=args.sampler,
                                                    generator=generator, progress=False)
        scores = score_sets(samples, reference)
        print(f"| {name} | {result.step} | {rate:.0f} | {scores.swd[0]:.1f} ({scores.swd[0] / floor.swd[0]:.2f}) | "
              f"{scores.swd_mean:.1f} | {scores.fd:.3f} | {scores.spectrum:.3f} | {seconds:.3f} |", flush=True)
        results.append({"variant": name, "overrides": overrides, "steps": result.step, "examples_per_second": rate,
                        "seconds_per_sample": seconds, **scores.as_dict()})
    out = Path(args.out) / f"{args.experiment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget": args.budget, "num": args.num, "steps": args.steps, "sampler": args.sampler,
                               "resolution": resolution, "floor": floor.as_dict(), "results": results}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
