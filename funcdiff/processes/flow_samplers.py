"""ODE samplers of any `FlowProcess`: Euler (order 1) and Heun (order 2) on a uniform grid of ``s`` (docs/math.md §11)."""

from collections.abc import Callable

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tqdm.auto import tqdm

from funcdiff._typing import DenseField, Tensor
from funcdiff.processes.base import DenseModel, FlowProcess, check_output, check_start

FlowCallback = Callable[[float, DenseField], None]


def _integrate(
    model: DenseModel,
    process: FlowProcess,
    y_0: DenseField,
    steps: int,
    *,
    heun: bool,
    cond: Tensor | None,
    denoise: bool,
    progress: bool,
    callback: FlowCallback | None,
) -> DenseField:
    """Integrate ``dy/ds = v(y, s)`` from 0 to 1 in ``steps`` equal steps; Heun corrects every step but the last.

    The last step is an Euler step (as in Karras et al. 2022), so no velocity is asked for at ``s = 1``, where an
    x1-predicting flow has none; one Euler step's local error is O(h^2), so Heun keeps its global order 2.
    """
    check_start(process.domain, y_0, "y_0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    grid = [k / steps for k in range(steps + 1)]

    def v(y: DenseField, s: float, k: int) -> DenseField:
        time = torch.full((y.shape[0],), s, dtype=y.dtype, device=y.device)
        output = model(y, time, cond)
        check_output(output, y.shape, f"at step {k} (s={s:.4g})", finite=True)
        return process.velocity(output, y, time)

    y = y_0
    with torch.no_grad():
        for k in tqdm(range(steps), desc="sampling", disable=not progress, leave=False):
            s, s_next = grid[k], grid[k + 1]
            h = s_next - s
            slope = v(y, s, k)
            if heun and k < steps - 1:
                slope = (slope + v(y + h * slope, s_next, k)) / 2
            y = y + h * slope
            if callback is not None:
                callback(s_next, y)
    return process.finalize(y) if denoise else y


@jaxtyped(typechecker=beartype)
def sample_euler(
    model: DenseModel,
    process: FlowProcess,
    y_0: DenseField,
    steps: int = 100,
    *,
    cond: Tensor | None = None,
    denoise: bool = True,
    progress: bool = False,
    callback: FlowCallback | None = None,
) -> DenseField:
    """Euler's method ``y <- y + h v(y, s)`` from ``y_0`` (usually ``process.prior(...)``) to ``s = 1``.

    Args:
        model: callable ``(y_s, s, cond) -> output`` on dense fields.
        process: the flow.
        y_0: the start at ``s = 0``.
        steps: the number of equal steps.
        cond: passed to the model unchanged.
        denoise: return ``process.finalize(y_1)`` (the Wiener-filtered sample); else the final state ``y_1``.
        progress: show a progress bar.
        callback: called as ``callback(s, y_s)`` after every step.
    """
    return _integrate(model, process, y_0, steps, heun=False, cond=cond, denoise=denoise, progress=progress, callback=callback)


@jaxtyped(typechecker=beartype)
def sample_heun(
    model: DenseModel,
    process: FlowProcess,
    y_0: DenseField,
    steps: int = 50,
    *,
    cond: Tensor | None = None,
    denoise: bool = True,
    progress: bool = False,
    callback: FlowCallback | None = None,
) -> DenseField:
    """Heun's method (explicit trapezoid, order 2): two velocity evaluations per step but the last. Arguments as in
    `sample_euler`."""
    return _integrate(model, process, y_0, steps, heun=True, cond=cond, denoise=denoise, progress=progress, callback=callback)
