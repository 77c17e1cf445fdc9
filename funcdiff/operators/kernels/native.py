"""Optional C++ kernels for the sparse depthwise sum and the k-nearest search, compiled once per environment.

The source is ``native_sparse.cpp`` beside this module, built with ``torch.utils.cpp_extension.load_inline``
(which writes the Python bindings of ``_FUNCTIONS``): it needs only a C++ compiler (no CUDA, nothing beyond pip);
if compiling fails the ``native`` backend is simply unavailable and the pure-PyTorch code is used. The kernel map
is an open-addressing lattice hash like `funcdiff.operators.kernels.lattice.LatticeHash` (same hash, memory in the number
of points), and the sum reads each neighbour's channel row directly, so nothing is scattered to the grid. The
weight gradient is accumulated per thread and reduced at the end. The exact k-nearest search of
`funcdiff.operators.layers.interpolate.nearest_points` probes the same hash in a window that grows until the k-th
distance is certain. Threads come from PyTorch's own pool (``at::parallel_for``), so ``torch.set_num_threads``
applies and no second OpenMP runtime is loaded.

The build (`build`, or the first `load`) is keyed by everything that makes two builds differ (source, flags,
Python prefix and version, torch), so environments sharing one extension directory (``TORCH_EXTENSIONS_DIR``,
else torch's default) each keep their own library. It compiles in a child process inside a private folder
under an ``flock`` lock, which the OS releases when its holder dies: a killed build leaves nothing that makes
the next one wait (torch's own ``lock`` file would), and the library appears by an atomic rename only once
it has been built and imported.
"""

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from funcdiff.owner_lock import OwnerLock

logger = logging.getLogger(__name__)

_SOURCE_FILE = Path(__file__).with_name("native_sparse.cpp")

_FUNCTIONS = ["kernel_map", "knn_grid", "sparse_sum", "weight_grad"]

BUILD_TIMEOUT = 600.0
"""Seconds `load` waits for another process's build plus its own compile before using pure PyTorch (a build
takes 30-60 s on 2 cores)."""

# The child's whole program: torch's JIT build (and import, which checks the library) in a folder of its own.
GUARD = """
import ctypes, os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the parent's death, even by kill -9, sends SIGTERM
if os.getppid() != int(sys.argv[2]):  # the parent died before that was set
    os.killpg(0, signal.SIGKILL)
"""
"""The start of the compile child: it leads its own process group (compiler and linker included) and kills the
whole group when its parent dies, so no compiler outlives a killed build."""

_COMPILE = GUARD + "import json; from torch.utils.cpp_extension import load_inline; load_inline(**json.loads(sys.argv[1]))"


class NativeBuildError(RuntimeError):
    """The native kernel could not be built: no compiler, a compile error, or a timeout."""


@dataclass(frozen=True)
class BuildSpec:
    """Where and how this environment's kernel is built.

    Attributes:
        name: the extension's module name, ``funcdiff_sparse_`` plus the build key.
        directory: the kernel's folder in the extension directory.
        flags: the compiler flags.
    """

    name: str
    directory: Path
    flags: tuple[str, ...]

    @property
    def library(self) -> Path:
        """The built shared library."""
        return self.directory / f"{self.name}.so"


@dataclass(frozen=True)
class NativeBuild:
    """The outcome of `build`.

    Attributes:
        path: the shared library.
        built: whether this call compiled it (False: it was already built).
        seconds: how long the call took.
    """

    path: Path
    built: bool
    seconds: float


def _vector_flags() -> list[str]:
    """``-mavx2 -mfma`` when this x86 CPU has them (the build is per machine), else nothing (portable SSE2 code)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= set(flags) else []


def extensions_root() -> Path:
    """``TORCH_EXTENSIONS_DIR`` if set, else torch's default extension directory."""
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())


