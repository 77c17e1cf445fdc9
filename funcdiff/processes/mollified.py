"""MollifiedDDPM: DDPM whose states are mollified functions ``y_t = T x_t`` (Bond-Taylor & Willcocks 2024)."""

import math
from typing import Any, Literal, final, get_args

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Int, Tensor
from funcdiff.domains.base import Domain, check_field
from funcdiff.mollifiers.base import Mollifier, check_inv_snr
from funcdiff.mollifiers.gaussian import IdentityMollifier
from funcdiff.points import Scattered
from funcdiff.processes.base import (
    DenoisingProcess, PointModel, broadcast, check_component, check_output, subsampled_mse, weighted_mean,
)
from funcdiff.processes.schedules import Schedule, posterior_coefficients
from funcdiff.registry import component_dict, register

Prediction = Literal["mollified_eps", "x0"]


@register("mollified_ddpm")
@final
class MollifiedDDPM(DenoisingProcess):
    """The mollified diffusion process of docs/math.md §3-6; with `IdentityMollifier` it is white-noise DDPM (§7).

    Steps ``t`` are integer tensors of shape ``(b,)`` in ``[1, T]``; models receive the continuous time ``t / T``.
    Schedule coefficients are formed in float64 and cast to the field's dtype at use (so bf16 fields stay finite).

    Args:
        domain: where the data live: it draws the training points and the noise, and gives the clipping range.
        schedule: the noise schedule (``alpha_bar`` of length ``T + 1``).
        mollifier: the smoothing operator ``T``.
        prediction: what the network outputs: ``"mollified_eps"`` (``T eps``, the paper's default) or ``"x0"``
            (the unmollified data).
        inv_snr: the Wiener filter's inverse signal-to-noise ratio for reported samples (docs/math.md §1).
        min_snr_gamma: weight each step's loss by Hang et al. (2023)'s min-SNR-gamma, ``min(SNR_t, gamma) / gamma``
            for ``x0`` and ``min(SNR_t, gamma) / SNR_t`` for ``mollified_eps`` with ``SNR_t = abar_t / (1 - abar_t)``
            (docs/math.md §5); None: every step counts the same.
    """

    def __init__(
        self, domain: Domain, schedule: Schedule, mollifier: Mollifier, prediction: Prediction = "mollified_eps", inv_snr: float = 0.05,
        min_snr_gamma: float | None = None,
    ) -> None:
        check_component(domain, Domain, "domain")
        check_component(schedule, Schedule, "schedule")
        check_component(mollifier, Mollifier, "mollifier")
        if prediction not in get_args(Prediction):
            raise ValueError(f"prediction must be one of {get_args(Prediction)}, got {prediction!r}")
        check_inv_snr(inv_snr)
        if min_snr_gamma is not None and (isinstance(min_snr_gamma, bool) or not isinstance(min_snr_gamma, (int, float))
                                          or not 0 < min_snr_gamma < math.inf):
            raise ValueError(f"min_snr_gamma must be a finite number > 0 or None, got {min_snr_gamma!r}")
        self.domain = domain
        self.schedule = schedule
        self.mollifier = mollifier
        self.prediction: Prediction = prediction
        self.inv_snr = float(inv_snr)
        self.min_snr_gamma = None if min_snr_gamma is None else float(min_snr_gamma)

    def __repr__(self) -> str:
        gamma = "" if self.min_snr_gamma is None else f", min_snr_gamma={self.min_snr_gamma:g}"
        return (f"MollifiedDDPM(domain={self.domain!r}, T={self.num_steps}, mollifier={self.mollifier!r}, "
                f"prediction={self.prediction!r}{gamma})")

    @property
    def num_steps(self) -> int:
        """The number of diffusion steps ``T``."""
        return self.schedule.num_steps

    def alpha_bar(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
        """``alpha_bar_t`` per example, in float64."""
        self.check_steps(t, allow_zero=True)
        return self.schedule.alpha_bar.to(t.device)[t.long()]

    def check_steps(self, t: Tensor, *, allow_zero: bool = False) -> None:
        """Raise ``ValueError`` unless ``t`` is an integer tensor ``(b,)`` of steps in ``[1, T]`` (or ``[0, T]``)."""
        if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"t must be an integer tensor of shape (b,), got {t.dtype} {tuple(t.shape)}")
        low = 0 if allow_zero else 1
        if t.numel() and (int(t.min()) < low or int(t.max()) > self.num_steps):
            raise ValueError(f"t must lie in [{low}, {self.num_steps}], got values in [{int(t.min())}, {int(t.max())}]")

    def time(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
        """The continuous time ``t / T`` in ``[0, 1]`` that models receive."""
        return t.float() / self.num_steps

    @jaxtyped(typechecker=beartype)
    def q_sample(self, x0: DenseField, t: Int[Tensor, " b"], noise: DenseField) -> DenseField:
        """``y_t = T(sqrt(abar_t) x0 + sqrt(1 - abar_t) noise)`` (docs/math.md §3)."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        self.check_steps(t)
        a = self.alpha_bar(t)
        return self.mollifier.mollify(broadcast(a.sqrt(), x0) * x0 + broadcast((1 - a).sqrt(), x0) * noise)

    @jaxtyped(typechecker=beartype)
    def posterior(
        self, x0: DenseField, y_t: DenseField, t: Int[Tensor, " b"], *, prev: Int[Tensor, " b"] | None = None
    ) -> tuple[DenseField, Float[Tensor, " b"]]:
        """Mean ``c1 T x0 + c2 y_t`` and variance ``betatilde`` of ``q(y_prev | y_t, x0)``; covariance is ``betatilde T T*``."""
        self.check_steps(t)
        prev = t - 1 if prev is None else prev
        if bool((prev >= t).any()):
            raise ValueError("prev must be smaller than t")
        c1, c2, var = posterior_coefficients(self.alpha_bar(t), self.alpha_bar(prev))
        return broadcast(c1, y_t) * self.mollifier.mollify(x0) + broadcast(c2, y_t) * y_t, var.to(y_t.dtype)

    def predict(self, output: DenseField, y_t: DenseField, t: Int[Tensor, " b"]) -> tuple[DenseField, DenseField]:
        """Convert a model output to ``(T xhat0, T epshat)`` (docs/math.md §5)."""
        a = self.alpha_bar(t)
        if self.prediction == "mollified_eps":
            return broadcast(a.rsqrt(), y_t) * y_t - broadcast(((1 - a) / a).sqrt(), y_t) * output, output
        tx0 = self.mollifier.mollify(output)
        return tx0, broadcast((1 - a).rsqrt(), y_t) * y_t - broadcast((a / (1 - a)).sqrt(), y_t) * tx0

    def estimate(
        self, output: DenseField, y_t: DenseField, t: Int[Tensor, " b"], *, clip: bool, correction: DenseField | None = None
    ) -> tuple[DenseField, DenseField]:
        """``(T xhat0, xhat0)``, ``correction`` added to ``T xhat0`` first, clipped to the domain's range if ``clip``.

        Mollified-eps clips ``T xhat0`` (valid because ``T`` is an average, docs/math.md §1) and reports ``W(T xhat0)``;
        x0-prediction moves the network's ``xhat0`` by ``W(correction)``, clips it, reports it and steps with ``T`` of
        it (unclipped, the state moves by exactly ``correction``).
        """
        low, high = self.domain.value_range
        if self.prediction == "mollified_eps":
            tx0, _ = self.predict(output, y_t, t)
            tx0 = tx0 if correction is None else tx0 + correction
            tx0 = tx0.clamp(low, high) if clip else tx0
            return tx0, self.mollifier.unmollify(tx0, self.inv_snr)
        if correction is None:
            x0 = output.clamp(low, high) if clip else output
            return self.mollifier.mollify(x0), x0
        x0 = output + self.mollifier.unmollify(correction, self.inv_snr)
        if clip:
            x0 = x0.clamp(low, high)
            return self.mollifier.mollify(x0), x0
        return self.mollifier.mollify(output) + correction, x0  # the state moves by exactly the correction (docs/math.md §10)

    def target(self, x0: DenseField, noise: DenseField) -> DenseField:
        """What the network should output: ``T noise`` or ``x0`` by prediction type."""
        return self.mollifier.mollify(noise) if self.prediction == "mollified_eps" else x0

    @jaxtyped(typechecker=beartype)
    def loss(
        self,
        model: PointModel,
        x0: DenseField | Scattered,
        *,
        points: int | float,
        generator: torch.Generator | None,
        cond: Tensor | None = None,
        reference_shape: tuple[int, ...] | None = None,
        t: Int[Tensor, " b"] | None = None,
    ) -> Float[Tensor, ""]:
        """Subsampled Monte-Carlo simple loss (docs/math.md §5, paper Eq. 10).

        Noise and ``T`` act on the full grid; the model sees ``y_t`` at ``points`` cells per example drawn by the
        domain (a count, or a fraction of the grid) and is scored there by the mean squared error.
        The noise is white at ``reference_shape`` (the model's), so data finer than it are noised as the sampler
        noises that resolution (docs/math.md §15). Observations at scattered points (`Scattered`) are noised where
        they lie (`scattered_loss`).
        """
        if isinstance(x0, Scattered):
            return self.scattered_loss(model, x0, points=points, generator=generator, cond=cond, t=t)
        check_field(self.domain, x0, "x0")
        b, spatial = x0.shape[0], tuple(x0.shape[2:])
        if t is None:
            t = torch.randint(1, self.num_steps + 1, (b,), generator=generator, device=x0.device)
        noise = self.domain.white_noise(b, tuple(x0.shape[1:]), reference_shape or spatial, generator=generator, dtype=x0.dtype, device=x0.device)
        y_t = self.q_sample(x0, t, noise)
        return subsampled_mse(model, self.domain, y_t, self.target(x0, noise), self.time(t), points=points, generator=generator, cond=cond,
                              weight=self.loss_weight(t))

    def loss_weight(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"] | None:
        """Each step's weight in the loss: min-SNR-gamma (see the class), or None when every step counts the same."""
        if self.min_snr_gamma is None:
            return None
        a = self.alpha_bar(t)
        snr = a / (1 - a)
        if self.prediction == "x0":
            return snr.clamp(max=self.min_snr_gamma) / self.min_snr_gamma
        return (self.min_snr_gamma / snr).clamp(max=1.0)  # min(SNR, gamma) / SNR, finite where SNR is 0

    @jaxtyped(typechecker=beartype)
    def scattered_loss(
        self, model: PointModel, x0: Scattered, *, points: int | float, generator: torch.Generator | None, cond: Tensor | None = None,
        t: Int[Tensor, " b"] | None = None,
    ) -> Float[Tensor, ""]:
        """The simple loss on observations at scattered points (docs/math.md §20): ``points`` of each example's
        observations (a count, or a fraction of them), noised there by ``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``
        with ``eps ~ N(0, 1)`` per point (each point stands for a cell of the reference grid, where the sampler starts
        from ``N(0, I)``), and the mean squared error of the model's output there.

        Raises:
            ValueError: unless the mollifier is the identity (a Gaussian mollifier is a convolution over a grid, which
                scattered observations do not give), or if ``points`` is more than the observations.
        """
        if not isinstance(self.mollifier, IdentityMollifier):
            raise ValueError("observations at scattered points need the identity mollifier (--sigma-pixels 0): a Gaussian "
                             "mollifier is a convolution over a grid")
        b, n, c = x0.values.shape
        count = points if isinstance(points, int) else max(1, round(points * n))
        if not 0 < count <= n:
            raise ValueError(f"points={points} must select between 1 and the {n} observations per example")
        keep = torch.rand(b, n, generator=generator, device=x0.values.device).argsort(dim=1)[:, :count]
        values = x0.values.gather(1, keep.unsqueeze(-1).expand(-1, -1, c))
        coords = x0.coords.gather(1, keep.unsqueeze(-1).expand(-1, -1, x0.ndim))
        if t is None:
            t = torch.randint(1, self.num_steps + 1, (b,), generator=generator, device=values.device)
        self.check_steps(t)
        noise = torch.randn(values.shape, generator=generator, device=values.device, dtype=values.dtype)
        a = self.alpha_bar(t).view(b, 1, 1).to(values.dtype)
        output = model(Scattered(a.sqrt() * values + (1 - a).sqrt() * noise, coords), self.time(t), cond)
        expected = noise if self.prediction == "mollified_eps" else values
        check_output(output, expected.shape, "in the loss", model=model)
        return weighted_mean((output - expected).square(), self.loss_weight(t))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this process (`funcdiff.registry.build`)."""
        return component_dict(
            self.kind, domain=self.domain, schedule=self.schedule, mollifier=self.mollifier, prediction=self.prediction, inv_snr=self.inv_snr,
            **({} if self.min_snr_gamma is None else {"min_snr_gamma": self.min_snr_gamma}),  # configs without it stay as they were
        )
