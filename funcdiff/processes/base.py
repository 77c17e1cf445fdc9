"""The process protocols (what the trainer and samplers call), the model callables they accept, and the shared
subsampled loss.

Time conventions, stated once: a `DenoisingProcess` counts integer steps ``t`` down from ``T`` (noise) to 0 (data)
and models receive ``t / T``; a `FlowProcess` runs continuous time ``s`` up from 0 (noise) to 1 (data) and models
receive ``s``; a `SigmaProcess` runs noise levels ``sigma`` down from ``sigma_max`` to ``sigma_min`` (noise times
``tau`` from 1 to 0 map to them) and models receive ``log(sigma / sigma_min) / log(sigma_max / sigma_min)``. Either
way a model sees one float time per example, in ``[0, 1]`` over the sampled range.
"""

import functools
import types
from abc import abstractmethod
from typing import Any, Protocol, runtime_checkable

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Int, PointValues, Tensor
from funcdiff.domains.base import Domain, check_field
from funcdiff.mollifiers.base import Mollifier
from funcdiff.points import Points


@runtime_checkable
class PointModel(Protocol):
    """A network on points: ``(y at points, time in [0, 1], cond) -> output at the same points``."""

    def __call__(self, points: Points, t: Float[Tensor, " b"], cond: Tensor | None) -> PointValues: ...


@runtime_checkable
class DenseModel(Protocol):
    """A network on dense fields: ``(y, time in [0, 1], cond) -> output`` of the same shape."""

    def __call__(self, y: DenseField, t: Float[Tensor, " b"], cond: Tensor | None) -> DenseField: ...


@runtime_checkable
class DiffusionProcess(Protocol):
    """What the trainer and `funcdiff.sampling.sample` call: a subsampled training loss and a prior at any resolution.

    A process owns no network and no loop state; it owns its `Domain` (points, noise, value range) and `Mollifier`.
    The prior ``T eps`` comes with the protocol.
    """

    domain: Domain
    mollifier: Mollifier

    @abstractmethod
    def loss(
        self, model: PointModel, x0: DenseField, *, points: int | float, generator: torch.Generator | None, cond: Tensor | None = None,
        reference_shape: tuple[int, ...] | None = None,
    ) -> Float[Tensor, ""]:
        """The subsampled Monte-Carlo training loss of ``model`` on clean data ``x0`` (at ``points`` cells per example),
        with white noise that is N(0, I) at ``reference_shape`` (the model's; None: ``x0``'s grid), so that data at
        any resolution are noised as the sampler noises that resolution (docs/math.md §15)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this process (`funcdiff.registry.build`)."""

    @jaxtyped(typechecker=beartype)
    def prior(
        self,
        batch: int,
        shape: tuple[int, ...],
        reference_shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        noise: DenseField | None = None,
    ) -> DenseField:
        """The sampler's starting state at ``shape = (c, *spatial)``: ``T eps`` with the domain's white noise scaled
        for ``reference_shape`` (docs/math.md §2, §6, §11); a process with another prior overrides this.

        ``noise``, when given, is the white noise ``eps`` to use (of shape ``(batch, *shape)``), e.g. noise nested
        across resolutions (`funcdiff.sampling.sample`); a prior that overrides this must build on it the same way.
        """
        if noise is None:
            return mollified_noise(self.domain, self.mollifier, batch, shape, reference_shape, generator=generator, dtype=dtype, device=device)
        if tuple(noise.shape) != (batch, *shape):
            raise ValueError(f"noise must have shape {(batch, *shape)}, got {tuple(noise.shape)}")
        return self.mollifier.mollify(noise.to(dtype=dtype, device=device))


