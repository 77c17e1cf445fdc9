"""Samplers of any `SigmaProcess` (docs/math.md §19): Heun's second-order method with optional stochastic churn
(Karras et al. 2022, Alg. 2), its first-order Euler step, which is deterministic DDIM written in noise-level space,
and DPM-Solver++ (2M) in noise-level space (Lu et al. 2022; docs/math.md §12)."""

import math

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tqdm.auto import tqdm

from funcdiff._typing import DenseField, Tensor
from funcdiff.processes.base import DenseModel, SigmaProcess, check_output, check_start, mollified_noise
from funcdiff.sampling.denoising import Callback
from funcdiff.sampling.grids import TimeGrid, check_grid
from funcdiff.sampling.guidance import Guidance


def _denoised(model: DenseModel, process: SigmaProcess, y: DenseField, sigma: float, cond: Tensor | None,
              guidance: Guidance | None) -> tuple[DenseField, DenseField]:
    """``D(y; sigma) = T xhat0`` from one network call, which guidance corrects (docs/math.md §13, signal coefficient
    1), and the network's output."""
    level = torch.full((y.shape[0],), sigma, dtype=torch.float64, device=y.device)
    where = f"at sigma={sigma:.4g}"
    if guidance is None:
        output = model(process.model_input(y, level), process.time(level), cond)
        check_output(output, y.shape, where, finite=True, model=model)
        return process.denoised(output, y, level), output
    with torch.enable_grad():
        y_grad = y.detach().requires_grad_(True)
        output = model(process.model_input(y_grad, level), process.time(level), cond)
        check_output(output, y.shape, where, finite=True, model=model)
        d = process.denoised(output, y_grad, level)
        return (guidance(y_grad, d, torch.ones_like(level)) - d).detach() + d.detach(), output.detach()


def _run(
    model: DenseModel, process: SigmaProcess, y_start: DenseField, grid: TimeGrid, *, method: str, cond: Tensor | None,
    guidance: Guidance | None, callback: Callback | None, generator: torch.Generator | None, reference_shape: tuple[int, ...] | None,
    progress: bool, denoise: bool, churn: float = 0.0, churn_range: tuple[float, float] = (0.0, math.inf), churn_noise: float = 1.0,
) -> DenseField:
    """Steps of ``method`` ("heun", "euler", "dpmpp") between the grid's levels ``sigma(tau)``, then ``D`` at the last
    (the Euler step to ``sigma = 0``)."""
    check_start(process.domain, y_start, "y_start")
    check_grid(grid)
    if churn < 0 or churn_noise < 0 or not churn_range[0] <= churn_range[1]:
        raise ValueError(f"need churn >= 0, churn_noise >= 0 and an ordered churn_range, got {churn}, {churn_noise}, {churn_range}")
    if churn and reference_shape is None:
        raise ValueError("churn adds fresh noise, whose variance depends on the training grid: pass reference_shape")
    sigmas = process.sigma(torch.as_tensor(grid, dtype=torch.float64)).tolist()
    taus = torch.as_tensor(grid, dtype=torch.float64).tolist()
    gamma_max = min(churn / len(sigmas), math.sqrt(2) - 1)
    y, previous = y_start, None
    with torch.no_grad():
        for k in tqdm(range(len(sigmas) - 1), desc="sampling", disable=not progress, leave=False):
            sigma, sigma_next = sigmas[k], sigmas[k + 1]
            gamma = gamma_max if churn_range[0] <= sigma <= churn_range[1] else 0.0
            if gamma > 0:
                raised = sigma * (1 + gamma)
                fresh = mollified_noise(process.domain, process.mollifier, y.shape[0], tuple(y.shape[1:]), reference_shape,
                                        generator=generator, dtype=y.dtype, device=y.device)
                y, sigma = y + churn_noise * math.sqrt(raised**2 - sigma**2) * fresh, raised
            d, _ = _denoised(model, process, y, sigma, cond, guidance)
            if method == "dpmpp":
                # y' = (s'/s) y + (1 - s'/s) D'', D'' = (1 + 1/2r) D - (1/2r) D_prev, r = h_prev / h, h = log(s / s')
                h = math.log(sigma / sigma_next)
                extrapolated = d if previous is None else d + (d - previous[0]) * h / (2 * previous[1])
                y_next, previous = sigma_next / sigma * y + (1 - sigma_next / sigma) * extrapolated, (d, h)
            else:
                slope = (y - d) / sigma
                y_next = y + (sigma_next - sigma) * slope
                if method == "heun":
                    d_next, _ = _denoised(model, process, y_next, sigma_next, cond, guidance)
                    y_next = y + (sigma_next - sigma) * (slope + (y_next - d_next) / sigma_next) / 2
            y = y_next
            if callback is not None:
                callback(taus[k + 1], y, d)
        d, output = _denoised(model, process, y, sigmas[-1], cond, guidance)
        if callback is not None:
            callback(0.0, d, d)
    return process.finalize(d, output) if denoise else d


