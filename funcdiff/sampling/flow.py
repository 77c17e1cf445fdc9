"""ODE samplers of any `FlowProcess`: Euler (order 1) and Heun (order 2) over a time grid (docs/math.md §11, §14),
with guidance through the path's coefficients (docs/math.md §13)."""

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tqdm.auto import tqdm

from funcdiff._typing import DenseField, Tensor
from funcdiff.processes.base import DenseModel, FlowProcess, broadcast, check_output, check_start
from funcdiff.sampling.denoising import Callback
from funcdiff.sampling.grids import TimeGrid, flow_times
from funcdiff.sampling.guidance import Guidance


def _time_dtype(y: DenseField) -> torch.dtype:
    """The dtype of the model's time: the state's, but at least float32 (in bfloat16, ``s = 0.99`` would be 0.98828)."""
    return torch.promote_types(y.dtype, torch.float32)


def data_estimate(process: FlowProcess, velocity: DenseField, y_s: DenseField, s: Tensor) -> DenseField:
    """``D = T xhat1 = (sigma v - sigma' y) / (alpha' sigma - sigma' alpha)`` from a velocity (docs/math.md §13)."""
    a, sigma, da, dsigma = process.coefficients(s)
    return (broadcast(sigma, y_s) * velocity - broadcast(dsigma, y_s) * y_s) / broadcast(da * sigma - dsigma * a, y_s)


def _velocity(
    model: DenseModel, process: FlowProcess, y: DenseField, s: float, cond: Tensor | None, guidance: Guidance | None, where: str
) -> tuple[DenseField, DenseField]:
    """``dy/ds`` at ``(y, s)``, with guidance ``v' = v + (alpha' - sigma' alpha / sigma) (D' - D)`` (docs/math.md §13),
    and the network's output."""
    time = torch.full((y.shape[0],), s, dtype=_time_dtype(y), device=y.device)
    s64 = torch.full((y.shape[0],), s, dtype=torch.float64, device=y.device)
    if guidance is None:
        output = model(y, time, cond)
        check_output(output, y.shape, where, finite=True, model=model)
        return process.velocity(output, y, s64), output
    with torch.enable_grad():
        y_grad = y.detach().requires_grad_(True)
        output = model(y_grad, time, cond)
        check_output(output, y.shape, where, finite=True, model=model)
        v = process.velocity(output, y_grad, s64)
        d = data_estimate(process, v, y_grad, s64)
        a, sigma, da, dsigma = process.coefficients(s64)
        change = (guidance(y_grad, d, a) - d).detach()
    return v.detach() + broadcast(da - dsigma * a / sigma, y) * change, output.detach()


def _integrate(
    model: DenseModel,
    process: FlowProcess,
    y_0: DenseField,
    grid: TimeGrid,
    *,
    heun: bool,
    cond: Tensor | None,
    guidance: Guidance | None,
    denoise: bool,
    progress: bool,
    callback: Callback | None,
) -> DenseField:
    """Integrate ``dy/ds = v(y, s)`` over the grid's times ``s = 1 - tau``; Heun corrects every step but the last.

    The last step is an Euler step (as in Karras et al. 2022), so no velocity is asked for at ``s = 1``, where an
    x1-predicting flow has none; one Euler step's local error is O(h^2), so Heun keeps its global order 2.
    """
    check_start(process.domain, y_0, "y_0")
    times = flow_times(grid)
    y = y_0
    with torch.no_grad():
        for k in tqdm(range(len(times) - 1), desc="sampling", disable=not progress, leave=False):
            s, s_next = times[k], times[k + 1]
            h = s_next - s
            slope, output = _velocity(model, process, y, s, cond, guidance, f"at step {k} (s={s:.4g})")
            if heun and k < len(times) - 2:
                slope = (slope + _velocity(model, process, y + h * slope, s_next, cond, guidance, f"at step {k} (s={s_next:.4g})")[0]) / 2
            if callback is not None:
                callback(1 - s_next, y + h * slope, data_estimate(process, slope, y, torch.full((y.shape[0],), s, dtype=torch.float64, device=y.device)))
            y = y + h * slope
    return process.finalize(y, output) if denoise else y


@jaxtyped(typechecker=beartype)
def sample_euler(
    model: DenseModel,
    y_0: DenseField,
    grid: TimeGrid,
    *,
    process: FlowProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
) -> DenseField:
    """Euler's method ``y <- y + h v(y, s)`` from ``y_0`` (usually ``process.prior(...)``) to ``s = 1``.

    Args:
        model: callable ``(y_s, s, cond) -> output`` on dense fields.
        y_0: the start at ``s = 1 - grid[0]``.
        grid: noise times ``tau = 1 - s`` (`funcdiff.sampling.uniform_t` and friends).
        process: the flow.
        cond: passed to the model unchanged.
        guidance: optional correction of the data estimate (docs/math.md §13); needs `FlowProcess.coefficients`.
        callback: called as ``callback(tau, y, D)`` after every step, ``D`` the data estimate of the step's slope
            (needs `FlowProcess.coefficients`).
        generator: unused (the sampler draws no noise); part of the common signature.
        reference_shape: unused, likewise.
        progress: show a progress bar.
        denoise: return ``process.finalize(y_1, output)`` (the reported sample); else the final state ``y_1``.
    """
    return _integrate(model, process, y_0, grid, heun=False, cond=cond, guidance=guidance, denoise=denoise, progress=progress,
                      callback=callback)


@jaxtyped(typechecker=beartype)
def sample_heun(
    model: DenseModel,
    y_0: DenseField,
    grid: TimeGrid,
    *,
    process: FlowProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
) -> DenseField:
    """Heun's method (explicit trapezoid, order 2): two velocity evaluations per step but the last. Arguments as in
    `sample_euler`."""
    return _integrate(model, process, y_0, grid, heun=True, cond=cond, guidance=guidance, denoise=denoise, progress=progress,
                      callback=callback)
