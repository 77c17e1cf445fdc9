"""MollifiedDDPM: DDPM whose states are mollified functions ``y_t = T x_t`` (Bond-Taylor & Willcocks 2024)."""

from typing import Literal, final, get_args

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Int, Tensor
from funcdiff.domains.grid import GridDomain, resolve_count, white_noise
from funcdiff.mollifiers.base import Mollifier
from funcdiff.mollifiers.gaussian import mollifier_from_dict
from funcdiff.points import Points, unflatten_index
from funcdiff.processes.base import DiffusionProcess, PointModel
from funcdiff.processes.schedules import Schedule, schedule_from_dict
from funcdiff.domains.base import SubsampleScheme

Prediction = Literal["mollified_eps", "x0"]


@final
class MollifiedDDPM(DiffusionProcess):
    """The mollified diffusion process of MATH.md §3-6; with `IdentityMollifier` it is white-noise DDPM (§7).

    Steps ``t`` are integer tensors of shape ``(b,)`` in ``[1, T]``; models receive the continuous time ``t / T``.

    Args:
        schedule: the noise schedule (``alpha_bar`` of length ``T + 1``).
        mollifier: the smoothing operator ``T``.
        prediction: what the network outputs: ``"mollified_eps"`` (``T eps``, the paper's default) or ``"x0"``
            (the unmollified data).
    """

    def __init__(self, schedule: Schedule, mollifier: Mollifier, prediction: Prediction = "mollified_eps") -> None:
        if prediction not in get_args(Prediction):
            raise ValueError(f"prediction must be one of {get_args(Prediction)}, got {prediction!r}")
        self.schedule = schedule
        self.mollifier = mollifier
        self.prediction: Prediction = prediction

    def __repr__(self) -> str:
        return f"MollifiedDDPM(T={self.num_steps}, mollifier={self.mollifier!r}, prediction={self.prediction!r})"

    @property
    def num_steps(self) -> int:
        """The number of diffusion steps ``T``."""
        return self.schedule.num_steps

    def alpha_bar(self, t: Int[Tensor, " b"], like: Tensor) -> Tensor:
        """``alpha_bar_t`` per example, shaped to broadcast against ``like`` and in its dtype."""
        self.check_steps(t, allow_zero=True)
        value = self.schedule.alpha_bar.to(t.device)[t.long()]
        return value.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def check_steps(self, t: Tensor, *, allow_zero: bool = False, name: str = "t") -> None:
        """Raise ``ValueError`` unless ``t`` is an integer tensor ``(b,)`` of steps in ``[1, T]`` (or ``[0, T]``)."""
        if t.ndim != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor of shape (b,), got {t.dtype} {tuple(t.shape)}")
        low = 0 if allow_zero else 1
        if t.numel() and (int(t.min()) < low or int(t.max()) > self.num_steps):
            raise ValueError(f"{name} must lie in [{low}, {self.num_steps}], got values in [{int(t.min())}, {int(t.max())}]")

    def time(self, t: Int[Tensor, " b"]) -> Float[Tensor, " b"]:
        """The continuous time ``t / T`` in ``[0, 1]`` that models receive."""
        return t.float() / self.num_steps

    @jaxtyped(typechecker=beartype)
    def q_sample(self, x0: DenseField, t: Int[Tensor, " b"], noise: DenseField) -> DenseField:
        """``y_t = T(sqrt(abar_t) x0 + sqrt(1 - abar_t) noise)`` (MATH.md §3)."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        self.check_steps(t)
        a = self.alpha_bar(t, x0)
        return self.mollifier.mollify(a.sqrt() * x0 + (1 - a).sqrt() * noise)

    def posterior_coefficients(
        self, t: Int[Tensor, " b"], prev: Int[Tensor, " b"], like: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(c1, c2, betatilde)`` of ``q(y_prev | y_t, x0)`` for any ``prev < t`` (MATH.md §4; ``prev = t - 1`` is Eq. 12)."""
        if bool((prev >= t).any()):
            raise ValueError("prev must be smaller than t")
        a_t, a_p = self.alpha_bar(t, like), self.alpha_bar(prev, like)
        beta = 1 - a_t / a_p
        c1 = a_p.sqrt() * beta / (1 - a_t)
        c2 = (a_t / a_p).sqrt() * (1 - a_p) / (1 - a_t)
        return c1, c2, beta * (1 - a_p) / (1 - a_t)

    @jaxtyped(typechecker=beartype)
    def posterior(
        self, x0: DenseField, y_t: DenseField, t: Int[Tensor, " b"], *, prev: Int[Tensor, " b"] | None = None
    ) -> tuple[DenseField, Float[Tensor, " b"]]:
        """Mean ``c1 T x0 + c2 y_t`` and variance ``betatilde`` of ``q(y_prev | y_t, x0)``; covariance is ``betatilde T T*``."""
        self.check_steps(t)
        prev = t - 1 if prev is None else prev
        c1, c2, var = self.posterior_coefficients(t, prev, y_t)
        return c1 * self.mollifier.mollify(x0) + c2 * y_t, var.flatten()

    def predict(self, output: DenseField, y_t: DenseField, t: Int[Tensor, " b"]) -> tuple[DenseField, DenseField]:
        """Convert a model output to ``(T xhat0, T epshat)`` (MATH.md §5)."""
        a = self.alpha_bar(t, y_t)
        if self.prediction == "mollified_eps":
            return (y_t - (1 - a).sqrt() * output) / a.sqrt(), output
        tx0 = self.mollifier.mollify(output)
        return tx0, self.mollified_eps(tx0, y_t, t)

    def mollified_eps(self, tx0: DenseField, y_t: DenseField, t: Int[Tensor, " b"]) -> DenseField:
        """``T epshat = (y_t - sqrt(abar_t) T xhat0) / sqrt(1 - abar_t)`` (MATH.md §6)."""
        a = self.alpha_bar(t, y_t)
        return (y_t - a.sqrt() * tx0) / (1 - a).sqrt()

    def target(self, x0: DenseField, noise: DenseField) -> DenseField:
        """What the network should output: ``T noise`` or ``x0`` by prediction type."""
        return self.mollifier.mollify(noise) if self.prediction == "mollified_eps" else x0

    def finalize(self, tx0: DenseField, output: DenseField, *, inv_snr: float = 0.05) -> DenseField:
        """The reported sample: ``W(T xhat0)`` for mollified-eps, the network's ``xhat0`` for x0 (MATH.md §6)."""
        return self.mollifier.unmollify(tx0, inv_snr) if self.prediction == "mollified_eps" else output

    @jaxtyped(typechecker=beartype)
    def loss(
        self,
        model: PointModel,
        x0: DenseField,
        *,
        points: int | float,
        generator: torch.Generator | None,
        cond: Tensor | None = None,
        t: Int[Tensor, " b"] | None = None,
        scheme: SubsampleScheme = "uniform",
    ) -> Float[Tensor, ""]:
        """Subsampled Monte-Carlo simple loss (MATH.md §5, paper Eq. 10).

        Noise and ``T`` act on the full grid; the model sees ``y_t`` at ``points`` random cells per example (a
        count, or a fraction of the grid) and is scored there by the mean squared error over points and channels.
        """
        b, spatial = x0.shape[0], tuple(x0.shape[2:])
        total = x0[0, 0].numel()
        count = resolve_count(points, total)
        if t is None:
            t = torch.randint(1, self.num_steps + 1, (b,), generator=generator, device=x0.device)
        noise = white_noise(b, tuple(x0.shape[1:]), spatial, generator=generator, dtype=x0.dtype, device=x0.device)
        y_t = self.q_sample(x0, t, noise)
        target = self.target(x0, noise)
        cells = GridDomain.draw_cells(b, total, count, generator=generator, scheme=scheme, device=x0.device)
        index = unflatten_index(cells, spatial)
        output = model(Points.gather(y_t, index), self.time(t), cond)
        return (output - Points.gather(target, index).values).square().mean()

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
    ) -> DenseField:
        """``y_T = T eps`` with resolution-consistent white noise ``eps`` (MATH.md §2, §6); ``shape = (c, *spatial)``."""
        noise = white_noise(batch, shape, reference_shape, generator=generator, dtype=dtype, device=device)
        return self.mollifier.mollify(noise)

    def to_dict(self) -> dict:
        """The JSON-safe configuration that rebuilds this process."""
        return {"schedule": self.schedule.to_dict(), "mollifier": self.mollifier.to_dict(), "prediction": self.prediction}

    @staticmethod
    def from_dict(config: dict) -> "MollifiedDDPM":
        """Rebuild a process from `to_dict` output."""
        return MollifiedDDPM(schedule_from_dict(config["schedule"]), mollifier_from_dict(config["mollifier"]), config["prediction"])
