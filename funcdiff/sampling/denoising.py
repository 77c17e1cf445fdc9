"""Samplers of any `DenoisingProcess` as plain functions of one signature (docs/math.md §14): ancestral DDPM, DDIM with
eta, deterministic DDIM encoding (docs/math.md §6) and DPM-Solver++ (2M) (docs/math.md §12). Each runs over a time grid
built outside it (`funcdiff.sampling.grids`), read as integer steps. Schedule coefficients are formed in float64 and
cast to the state's dtype at use."""

from collections.abc import Callable

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tqdm.auto import tqdm

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.processes.base import DenoisingProcess, DenseModel, broadcast, check_output, check_start, mollified_noise
from funcdiff.processes.schedules import posterior_coefficients
from funcdiff.sampling.grids import TimeGrid, discrete_steps
from funcdiff.sampling.guidance import Guidance

Callback = Callable[[float, DenseField, DenseField], None]
"""Called after every step as ``callback(tau, y, D)``: the noise time reached, the new state and the data estimate
``D = T xhat0`` the step used (docs/math.md §14)."""


def _denoise(
    model: DenseModel, process: DenoisingProcess, y: DenseField, t: Tensor, cond: Tensor | None, clip: bool, guidance: Guidance | None
) -> tuple[DenseField, DenseField]:
    """One network call at step ``t``: ``(T xhat0, xhat0)``, guided and clipped as asked (`DenoisingProcess.estimate`)."""
    if guidance is None:
        output = model(y, process.time(t), cond)
        check_output(output, y.shape, f"at step t={int(t[0])}", finite=True, model=model)
        return process.estimate(output, y, t, clip=clip)
    with torch.enable_grad():
        y_grad = y.detach().requires_grad_(True)
        output = model(y_grad, process.time(t), cond)
        check_output(output, y.shape, f"at step t={int(t[0])}", finite=True, model=model)
        tx0, _ = process.predict(output, y_grad, t)
        correction = (guidance(y_grad, tx0, process.alpha_bar(t).sqrt()) - tx0).detach()
    return process.estimate(output.detach(), y, t, clip=clip, correction=correction)


def _steps(process: DenoisingProcess, y: DenseField, grid: TimeGrid) -> list[tuple[Tensor, Tensor]]:
    """Pairs ``(t, prev)`` of batched step tensors of the grid's integer steps, from the first down to ``prev = 0``."""
    steps = discrete_steps(process, grid)
    full = lambda s: torch.full((y.shape[0],), s, dtype=torch.long, device=y.device)  # noqa: E731
    return [(full(t), full(p)) for t, p in zip(steps, steps[1:])]


def _mollified_eps(process: DenoisingProcess, tx0: DenseField, y: DenseField, t: Tensor) -> DenseField:
    """``T epshat = (y_t - sqrt(abar_t) T xhat0) / sqrt(1 - abar_t)`` (docs/math.md §6)."""
    a = process.alpha_bar(t)
    return broadcast((1 - a).rsqrt(), y) * y - broadcast((a / (1 - a)).sqrt(), y) * tx0


def _run(
    update: Callable[[DenseField, DenseField, Tensor, Tensor], DenseField],
    model: DenseModel,
    process: DenoisingProcess,
    y_T: DenseField,
    grid: TimeGrid,
    *,
    cond: Tensor | None,
    clip: bool,
    guidance: Guidance | None,
    denoise: bool,
    progress: bool,
    callback: Callback | None,
) -> DenseField:
    """The reverse loop shared by the samplers; ``update(y, tx0, t, prev)`` takes one step."""
    y, x0 = y_T, y_T
    with torch.no_grad():
        for t, prev in tqdm(_steps(process, y_T, grid), desc="sampling", disable=not progress, leave=False):
            tx0, x0 = _denoise(model, process, y, t, cond, clip, guidance)
            y = update(y, tx0, t, prev)
            if callback is not None:
                callback(int(prev[0]) / process.num_steps, y, tx0)
    return x0 if denoise else y


def _check_reference(y_T: DenseField, reference_shape: tuple[int, ...] | None, *, required: bool) -> None:
    """Raise ``ValueError`` unless ``reference_shape`` (needed when ``required``) has one size per spatial axis of ``y_T``."""
    if reference_shape is None:
        if required:
            raise ValueError("this sampler draws fresh noise, whose variance depends on the training grid: pass reference_shape")
        return
    if len(reference_shape) != y_T.ndim - 2 or any(r < 1 for r in reference_shape):
        raise ValueError(f"reference_shape must give the training grid's {y_T.ndim - 2} spatial sizes, got {reference_shape}")