@jaxtyped(typechecker=beartype)
def sample_edm_heun(
    model: DenseModel,
    y_start: DenseField,
    grid: TimeGrid,
    *,
    process: SigmaProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
    churn: float = 0.0,
    churn_range: tuple[float, float] = (0.0, math.inf),
    churn_noise: float = 1.0,
) -> DenseField:
    """Heun's method on ``dy/dsigma = (y - D(y; sigma)) / sigma`` between the levels ``sigma(tau)`` of the grid (Karras et
    al. 2022, Alg. 2), then ``D`` at the last level: ``2 steps + 1`` network calls for ``steps + 1`` grid times.

    Args:
        model: callable ``(c_in y, c_noise, cond) -> F`` on dense fields.
        y_start: the prior ``sigma_max T eps`` (`SigmaProcess.prior`).
        grid: noise times from 1 to 0 (`funcdiff.sampling.uniform_t` gives the ``rho``-spaced levels).
        process: the process.
        cond: passed to the model unchanged.
        guidance: a correction of ``D`` at every call (docs/math.md §13).
        callback: called after every step with ``(tau, y, D)``.
        generator: for churn's noise.
        reference_shape: the training grid (churn's noise is white at it).
        progress: show a progress bar.
        denoise: report ``W D`` (else ``D = T xhat0`` itself).
        churn: ``S_churn``: raise each level in ``churn_range`` by ``gamma = min(churn / levels, sqrt(2) - 1)`` with
            fresh noise first, ``levels = steps + 1`` as Karras et al.'s ``N`` (0: deterministic).
        churn_range: ``(S_tmin, S_tmax)``, the levels that churn.
        churn_noise: ``S_noise``, the fresh noise's scale.
    """
    return _run(model, process, y_start, grid, method="heun", cond=cond, guidance=guidance, callback=callback, generator=generator,
                reference_shape=reference_shape, progress=progress, denoise=denoise, churn=churn, churn_range=churn_range,
                churn_noise=churn_noise)


@jaxtyped(typechecker=beartype)
def sample_edm_ddim(
    model: DenseModel,
    y_start: DenseField,
    grid: TimeGrid,
    *,
    process: SigmaProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
) -> DenseField:
    """Euler steps ``y' = D + (sigma' / sigma)(y - D)`` between the grid's levels, then ``D``: deterministic DDIM, which
    is this step in noise-level space (docs/math.md §19); ``steps + 1`` network calls. Arguments as `sample_edm_heun`."""
    return _run(model, process, y_start, grid, method="euler", cond=cond, guidance=guidance, callback=callback, generator=generator,
                reference_shape=reference_shape, progress=progress, denoise=denoise)


@jaxtyped(typechecker=beartype)
def sample_edm_dpmpp(
    model: DenseModel,
    y_start: DenseField,
    grid: TimeGrid,
    *,
    process: SigmaProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
) -> DenseField:
    """DPM-Solver++ (2M) between the grid's levels, then ``D``: with ``h = log(sigma / sigma')`` and the previous step's
    ``h_prev``, ``y' = (sigma' / sigma) y + (1 - sigma' / sigma)((1 + 1 / 2r) D - (1 / 2r) D_prev)``, ``r = h_prev / h``
    (the first step first-order, which is the DDIM step); ``steps + 1`` network calls (docs/math.md §19). Arguments
    as `sample_edm_heun`."""
    return _run(model, process, y_start, grid, method="dpmpp", cond=cond, guidance=guidance, callback=callback, generator=generator,
                reference_shape=reference_shape, progress=progress, denoise=denoise)
