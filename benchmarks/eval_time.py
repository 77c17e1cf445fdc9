"""Time `funcdiff eval`'s work apart from sampling: 256 stand-in samples (held-out training glyphs) at 32, 64 and 128 px
scored against real data with every metric, the report and its plots included.

    python benchmarks/eval_time.py --num 256 --threads 2

Prints the seconds to read the real sets (from the icon cache; the first run renders them once) and to score and
write the report; the issue's target is under 2 minutes in all on 2 cores.
"""

import argparse
import tempfile
import time

import torch

from funcdiff.evaluation import evaluate, real_sets


def main() -> None:
    """Build the stand-in samples, then time `evaluate` on them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples = {side: real_sets("icons", side, args.num, seed=1)[1] for side in (32, 64, 128)}  # also warms the cache
    start = time.perf_counter()
    for side in samples:
        real_sets("icons", side, args.num)
    loaded = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        evaluate(samples, data="icons", training_resolution=32, out_dir=out)
        scored = time.perf_counter() - start
    print(f"{args.num} samples x 3 resolutions, {args.threads} threads: real sets read in {loaded:.1f} s; "
          f"evaluate (real sets, every metric, report) {scored:.1f} s")


if __name__ == "__main__":
    main()