@jaxtyped(typechecker=beartype)
def sample_ddpm(
    model: DenseModel,
    y_T: DenseField,
    grid: TimeGrid,
    *,
    process: DenoisingProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
    clip: bool = True,
) -> DenseField:
    """Ancestral sampling ``y_prev = c1 T xhat0 + c2 y_t + sqrt(betatilde) T z`` (docs/math.md §6).

    Args:
        model: callable ``(y_t, t / T, cond) -> output`` on dense fields.
        y_T: the start, usually ``process.prior(...)``.
        grid: noise times from the start to 0 (`funcdiff.sampling.uniform_t` and friends), read as integer steps
            ``round(tau T)``; ``uniform_t(process, process.num_steps)`` is every step.
        process: the diffusion process.
        cond: passed to the model unchanged.
        guidance: optional correction of ``T xhat0`` (e.g. `InpaintingGuidance`).
        callback: called as ``callback(tau, y_prev, T xhat0)`` after every step.
        generator: for the fresh noise.
        reference_shape: the spatial shape the model was trained at, where white noise is N(0, I) (docs/math.md §2);
            required, because the fresh noise's variance depends on it when ``y_T`` is at another resolution.
        progress: show a progress bar.
        denoise: return the reported sample ``xhat0`` of the last step; else the final state ``T xhat0``.
        clip: clip the estimate to the domain's value range.
    """
    check_start(process.domain, y_T, "y_T")
    _check_reference(y_T, reference_shape, required=True)

    def update(y: DenseField, tx0: DenseField, t: Tensor, prev: Tensor) -> DenseField:
        c1, c2, var = posterior_coefficients(process.alpha_bar(t), process.alpha_bar(prev))
        mean = broadcast(c1, y) * tx0 + broadcast(c2, y) * y
        if int(prev[0]) == 0:
            return mean
        z = mollified_noise(process.domain, process.mollifier, y.shape[0], tuple(y.shape[1:]), reference_shape,
                            generator=generator, dtype=y.dtype, device=y.device)
        return mean + broadcast(var.sqrt(), y) * z

    return _run(update, model, process, y_T, grid, cond=cond, clip=clip, guidance=guidance, denoise=denoise,
                progress=progress, callback=callback)


@jaxtyped(typechecker=beartype)
def sample_ddim(
    model: DenseModel,
    y_T: DenseField,
    grid: TimeGrid,
    *,
    process: DenoisingProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
    clip: bool = True,
    eta: float = 0.0,
) -> DenseField:
    """DDIM (Song et al. 2021) in mollified space over the grid's steps; ``eta = 0`` is deterministic (docs/math.md §6).

    ``y_prev = sqrt(abar_prev) T xhat0 + sqrt(1 - abar_prev - s^2) T epshat + s T z`` with
    ``s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``; ``eta = 1`` is DDPM's variance,
    and above it ``s^2`` would exceed ``1 - abar_prev``. ``reference_shape`` is needed only with ``eta > 0``.
    Arguments as in `sample_ddpm`.
    """
    check_start(process.domain, y_T, "y_T")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1], got {eta}")
    _check_reference(y_T, reference_shape, required=eta > 0)

    def update(y: DenseField, tx0: DenseField, t: Tensor, prev: Tensor) -> DenseField:
        a_t, a_p = process.alpha_bar(t), process.alpha_bar(prev)
        s = eta * ((1 - a_p) / (1 - a_t)).sqrt() * (1 - a_t / a_p).sqrt()
        teps = _mollified_eps(process, tx0, y, t)
        y_prev = broadcast(a_p.sqrt(), y) * tx0 + broadcast((1 - a_p - s**2).clamp(min=0).sqrt(), y) * teps
        if eta == 0 or int(prev[0]) == 0:
            return y_prev
        z = mollified_noise(process.domain, process.mollifier, y.shape[0], tuple(y.shape[1:]), reference_shape,
                            generator=generator, dtype=y.dtype, device=y.device)
        return y_prev + broadcast(s, y) * z

    return _run(update, model, process, y_T, grid, cond=cond, clip=clip, guidance=guidance, denoise=denoise,
                progress=progress, callback=callback)


def _log_snr(alpha_bar: Float[Tensor, " b"]) -> Float[Tensor, " b"]:
    """``lambda = log(alpha / sigma)``, ``alpha = sqrt(abar)``, ``sigma = sqrt(1 - abar)`` (docs/math.md §12); inf at ``abar = 1``."""
    return 0.5 * torch.log(alpha_bar / (1 - alpha_bar))


