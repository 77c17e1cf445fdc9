"""Optional `torch.compile` of an operator's fixed-shape parts: the per-point layers and the grid U-Net.

A module that has such parts gives them as plain functions of ``(module, *tensors)`` and keeps a ``compile_mode``
attribute: None runs them eagerly, else through `compiled` (one compiled function per function and mode, shared by
every module of a class, so copies of a module, such as an EMA, stay correct and compile nothing new). Parameters
are graph inputs, so blocks of one architecture share their graphs. `compile_operator` switches a whole operator.

Measured on 2 CPU cores (benchmarks/compile.py, benchmarks/README.md): the demo operator evaluated densely at 1024 px
runs 1.25x faster after a one-off compile of 20-30 s; a training step of the demo 1.1x.
"""

import functools
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
"""`torch.compile`'s modes: ``reduce-overhead`` adds CUDA graphs, ``max-autotune`` also tunes kernels (slow compile)."""


@functools.cache
def compiled(fn: Callable, mode: CompileMode) -> Callable:
    """``torch.compile(fn, mode=mode)``, built once per function and mode."""
    return torch.compile(fn, mode=mode)


def run_part(module: nn.Module, fn: Callable, *args: object) -> object:
    """``fn(module, *args)``, through its compiled version if ``module.compile_mode`` is set."""
    mode = getattr(module, "compile_mode", None)
    return fn(module, *args) if mode is None else compiled(fn, mode)(module, *args)


def compile_operator(model: nn.Module, mode: CompileMode | None = "default") -> int:
    """Set ``compile_mode`` on every submodule of ``model`` that has compilable parts (None: back to eager).

    Compilation itself happens at the first call with each new input shape (about 10-30 s on a CPU). Returns how
    many modules were switched; 0 means ``model`` has no compilable parts (wrap it in `torch.compile` yourself).
    """
    if mode is not None and mode not in CompileMode.__args__:
        raise ValueError(f"mode must be one of {CompileMode.__args__} or None, got {mode!r}")
    switched = 0
    for module in model.modules():
        if hasattr(module, "compile_mode"):
            module.compile_mode = mode
            switched += 1
    return switched
