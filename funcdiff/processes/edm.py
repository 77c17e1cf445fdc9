"""The EDM family with mollified states (Karras et al. 2022; docs/math.md §19): ``y_sigma = T x0 + sigma T eps`` with
EDM's preconditioning, log-normal noise levels in training and ``rho``-spaced levels at sampling."""

import math
from typing import Any, final

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.base import Domain, check_field
from funcdiff.mollifiers.base import Mollifier, check_inv_snr
from funcdiff.processes.base import PointModel, SigmaProcess, broadcast, check_component, network_estimate, subsampled_mse
from funcdiff.registry import component_dict, register


@register("mollified_edm")
@final
class MollifiedEDM(SigmaProcess):
    """EDM in mollified space: the state ``y = T x0 + sigma T eps``, a denoiser ``D(y; sigma) ~ E[T x0 | y]`` from the
    network ``F(c_in y, c_noise)`` trained at ``log sigma ~ N(p_mean, p_std^2)``, sampled from ``sigma_max T eps`` down
    ``rho``-spaced levels (docs/math.md §19).

    The model's time is ``c_noise = log(sigma / sigma_min) / log(sigma_max / sigma_min)``, in ``[0, 1]`` over the
    sampled levels. With ``prediction="x0"`` (the default) the network predicts the data and reaches ``D`` through
    ``T``, ``D = T F`` (unweighted squared error against ``x0``, as the DDPM's x0 prediction), so its fine-scale errors
    are damped by ``T`` before the Wiener filter at the end amplifies them; with ``"preconditioned"``, ``D = c_skip y
    + c_out F`` and EDM's weighting, as written in Karras et al.

    Args:
        domain: where the data live (training points, noise).
        mollifier: the smoothing operator ``T``.
        sigma_min, sigma_max: the sampled noise levels' range.
        sigma_data: the data's standard deviation (after ``T``).
        rho: the spacing of sampled levels (7: Karras et al.'s).
        p_mean, p_std: the log-normal distribution of training noise levels.
        inv_snr: the Wiener filter's inverse signal-to-noise ratio for reported samples (docs/math.md §1).
        prediction: ``"x0"`` or ``"preconditioned"`` (docs/math.md §19).
    """

    def __init__(
        self, domain: Domain, mollifier: Mollifier, *, sigma_min: float = 0.002, sigma_max: float = 80.0, sigma_data: float = 0.5,
        rho: float = 7.0, p_mean: float = -1.2, p_std: float = 1.2, inv_snr: float = 0.05, prediction: str = "x0",
    ) -> None:
        check_component(domain, Domain, "domain")
        check_component(mollifier, Mollifier, "mollifier")
        numbers = {"sigma_min": sigma_min, "sigma_max": sigma_max, "sigma_data": sigma_data, "rho": rho, "p_std": p_std}
        bad = [f"{k}={v!r}" for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf]
        if bad or not sigma_min < sigma_max or not math.isfinite(p_mean):
            raise ValueError(f"need finite positive {', '.join(numbers)} with sigma_min < sigma_max and a finite p_mean; got "
                             f"{', '.join(bad) or f'sigma_min={sigma_min}, sigma_max={sigma_max}, p_mean={p_mean}'}")
        check_inv_snr(inv_snr)
        if prediction not in ("x0", "preconditioned"):
            raise ValueError(f"prediction must be 'x0' or 'preconditioned', got {prediction!r}")
        self.domain, self.mollifier, self.prediction = domain, mollifier, prediction
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)
        self.rho, self.p_mean, self.p_std, self.inv_snr = float(rho), float(p_mean), float(p_std), float(inv_snr)

    def __repr__(self) -> str:
        return (f"MollifiedEDM(domain={self.domain!r}, mollifier={self.mollifier!r}, sigma_min={self.sigma_min:g}, "
                f"sigma_max={self.sigma_max:g}, sigma_data={self.sigma_data:g}, rho={self.rho:g}, prediction={self.prediction!r})")

    def sigma(self, tau: Float[Tensor, " k"]) -> Float[Tensor, " k"]:
        """``(sigma_min^(1/rho) + tau (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`` in float64 (Karras et al. Eq. 5)."""
        low, high = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return (low + tau.double() * (high - low)) ** self.rho

    def time(self, sigma: Float[Tensor, " b"]) -> Float[Tensor, " b"]:
        """``c_noise = log(sigma / sigma_min) / log(sigma_max / sigma_min)`` in float32 (outside ``[0, 1]`` for training
        levels outside the sampled range)."""
        return (torch.log(sigma.double() / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)).float()

    def _scales(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in)`` in float64."""
        s, sd = sigma.double(), self.sigma_data
        total = s.square() + sd**2
        return sd**2 / total, s * sd / total.sqrt(), total.rsqrt()

    def model_input(self, y: DenseField, sigma: Float[Tensor, " b"]) -> DenseField:
        """``c_in y = y / sqrt(sigma^2 + sigma_data^2)``."""
        return broadcast(self._scales(sigma)[2], y) * y

    def denoised(self, output: DenseField, y: DenseField, sigma: Float[Tensor, " b"]) -> DenseField:
        """``T F`` (``c_skip y + c_out F`` for ``prediction="preconditioned"``)."""
        if self.prediction == "x0":
            return self.mollifier.mollify(output)
        c_skip, c_out, _ = self._scales(sigma)
        return broadcast(c_skip, y) * y + broadcast(c_out, y) * output

    def finalize(self, d: DenseField, output: DenseField) -> DenseField:
        """The reported sample (docs/math.md §19): for ``"x0"`` the network's ``xhat0 = F`` moved by ``W`` of what
        guidance added to ``D = T F`` (none without guidance), so the detail that ``T`` damps is kept, as the DDPM's x0
        prediction reports it; for ``"preconditioned"`` ``W D``, the Wiener-filtered final estimate (docs/math.md §1)."""
        if self.prediction == "x0":
            return network_estimate(self.mollifier, output, d, self.inv_snr)
        return self.mollifier.unmollify(d, self.inv_snr)

    def prior(self, batch: int, shape: tuple[int, ...], reference_shape: tuple[int, ...], **options: Any) -> DenseField:
        """``sigma_max T eps`` at ``shape`` (`DiffusionProcess.prior`, scaled)."""
        return self.sigma_max * SigmaProcess.prior(self, batch, shape, reference_shape, **options)

    @jaxtyped(typechecker=beartype)
    def loss(
        self,
        model: PointModel,
        x0: DenseField,
        *,
        points: int | float,
        generator: torch.Generator | None,
        cond: Tensor | None = None,
        reference_shape: tuple[int, ...] | None = None,
        sigma: Float[Tensor, " b"] | None = None,
    ) -> Float[Tensor, ""]:
        """The subsampled EDM loss (docs/math.md §19): ``F`` against ``x0`` at the points (against ``(T x0 - c_skip y) /
        c_out`` for ``prediction="preconditioned"``), noise white at ``reference_shape``; ``sigma`` fixes the noise
        levels (default: log-normal draws)."""
        check_field(self.domain, x0, "x0")
        b, spatial = x0.shape[0], tuple(x0.shape[2:])
        if sigma is None:
            sigma = torch.exp(self.p_mean + self.p_std * torch.randn(b, generator=generator, device=x0.device, dtype=torch.float64))
        noise = self.domain.white_noise(b, tuple(x0.shape[1:]), reference_shape or spatial, generator=generator, dtype=x0.dtype, device=x0.device)
        y = self.mollifier.mollify(x0 + broadcast(sigma.double(), x0) * noise)
        if self.prediction == "x0":
            target = x0
        else:
            c_skip, c_out, _ = self._scales(sigma)
            target = (self.mollifier.mollify(x0) - broadcast(c_skip, y) * y) / broadcast(c_out, y)
        return subsampled_mse(model, self.domain, self.model_input(y, sigma), target, self.time(sigma).to(x0.dtype), points=points,
                              generator=generator, cond=cond)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this process (`funcdiff.registry.build`)."""
        return component_dict(self.kind, domain=self.domain, mollifier=self.mollifier, sigma_min=self.sigma_min, sigma_max=self.sigma_max,
                              sigma_data=self.sigma_data, rho=self.rho, p_mean=self.p_mean, p_std=self.p_std, inv_snr=self.inv_snr,
                              prediction=self.prediction)
