"""Dense evaluation with resampled kernels far above the training resolution: FFT against direct convolution.

A kernel of ``k`` taps learnt at ``N_ref`` has about ``k N / N_ref`` taps per axis at ``N`` (docs/math.md §8), so sampling
a 32 px model at 1024 px convolves with 225 x 225 kernels. Prints, per case, the median time of one no-grad
`SparseDepthwiseConv.forward_dense` by PyTorch's direct depthwise convolution and by `fft_correlate`, and their
ratio; `funcdiff.operators.layers.conv.FFT_MIN_TAPS` is set from these figures.

With ``--operator`` it times instead one no-grad ``forward_dense`` of the whole ``cpu-small`` operator trained at 32 px
(the demo's architecture) at ``--size`` px, keeping the kernels' transforms between calls (as sampling does) or not,
alternating the two three times in one process, and prints the ratio.

Usage: python benchmarks/large_kernels.py [--channels 32] [--threads 2]
       python benchmarks/large_kernels.py --operator [--size 1024]
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure  # noqa: E402

from funcdiff.operators.layers import conv as conv_module  # noqa: E402
from funcdiff.operators.layers.kernel_resampling import resampled_size  # noqa: E402

CASES = [(16, 32, 64), (16, 32, 128), (8, 64, 256), (1, 32, 256), (1, 32, 512), (1, 32, 1024)]
"""(batch, reference size, grid size): 7-tap kernels resampled to 13, 29, 29, 57, 113 and 225 taps per axis."""


def time_case(batch: int, reference: int, size: int, channels: int, *, fft: bool) -> float:
    """Median seconds of one forward_dense with the FFT path forced on or off."""
    conv = conv_module.SparseDepthwiseConv(channels, 7, ndim=2, reference_shape=(reference, reference))
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    conv_module.FFT_MIN_TAPS = 1 if fft else 10**12
    slow = size >= 512
    with torch.no_grad():
        return measure(lambda: conv.forward_dense(x), warmup=1, repeats=1 if slow else 3)["median_s"]


def operator_case(size: int) -> None:
    """Print the median seconds of the operator's dense evaluation with and without kept kernel transforms."""
    from funcdiff.operators import operator_preset

    model = operator_preset("cpu-small", channels=1, resolution=32).eval()
    x, t = torch.randn(1, 1, size, size), torch.rand(1)
    limit, times = conv_module.SPECTRUM_CACHE_BYTES, {"kept": [], "recomputed": []}
    with torch.no_grad():
        model.forward_dense(x, t)
        for _ in range(3):
            for name in times:
                conv_module.SPECTRUM_CACHE_BYTES = limit if name == "kept" else 0
                times[name].append(measure(lambda: model.forward_dense(x, t), warmup=0, repeats=1)["median_s"])
    kept, recomputed = (sorted(times[n])[1] for n in ("kept", "recomputed"))
    print(f"cpu-small (32 px) at {size} px, one evaluation: kernel transforms kept {kept:.2f} s, recomputed {recomputed:.2f} s, "
          f"ratio {kept / recomputed:.2f}")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--operator", action="store_true", help="time the whole operator instead (see above)")
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.operator:
        operator_case(args.size)
        return
    print(f"{'batch':>5} {'grid':>6} {'taps':>9} {'direct s':>9} {'fft s':>8} {'fft/direct':>10}")
    for batch, reference, size in CASES:
        taps = resampled_size(7, size, reference)
        direct = time_case(batch, reference, size, args.channels, fft=False)
        fft = time_case(batch, reference, size, args.channels, fft=True)
        print(f"{batch:>5} {size:>5}² {taps:>4}x{taps:<4} {direct:>9.3f} {fft:>8.3f} {fft / direct:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