@runtime_checkable
class DenoisingProcess(DiffusionProcess, Protocol):
    """A discrete-time VP process in mollified space, ``y_t = T(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps)``: what
    `sample_ddpm`, `sample_ddim` and `encode_ddim` run (docs/math.md §3-6)."""

    num_steps: int

    @abstractmethod
    def time(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
        """The model's time for step ``t`` (``t / T``)."""

    @abstractmethod
    def alpha_bar(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
        """``abar_t`` per example in float64 (``abar_0 = 1``)."""

    @abstractmethod
    def predict(self, output: DenseField, y_t: DenseField, t: Int[Tensor, " b"]) -> tuple[DenseField, DenseField]:
        """``(T xhat0, T epshat)`` from a model output, differentiable in ``y_t`` and ``output`` (docs/math.md §5)."""

    @abstractmethod
    def estimate(
        self, output: DenseField, y_t: DenseField, t: Int[Tensor, " b"], *, clip: bool, correction: DenseField | None = None
    ) -> tuple[DenseField, DenseField]:
        """``(T xhat0, xhat0)``: the state-space estimate a sampler steps with and the data-space sample it reports.

        ``correction`` (from guidance) is added to ``T xhat0`` first; with ``clip`` the estimate is clipped to the
        domain's value range. The reported sample is the one the (corrected, clipped) ``T xhat0`` comes from.
        """


@runtime_checkable
class FlowProcess(DiffusionProcess, Protocol):
    """A flow from noise (``s = 0``) to data (``s = 1``) in mollified space: what `sample_euler` and `sample_heun`
    integrate (docs/math.md §11)."""

    @abstractmethod
    def velocity(self, output: DenseField, y_s: DenseField, s: Float[Tensor, " b"]) -> DenseField:
        """``dy/ds`` at ``(y_s, s)`` from a model output."""

    @abstractmethod
    def finalize(self, y_1: DenseField, output: DenseField) -> DenseField:
        """The reported sample from the final state ``y_1 = T x1`` and the network output of the last step (``W y_1``,
        or the network's own ``xhat1``; docs/math.md §1, §11)."""

    def coefficients(self, s: Float[Tensor, " b"]) -> tuple[Float[Tensor, " b"], Float[Tensor, " b"], Float[Tensor, " b"], Float[Tensor, " b"]]:
        """``(alpha_s, sigma_s, dalpha/ds, dsigma/ds)`` of the path ``y_s = alpha_s T x1 + sigma_s T eps`` in float64
        (docs/math.md §13): what guidance, callbacks' data estimates and log-SNR time grids need. A flow without an
        affine Gaussian path leaves this out and samples without them."""
        raise NotImplementedError(f"{type(self).__name__} does not define coefficients(s) of an affine path y_s = alpha_s T x1 + "
                                  "sigma_s T eps; guidance and log-SNR time grids need them")


@runtime_checkable
class SigmaProcess(DiffusionProcess, Protocol):
    """A process in noise-level space, ``y_sigma = T x0 + sigma T eps`` (variance exploding), with a preconditioned
    denoiser ``D(y; sigma) ~ E[T x0 | y]``: what `sample_edm_heun`, `sample_edm_dpmpp` and `sample_edm_ddim` run
    (docs/math.md §19).
    Noise times ``tau`` in ``[0, 1]`` (1 noise, 0 data) map to noise levels by `sigma`."""

    @abstractmethod
    def sigma(self, tau: Float[Tensor, " k"]) -> Float[Tensor, " k"]:
        """The noise level at noise time ``tau`` in float64: ``sigma_max`` at 1, ``sigma_min`` at 0."""

    @abstractmethod
    def time(self, sigma: Float[Tensor, " b"]) -> Float[Tensor, " b"]:
        """The model's time for noise level ``sigma``."""

    @abstractmethod
    def model_input(self, y: DenseField, sigma: Float[Tensor, " b"]) -> DenseField:
        """What the network sees at ``(y, sigma)`` (``c_in y``)."""

    @abstractmethod
    def denoised(self, output: DenseField, y: DenseField, sigma: Float[Tensor, " b"]) -> DenseField:
        """``D = T xhat0`` from the network's output at ``(y, sigma)`` (``c_skip y + c_out F``)."""

    @abstractmethod
    def finalize(self, d: DenseField, output: DenseField) -> DenseField:
        """The reported sample from the final estimate ``D = T xhat0`` and the network output that made it (``W D``,
        or the network's own ``xhat0``; docs/math.md §1, §19)."""


def network_estimate(mollifier: Mollifier, output: DenseField, state: DenseField, inv_snr: float) -> DenseField:
    """The network's own unmollified estimate ``output``, moved by ``W`` of how far the final ``state`` lies from its
    mollification ``T output`` (what guidance added; nothing without it): the report of docs/math.md §11 and §19."""
    return output + mollifier.unmollify(state - mollifier.mollify(output), inv_snr)


def mollified_noise(
    domain: Domain,
    mollifier: Mollifier,
    batch: int,
    shape: tuple[int, ...],
    reference_shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> DenseField:
    """``T eps`` with the domain's resolution-consistent white noise ``eps`` at ``shape = (c, *spatial)`` (docs/math.md §2)."""
    noise = domain.white_noise(batch, shape, reference_shape, generator=generator, dtype=dtype, device=device)
    return mollifier.mollify(noise)


def subsampled_mse(
    model: PointModel,
    domain: Domain,
    state: DenseField,
    target: DenseField,
    time: Float[Tensor, " b"],
    *,
    points: int | float,
    generator: torch.Generator | None,
    cond: Tensor | None,
    weight: Float[Tensor, " b"] | None = None,
) -> Float[Tensor, ""]:
    """The Monte-Carlo loss of docs/math.md §5 (paper Eq. 10): the model sees ``state`` at ``points`` cells per example
    drawn by the domain and is scored there against ``target`` by the mean squared error (each example's times
    ``weight``, if given)."""
    index = domain.draw_index(state.shape[0], tuple(state.shape[2:]), points, generator=generator, device=state.device)
    output = model(Points.gather(state, index), time, cond)
    expected = Points.gather(target, index).values
    check_output(output, expected.shape, "in the loss", model=model)
    return weighted_mean((output - expected).square(), weight)


def weighted_mean(squares: Float[Tensor, "b *rest"], weight: Float[Tensor, " b"] | None) -> Float[Tensor, ""]:
    """The mean of ``squares``, each example's entries counted ``weight`` times (plain mean without weights)."""
    if weight is None:
        return squares.mean()
    return (squares.flatten(1).mean(dim=1) * weight.to(squares.dtype)).mean()


def check_output(output: object, expected: tuple[int, ...], where: str, *, finite: bool = False, model: object = None) -> None:
    """Raise ``TypeError`` unless a model's ``output`` is a tensor, ``ValueError`` unless it has the ``expected``
    shape, and with ``finite`` ``FloatingPointError`` if it holds NaN or Inf; ``where`` says which call it was and
    ``model`` (unwrapped from `functools.partial`, bound methods and DDP) which component made it."""
    while True:
        if isinstance(model, functools.partial):
            model = model.func
        elif isinstance(model, types.MethodType):
            model = model.__self__
        elif hasattr(model, "module"):  # DistributedDataParallel
            model = model.module
        else:
            break
    name = "the model" if model is None or isinstance(model, types.FunctionType) else f"the operator {type(model).__name__}"
    if not isinstance(output, Tensor):
        raise TypeError(f"{name} must return a tensor {where}, got {type(output).__name__}")
    if output.shape != expected:
        raise ValueError(f"{name} returned shape {tuple(output.shape)} {where}, expected {tuple(expected)}")
    if finite and not bool(output.isfinite().all()):
        raise FloatingPointError(f"the model produced NaN or Inf {where}")


def check_component(value: object, kind: type, name: str) -> None:
    """Raise ``TypeError`` unless the constructor argument ``name`` is a ``kind`` (a class or a runtime protocol)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")


def check_start(domain: Domain, y: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless a sampler's start ``y`` is a non-empty field of ``domain``, ``FloatingPointError``
    if it holds NaN or Inf."""
    check_field(domain, y, name)
    if not bool(y.isfinite().all()):
        raise FloatingPointError(f"{name} holds NaN or Inf")


def broadcast(coefficient: Float[Tensor, " b"], like: Tensor) -> Tensor:
    """A per-example coefficient (computed in float64) cast to ``like``'s dtype and shaped to broadcast against it."""
    return coefficient.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))
