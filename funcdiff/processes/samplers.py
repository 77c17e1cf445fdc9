"""Samplers as plain functions: ancestral DDPM, DDIM with eta, and deterministic DDIM encoding (MATH.md §6)."""

from collections.abc import Callable, Sequence

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from tqdm.auto import tqdm

from funcdiff._typing import DenseField, Tensor
from funcdiff.domains.grid import white_noise
from funcdiff.processes.base import DenseModel
from funcdiff.processes.guidance import Guidance
from funcdiff.processes.mollified import MollifiedDDPM
from funcdiff.processes.schedules import respace

Callback = Callable[[int, DenseField, DenseField], None]


def _denoise(
    model: DenseModel,
    process: MollifiedDDPM,
    y: DenseField,
    t: Tensor,
    cond: Tensor | None,
    clip: bool,
    guidance: Guidance | None,
) -> tuple[DenseField, DenseField]:
    """One network call at step ``t``: the (guided, optionally clipped) ``T xhat0`` and the output in data terms."""
    if guidance is None:
        output = model(y, process.time(t), cond)
        tx0, _ = process.predict(output, y, t)
    else:
        with torch.enable_grad():
            y_grad = y.detach().requires_grad_(True)
            output = model(y_grad, process.time(t), cond)
            tx0, _ = process.predict(output, y_grad, t)
            tx0 = guidance(y_grad, tx0, process.alpha_bar(t, y)).detach()
        output = output.detach()
    if clip:
        # T is an average, so T x0 of data in [-1, 1] stays in [-1, 1] (MATH.md §1).
        if process.prediction == "x0":
            output = output.clamp(-1, 1)
            tx0 = process.mollifier.mollify(output)
        else:
            tx0 = tx0.clamp(-1, 1)
    return tx0, output


