"""Time grids for the samplers, built outside them (docs/math.md §14): noise times ``tau`` from 1 (the prior) to 0 (data).

A grid is a strictly decreasing float64 tensor that ends at 0. A `DenoisingProcess` reads ``tau`` as its integer step
``round(tau T)`` (`discrete_steps`), a `FlowProcess` as its time ``s = 1 - tau`` (`flow_times`). `uniform_t` is the
process's own even spacing; `uniform_logsnr` and `karras` space the steps by the log signal-to-noise ratio
``lambda = log(a^2 / s^2)`` of the state ``y = a T x0 + s T eps``, read from a table of the process (`log_snr_table`).
"""

import math
from collections.abc import Sequence

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.processes.base import DenoisingProcess, DiffusionProcess, FlowProcess, SigmaProcess
from funcdiff.processes.schedules import respace

TimeGrid = Float[Tensor, " k"]
"""Noise times ``tau``, strictly decreasing, ending at 0 (docs/math.md §14)."""

_FLOW_TABLE = 4097
"""Points of the table of ``lambda(tau)`` of a flow, from which `uniform_logsnr` and `karras` take its finite range."""


def _check_steps(steps: int) -> None:
    """Raise ``ValueError`` unless ``steps`` is a positive int."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


@jaxtyped(typechecker=beartype)
def check_grid(grid: TimeGrid) -> None:
    """Raise ``ValueError`` unless ``grid`` is a strictly decreasing 1-D tensor in ``[0, 1]`` of at least 2 times
    ending at 0."""
    if grid.numel() < 2 or not bool(grid.isfinite().all()) or float(grid[0]) > 1 or float(grid[-1]) != 0:
        raise ValueError(f"a time grid must hold at least 2 noise times in [0, 1] ending at 0, got {grid.tolist()}")
    if bool((grid[1:] >= grid[:-1]).any()):
        raise ValueError(f"a time grid must be strictly decreasing, got {grid.tolist()}")


def uniform_t(process: DiffusionProcess, steps: int) -> TimeGrid:
    """``steps`` steps evenly spaced in the process's own time: a `DenoisingProcess`'s respaced integer steps
    ``round(linspace(T, 1, steps))`` then 0 (Nichol & Dhariwal 2021), a flow's ``s = k / steps``."""
    _check_steps(steps)
    if isinstance(process, DenoisingProcess):
        return step_grid(process, respace(process.num_steps, steps))
    return torch.linspace(1, 0, steps + 1, dtype=torch.float64, device="cpu")


def step_grid(process: DenoisingProcess, steps: Sequence[int]) -> TimeGrid:
    """The grid of a DDPM's explicit integer steps (strictly decreasing in ``[1, T]``), then 0."""
    if not isinstance(process, DenoisingProcess):
        raise ValueError(f"explicit integer steps are a DenoisingProcess's; {type(process).__name__} takes a grid of noise times")
    return torch.tensor([*respace(process.num_steps, steps), 0], dtype=torch.float64, device="cpu") / process.num_steps


def log_snr_table(process: DiffusionProcess) -> tuple[Float[Tensor, " m"], Float[Tensor, " m"]]:
    """``(tau, lambda)``: noise times and the log-SNR ``log(a^2 / s^2)`` there, increasing in ``lambda``, finite only.

    A `DenoisingProcess` gives its integer steps (``a^2 = abar``, ``s^2 = 1 - abar``); a `FlowProcess` a fine table
    of ``s`` from its `FlowProcess.coefficients`; a `SigmaProcess` a fine table of its levels (``a = 1``, ``s = sigma``).
    """
    if isinstance(process, DenoisingProcess):
        tau = torch.arange(process.num_steps, -1, -1, dtype=torch.float64, device="cpu") / process.num_steps
        abar = process.alpha_bar(torch.arange(process.num_steps, -1, -1, device="cpu")).double()
        lam = torch.log(abar) - torch.log1p(-abar)
    elif isinstance(process, FlowProcess):
        tau = torch.linspace(1, 0, _FLOW_TABLE, dtype=torch.float64, device="cpu")
        lam = _flow_log_snr(process, tau)
    elif isinstance(process, SigmaProcess):
        tau = torch.linspace(1, 0, _FLOW_TABLE, dtype=torch.float64, device="cpu")
        lam = -2 * torch.log(process.sigma(tau))
    else:
        raise ValueError(f"{type(process).__name__} is not a DenoisingProcess, FlowProcess or SigmaProcess: it has no log-SNR")
    keep = lam.isfinite()
    return tau[keep], lam[keep]


