"""Optional C++ kernels for the sparse depthwise sum and the k-nearest search, compiled on first use.

The source is ``native_sparse.cpp`` beside this module, built with ``torch.utils.cpp_extension.load_inline``
(which writes the Python bindings of ``_FUNCTIONS``): it needs only a C++ compiler (no CUDA, nothing beyond pip);
if compiling fails the ``native`` backend is simply unavailable and the pure-PyTorch code is used. The kernel map
is an open-addressing lattice hash like `funcdiff.operators.lattice.LatticeHash` (same hash, memory in the number
of points), and the sum reads each neighbour's channel row directly, so nothing is scattered to the grid. The
weight gradient is accumulated per thread and reduced at the end. The exact k-nearest search of
`funcdiff.operators.interpolate.nearest_points` probes the same hash in a window that grows until the k-th
distance is certain. Threads come from PyTorch's own pool (``at::parallel_for``), so ``torch.set_num_threads``
applies and no second OpenMP runtime is loaded.
"""

import functools
import hashlib
import logging
import warnings
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

_SOURCE_FILE = Path(__file__).with_name("native_sparse.cpp")

_FUNCTIONS = ["kernel_map", "knn_grid", "sparse_sum", "weight_grad"]


def _vector_flags() -> list[str]:
    """``-mavx2 -mfma`` when this x86 CPU has them (the build is per machine), else nothing (portable SSE2 code)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= set(flags) else []


@functools.cache
def load() -> ModuleType | None:
    """The compiled extension, building it on first call (cached on disk by PyTorch), or None if that fails."""
    from torch.utils import cpp_extension

    flags = ["-O3", "-fopenmp-simd", *_vector_flags()]
    source = _SOURCE_FILE.read_text()
    name = "funcdiff_sparse_" + hashlib.sha1((source + " ".join(flags)).encode()).hexdigest()[:10]
    logger.info("loading the native sparse convolution kernel %s (the first build takes about a minute)", name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cpp_extension.load_inline(
                name, cpp_sources=source, functions=_FUNCTIONS, extra_cflags=flags,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - any build failure means: use the pure-PyTorch backends
        logger.warning("native sparse convolution kernel unavailable (%s); using pure PyTorch", error)
        return None


def ready() -> bool:
    """Whether the extension is already loaded in this process (checking never triggers a build)."""
    return load.cache_info().currsize > 0 and load() is not None
