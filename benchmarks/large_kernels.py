"""Dense evaluation with resampled kernels far above the training resolution: FFT against direct convolution.

A kernel of ``k`` taps learnt at ``N_ref`` has about ``k N / N_ref`` taps per axis at ``N`` (MATH.md §8), so sampling
a 32 px model at 1024 px convolves with 225 x 225 kernels. Prints, per case, the median time of one no-grad
`SparseDepthwiseConv.forward_dense` by PyTorch's direct depthwise convolution and by `fft_correlate`, and their
ratio; `funcdiff.operators.conv.FFT_MIN_TAPS` is set from these figures.

Usage: python benchmarks/large_kernels.py [--channels 32] [--threads 2]
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure  # noqa: E402

from funcdiff.operators import conv as conv_module  # noqa: E402
from funcdiff.operators.kernels import resampled_size  # noqa: E402

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


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'batch':>5} {'grid':>6} {'taps':>9} {'direct s':>9} {'fft s':>8} {'fft/direct':>10}")
    for batch, reference, size in CASES:
        taps = resampled_size(7, size, reference)
        direct = time_case(batch, reference, size, args.channels, fft=False)
        fft = time_case(batch, reference, size, args.channels, fft=True)
        print(f"{batch:>5} {size:>5}² {taps:>4}x{taps:<4} {direct:>9.3f} {fft:>8.3f} {fft / direct:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