def _flow_log_snr(process: FlowProcess, tau: Float[Tensor, " k"]) -> Float[Tensor, " k"]:
    """A flow's log-SNR ``2 log(alpha_s / sigma_s)`` at ``s = 1 - tau``."""
    a, s, _, _ = process.coefficients(1 - tau)
    return 2 * (torch.log(a.double()) - torch.log(s.double()))


def _taus_at(process: DiffusionProcess, lam: Float[Tensor, " k"]) -> Float[Tensor, " k"]:
    """The noise times where the process's log-SNR is ``lam``: a flow's by bisection (to float64 precision), a DDPM's
    piecewise-linear between its steps (which `discrete_steps` rounds to anyway); ``tau = 1`` below the range and 0
    above it."""
    if isinstance(process, FlowProcess):
        low, high = torch.zeros_like(lam), torch.ones_like(lam)  # the log-SNR falls as tau rises
        for _ in range(60):
            mid = (low + high) / 2
            above = _flow_log_snr(process, mid) > lam
            low, high = torch.where(above, mid, low), torch.where(above, high, mid)
        return (low + high) / 2
    tau, table = log_snr_table(process)
    index = torch.searchsorted(table, lam).clamp(1, table.numel() - 1)
    lo, hi = table[index - 1], table[index]
    w = ((lam - lo) / (hi - lo)).clamp(0, 1)
    out = tau[index - 1] + w * (tau[index] - tau[index - 1])
    return torch.where(lam < table[0], 1.0, torch.where(lam > table[-1], 0.0, out))


def _grid(taus: Float[Tensor, " k"]) -> TimeGrid:
    """``taus`` (``steps + 1`` noise times from the noisiest) with the first set to 1 (the prior) and the last to 0
    (data), repeats dropped."""
    taus = taus.clamp(0, 1)
    taus[0], taus[-1] = 1.0, 0.0
    return torch.unique(taus).flip(0)


def uniform_logsnr(process: DiffusionProcess, steps: int) -> TimeGrid:
    """``steps`` steps evenly spaced in the log-SNR between the process's finite extremes (Lu et al. 2022), the first
    from the prior and the last to the data; a DDPM rounds them to its integer steps (`discrete_steps`), which may
    merge a few near the ends."""
    _check_steps(steps)
    _, table = log_snr_table(process)
    return _grid(_taus_at(process, torch.linspace(float(table[0]), float(table[-1]), steps + 1, dtype=torch.float64, device="cpu")))


def karras(process: DiffusionProcess, steps: int, rho: float = 7.0, sigma_max: float | None = None) -> TimeGrid:
    """``steps`` steps with noise-to-signal ratios ``sigma = s / a`` spaced as Karras et al. (2022, Eq. 5):
    ``sigma_i = (sigma_max^(1/rho) + i / steps (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, ``i = 0..steps``.

    ``sigma_min`` is the process's smallest finite ``sigma``, ``sigma_max`` by default the smaller of 80 (Karras et al.
    2022) and its largest (a flow's is infinite at ``s = 0``, a cosine schedule's about 1e4); the first time is the
    prior's (``tau = 1``) and the last the data's (0).
    """
    _check_steps(steps)
    if not rho > 0 or not math.isfinite(rho):
        raise ValueError(f"rho must be a finite number > 0, got {rho}")
    _, table = log_snr_table(process)
    low = math.exp(-float(table[-1]) / 2)
    high = sigma_max if sigma_max is not None else min(80.0, math.exp(-float(table[0]) / 2))
    if not low < high < math.inf:
        raise ValueError(f"sigma_max must be finite and exceed the process's smallest sigma {low:.3g}, got {high}")
    ramp = torch.linspace(0, 1, steps + 1, dtype=torch.float64, device="cpu")
    sigma = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    return _grid(_taus_at(process, -2 * torch.log(sigma)))


@jaxtyped(typechecker=beartype)
def discrete_steps(process: DenoisingProcess, grid: TimeGrid) -> list[int]:
    """A DDPM's integer steps ``round(tau T)`` of ``grid``, strictly decreasing (repeats dropped), ending at 0."""
    check_grid(grid)
    steps = (grid * process.num_steps).round().long().tolist()
    return [s for k, s in enumerate(steps) if k == 0 or s < steps[k - 1]]


@jaxtyped(typechecker=beartype)
def flow_times(grid: TimeGrid) -> list[float]:
    """A flow's times ``s = 1 - tau`` of ``grid``, increasing to 1."""
    check_grid(grid)
    return (1 - grid).tolist()