@jaxtyped(typechecker=beartype)
def sample_dpmpp(
    model: DenseModel,
    y_T: DenseField,
    grid: TimeGrid,
    *,
    process: DenoisingProcess,
    cond: Tensor | None = None,
    guidance: Guidance | None = None,
    callback: Callback | None = None,
    generator: torch.Generator | None = None,
    reference_shape: tuple[int, ...] | None = None,
    progress: bool = False,
    denoise: bool = True,
    clip: bool = True,
) -> DenseField:
    """DPM-Solver++ (2M) (Lu et al. 2022, Alg. 2) in mollified space with the data prediction ``D = T xhat0`` (docs/math.md §12).

    From ``s`` to ``t``: ``y_t = (sigma_t / sigma_s) y_s - alpha_t (exp(-h) - 1) D''`` with ``h = lambda_t - lambda_s``,
    ``D'' = (1 + 1/(2r)) D_s - D_s' / (2r)``, ``r = h' / h`` from the previous step ``s'``; ``alpha = sqrt(abar)``,
    ``sigma = sqrt(1 - abar)``, ``lambda = log(alpha / sigma)``. One network call per step, like `sample_ddim`.

    Choices, measured with the exact Gaussian denoiser of ``tests/processes/test_dpm_solver.py`` (RMS distance from
    the exact flow, cosine schedule, 1000 steps):

    * Use it on `uniform_t` grids (as DDIM): rounded to integer steps, a grid uniform in ``lambda``
      (`uniform_logsnr`) crowds both ends of the cosine schedule (``t`` near ``T`` and 1), and its error was
      1.3-2.4x larger at 15-80 steps and not monotone in the count. Any grid is taken as given.
    * First-order (DDIM, ``eta = 0``) steps: the first (no ``D_s'`` yet); the last, to ``prev = 0`` where
      ``lambda = inf`` and the update gives ``D`` (DDIM's final step); and, from 5 steps on, the one into the last
      positive step (the reference implementation's ``lower_order_final``, there below 15 steps only). On the
      uniform grid that step's ``h`` is several times the previous one; going first-order there cut the error
      2-7x at 10-500 steps, while at 3-4 steps it made it 1.2-5x larger (mixed at 5).

    The sampler draws no noise: ``generator`` is unused and ``reference_shape`` only checked. Arguments as in `sample_ddpm`.

    Raises:
        ValueError: for a grid that is not strictly decreasing from at most 1 to 0.
    """
    check_start(process.domain, y_T, "y_T")
    _check_reference(y_T, reference_shape, required=False)
    steps = discrete_steps(process, grid)
    lower_order_final = len(steps) >= 6  # five positive steps or more
    history: list[tuple[Tensor, DenseField]] = []  # (h', D_s') of the previous step: the multistep state of this call

    def update(y: DenseField, tx0: DenseField, t: Tensor, prev: Tensor) -> DenseField:
        a_s, a_t = process.alpha_bar(t), process.alpha_bar(prev)
        h = _log_snr(a_t) - _log_snr(a_s)
        d = tx0
        if history and int(prev[0]) != 0 and not (lower_order_final and int(prev[0]) == steps[-2]):
            h_prev, d_prev = history[0]
            half_inv_r = broadcast(h / (2 * h_prev), y)  # 1 / (2r)
            d = (1 + half_inv_r) * tx0 - half_inv_r * d_prev
        history[:] = [(h, tx0)]
        return broadcast(((1 - a_t) / (1 - a_s)).sqrt(), y) * y - broadcast(a_t.sqrt() * torch.expm1(-h), y) * d

    return _run(update, model, process, y_T, grid, cond=cond, clip=clip, guidance=guidance, denoise=denoise,
                progress=progress, callback=callback)


@jaxtyped(typechecker=beartype)
def encode_ddim(
    model: DenseModel,
    x0: DenseField,
    grid: TimeGrid,
    *,
    process: DenoisingProcess,
    cond: Tensor | None = None,
    progress: bool = False,
) -> DenseField:
    """Deterministic DDIM encoding (inversion): run the ``eta = 0`` map forwards from ``T x0`` to ``y_T`` (docs/math.md §6).

    Each step from ``prev`` to ``t`` uses the model's ``T epshat`` at step ``t`` evaluated at ``y_prev``, so
    ``sample_ddim(..., clip=False, denoise=False)`` over the same grid returns ``T x0`` up to discretisation error.
    """
    check_start(process.domain, x0, "x0")
    pairs = _steps(process, x0, grid)[::-1]
    y = process.mollifier.mollify(x0)
    with torch.no_grad():
        for t, prev in tqdm(pairs, desc="encoding", disable=not progress, leave=False):
            a_t, a_p = process.alpha_bar(t), process.alpha_bar(prev)
            output = model(y, process.time(t), cond)
            check_output(output, y.shape, f"at step t={int(t[0])}", finite=True, model=model)
            _, teps = process.predict(output, y, t)
            tx0 = broadcast(a_p.rsqrt(), y) * y - broadcast(((1 - a_p) / a_p).sqrt(), y) * teps
            y = broadcast(a_t.sqrt(), y) * tx0 + broadcast((1 - a_t).sqrt(), y) * teps
    return y
