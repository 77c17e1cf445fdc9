"""Training throughput of the demo's step, one configuration per fresh process, printed as examples/s and ratios.

    python benchmarks/demo_throughput.py [--steps 200] [--warmup 20]

Rows: the demo before multi-resolution training (32 px, 25 % of the points) and the demo now (32 + 64 + 128 px, 256
points per example, band-limited resampling), each with 1 and 2 PyTorch threads, and with Adam's multi-tensor
("foreach") update; the demo with the first releases' linear resampling, and with the Fourier neural operator (1
thread). Then a profile of the current demo's step (cProfile, 1 thread): where its time goes. Time the rows on a quiet
machine. The rows train the mollified DDPM (`DDPM_DEMO`); the demo's EDM costs the same per step (400 steps in 74 s
each, side by side).
"""

import argparse
import cProfile
import dataclasses
import json
import pstats
import subprocess
import sys
import time

VARIANTS = {
    "32 px, 25 %": dict(train_resolutions=(), points=0.25),
    "32+64+128 px, 256 points (demo)": {},
    "demo with linear resampling": dict(resampling="linear"),
    "demo with the FNO (fno-small)": dict(operator="fno"),
}
PARTS = {  # cProfile entries (file:function) whose cumulative time the profile reports, in the order of a step
    "data: load and coarsen": ("loader.py", "resolutions.py:batch"),
    "noise and mollifier (full grid)": ("mollified.py:q_sample",),
    "kernel map (native)": ("kernel_map",),
    "points -> U-Net grid (k nearest)": ("knn_to_grid",),
    "U-Net": ("unet.py:_unet",),
    "U-Net grid -> points (band-limited read)": ("interpolate.py:per_point", "interpolate.py:dct_reader"),
    "forward (all)": ("infty_diff.py:forward",),
    "backward": ("graph.py:_engine_run_backward",),
    "optimizer": ("adam.py:step",),
}


def run_case(name: str, threads: int, steps: int, warmup: int, foreach: bool, profile: bool) -> dict:
    """Train ``steps`` steps of a variant after ``warmup`` steps in this process; examples/s (and the profile)."""
    import torch

    from funcdiff.commands.train import DDPM_DEMO
    from funcdiff.factory import build_run
    from funcdiff.training import Trainer

    torch.set_num_threads(threads)
    config = dataclasses.replace(DDPM_DEMO, **VARIANTS[name], steps=warmup, time_budget=None, checkpoint_every=0, log_every=0,
                                 out_dir=f"runs/throughput/{threads}-{int(foreach)}")
    model, process, data = build_run(config)
    trainer = Trainer(model, process, data, config.settings(), overwrite=True, progress=False)
    if foreach:
        trainer.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas, foreach=True)
    trainer.run()
    trainer = Trainer(model, process, data, dataclasses.replace(config.settings(), steps=warmup + steps), resume=True, progress=False)
    if foreach:
        trainer.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas, foreach=True)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    trainer.run()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    result = {"examples_per_s": steps * config.batch_size / seconds, "seconds_per_step": seconds / steps}
    if profiler:
        stats = pstats.Stats(profiler).stats
        result["profile"] = {part: sum(v[3] for k, v in stats.items() if any(p in f"{k[0]}:{k[2]}" for p in patterns)) / steps
                             for part, patterns in PARTS.items()}
    return result


def main() -> None:
    """Run every row in a fresh process and print the table, then the profile."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(**json.loads(args.case))))
        return
    first, demo, *others = VARIANTS
    rows = [(name, threads, False) for name in (first, demo) for threads in (1, 2)] + [(name, 1, True) for name in (first, demo)]
    rows += [(name, 1, False) for name in others]
    results = {}
    for name, threads, foreach in rows:
        case = dict(name=name, threads=threads, steps=args.steps, warmup=args.warmup, foreach=foreach, profile=False)
        out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True, check=True)
        results[name, threads, foreach] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results[next(iter(VARIANTS)), 2, False]["examples_per_s"]
    print("| variant | threads | Adam | examples/s | s per step | vs. 32 px, 2 threads |\n|---|---|---|---|---|---|")
    for (name, threads, foreach), r in results.items():
        print(f"| {name} | {threads} | {'foreach' if foreach else 'default'} | {r['examples_per_s']:.0f} | "
              f"{r['seconds_per_step'] * 1e3:.0f} ms | {r['examples_per_s'] / base:.2f} |")
    case = dict(name=list(VARIANTS)[1], threads=1, steps=args.steps, warmup=args.warmup, foreach=False, profile=True)
    out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True, check=True)
    profile = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nprofile of the demo's step, 1 thread ({profile['seconds_per_step'] * 1e3:.0f} ms under cProfile):\n")
    print("| part | ms per step | share |\n|---|---|---|")
    for part, seconds in profile["profile"].items():
        print(f"| {part} | {seconds * 1e3:.1f} | {seconds / profile['seconds_per_step']:.0%} |")


if __name__ == "__main__":
    main()
