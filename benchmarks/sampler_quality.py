"""Sample quality against the number of network evaluations, per sampler, for one checkpoint at its training resolution.

    python benchmarks/sampler_quality.py runs/demo/checkpoint --num 256 --runs ddim:50 ddim:15 dpmpp:15 dpmpp:10

Each run is ``sampler:evaluations`` (Heun takes ``(evaluations + 1) // 2`` steps). Prints, per run, the SWD x 1e3 per
pyramid level against held-out data of the checkpoint's set, the FD and the seconds per sample, with the real/real
floor (a second real set) and its spread over seeds on the first lines: differences smaller than that spread are noise.
"""

import argparse

import torch

from funcdiff.evaluation import real_sets, sample_resolutions
from funcdiff.metrics import score_sets
from funcdiff.training import load_trained


def main() -> None:
    """Sample the checkpoint with each sampler and count of evaluations, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--runs", nargs="+", default=["ddim:50", "ddim:15", "dpmpp:20", "dpmpp:15", "dpmpp:10"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, process, config = load_trained(args.checkpoint)
    resolution = model.reference_shape[0]
    reference, other = real_sets(config["run"]["data"], resolution, args.num)
    print("| run | SWD x1e3 per level (fine -> coarse) | FD | s/sample |\n|---|---|---|---|")
    floors = [score_sets(other, reference, seed=seed) for seed in range(3)]
    spread = [f"{min(f.swd[k] for f in floors):.1f}-{max(f.swd[k] for f in floors):.1f}" for k in range(len(floors[0].swd))]
    print(f"| real/real floor (3 seeds of the metric) | {', '.join(spread)} | {floors[0].fd:.3f} | |", flush=True)
    for run in args.runs:
        name, evaluations = run.split(":")
        steps = (int(evaluations) + 1) // 2 if name == "heun" else int(evaluations)
        generator = torch.Generator()
        (_, samples, seconds), = sample_resolutions(model, process, [resolution], num=args.num, steps=steps, sampler=name,
                                                    generator=generator, seed=args.seed, progress=False)
        scores = score_sets(samples, reference)
        print(f"| {run} | {', '.join(f'{v:.1f}' for v in scores.swd)} | {scores.fd:.3f} | {seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
