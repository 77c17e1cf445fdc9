"""Noise schedules: the table ``alpha_bar[t]`` for ``t = 0..T`` in float64, and timestep respacing."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from funcdiff._typing import Float, Tensor
from funcdiff.registry import register


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete noise schedule (`docs/math.md` notation): ``alpha_bar[0] = 1`` and steps ``t = 1..T``.

    Attributes:
        alpha_bar: float64 tensor of length ``T + 1``, strictly decreasing, ``alpha_bar[0] = 1``.
        config: the JSON-safe ``{"kind": ..., **arguments}`` that rebuilds the schedule with `funcdiff.registry.build`
            (by default the table itself, `table_schedule`).
    """

    alpha_bar: Float[Tensor, " T1"]
    config: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        a = self.alpha_bar
        if a.dtype != torch.float64 or a.ndim != 1 or a.numel() < 2:
            raise ValueError("alpha_bar must be a 1-D float64 tensor of length T + 1 >= 2")
        if a[0] != 1.0 or not bool((a[1:] > 0).all()) or not bool((a[1:] < a[:-1]).all()):
            raise ValueError("alpha_bar must start at 1 and decrease strictly while staying > 0")
        if not self.config:  # a hand-made table saves itself
            object.__setattr__(self, "config", {"kind": "table", "alpha_bar": a.tolist()})

    @property
    def num_steps(self) -> int:
        """The number of diffusion steps ``T``."""
        return self.alpha_bar.numel() - 1

    @property
    def beta(self) -> Float[Tensor, " T1"]:
        """``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}`` (with ``beta_0 = 0``)."""
        a = self.alpha_bar
        return torch.cat([a.new_zeros(1), 1 - a[1:] / a[:-1]])

    def to_dict(self) -> dict:
        """The JSON-safe configuration that rebuilds this schedule."""
        return dict(self.config)


def _from_betas(betas: Tensor, config: dict) -> Schedule:
    """A schedule from ``beta_1..beta_T``."""
    alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas.double(), 0)])
    return Schedule(alpha_bar, config)


def _check_steps(num_steps: int) -> None:
    """Raise ``ValueError`` unless ``num_steps`` is a positive int."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")


@register("cosine")
def cosine_schedule(num_steps: int = 1000, *, offset: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Cosine schedule of Nichol & Dhariwal (2021): ``alpha_bar(t) ~ cos^2(((t/T + s)/(1 + s)) pi/2)``, betas capped."""
    _check_steps(num_steps)
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return _from_betas(betas, {"kind": "cosine", "num_steps": num_steps, "offset": offset, "max_beta": max_beta})


@register("linear")
def linear_schedule(num_steps: int = 1000, *, beta_start: float | None = None, beta_end: float | None = None) -> Schedule:
    """Linear betas of Ho et al. (2020), by default 1e-4 to 2e-2 scaled by ``1000 / T`` and capped at 0.999 (T < 20)."""
    _check_steps(num_steps)
    scale = 1000 / num_steps
    end = min(2e-2 * scale, 0.999) if beta_end is None else beta_end
    start = min(1e-4 * scale, end) if beta_start is None else beta_start
    if not 0 < start <= end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {start}, {end}")
    betas = torch.linspace(start, end, num_steps, dtype=torch.float64)
    return _from_betas(betas, {"kind": "linear", "num_steps": num_steps, "beta_start": start, "beta_end": end})


@register("constant")
def constant_schedule(num_steps: int = 1000, *, beta: float = 0.008) -> Schedule:
    """Constant ``beta_t = beta`` (the reference latent model uses 0.008 over 1000 steps)."""
    _check_steps(num_steps)
    if not 0 < beta < 1:
        raise ValueError(f"beta must lie in (0, 1), got {beta}")
    return _from_betas(torch.full((num_steps,), beta, dtype=torch.float64), {"kind": "constant", "num_steps": num_steps, "beta": beta})


@register("table")
def table_schedule(alpha_bar: Sequence[float]) -> Schedule:
    """A schedule given by its ``alpha_bar`` table (``alpha_bar[0] = 1``), e.g. one made by hand."""
    return Schedule(torch.tensor(alpha_bar, dtype=torch.float64))


def respace(num_steps: int, timesteps: int | Sequence[int]) -> list[int]:
    """Decreasing steps in ``[1, num_steps]`` to sample over: ``timesteps`` evenly spaced ones, or an explicit list.

    An int ``k`` gives ``round(linspace(T, 1, k))`` (``T`` first, so sampling starts from the prior), as in the
    timestep respacing of Nichol & Dhariwal (2021). An explicit sequence must be strictly decreasing.
    """
    if isinstance(timesteps, bool):
        raise TypeError("timesteps must be an int or a sequence of ints")
    if isinstance(timesteps, int):
        if not 1 <= timesteps <= num_steps:
            raise ValueError(f"timesteps={timesteps} must lie in [1, {num_steps}] (the schedule's number of steps)")
        if timesteps == 1:
            return [num_steps]
        return torch.linspace(num_steps, 1, timesteps, dtype=torch.float64, device="cpu").round().long().tolist()
    steps = [int(s) for s in timesteps]
    if not steps or any(not 1 <= s <= num_steps for s in steps) or any(a <= b for a, b in zip(steps, steps[1:])):
        raise ValueError(f"timesteps must be a non-empty strictly decreasing sequence in [1, {num_steps}], got {steps}")
    return steps


def posterior_coefficients(
    alpha_bar_t: Float[Tensor, " b"], alpha_bar_prev: Float[Tensor, " b"]
) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"], Float[Tensor, " b"]]:
    """``(c1, c2, betatilde)`` of ``q(y_prev | y_t, x0)`` for any earlier step (docs/math.md §4; ``prev = t - 1`` is Eq. 12).

    Pass float64 ``alpha_bar`` values and cast the results at use.
    """
    beta = 1 - alpha_bar_t / alpha_bar_prev
    c1 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar_t)
    c2 = (alpha_bar_t / alpha_bar_prev).sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    return c1, c2, beta * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