def _steps(process: MollifiedDDPM, y: DenseField, timesteps: int | Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Pairs ``(t, prev)`` of batched step tensors, from the first step down to ``prev = 0``."""
    steps = respace(process.num_steps, timesteps)
    full = lambda s: torch.full((y.shape[0],), s, dtype=torch.long, device=y.device)  # noqa: E731
    return [(full(t), full(p)) for t, p in zip(steps, steps[1:] + [0])]


def _noise(y: DenseField, process: MollifiedDDPM, reference_shape: tuple[int, ...] | None, generator) -> DenseField:
    """Mollified resolution-consistent white noise ``T z`` shaped like ``y`` (MATH.md §2)."""
    reference = tuple(y.shape[2:]) if reference_shape is None else reference_shape
    z = white_noise(y.shape[0], tuple(y.shape[1:]), reference, generator=generator, dtype=y.dtype, device=y.device)
    return process.mollifier.mollify(z)


def _run(
    update: Callable[[DenseField, DenseField, Tensor, Tensor], DenseField],
    model: DenseModel,
    process: MollifiedDDPM,
    y_T: DenseField,
    timesteps: int | Sequence[int],
    *,
    cond: Tensor | None,
    clip: bool,
    guidance: Guidance | None,
    denoise: bool,
    progress: bool,
    callback: Callback | None,
) -> DenseField:
    """The reverse loop shared by the samplers; ``update(y, tx0, t, prev)`` takes one step."""
    y, tx0, output = y_T, y_T, y_T
    with torch.no_grad():
        for t, prev in tqdm(_steps(process, y_T, timesteps), desc="sampling", disable=not progress, leave=False):
            tx0, output = _denoise(model, process, y, t, cond, clip, guidance)
            y = update(y, tx0, t, prev)
            if callback is not None:
                callback(int(t[0]), y, tx0)
    return process.finalize(tx0, output) if denoise else y


@jaxtyped(typechecker=beartype)
def sample_ddpm(
    model: DenseModel,
    process: MollifiedDDPM,
    y_T: DenseField,
    timesteps: int | Sequence[int] | None = None,
    *,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
    clip: bool = True,
    guidance: Guidance | None = None,
    reference_shape: tuple[int, ...] | None = None,
    denoise: bool = True,
    progress: bool = False,
    callback: Callback | None = None,
) -> DenseField:
    """Ancestral sampling ``y_prev = c1 T xhat0 + c2 y_t + sqrt(betatilde) T z`` (MATH.md §6).

    Args:
        model: callable ``(y_t, t / T, cond) -> output`` on dense fields.
        process: the diffusion process.
        y_T: the start, usually ``process.prior(...)``.
        timesteps: all ``T`` steps (None), a number of evenly respaced steps, or a decreasing sequence.
        generator: for the fresh noise.
        cond: passed to the model unchanged.
        clip: clip ``T xhat0`` to ``[-1, 1]``.
        guidance: optional correction of ``T xhat0`` (e.g. `InpaintingGuidance`).
        reference_shape: spatial shape at which white noise is N(0, I); defaults to ``y_T``'s.
        denoise: return the data-space sample (`MollifiedDDPM.finalize`); else the final state ``T xhat0``.
        progress: show a progress bar.
        callback: called as ``callback(t, y_prev, T xhat0)`` after every step.
    """
    timesteps = process.num_steps if timesteps is None else timesteps

    def update(y: DenseField, tx0: DenseField, t: Tensor, prev: Tensor) -> DenseField:
        c1, c2, var = process.posterior_coefficients(t, prev, y)
        mean = c1 * tx0 + c2 * y
        if int(prev[0]) == 0:
            return mean
        return mean + var.sqrt() * _noise(y, process, reference_shape, generator)

    return _run(update, model, process, y_T, timesteps, cond=cond, clip=clip, guidance=guidance, denoise=denoise,
                progress=progress, callback=callback)


@jaxtyped(typechecker=beartype)
def sample_ddim(
    model: DenseModel,
    process: MollifiedDDPM,
    y_T: DenseField,
    timesteps: int | Sequence[int] = 100,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
    clip: bool = True,
    guidance: Guidance | None = None,
    reference_shape: tuple[int, ...] | None = None,
    denoise: bool = True,
    progress: bool = False,
    callback: Callback | None = None,
) -> DenseField:
    """DDIM (Song et al. 2021) in mollified space over respaced steps; ``eta = 0`` is deterministic (MATH.md §6).

    ``y_prev = sqrt(abar_prev) T xhat0 + sqrt(1 - abar_prev - s^2) T epshat + s T z`` with
    ``s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``. Arguments as in `sample_ddpm`.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")

    def update(y: DenseField, tx0: DenseField, t: Tensor, prev: Tensor) -> DenseField:
        a_t, a_p = process.alpha_bar(t, y), process.alpha_bar(prev, y)
        s = eta * ((1 - a_p) / (1 - a_t)).sqrt() * (1 - a_t / a_p).sqrt()
        teps = process.mollified_eps(tx0, y, t)
        y_prev = a_p.sqrt() * tx0 + (1 - a_p - s**2).clamp(min=0).sqrt() * teps
        if eta == 0 or int(prev[0]) == 0:
            return y_prev
        return y_prev + s * _noise(y, process, reference_shape, generator)

    return _run(update, model, process, y_T, timesteps, cond=cond, clip=clip, guidance=guidance, denoise=denoise,
                progress=progress, callback=callback)


@jaxtyped(typechecker=beartype)
def encode_ddim(
    model: DenseModel,
    process: MollifiedDDPM,
    x0: DenseField,
    timesteps: int | Sequence[int] = 100,
    *,
    cond: Tensor | None = None,
    progress: bool = False,
) -> DenseField:
    """Deterministic DDIM encoding (inversion): run the ``eta = 0`` map forwards from ``T x0`` to ``y_T`` (MATH.md §6).

    Each step from ``prev`` to ``t`` uses the model's ``T epshat`` at step ``t`` evaluated at ``y_prev``, so
    ``sample_ddim(..., clip=False, denoise=False)`` over the same steps returns ``T x0`` up to discretisation error.
    """
    pairs = _steps(process, x0, timesteps)[::-1]
    y = process.mollifier.mollify(x0)
    with torch.no_grad():
        for t, prev in tqdm(pairs, desc="encoding", disable=not progress, leave=False):
            a_t, a_p = process.alpha_bar(t, y), process.alpha_bar(prev, y)
            _, teps = process.predict(model(y, process.time(t), cond), y, t)
            tx0 = (y - (1 - a_p).sqrt() * teps) / a_p.sqrt()
            y = a_t.sqrt() * tx0 + (1 - a_t).sqrt() * teps
    return y