def build_spec() -> BuildSpec:
    """This environment's build: its key hashes the source, flags, compiler, Python (prefix, version) and torch."""
    flags = ("-O3", "-fopenmp-simd", *_vector_flags())
    inputs = {
        "source": _SOURCE_FILE.read_text(),
        "functions": _FUNCTIONS,
        "flags": flags,
        "compiler": os.environ.get("CXX", "c++"),
        "machine": platform.machine(),
        "prefix": os.path.realpath(sys.prefix),
        "python": sys.version,
        "torch": [torch.__version__, torch.version.cuda, torch.version.hip, os.path.realpath(torch.__file__)],
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    name = f"funcdiff_sparse_{key}"
    return BuildSpec(name, extensions_root() / name, flags)


@contextlib.contextmanager
def build_lock(path: Path, *, timeout: float) -> Iterator[None]:
    """Hold the `OwnerLock` on ``path``, waiting at most ``timeout`` s; the OS drops it when its holder dies.

    Raises:
        NativeBuildError: a live process held the lock for ``timeout`` s.
    """
    lock, deadline, waited = OwnerLock(path), time.monotonic() + timeout, False
    while (owner := lock.try_acquire()) is not None:
        if time.monotonic() >= deadline:
            raise NativeBuildError(f"{owner} held {path} for more than {timeout:.0f} s")
        if not waited:
            logger.warning("waiting for %s, which is compiling the native sparse kernel", owner)
            waited = True
        time.sleep(0.2)
    try:
        yield
    finally:
        lock.release()


def _compile(spec: BuildSpec, folder: Path, *, timeout: float) -> None:
    """Build the library into ``folder`` in a child process group, killed whole on timeout or interruption."""
    arguments = {
        "name": spec.name, "cpp_sources": _SOURCE_FILE.read_text(), "functions": _FUNCTIONS,
        "extra_cflags": list(spec.flags), "build_directory": str(folder), "verbose": True,
    }
    command = [sys.executable, "-c", _COMPILE, json.dumps(arguments), str(os.getpid())]
    child = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = child.communicate(timeout=timeout)
    except BaseException as error:  # a timeout or Ctrl-C: the compiler must not outlive the build
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if isinstance(error, subprocess.TimeoutExpired):
            raise NativeBuildError(f"compiling took more than {timeout:.0f} s") from None
        raise
    if child.returncode != 0:
        log = spec.directory / "build.log"
        log.write_text(output)
        lines = [line for line in output.splitlines() if line.strip()] or ["no output"]
        first_error = next((line for line in lines if "error" in line.lower()), lines[-1])
        raise NativeBuildError(f"compiling failed (exit {child.returncode}): {first_error.strip()} (full log: {log})")


def build(*, force: bool = False, timeout: float = BUILD_TIMEOUT) -> NativeBuild:
    """Compile this environment's kernel unless it is already built (or ``force``), and say where it is.

    Announces a compile on the ``funcdiff.operators.kernels.native`` logger at WARNING level (shown by default); loading
    a built library says nothing. Folders left by killed builds (torch's ``lock`` among them) are removed while
    holding the lock.

    Args:
        force: compile even if the library exists (it is replaced atomically).
        timeout: seconds to wait for another process's build plus this compile.

    Raises:
        NativeBuildError: the compile failed or the timeout passed.
    """
    start = time.monotonic()
    spec = build_spec()
    if spec.library.exists() and not force:
        return NativeBuild(spec.library, built=False, seconds=time.monotonic() - start)
    with build_lock(spec.directory / "build.lock", timeout=timeout):
        if spec.library.exists() and not force:  # another process built it while this one waited
            return NativeBuild(spec.library, built=False, seconds=time.monotonic() - start)
        for stale in spec.directory.glob("build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        folder = spec.directory / f"build-{socket.gethostname()}-{os.getpid()}"
        folder.mkdir()
        logger.warning("compiling the native sparse kernel (once per environment, about a minute) in %s ...", spec.directory)
        try:
            _compile(spec, folder, timeout=max(1.0, timeout - (time.monotonic() - start)))
            os.replace(folder / spec.library.name, spec.library)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.monotonic() - start
    logger.warning("compiled the native sparse kernel in %.0f s: %s", seconds, spec.library)
    return NativeBuild(spec.library, built=True, seconds=seconds)


@functools.cache
def load() -> ModuleType | None:
    """The compiled extension, built by `build` on the first call of a new environment, or None if that fails."""
    try:
        library = build().path
        module_spec = importlib.util.spec_from_file_location(library.stem, library)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - any failure means: use the pure-PyTorch backends
        logger.warning("native sparse convolution kernel unavailable (%s); using pure PyTorch", error)
        return None
    return module


def ready() -> bool:
    """Whether the extension is already loaded in this process (checking never triggers a build)."""
    return load.cache_info().currsize > 0 and load() is not None
