"""Functional flow matching with mollified states (Kerrigan et al. 2024; Lipman et al. 2023; docs/math.md §11)."""

from typing import Any, Literal, final, get_args

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.base import Domain, check_field
from funcdiff.mollifiers.base import Mollifier, check_inv_snr
from funcdiff.processes.coupling import Coupling, ot_pairing
from funcdiff.processes.base import FlowProcess, PointModel, broadcast, check_component, network_estimate, subsampled_mse
from funcdiff.registry import component_dict, register

FlowPrediction = Literal["velocity", "x1"]


@register("flow_matching")
@final
class FunctionalFlowMatching(FlowProcess):
    """Flow matching from ``T eps`` (``s = 0``) to ``T x1`` (``s = 1``) along ``y_s = T(s x1 + (1 - (1 - sigma_min) s) eps)``.

    The conditional velocity is ``u_s = T(x1 - (1 - sigma_min) eps)``; the loss is its mean squared error at the
    points the domain draws (docs/math.md §11). Models receive ``s`` itself as their time.

    Args:
        domain: where the data live (training points, noise).
        mollifier: the smoothing operator ``T``.
        sigma_min: the noise left at ``s = 1`` (0 is allowed).
        prediction: what the network outputs: ``"velocity"`` (``u_s``) or ``"x1"`` (the unmollified data, turned
            into the velocity ``(T xhat1 - (1 - sigma_min) y_s) / (1 - (1 - sigma_min) s)``).
        inv_snr: the Wiener filter's inverse signal-to-noise ratio for reported samples (docs/math.md §1).
        coupling: how training pairs noise with the data of a batch: ``"independent"`` (as drawn) or ``"ot"`` (minibatch
            optimal transport between the path's endpoints ``T eps`` and ``T x1``, `ot_pairing`), which straightens the
            learned paths (docs/math.md §11).
    """

    def __init__(
        self, domain: Domain, mollifier: Mollifier, sigma_min: float = 0.0, prediction: FlowPrediction = "velocity", inv_snr: float = 0.05,
        coupling: str = "independent",
    ) -> None:
        check_component(domain, Domain, "domain")
        check_component(mollifier, Mollifier, "mollifier")
        if isinstance(sigma_min, bool) or not isinstance(sigma_min, (int, float)) or not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be a number in [0, 1), got {sigma_min!r}")
        if prediction not in get_args(FlowPrediction):
            raise ValueError(f"prediction must be one of {get_args(FlowPrediction)}, got {prediction!r}")
        check_inv_snr(inv_snr)
        if coupling not in get_args(Coupling):
            raise ValueError(f"coupling must be one of {get_args(Coupling)}, got {coupling!r}")
        self.domain = domain
        self.coupling = coupling
        self.mollifier = mollifier
        self.sigma_min = float(sigma_min)
        self.prediction: FlowPrediction = prediction
        self.inv_snr = float(inv_snr)

    def __repr__(self) -> str:
        return (f"FunctionalFlowMatching(domain={self.domain!r}, mollifier={self.mollifier!r}, sigma_min={self.sigma_min:g}, "
                f"prediction={self.prediction!r}, coupling={self.coupling!r})")

    def _noise_scale(self, s: Float[Tensor, " b"]) -> Float[Tensor, " b"]:
        """``1 - (1 - sigma_min) s`` in float64."""
        return 1 - (1 - self.sigma_min) * s.double()

    @jaxtyped(typechecker=beartype)
    def path(self, x1: DenseField, s: Float[Tensor, " b"], noise: DenseField) -> tuple[DenseField, DenseField]:
        """The conditional state and velocity ``(y_s, u_s)`` for data ``x1`` and white noise (docs/math.md §11)."""
        if noise.shape != x1.shape:
            raise ValueError(f"noise must have the shape of x1 {tuple(x1.shape)}, got {tuple(noise.shape)}")
        if s.numel() and (float(s.min()) < 0 or float(s.max()) > 1):
            raise ValueError(f"s must lie in [0, 1], got values in [{float(s.min())}, {float(s.max())}]")
        x_s = broadcast(s.double(), x1) * x1 + broadcast(self._noise_scale(s), x1) * noise
        return self.mollifier.mollify(x_s), self.mollifier.mollify(x1 - (1 - self.sigma_min) * noise)

    def coefficients(self, s: Float[Tensor, " b"]) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"], Float[Tensor, " b"], Float[Tensor, " b"]]:
        """``(s, 1 - (1 - sigma_min) s, 1, -(1 - sigma_min))`` in float64: the path's coefficients (docs/math.md §13)."""
        s = s.double()
        return s, self._noise_scale(s), torch.ones_like(s), torch.full_like(s, -(1 - self.sigma_min))

    def velocity(self, output: DenseField, y_s: DenseField, s: Float[Tensor, " b"]) -> DenseField:
        """``dy/ds`` at ``(y_s, s)``: the output itself, or from ``xhat1`` (undefined at ``s = 1`` with sigma_min = 0)."""
        if self.prediction == "velocity":
            return output
        scale = self._noise_scale(s)
        if bool((scale <= 0).any()):
            raise ValueError("an x1-predicting flow with sigma_min = 0 has no velocity at s = 1")
        return broadcast(scale.reciprocal(), y_s) * (self.mollifier.mollify(output) - (1 - self.sigma_min) * y_s)

    def finalize(self, y_1: DenseField, output: DenseField) -> DenseField:
        """The reported sample (docs/math.md §11): for ``"x1"`` the last step's ``xhat1`` (the network's output) moved by
        ``W`` of how far ``y_1`` lies from ``T xhat1`` (nowhere, after the last Euler step with ``sigma_min = 0`` and
        no guidance), so the detail that ``T`` damps is kept; for ``"velocity"`` ``W y_1`` (docs/math.md §1)."""
        if self.prediction == "x1":
            return network_estimate(self.mollifier, output, y_1, self.inv_snr)
        return self.mollifier.unmollify(y_1, self.inv_snr)

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
        s: Float[Tensor, " b"] | None = None,
    ) -> Float[Tensor, ""]:
        """The subsampled conditional flow matching loss (docs/math.md §11); ``x0`` is the data (``x1`` of the path), the
        noise white at ``reference_shape`` (the model's; docs/math.md §15), paired with the data by ``coupling``."""
        check_field(self.domain, x0, "x0")
        b, spatial = x0.shape[0], tuple(x0.shape[2:])
        if s is None:
            s = torch.rand(b, generator=generator, device=x0.device)
        noise = self.domain.white_noise(b, tuple(x0.shape[1:]), reference_shape or spatial, generator=generator, dtype=x0.dtype, device=x0.device)
        if self.coupling == "ot":
            noise = noise[ot_pairing(self.mollifier.mollify(x0), self.mollifier.mollify(noise), cond)]
        y_s, u_s = self.path(x0, s, noise)
        target = u_s if self.prediction == "velocity" else x0
        return subsampled_mse(model, self.domain, y_s, target, s.to(x0.dtype), points=points, generator=generator, cond=cond)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this process (`funcdiff.registry.build`)."""
        return component_dict(
            self.kind, domain=self.domain, mollifier=self.mollifier, sigma_min=self.sigma_min, prediction=self.prediction, inv_snr=self.inv_snr,
            coupling=self.coupling,
        )
